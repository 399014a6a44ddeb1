#include "server/job_manager.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/common/files.h"

namespace segrel::server {
namespace {

namespace fs = std::filesystem;

// A folder this server made for a job: it holds nothing but input/, out/ and the job's record (any may be missing).
bool IsJobFolder(const fs::directory_entry& entry) {
  std::error_code error;
  if (!entry.is_directory(error) || entry.is_symlink(error)) return false;
  const std::string record = kJobRecordName;
  for (const fs::directory_entry& child : fs::directory_iterator(entry.path(), error)) {
    const std::string name = child.path().filename().string();
    if (name != "input" && name != "out" && name != record && name != record + ".new") return false;
  }
  return !error;
}

bool Exists(const std::string& path) {
  std::error_code error;
  return fs::exists(path, error);
}

// Whether every input `spec` names is still on disk (a job that was running when the process died has all of them;
// one whose inputs were deleted, say by hand, cannot run).
bool InputsComplete(const JobSpec& spec) {
  if (spec.input_files.empty() && spec.dicom_dir.empty()) return false;
  for (const std::string& file : spec.input_files) {
    if (!Exists(file)) return false;
  }
  for (const auto& region : spec.region_files) {
    if (!Exists(region.second)) return false;
  }
  if (!spec.reference_file.empty() && !Exists(spec.reference_file)) return false;
  std::error_code error;
  return spec.dicom_dir.empty() || !fs::is_empty(spec.dicom_dir, error);
}

// How often the sweeper looks for jobs past the retention time.
absl::Duration SweepPeriod(absl::Duration retention) {
  return std::clamp(retention / 4, absl::Milliseconds(50), absl::Minutes(1));
}

// Whether jobs can be accepted into `spool` at all: it has the free space the watermark keeps, and a file can be
// written, synced and removed there (a volume mounted read-only, or one whose permissions do not let this user
// write, fails here and not on the first upload). FailedPrecondition names the folder and what to fix.
// Whether the spool takes a synced write: a read-only mount, a full disk or a quota fail here, at start-up, rather
// than in the first job that writes. Low free space above zero is not an error: uploads are refused until it frees.
absl::Status CheckSpoolWritable(const std::string& spool) {
  const std::string probe = spool + "/.segrel-write-check";
  const int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool written = fd >= 0 && write(fd, "x", 1) == 1 && fsync(fd) == 0;
  int error = errno;
  if (fd >= 0 && close(fd) != 0 && written) {
    written = false;
    error = errno;
  }
  if (fd >= 0 && unlink(probe.c_str()) != 0 && written) {
    written = false;
    error = errno;
  }
  if (written) return absl::OkStatus();
  if (error == ENOSPC || error == EDQUOT) {  // full below the watermark's resolution, or a quota
    return absl::FailedPreconditionError(
        absl::StrCat("the spool ", spool, " is full (", std::strerror(error), "): free space there or enlarge it"));
  }
  return absl::FailedPreconditionError(absl::StrCat("the spool ", spool, " cannot be written (", std::strerror(error),
                                                    "): mount it read-write for the server's user"));
}

}  // namespace

absl::Status CheckResubmission(const Job& job, const std::string& fingerprint) {
  if (job.spec().fingerprint == fingerprint) return absl::OkStatus();
  return absl::AlreadyExistsError(
      absl::StrCat("job ", job.spec().id, " was submitted before with another model, study or options"));
}

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(JobManagerOptions options, Metrics* metrics,
                                                               AuditLog* audit) {
  if (options.spool_dir.empty()) return absl::InvalidArgumentError("a spool folder is required");
  if (options.queue_capacity < 1) return absl::InvalidArgumentError("the queue capacity must be at least 1");
  std::error_code error;
  fs::create_directories(options.spool_dir, error);
  if (error) return absl::InternalError(absl::StrCat(options.spool_dir, ": cannot create: ", error.message()));
  if (options.retention <= absl::ZeroDuration()) return absl::InvalidArgumentError("the retention must be positive");
  std::unique_ptr<JobManager> manager(new JobManager(std::move(options), metrics, audit));
  if (manager->options_.cluster.has_value()) {
    if (!manager->options_.durable) {
      return absl::InvalidArgumentError("a cluster replica needs job records: they are how replicas know a job");
    }
    ClusterOptions cluster = *manager->options_.cluster;
    cluster.queue.capacity = static_cast<int64_t>(manager->options_.queue_capacity);
    cluster.retention = manager->options_.retention;
    absl::StatusOr<std::unique_ptr<ClusterJobs>> joined = ClusterJobs::Connect(std::move(cluster));
    if (!joined.ok()) return joined.status();
    manager->cluster_ = *std::move(joined);
    JobManager* self = manager.get();
    manager->cluster_->Listen([self](const std::string& id, const ClusterJobState& state) { self->Follow(id, state); });
    manager->cluster_->Measure(absl::Seconds(1), [metrics](const NatsJobQueue::Depth& depth) {
      metrics->cluster_jobs_waiting.Set({}, static_cast<double>(depth.waiting));
      metrics->cluster_jobs_running.Set({}, static_cast<double>(depth.taken));
      metrics->cluster_oldest_job_age.Set({}, absl::ToDoubleSeconds(depth.oldest_age));
      metrics->cluster_jobs_redelivered.Set({}, static_cast<double>(depth.redelivered));
      metrics->queue_length.Set({}, static_cast<double>(depth.waiting));
    });
  } else if (absl::Status status = manager->RecoverSpool(); !status.ok()) {
    return status;
  }
  // After the recovery, which removes expired jobs and unfinished uploads: what is left is what the spool has.
  if (absl::Status status = CheckSpoolWritable(manager->options_.spool_dir); !status.ok()) return status;
  struct statvfs disk;
  if (statvfs(manager->options_.spool_dir.c_str(), &disk) == 0) {
    manager->recovery_.free_bytes = static_cast<uint64_t>(disk.f_bavail) * disk.f_frsize;
    manager->recovery_.below_watermark = manager->recovery_.free_bytes < manager->options_.min_free_bytes;
  }
  manager->sweeper_ = std::thread([manager = manager.get()] { manager->SweepUntilDestroyed(); });
  return manager;
}

JobManager::~JobManager() {
  {
    absl::MutexLock lock(&mutex_);
    destroying_ = true;
  }
  if (sweeper_.joinable()) sweeper_.join();
  cluster_.reset();  // first: its listener calls Follow
}

JobManager::JobManager(JobManagerOptions options, Metrics* metrics, AuditLog* audit)
    : options_(std::move(options)),
      metrics_(metrics),
      audit_(audit),
      queue_(options_.queue_capacity),
      folder_token_(absl::StrFormat("%x", absl::ToUnixMicros(absl::Now()))) {
  queue_.SetLengthListener([metrics](size_t length) { metrics->queue_length.Set({}, length); });
}

absl::Status JobManager::RecoverSpool() {
  std::error_code error;
  std::vector<std::string> folders;
  const std::vector<std::string>& reserved = options_.reserved_entries;
  for (const fs::directory_entry& entry : fs::directory_iterator(options_.spool_dir, error)) {
    if (std::find(reserved.begin(), reserved.end(), entry.path().filename().string()) != reserved.end()) continue;
    if (IsJobFolder(entry)) {
      folders.push_back(entry.path().string());
    } else {
      ++recovery_.unknown_kept;
    }
  }
  if (error) return absl::InternalError(absl::StrCat(options_.spool_dir, ": cannot read: ", error.message()));
  std::vector<JobRecord> records;
  for (const std::string& folder : folders) {
    absl::StatusOr<JobRecord> record = options_.durable ? ReadJobRecord(folder) : absl::NotFoundError("not durable");
    if (record.ok()) {
      records.push_back(*std::move(record));
      continue;
    }
    if (absl::Status status = RemoveTree(folder); !status.ok()) return status;
    ++recovery_.removed;
  }
  // The queue takes them back in the order they first arrived.
  std::sort(records.begin(), records.end(), [](const JobRecord& a, const JobRecord& b) {
    return std::tie(a.spec.received, a.spec.id) < std::tie(b.spec.received, b.spec.id);
  });
  const absl::Time now = absl::Now();
  for (JobRecord& record : records) Recover(std::move(record), now);
  return absl::OkStatus();
}

void JobManager::Recover(JobRecord record, absl::Time now) {
  const std::string folder = record.spec.directory;
  absl::MutexLock lock(&mutex_);
  if (jobs_.contains(record.spec.id)) {  // two folders for one id cannot come from this server; keep the first
    RemoveTree(folder).IgnoreError();
    ++recovery_.removed;
    return;
  }
  if (record.ending.has_value() && record.ending->ended + options_.retention < now) {
    RemoveTree(folder).IgnoreError();
    ++recovery_.expired;
    Audit(audit_, AuditEvent::kExpired, Job(std::move(record.spec)));
    return;
  }
  auto job = std::make_shared<Job>(std::move(record.spec));
  jobs_[job->spec().id] = job;
  job_order_.push_back(job->spec().id);
  if (record.ending.has_value()) {
    job->End(record.ending->status, std::move(record.ending->results), record.ending->ended);
    ++recovery_.ended;
  } else if (!InputsComplete(job->spec())) {
    const absl::Status status =
        absl::UnavailableError("the job's inputs were lost when the server restarted; submit it again");
    RemoveTree(job->spec().InputDirectory()).IgnoreError();
    WriteJobRecord(JobRecord{job->spec(), JobEnding{status, {}, now}}).IgnoreError();  // else it fails again next time
    job->End(status, {}, now);
    ++recovery_.incomplete;
  } else {
    RemoveTree(job->spec().OutputDirectory()).IgnoreError();  // what a run the process did not finish wrote
    queue_.Restore(job).IgnoreError();                        // the queue is open: nothing has closed it yet
    ++recovery_.queued;
  }
  Audit(audit_, AuditEvent::kRecovered, *job);
}

absl::Status JobManager::CheckAdmission(uint64_t incoming_bytes) const {
  if (shutting_down()) return absl::UnavailableError("the server is shutting down");
  if (!options_.accepts_uploads) {
    return absl::UnavailableError("this replica only runs jobs (--role=work): submit to another replica");
  }
  if (absl::Status room = cluster_ ? cluster_->CheckRoom() : queue_.CheckRoom(); !room.ok()) return room;
  struct statvfs disk;
  if (statvfs(options_.spool_dir.c_str(), &disk) == 0) {
    const uint64_t free_bytes = static_cast<uint64_t>(disk.f_bavail) * disk.f_frsize;
    if (free_bytes < options_.min_free_bytes || free_bytes - options_.min_free_bytes < incoming_bytes) {
      return RetryLater(absl::ResourceExhaustedError(
          absl::StrCat("the server's storage is nearly full (", free_bytes >> 20, " MiB free, ",
                       options_.min_free_bytes >> 20, " MiB kept free); retry when jobs have ended")));
    }
  }
  return absl::OkStatus();
}

bool JobManager::shutting_down() const {
  absl::MutexLock lock(&mutex_);
  return shutting_down_;
}

std::shared_ptr<Job> JobManager::Find(const std::string& id) {
  {
    absl::MutexLock lock(&mutex_);
    const auto it = jobs_.find(id);
    if (it != jobs_.end() || cluster_ == nullptr) return it == jobs_.end() ? nullptr : it->second;
  }
  absl::StatusOr<ClusterJobState> state = cluster_->Get(id);  // outside the lock: a round trip to NATS
  if (!state.ok()) return nullptr;
  absl::MutexLock lock(&mutex_);
  absl::StatusOr<std::shared_ptr<Job>> job = CopyOf(id, *state);
  return job.ok() ? *job : nullptr;
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
  // The record is written before the job is visible or acknowledged, outside the lock (it syncs the disk). Uploads
  // of one id that race write records in their own folders; the loser's folder goes below.
  if (options_.durable) {
    if (absl::Status written = WriteJobRecord(JobRecord{spec, std::nullopt}); !written.ok()) {
      RemoveTree(spec.directory).IgnoreError();
      return absl::InternalError("cannot record the job in the spool");  // the path stays in the server's log
    }
  }
  std::vector<std::shared_ptr<Job>> forgotten;
  absl::StatusOr<Accepted> accepted = Register(std::move(spec), forgotten);
  Remove(forgotten);
  if (accepted.ok() && !accepted->already_submitted) Audit(audit_, AuditEvent::kSubmitted, *accepted->job);
  return accepted;
}

absl::StatusOr<JobManager::Accepted> JobManager::Register(JobSpec spec, std::vector<std::shared_ptr<Job>>& forgotten) {
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
  if (cluster_ != nullptr) {
    absl::StatusOr<Accepted> queued = EnqueueInCluster(job);
    if (!queued.ok() || queued->already_submitted) {
      RemoveTree(directory).IgnoreError();
      return queued;
    }
  } else if (absl::Status status = queue_.Enqueue(job); !status.ok()) {
    RemoveTree(directory).IgnoreError();
    return status;
  }
  jobs_[job->spec().id] = job;
  job_order_.push_back(job->spec().id);
  metrics_->jobs_received.Add({});
  forgotten = ForgetOldJobs(absl::Now());
  return Accepted{std::move(job), false};
}

absl::StatusOr<std::shared_ptr<Job>> JobManager::Cancel(const std::string& id) {
  std::shared_ptr<Job> job = Find(id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("unknown job '", id, "'"));
  if (cluster_ != nullptr) {
    // Queued: cancelled here and now (its message is dropped by the worker that takes it). Running: the replica
    // running it sees the request in the shared state and stops it at its next window or stage.
    const absl::Status cancelled = absl::CancelledError("cancelled by request while queued");
    bool was_queued = false;
    absl::StatusOr<ClusterJobState> state = cluster_->Change(id, [&](ClusterJobState& shared) {
      was_queued = shared.state() == ClusterJobState::QUEUED;
      if (was_queued) {
        shared.set_state(ClusterJobState::CANCELLED);
        shared.set_status_code(static_cast<int>(cancelled.code()));
        shared.set_status_message(std::string(cancelled.message()));
        shared.set_ended_unix_micros(absl::ToUnixMicros(absl::Now()));
        return true;
      }
      if (shared.state() != ClusterJobState::RUNNING || shared.cancel_requested()) return false;
      shared.set_cancel_requested(true);
      return true;
    });
    if (!state.ok()) return state.status();
    if (was_queued) Finish(*job, cancelled);  // its inputs go; the shared state is written already
    return job;
  }
  if (queue_.Remove(*job)) {
    Finish(*job, absl::CancelledError("cancelled by request while queued"));  // never handed to a worker
  } else {
    job->RequestCancel();  // a running job stops at its next window or stage
  }
  return job;
}

absl::Status JobManager::Delete(const std::string& id) {
  std::string folder;
  {
    absl::MutexLock lock(&mutex_);
    const auto it = jobs_.find(id);
    if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("unknown job '", id, "'"));
    if (!IsFinal(it->second->Get().state)) {
      return absl::FailedPreconditionError(absl::StrCat("job ", id, " has not ended: cancel it first"));
    }
    folder = it->second->spec().directory;
    jobs_.erase(it);
    job_order_.erase(std::find(job_order_.begin(), job_order_.end(), id));
  }
  return RemoveTree(folder);
}

