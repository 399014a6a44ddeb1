// The gRPC service (proto/segrel/v1/segrel.proto) with the callback API: translates between messages and the
// server's parts (model repository, upload, job manager), and nothing more. Handlers never wait for a job to run.
#ifndef SEGREL_SERVER_SERVICE_H_
#define SEGREL_SERVER_SERVICE_H_

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "segrel/v1/segrel.grpc.pb.h"
#include "server/access.h"
#include "server/job.h"
#include "server/job_manager.h"
#include "server/metrics.h"
#include "server/model_repository.h"
#include "server/upload.h"

namespace segrel::server {

struct ServiceOptions {
  UploadLimits limits;
  AccessControl access;                          // default: open (no tokens)
  absl::Duration retry_hint = absl::Seconds(5);  // suggested wait after RESOURCE_EXHAUSTED for a full queue
};

// The JobStatus message for `job` as it is now.
v1::JobStatus ToJobStatus(const Job& job, const Job::Snapshot& snapshot, std::optional<size_t> queue_position);

// Thread-safe. `models`, `jobs` and `metrics` must outlive it.
class SegrelServiceImpl final : public v1::Segrel::CallbackService {
 public:
  SegrelServiceImpl(const ModelRepository* models, JobManager* jobs, Metrics* metrics, ServiceOptions options);
  SegrelServiceImpl(const SegrelServiceImpl&) = delete;
  SegrelServiceImpl& operator=(const SegrelServiceImpl&) = delete;

  grpc::ServerReadReactor<v1::SubmitRequest>* Submit(grpc::CallbackServerContext* context,
                                                     v1::SubmitResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchResponse>* Watch(grpc::CallbackServerContext* context,
                                                     const v1::WatchRequest* request) override;
  grpc::ServerUnaryReactor* Cancel(grpc::CallbackServerContext* context, const v1::CancelRequest* request,
                                   v1::CancelResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context, const v1::DeleteRequest* request,
                                   v1::DeleteResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context, const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;

 private:
  friend class SubmitReactor;
  friend class WatchReactor;

  v1::JobStatus StatusOf(const Job& job) const;
  // Job `id` when the caller of `context` may watch, cancel or delete it. Errors: those of AccessControl::Admit and
  // MayAccess; NotFound for an unknown job.
  absl::StatusOr<std::shared_ptr<Job>> FindForCaller(const grpc::ServerContextBase& context,
                                                     const std::string& id) const;

  const ModelRepository* const models_;
  JobManager* const jobs_;
  Metrics* const metrics_;
  const ServiceOptions options_;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_SERVICE_H_
