#include "server/job_manager.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/common/files.h"

namespace segrel::server {
namespace {

namespace fs = std::filesystem;

// A folder this server made for a job: it holds nothing but input/ and out/ (either may be gone already).
bool IsJobFolder(const fs::directory_entry& entry) {
  std::error_code error;
  if (!entry.is_directory(error) || entry.is_symlink(error)) return false;
  for (const fs::directory_entry& child : fs::directory_iterator(entry.path(), error)) {
    const std::string name = child.path().filename().string();
    if (name != "input" && name != "out") return false;
  }
  return !error;
}

}  // namespace

absl::Status CheckResubmission(const Job& job, const std::string& fingerprint) {
  if (job.spec().fingerprint == fingerprint) return absl::OkStatus();
  return absl::AlreadyExistsError(
      absl::StrCat("job ", job.spec().id, " was submitted before with another model, study or options"));
}

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(JobManagerOptions options, Metrics* metrics) {
  if (options.spool_dir.empty()) return absl::InvalidArgumentError("a spool folder is required");
  if (options.queue_capacity < 1) return absl::InvalidArgumentError("the queue capacity must be at least 1");
  std::error_code error;
  fs::create_directories(options.spool_dir, error);
  if (error) return absl::InternalError(absl::StrCat(options.spool_dir, ": cannot create: ", error.message()));
  std::unique_ptr<JobManager> manager(new JobManager(std::move(options), metrics));
  if (absl::Status status = manager->CleanSpool(); !status.ok()) return status;
  return manager;
}

JobManager::JobManager(JobManagerOptions options, Metrics* metrics)
    : options_(std::move(options)),
      metrics_(metrics),
      queue_(options_.queue_capacity),
      folder_token_(absl::StrFormat("%x", absl::ToUnixMicros(absl::Now()))) {
  queue_.SetLengthListener([metrics](size_t length) { metrics->queue_length.Set({}, length); });
}

absl::Status JobManager::CleanSpool() {
  std::error_code error;
  std::vector<std::string> stale;
  for (const fs::directory_entry& entry : fs::directory_iterator(options_.spool_dir, error)) {
    if (IsJobFolder(entry)) {
      stale.push_back(entry.path().string());
    } else {
      ++unknown_entries_kept_;
    }
  }
  if (error) return absl::InternalError(absl::StrCat(options_.spool_dir, ": cannot read: ", error.message()));
  for (const std::string& folder : stale) {
    if (absl::Status status = RemoveTree(folder); !status.ok()) return status;
  }
  stale_jobs_removed_ = stale.size();
  return absl::OkStatus();
}

absl::Status JobManager::CheckAdmission() const {
  absl::MutexLock lock(&mutex_);
  if (shutting_down_) return absl::UnavailableError("the server is shutting down");
  return absl::OkStatus();
}

std::shared_ptr<Job> JobManager::Find(const std::string& id) const {
  absl::MutexLock lock(&mutex_);
  const auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second;
}

absl::StatusOr<std::string> JobManager::NewJobDirectory(const std::string& id) {
  // mkdir, not create_directories: a folder that exists already (however it got there) is never reused.
  for (int attempt = 0; attempt < 1000; ++attempt) {
    uint64_t number;
    {
      absl::MutexLock lock(&mutex_);
      number = next_folder_++;
    }
    std::string folder = absl::StrCat(options_.spool_dir, "/", id, ".", folder_token_, ".", number);
    if (mkdir(folder.c_str(), 0700) == 0) return folder;
    if (errno != EEXIST) {
      return absl::InternalError(absl::StrCat("cannot create a job folder in the spool: ", std::strerror(errno)));
    }
  }
  return absl::InternalError("cannot create a job folder in the spool: every name tried exists");
}

absl::StatusOr<JobManager::Accepted> JobManager::Accept(JobSpec spec) {
  absl::MutexLock lock(&mutex_);
  absl::Status refused;
  if (shutting_down_) {
    refused = absl::UnavailableError("the server is shutting down");
  } else if (const auto it = jobs_.find(spec.id); it != jobs_.end()) {
    // Another upload with this id was accepted first (or earlier): the same submission, or a conflict.
    refused = CheckResubmission(*it->second, spec.fingerprint);
    if (refused.ok()) {
      RemoveTree(spec.directory).IgnoreError();  // a leftover folder only takes space
      return Accepted{it->second, true};
    }
  }
  if (!refused.ok()) {
    RemoveTree(spec.directory).IgnoreError();
    return refused;
  }
  const std::string directory = spec.directory;
  auto job = std::make_shared<Job>(std::move(spec));
  if (absl::Status status = queue_.Enqueue(job); !status.ok()) {
    RemoveTree(directory).IgnoreError();
    return status;
  }
  jobs_[job->spec().id] = job;
  job_order_.push_back(job->spec().id);
  metrics_->jobs_received.Add({});
  ForgetOldJobs();
  return Accepted{std::move(job), false};
}

absl::StatusOr<std::shared_ptr<Job>> JobManager::Cancel(const std::string& id) {
  std::shared_ptr<Job> job = Find(id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("unknown job '", id, "'"));
  if (queue_.Remove(*job)) {
    Finish(*job, absl::CancelledError("cancelled by request while queued"));  // never handed to a worker
  } else {
    job->RequestCancel();  // a running job stops at its next window or stage
  }
  return job;
}

std::optional<size_t> JobManager::QueuePosition(const Job& job) const { return queue_.Position(job); }

std::shared_ptr<Job> JobManager::NextJob() {
  std::shared_ptr<Job> job = queue_.Pop();
  if (job != nullptr) metrics_->queue_time.Observe({}, absl::ToDoubleSeconds(absl::Now() - job->spec().received));
  return job;
}

void JobManager::SetHeld(bool held) { queue_.SetHeld(held); }

void JobManager::Finish(Job& job, const absl::Status& status, JobResults results) {
  const JobSpec& spec = job.spec();
  // The inputs are needed no more; DICOM files in particular carry patient data: keep them no longer than needed.
  RemoveTree(spec.InputDirectory()).IgnoreError();  // a leftover folder only takes space
  if (status.ok()) {
    metrics_->RecordSummary(spec.model_name, results.summary);
    metrics_->jobs_succeeded.Add({spec.model_name});
  } else {
    metrics_->jobs_failed.Add({spec.model_name, CodeName(status.code())});
  }
  job.End(status, std::move(results.files));
}

void JobManager::Shutdown() {
  {
    absl::MutexLock lock(&mutex_);
    if (shutting_down_) return;
    shutting_down_ = true;
  }
  for (const std::shared_ptr<Job>& job : queue_.Close()) {
    Finish(*job, absl::UnavailableError("the server shut down before the job ran; submit it again"));
  }
}

void JobManager::ForgetOldJobs() {
  // The oldest ended jobs go first; jobs still queued or running are never forgotten.
  for (auto it = job_order_.begin(); jobs_.size() > options_.max_jobs_kept && it != job_order_.end();) {
    const auto job = jobs_.find(*it);
    if (!IsFinal(job->second->Get().state)) {
      ++it;
      continue;
    }
    RemoveTree(job->second->spec().directory).IgnoreError();
    jobs_.erase(job);
    it = job_order_.erase(it);
  }
}

}  // namespace segrel::server