std::vector<std::shared_ptr<Job>> JobManager::Jobs() const {
  absl::MutexLock lock(&mutex_);
  std::vector<std::shared_ptr<Job>> jobs;
  jobs.reserve(job_order_.size());
  for (auto it = job_order_.rbegin(); it != job_order_.rend(); ++it) jobs.push_back(jobs_.at(*it));
  return jobs;
}

std::optional<size_t> JobManager::QueuePosition(const Job& job) const { return queue_.Position(job); }

std::shared_ptr<Job> JobManager::NextJob() {
  std::shared_ptr<Job> job = cluster_ ? TakeFromCluster() : queue_.Pop();
  if (job == nullptr) return nullptr;
  metrics_->queue_time.Observe({}, absl::ToDoubleSeconds(absl::Now() - job->spec().received));
  Audit(audit_, AuditEvent::kStarted, *job);
  return job;
}

void JobManager::SetHeld(bool held) {
  {
    absl::MutexLock lock(&mutex_);
    held_ = held;
  }
  queue_.SetHeld(held);
}

void JobManager::Finish(Job& job, const absl::Status& status, JobResults results) {
  const JobSpec& spec = job.spec();
  if (cluster_ != nullptr && absl::IsUnavailable(status) && shutting_down()) {
    RequeueInCluster(job);
    return;
  }
  if (options_.durable && absl::IsUnavailable(status) && shutting_down()) {
    job.End(status);  // its inputs and queued record stay: the next process on this spool runs it
    Audit(audit_, AuditEvent::kInterrupted, job);
    return;
  }
  // The inputs are needed no more; DICOM files in particular carry patient data: keep them no longer than needed.
  RemoveTree(spec.InputDirectory()).IgnoreError();  // a leftover folder only takes space
  const absl::Time ended = absl::Now();
  if (options_.durable) {
    // When the record cannot be written, a restarted server finds the job queued with its inputs gone and fails it
    // (UNAVAILABLE, submit again): its clients learn, nothing runs twice.
    WriteJobRecord(JobRecord{spec, JobEnding{status, results.files, ended}}).IgnoreError();
  }
  if (cluster_ != nullptr) ShareEnding(job, status, results.files, ended);
  if (status.ok()) {
    metrics_->RecordSummary(spec.model_name, results.summary);
    metrics_->jobs_succeeded.Add({spec.model_name});
  } else {
    metrics_->jobs_failed.Add({spec.model_name, CodeName(status.code())});
  }
  AuditDetails how;
  how.code = status.code();
  Audit(audit_, AuditEvent::kEnded, job, how);
  job.End(status, std::move(results.files), ended);
}

