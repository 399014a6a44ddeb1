// The bounded queue between the service, which accepts jobs, and the worker pool, which runs them.
//
// Ownership: jobs are shared (std::shared_ptr): after Enqueue the queue holds one reference until a worker pops
// the job, the job is removed (cancel) or the queue is closed; the service's job table holds another so clients can
// watch the job. Order: higher priority first, then first come first served.
#ifndef SEGREL_SERVER_JOB_QUEUE_H_
#define SEGREL_SERVER_JOB_QUEUE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/job.h"

namespace segrel::server {

// Marks a refusal that goes away with time (a full queue, a full spool): the edge adds a retry hint to it and to no
// other error, where retrying cannot help (a study beyond the size limit).
absl::Status RetryLater(absl::Status status);
bool IsRetryLater(const absl::Status& status);

// Thread-safe.
class JobQueue {
 public:
  // REQUIRES: capacity > 0.
  explicit JobQueue(size_t capacity) : capacity_(capacity) {}
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // Queues `job`. Errors: ResourceExhausted when the queue holds `capacity` jobs (the message says so and suggests
  // when to retry); Unavailable once closed. On error the queue does not keep the job.
  absl::Status Enqueue(std::shared_ptr<Job> job);
  // Queues a job recovered from the spool, beyond the capacity if need be: accepted work is never turned away.
  // Errors: Unavailable once closed.
  absl::Status Restore(std::shared_ptr<Job> job);

  // Waits for the next job and takes it out of the queue; nullptr once the queue is closed (jobs still queued then
  // are not handed out: Close returned them).
  std::shared_ptr<Job> Pop();

  // While held, Pop hands out no job (jobs still queue up to capacity): lets an operator drain workers, and tests
  // fill the queue deterministically.
  void SetHeld(bool held);

  // Takes `job` out of the queue; false when it is not queued (running, ended, never queued).
  bool Remove(const Job& job);

  // Jobs ahead of `job` (0: next), or nothing when it is not queued.
  std::optional<size_t> Position(const Job& job) const;
  size_t size() const;
  size_t capacity() const { return capacity_; }
  // Whether Enqueue would find room now (asked before an upload starts). Errors: the ResourceExhausted Enqueue
  // answers for a full queue.
  absl::Status CheckRoom() const;

  // Refuses further jobs, wakes the workers waiting in Pop, and returns the jobs still queued (for the caller to
  // hand back to their clients).
  std::vector<std::shared_ptr<Job>> Close();

  // Called with the new length whenever it changes, under the queue's lock (so calls arrive in order): for the
  // queue-length gauge. The listener must not call the queue. REQUIRES: set before the queue is used.
  void SetLengthListener(std::function<void(size_t)> listener) { length_listener_ = std::move(listener); }

 private:
  struct Entry {
    std::shared_ptr<Job> job;
  };
  absl::Status Insert(std::shared_ptr<Job> job, bool within_capacity);
  absl::Status FullError() const;
  // Notifies the jobs still queued that their positions moved.
  void Changed(std::vector<std::shared_ptr<Job>> moved);
  void ReportLength() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const size_t capacity_;
  std::function<void(size_t)> length_listener_;
  mutable absl::Mutex mutex_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mutex_);  // in run order
  bool closed_ ABSL_GUARDED_BY(mutex_) = false;
  bool held_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_JOB_QUEUE_H_
