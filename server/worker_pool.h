// The workers that run queued jobs: each takes a job from the job manager and runs `segrel analyze`'s pipeline on
// it (core/pipeline/pipeline.h) on its device (the CPU, or one CUDA device), reporting each stage and window to the
// job and stopping at the next one when the job is cancelled.
#ifndef SEGREL_SERVER_WORKER_POOL_H_
#define SEGREL_SERVER_WORKER_POOL_H_

#include <ATen/ATen.h>

#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/model/model_replica.h"
#include "server/job.h"
#include "server/job_manager.h"
#include "server/metrics.h"

namespace segrel::server {

// Runs one job's analysis on `device` and writes its outputs into spec.OutputDirectory(); returns the files
// written and the summary relevance.json has. Sets the job's stage and progress as the analysis goes, and stops at the
// next stage or window once `job.stop_reason()` is set, returning that reason. Errors: those of RunAnalysis and
// WriteAnalysis; DeadlineExceeded when the job waited past its deadline. `replicas`: the worker's loaded models, reused
// across its jobs (null: load the model for this job).
absl::StatusOr<JobResults> RunJob(Job& job, model::ModelReplicas* replicas = nullptr, at::Device device = at::kCPU);

// The devices to run workers on: `cpu_workers` times the CPU, then one entry per CUDA device LibTorch sees
// (`cuda_workers` < 0) or the first `cuda_workers` of them. Errors: InvalidArgument when no worker is left or
// more CUDA workers are asked for than there are devices.
absl::StatusOr<std::vector<at::Device>> WorkerDevices(int cpu_workers, int cuda_workers);

// Thread-safe.
class WorkerPool {
 public:
  // One worker per entry of `devices`; each hands the jobs it ran back to `jobs` (JobManager::Finish). `jobs` and
  // `metrics` must outlive the pool. REQUIRES: devices not empty.
  WorkerPool(JobManager* jobs, Metrics* metrics, std::vector<at::Device> devices);
  ~WorkerPool();  // shuts the job manager down (finishing the jobs still queued) and stops at once, if not stopped
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Waits for the workers to end; REQUIRES: the job manager is shut down (so no new job starts). Jobs still running at
  // `deadline` are handed back: they stop at their next stage or window and fail with UNAVAILABLE (submit again).
  void Stop(absl::Time deadline);

 private:
  void Work(at::Device device);
  void Run(const std::shared_ptr<Job>& job, model::ModelReplicas* replicas, at::Device device);
  bool AllExited() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return exited_ == static_cast<int>(threads_.size()); }

  JobManager* const jobs_;
  Metrics* const metrics_;
  std::vector<std::thread> threads_;
  absl::Mutex mutex_;
  std::vector<std::shared_ptr<Job>> running_ ABSL_GUARDED_BY(mutex_);
  int exited_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_WORKER_POOL_H_