void JobManager::Shutdown() {
  {
    absl::MutexLock lock(&mutex_);
    if (shutting_down_) return;
    shutting_down_ = true;
  }
  for (const std::shared_ptr<Job>& job : queue_.Close()) Finish(*job, Interrupted());
}

absl::Status JobManager::Interrupted() const {
  return absl::UnavailableError(
      options_.durable ? "the server stopped before the job ended; it runs again when the server restarts, or submit "
                         "it again"
                       : "the server stopped before the job ended; submit it again");
}

std::vector<std::shared_ptr<Job>> JobManager::ForgetOldJobs(absl::Time now) {
  // The oldest ended jobs go first; jobs still queued or running are never forgotten.
  std::vector<std::shared_ptr<Job>> forgotten;
  for (auto it = job_order_.begin(); it != job_order_.end();) {
    const auto job = jobs_.find(*it);
    const Job::Snapshot snapshot = job->second->Get();
    const bool expired = snapshot.ended + options_.retention < now;
    if (!IsFinal(snapshot.state) || (jobs_.size() <= options_.max_jobs_kept && !expired)) {
      ++it;
      continue;
    }
    forgotten.push_back(job->second);
    jobs_.erase(job);
    it = job_order_.erase(it);
  }
  return forgotten;
}

void JobManager::Remove(const std::vector<std::shared_ptr<Job>>& forgotten) {
  if (cluster_ != nullptr) return;  // forgotten here, still served by the others: SweepSharedSpool deletes folders
  for (const std::shared_ptr<Job>& job : forgotten) {
    RemoveTree(job->spec().directory).IgnoreError();  // a leftover folder only takes space
    Audit(audit_, AuditEvent::kExpired, *job);
  }
}

