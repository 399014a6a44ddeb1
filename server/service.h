// The gRPC service (proto/segrel/v1/segrel.proto) with the callback API: translates between messages and the
// server's parts (model repository, upload, job queue), and nothing more. Handlers never wait for a job to run.
#ifndef SEGREL_SERVER_SERVICE_H_
#define SEGREL_SERVER_SERVICE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "segrel/v1/segrel.grpc.pb.h"
#include "server/job.h"
#include "server/job_queue.h"
#include "server/metrics.h"
#include "server/model_repository.h"
#include "server/upload.h"

namespace segrel::server {

struct ServiceOptions {
  std::string spool_dir;         // uploads and results, one folder per job (required)
  UploadLimits limits;
  size_t max_jobs_kept = 1000;   // ended jobs kept for Watch; beyond it the oldest are forgotten and deleted
  absl::Duration retry_hint = absl::Seconds(5);  // suggested wait after RESOURCE_EXHAUSTED for a full queue
};

// The JobStatus message for `job` as it is now.
v1::JobStatus ToJobStatus(const Job& job, const Job::Snapshot& snapshot, std::optional<size_t> queue_position);

// Thread-safe. `models`, `queue` and `metrics` must outlive it.
class SegrelServiceImpl final : public v1::Segrel::CallbackService {
 public:
  SegrelServiceImpl(const ModelRepository* models, JobQueue* queue, Metrics* metrics, ServiceOptions options);
  SegrelServiceImpl(const SegrelServiceImpl&) = delete;
  SegrelServiceImpl& operator=(const SegrelServiceImpl&) = delete;

  grpc::ServerReadReactor<v1::SubmitRequest>* Submit(grpc::CallbackServerContext* context,
                                                     v1::SubmitResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchResponse>* Watch(grpc::CallbackServerContext* context,
                                                     const v1::WatchRequest* request) override;
  grpc::ServerUnaryReactor* Cancel(grpc::CallbackServerContext* context, const v1::CancelRequest* request,
                                   v1::CancelResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context, const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;

  // From now on Submit answers UNAVAILABLE.
  void StartShutdown();

 private:
  friend class SubmitReactor;
  friend class WatchReactor;

  bool shutting_down() const;
  std::shared_ptr<Job> FindJob(const std::string& id) const;
  // A folder for a new upload of job `id` (unique even when the same id is uploaded twice at once).
  std::string NewJobDirectory(const std::string& id);
  // Registers and queues a finished upload. Returns the job and whether it was already registered (another upload
  // with the same id won the race: the new folder is deleted). Errors: those of JobQueue::Enqueue.
  absl::StatusOr<std::pair<std::shared_ptr<Job>, bool>> Accept(JobSpec spec);
  void ForgetOldJobs() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  v1::JobStatus StatusOf(const Job& job) const;

  const ModelRepository* const models_;
  JobQueue* const queue_;
  Metrics* const metrics_;
  const ServiceOptions options_;
  mutable absl::Mutex mutex_;
  absl::flat_hash_map<std::string, std::shared_ptr<Job>> jobs_ ABSL_GUARDED_BY(mutex_);
  std::deque<std::string> job_order_ ABSL_GUARDED_BY(mutex_);  // ids, oldest first
  uint64_t next_directory_ ABSL_GUARDED_BY(mutex_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_SERVICE_H_
