#include "server/job_queue.h"

#include <algorithm>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace segrel::server {
namespace {

constexpr char kRetryLaterPayload[] = "segrel.server/retry-later";

}  // namespace

absl::Status RetryLater(absl::Status status) {
  status.SetPayload(kRetryLaterPayload, absl::Cord("1"));
  return status;
}

bool IsRetryLater(const absl::Status& status) { return status.GetPayload(kRetryLaterPayload).has_value(); }

absl::Status JobQueue::Enqueue(std::shared_ptr<Job> job) { return Insert(std::move(job), true); }

absl::Status JobQueue::Restore(std::shared_ptr<Job> job) { return Insert(std::move(job), false); }

absl::Status JobQueue::FullError() const {
  return RetryLater(absl::ResourceExhaustedError(
      absl::StrCat("the job queue is full (", capacity_, " jobs); retry when a job has finished")));
}

absl::Status JobQueue::CheckRoom() const {
  absl::MutexLock lock(&mutex_);
  return entries_.size() >= capacity_ ? FullError() : absl::OkStatus();
}

absl::Status JobQueue::Insert(std::shared_ptr<Job> job, bool within_capacity) {
  std::vector<std::shared_ptr<Job>> moved;
  {
    absl::MutexLock lock(&mutex_);
    if (closed_) return absl::UnavailableError("the server is shutting down and accepts no jobs");
    if (within_capacity && entries_.size() >= capacity_) return FullError();
    // After the last entry of equal or higher priority: priorities first, then arrival order.
    const int priority = job->spec().priority;
    auto at = std::find_if(entries_.begin(), entries_.end(),
                           [&](const Entry& entry) { return entry.job->spec().priority < priority; });
    at = entries_.insert(at, Entry{std::move(job)});
    for (auto it = at + 1; it != entries_.end(); ++it) moved.push_back(it->job);
    ReportLength();
  }
  Changed(std::move(moved));
  return absl::OkStatus();
}

std::shared_ptr<Job> JobQueue::Pop() {
  std::shared_ptr<Job> job;
  std::vector<std::shared_ptr<Job>> moved;
  {
    absl::MutexLock lock(&mutex_);
    mutex_.Await(absl::Condition(
        +[](JobQueue* queue) ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue->mutex_) {
          return queue->closed_ || (!queue->held_ && !queue->entries_.empty());
        },
        this));
    if (closed_) return nullptr;
    job = std::move(entries_.front().job);
    entries_.erase(entries_.begin());
    for (const Entry& entry : entries_) moved.push_back(entry.job);
    ReportLength();
  }
  Changed(std::move(moved));
  return job;
}

void JobQueue::ReportLength() {
  if (length_listener_) length_listener_(entries_.size());
}

void JobQueue::SetHeld(bool held) {
  absl::MutexLock lock(&mutex_);
  held_ = held;
}

bool JobQueue::Remove(const Job& job) {
  std::vector<std::shared_ptr<Job>> moved;
  {
    absl::MutexLock lock(&mutex_);
    const auto at =
        std::find_if(entries_.begin(), entries_.end(), [&](const Entry& entry) { return entry.job.get() == &job; });
    if (at == entries_.end()) return false;
    const auto next = entries_.erase(at);
    for (auto it = next; it != entries_.end(); ++it) moved.push_back(it->job);
    ReportLength();
  }
  Changed(std::move(moved));
  return true;
}

std::optional<size_t> JobQueue::Position(const Job& job) const {
  absl::MutexLock lock(&mutex_);
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].job.get() == &job) return i;
  }
  return std::nullopt;
}

size_t JobQueue::size() const {
  absl::MutexLock lock(&mutex_);
  return entries_.size();
}

std::vector<std::shared_ptr<Job>> JobQueue::Close() {
  std::vector<std::shared_ptr<Job>> left;
  {
    absl::MutexLock lock(&mutex_);
    closed_ = true;
    for (Entry& entry : entries_) left.push_back(std::move(entry.job));
    entries_.clear();
    ReportLength();
  }
  Changed({});
  return left;
}

void JobQueue::Changed(std::vector<std::shared_ptr<Job>> moved) {
  for (const std::shared_ptr<Job>& job : moved) job->Notify();
}

}  // namespace segrel::server