void JobManager::SweepUntilDestroyed() {
  const absl::Duration period = SweepPeriod(options_.retention);
  while (true) {
    std::vector<std::shared_ptr<Job>> forgotten;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.AwaitWithTimeout(absl::Condition(&destroying_), period);
      if (destroying_) return;
      forgotten = ForgetOldJobs(absl::Now());
    }
    Remove(forgotten);
    if (cluster_ != nullptr) SweepSharedSpool(absl::Now());
  }
}

// --- The cluster's side (JobManagerOptions::cluster) ---

// A job this replica's workers run: its lease on the cluster's queue, and the observer that shares its progress.
struct JobManager::Lease {
  std::unique_ptr<JobLease> lease;
  std::shared_ptr<JobObserver> sharer;
};

namespace {

// Shares a running job's stage and progress whenever they change.
class ProgressSharer : public JobObserver {
 public:
  explicit ProgressSharer(std::function<void()> share) : share_(std::move(share)) {}
  void OnJobChanged() override { share_(); }

 private:
  const std::function<void()> share_;
};

bool IsFinalShared(const ClusterJobState& state) { return IsFinal(LocalState(state.state())); }

void SetEnding(ClusterJobState& shared, const absl::Status& status, const std::vector<std::string>& results,
               absl::Time ended) {
  shared.set_state(SharedState(status.ok()                 ? JobState::kDone
                               : absl::IsCancelled(status) ? JobState::kCancelled
                                                           : JobState::kFailed));
  shared.set_status_code(static_cast<int>(status.code()));
  shared.set_status_message(std::string(status.message()));
  shared.clear_results();
  for (const std::string& file : results) shared.add_results(file);
  shared.set_ended_unix_micros(absl::ToUnixMicros(ended));
  shared.set_stage("");
}

// Writes an ending into job `id`'s shared state, unless it has one already. Errors: those of ClusterJobs::Change.
absl::Status ShareEndingOf(ClusterJobs& cluster, const std::string& id, const absl::Status& status,
                           const std::vector<std::string>& results, absl::Time ended) {
  const auto end = [&](ClusterJobState& shared) {
    if (IsFinalShared(shared)) return false;
    SetEnding(shared, status, results, ended);
    return true;
  };
  return cluster.Change(id, end).status();
}

}  // namespace

