// The workers that run queued jobs: each takes a job from the queue and runs `segrel analyze`'s pipeline on it
// (core/analysis/pipeline.h), in stages between which it checks for cancellation.
#ifndef SEGREL_SERVER_WORKER_POOL_H_
#define SEGREL_SERVER_WORKER_POOL_H_

#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/analysis/model_replica.h"
#include "server/job.h"
#include "server/job_queue.h"
#include "server/metrics.h"

namespace segrel::server {

// Runs one job's analysis and writes its outputs into spec.OutputDirectory(); returns the files written.
// Checks `job.cancel_requested()` between stages (Cancelled when set). Errors: those of RunAnalysis and
// WriteAnalysis; DeadlineExceeded when the job waited past its deadline.
// `replicas`: the worker's loaded models, reused across its jobs (null: load the model for this job).
absl::StatusOr<std::vector<std::string>> RunJob(Job& job, analysis::ModelReplicas* replicas = nullptr);

// Thread-safe.
class WorkerPool {
 public:
  // `queue` and `metrics` must outlive the pool. REQUIRES: workers > 0.
  WorkerPool(JobQueue* queue, Metrics* metrics, int workers);
  ~WorkerPool();  // closes the queue (failing the jobs left in it) and stops at once, if not stopped
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Waits for the workers to end; REQUIRES: the queue is closed (so no new job starts). Jobs still running at
  // `deadline` are asked to cancel and end at their next stage boundary.
  void Stop(absl::Time deadline);

 private:
  void Work();
  void Run(const std::shared_ptr<Job>& job, analysis::ModelReplicas* replicas);
  bool AllExited() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return exited_ == static_cast<int>(threads_.size()); }

  JobQueue* const queue_;
  Metrics* const metrics_;
  std::vector<std::thread> threads_;
  absl::Mutex mutex_;
  std::vector<std::shared_ptr<Job>> running_ ABSL_GUARDED_BY(mutex_);
  int exited_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_WORKER_POOL_H_
