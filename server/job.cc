#include "server/job.h"

#include <algorithm>
#include <utility>

namespace segrel::server {

bool IsFinal(JobState state) {
  return state == JobState::kDone || state == JobState::kFailed || state == JobState::kCancelled;
}

Job::Snapshot Job::Get() const {
  absl::MutexLock lock(&mutex_);
  return snapshot_;
}

bool Job::SetStage(const std::string& stage, double progress) {
  {
    absl::MutexLock lock(&mutex_);
    if (IsFinal(snapshot_.state)) return false;
    snapshot_.state = JobState::kRunning;
    snapshot_.stage = stage;
    snapshot_.progress = std::max(snapshot_.progress, progress);
    ++snapshot_.version;
  }
  Notify();
  return true;
}

bool Job::End(const absl::Status& status, std::vector<std::string> results, absl::Time ended) {
  {
    absl::MutexLock lock(&mutex_);
    if (IsFinal(snapshot_.state)) return false;
    if (status.ok()) {
      snapshot_.state = JobState::kDone;
      snapshot_.results = std::move(results);
      snapshot_.progress = 1;
    } else {
      snapshot_.state = status.code() == absl::StatusCode::kCancelled ? JobState::kCancelled : JobState::kFailed;
    }
    snapshot_.status = status;
    snapshot_.ended = ended;
    snapshot_.stage.clear();
    ++snapshot_.version;
  }
  Notify();
  return true;
}

JobState Job::RequestCancel(absl::Status reason) {
  absl::MutexLock lock(&mutex_);
  if (!IsFinal(snapshot_.state) && stop_reason_.ok()) stop_reason_ = std::move(reason);
  return snapshot_.state;
}

absl::Status Job::stop_reason() const {
  absl::MutexLock lock(&mutex_);
  return stop_reason_;
}

void Job::AddObserver(std::weak_ptr<JobObserver> observer) {
  absl::MutexLock lock(&mutex_);
  observers_.push_back(std::move(observer));
}

void Job::Notify() {
  // Observers run without the job's lock held: they read the job (Get) and may take their own locks.
  std::vector<std::shared_ptr<JobObserver>> alive;
  {
    absl::MutexLock lock(&mutex_);
    std::vector<std::weak_ptr<JobObserver>> kept;
    for (const std::weak_ptr<JobObserver>& weak : observers_) {
      if (std::shared_ptr<JobObserver> observer = weak.lock()) {
        alive.push_back(std::move(observer));
        kept.push_back(weak);
      }
    }
    observers_ = std::move(kept);
  }
  for (const std::shared_ptr<JobObserver>& observer : alive) observer->OnJobChanged();
}

}  // namespace segrel::server