absl::StatusOr<JobManager::Accepted> JobManager::EnqueueInCluster(std::shared_ptr<Job> job) {
  absl::StatusOr<std::optional<ClusterJobState>> earlier = cluster_->Enqueue(job->spec());
  if (!earlier.ok()) return earlier.status();
  if (!earlier->has_value()) return Accepted{std::move(job), false};
  // Submitted before, here or to another replica: the same submission, or a conflict.
  const ClusterJobState& state = **earlier;
  if (state.fingerprint() != job->spec().fingerprint) {
    return absl::AlreadyExistsError(
        absl::StrCat("job ", job->spec().id, " was submitted before with another model, study or options"));
  }
  absl::StatusOr<std::shared_ptr<Job>> copy = CopyOf(job->spec().id, state);
  if (!copy.ok()) return copy.status();
  return Accepted{*std::move(copy), true};
}

absl::StatusOr<std::shared_ptr<Job>> JobManager::CopyOf(const std::string& id, const ClusterJobState& state) {
  if (const auto it = jobs_.find(id); it != jobs_.end()) return it->second;
  absl::StatusOr<JobRecord> record = ReadJobRecord(state.directory());
  if (!record.ok()) {
    return absl::NotFoundError(absl::StrCat("job '", id, "' is known to the cluster but its folder is gone"));
  }
  auto job = std::make_shared<Job>(std::move(record->spec));
  if (state.state() == ClusterJobState::RUNNING) job->SetStage(state.stage(), state.progress());
  if (IsFinalShared(state)) {
    job->End(SharedStatus(state), {state.results().begin(), state.results().end()},
             absl::FromUnixMicros(state.ended_unix_micros()));
  }
  jobs_[id] = job;
  job_order_.push_back(id);
  return job;
}

std::shared_ptr<Job> JobManager::TakeFromCluster() {
  while (true) {
    bool held;
    {
      absl::MutexLock lock(&mutex_);
      if (shutting_down_) return nullptr;
      held = held_;
    }
    if (held) {  // a held replica's workers wait; the other replicas take the jobs
      absl::SleepFor(absl::Milliseconds(250));
      continue;
    }
    absl::StatusOr<std::unique_ptr<JobLease>> lease = cluster_->Take(absl::Milliseconds(250));
    if (!lease.ok()) {
      absl::SleepFor(absl::Milliseconds(250));  // NATS away: the client reconnects by itself
      continue;
    }
    if (*lease == nullptr) continue;
    if (std::shared_ptr<Job> job = Claim(*std::move(lease)); job != nullptr) return job;
  }
}

std::shared_ptr<Job> JobManager::Claim(std::unique_ptr<JobLease> lease) {
  const std::string id = lease->id();
  absl::StatusOr<JobRecord> record = ReadJobRecord(lease->payload());
  if (!record.ok()) {  // deleted (expired, or by hand): nothing to run, the clients learn why
    const absl::Status gone = absl::UnavailableError("the job's folder is gone from the shared spool; submit it again");
    if (ShareEndingOf(*cluster_, id, gone, {}, absl::Now()).ok()) lease->Complete().IgnoreError();
    return nullptr;
  }
  const std::optional<JobEnding> ended = record->ending;
  std::shared_ptr<Job> job = LocalCopy(std::move(record->spec));
  if (ended.has_value()) {
    // It ended, and its record says so, but the replica that ran it could not say so to the cluster (NATS was away,
    // or the replica died in between): the record is what was stored. Share it; do not run the job again.
    job->End(ended->status, ended->results, ended->ended);
    if (ShareEndingOf(*cluster_, id, ended->status, ended->results, ended->ended).ok()) {
      lease->Complete().IgnoreError();
    }  // else NATS is away: the job comes round again after the ack wait
    return nullptr;
  }
  return StartRunning(std::move(job), std::move(lease));
}

std::shared_ptr<Job> JobManager::LocalCopy(JobSpec spec) {
  absl::MutexLock lock(&mutex_);
  if (const auto it = jobs_.find(spec.id); it != jobs_.end()) return it->second;  // accepted or watched here
  auto job = std::make_shared<Job>(std::move(spec));
  jobs_[job->spec().id] = job;
  job_order_.push_back(job->spec().id);
  return job;
}

void JobManager::Hold(Job& job, std::unique_ptr<JobLease> lease, std::shared_ptr<JobObserver> sharer) {
  auto held = std::make_shared<Lease>();
  held->lease = std::move(lease);
  held->sharer = std::move(sharer);
  absl::MutexLock lock(&mutex_);
  leases_[job.spec().id] = std::move(held);
}

std::shared_ptr<Job> JobManager::StartRunning(std::shared_ptr<Job> job, std::unique_ptr<JobLease> lease) {
  const int max_runs = cluster_->options().queue.max_deliveries;
  bool runs = false;
  bool exhausted = false;
  absl::StatusOr<ClusterJobState> state = cluster_->Change(job->spec().id, [&](ClusterJobState& shared) {
    runs = !IsFinalShared(shared);
    // Started that often, and never ended: each replica running it stopped. Running it again would not help.
    exhausted = runs && shared.runs() >= max_runs;
    if (!runs || exhausted) return false;
    shared.set_state(ClusterJobState::RUNNING);
    shared.set_replica(cluster_->options().replica);
    shared.set_runs(shared.runs() + 1);
    return true;
  });
  if (state.ok() && exhausted) {
    const std::string why =
        absl::StrCat("the job was started ", state->runs(), state->runs() == 1 ? " time" : " times",
                     " and each replica running it stopped (killed, or out of memory?); not run again");
    Hold(*job, std::move(lease));
    Finish(*job, absl::AbortedError(why));
    return nullptr;
  }
  if (!state.ok() && !absl::IsNotFound(state.status())) {  // NATS away: back into the queue, for whoever comes next
    lease->Release().IgnoreError();
    return nullptr;
  }
  if (!state.ok() || !runs) {  // ended meanwhile (cancelled while queued), or its state expired
    if (state.ok()) job->End(SharedStatus(*state), {state->results().begin(), state->results().end()});
    lease->Complete().IgnoreError();
    return nullptr;
  }
  if (state->cancel_requested()) job->RequestCancel();
  if (state->runs() > 1) RemoveTree(job->spec().OutputDirectory()).IgnoreError();  // what the last run wrote
  lease->KeepRenewing(cluster_->options().queue.ack_wait / 3);
  std::weak_ptr<Job> weak = job;
  auto sharer = std::make_shared<ProgressSharer>([this, weak] {
    if (std::shared_ptr<Job> running = weak.lock()) ShareProgress(*running);
  });
  job->AddObserver(sharer);
  Hold(*job, std::move(lease), std::move(sharer));
  metrics_->cluster_jobs_taken.Add({});
  return job;
}

void JobManager::ShareProgress(const Job& job) {
  const Job::Snapshot now = job.Get();
  if (now.state != JobState::kRunning) return;  // the ending is ShareEnding's
  const auto progress = [&](ClusterJobState& shared) {
    if (IsFinalShared(shared) || shared.replica() != cluster_->options().replica) return false;  // given away
    if (shared.stage() == now.stage && shared.progress() == now.progress) return false;
    shared.set_state(ClusterJobState::RUNNING);
    shared.set_stage(now.stage);
    shared.set_progress(now.progress);
    return true;
  };
  cluster_->Change(job.spec().id, progress).IgnoreError();  // NATS away: the next change, or the ending, is shared
}

std::shared_ptr<JobManager::Lease> JobManager::EndLease(const std::string& id) {
  absl::MutexLock lock(&mutex_);
  const auto it = leases_.find(id);
  if (it == leases_.end()) return nullptr;
  std::shared_ptr<Lease> held = std::move(it->second);
  leases_.erase(it);
  return held;
}

void JobManager::RequeueInCluster(Job& job) {
  const std::shared_ptr<Lease> held = EndLease(job.spec().id);
  const auto requeue = [](ClusterJobState& shared) {
    if (IsFinalShared(shared)) return false;
    shared.set_state(ClusterJobState::QUEUED);
    shared.set_replica("");
    shared.set_stage("");
    shared.set_progress(0);
    return true;
  };
  cluster_->Change(job.spec().id, requeue).IgnoreError();  // NATS away: it is redelivered after the ack wait
  if (held != nullptr) held->lease->Release().IgnoreError();
  job.End(absl::UnavailableError("the replica running the job stopped; another replica runs it"));
  Audit(audit_, AuditEvent::kInterrupted, job);
}

void JobManager::ShareEnding(Job& job, const absl::Status& status, const std::vector<std::string>& results,
                             absl::Time ended) {
  // The results and the record are on the shared spool: share the ending, then complete the lease. A replica that
  // dies in between, or cannot reach NATS for longer than this, has the job redelivered, and its next taker finds
  // the ending in the record (Claim).
  const std::shared_ptr<Lease> held = EndLease(job.spec().id);
  absl::Status shared = ShareEndingOf(*cluster_, job.spec().id, status, results, ended);
  for (int attempt = 0; absl::IsUnavailable(shared) && attempt < 40; ++attempt) {  // 10 s; the lease is renewed
    absl::SleepFor(absl::Milliseconds(250));
    shared = ShareEndingOf(*cluster_, job.spec().id, status, results, ended);
  }
  if (held != nullptr && shared.ok()) held->lease->Complete().IgnoreError();
}

void JobManager::Follow(const std::string& id, const ClusterJobState& state) {
  std::shared_ptr<Job> job;
  bool runs_here = false;
  {
    absl::MutexLock lock(&mutex_);
    const auto it = jobs_.find(id);
    if (it == jobs_.end()) return;  // not known here: made when asked for (Find)
    job = it->second;
    runs_here = leases_.contains(id);
  }
  if (runs_here) {  // this replica writes its state; from the others only a cancel request
    if (state.cancel_requested()) job->RequestCancel();
    return;
  }
  if (state.state() == ClusterJobState::RUNNING) job->SetStage(state.stage(), state.progress());
  if (IsFinalShared(state)) {
    job->End(SharedStatus(state), {state.results().begin(), state.results().end()},
             absl::FromUnixMicros(state.ended_unix_micros()));
  }
}

void JobManager::SweepSharedSpool(absl::Time now) {
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(options_.spool_dir, error)) {
    if (!IsJobFolder(entry)) continue;
    absl::StatusOr<JobRecord> record = ReadJobRecord(entry.path().string());
    if (record.ok() && record->ending.has_value() && record->ending->ended + options_.retention < now) {
      RemoveTree(entry.path().string()).IgnoreError();  // another replica may be removing it too
    }
  }
}

}  // namespace segrel::server
