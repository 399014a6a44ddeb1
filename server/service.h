// The gRPC service (proto/segrel/v1/segrel.proto) with the callback API: translates between messages and the
// server's parts (model repository, upload, job manager), and nothing more. Handlers never wait for a job to run.
#ifndef SEGREL_SERVER_SERVICE_H_
#define SEGREL_SERVER_SERVICE_H_

#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "segrel/v1/segrel.grpc.pb.h"
#include "server/access.h"
#include "server/audit_log.h"
#include "server/idle_timer.h"
#include "server/job.h"
#include "server/job_manager.h"
#include "server/metrics.h"
#include "server/model_repository.h"
#include "server/upload.h"

namespace segrel::server {

// Limits on calls, against clients that hold the server's resources (connections, files, memory) without using them.
struct StreamLimits {
  size_t max_uploads = 32;                                // Submit streams at once; beyond: RESOURCE_EXHAUSTED
  absl::Duration upload_idle_timeout = absl::Minutes(1);  // a Submit stream that sends nothing this long is ended
                                                          // (DEADLINE_EXCEEDED) and its partial files removed
  // After its first upload_idle_timeout, a Submit stream that has averaged fewer bytes per second is ended
  // (DEADLINE_EXCEEDED) and its partial files removed: a client trickling bytes cannot hold an upload slot. 0: none.
  uint64_t min_upload_bytes_per_second = uint64_t{16} << 10;
  size_t max_watches = 1000;                    // Watch streams at once
  size_t max_watches_per_job = 64;              // Watch streams at once on one job
  size_t max_metadata_bytes = size_t{2} << 20;  // a JobMetadata message (10,000 DICOM files fit)
};

struct ServiceOptions {
  UploadLimits limits;
  StreamLimits streams;
  AccessControl access;       // default: open (no tokens)
  AuditLog* audit = nullptr;  // where the clients' cancel, delete and delivery are recorded (not owned); null: none
  absl::Duration retry_hint = absl::Seconds(5);  // suggested wait after RESOURCE_EXHAUSTED for a full queue
};

// The JobStatus message for `job` as it is now.
v1::JobStatus ToJobStatus(const Job& job, const Job::Snapshot& snapshot, std::optional<size_t> queue_position);

// Every method takes its requests as bytes and parses them itself (service.cc, ParseRequest), so that a request
// that does not parse is INVALID_ARGUMENT rather than gRPC's bare UNIMPLEMENTED (or, in a stream, a silent end).
using SegrelServiceBase = v1::Segrel::WithRawCallbackMethod_Submit<
    v1::Segrel::WithRawCallbackMethod_Watch<v1::Segrel::WithRawCallbackMethod_Cancel<
        v1::Segrel::WithRawCallbackMethod_Delete<v1::Segrel::WithRawCallbackMethod_ListModels<
            v1::Segrel::WithRawCallbackMethod_ListJobs<v1::Segrel::Service>>>>>>;

// Thread-safe. `models`, `jobs` and `metrics` must outlive it.
class SegrelServiceImpl final : public SegrelServiceBase {
 public:
  SegrelServiceImpl(const ModelRepository* models, JobManager* jobs, Metrics* metrics, ServiceOptions options);
  SegrelServiceImpl(const SegrelServiceImpl&) = delete;
  SegrelServiceImpl& operator=(const SegrelServiceImpl&) = delete;

  grpc::ServerReadReactor<grpc::ByteBuffer>* Submit(grpc::CallbackServerContext* context,
                                                    grpc::ByteBuffer* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Watch(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* Cancel(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;

 private:
  friend class SubmitReactor;
  friend class WatchReactor;

  // A unary call: parses the request, runs `handle`, serialises its response.
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* ServeUnary(grpc::CallbackServerContext& context, const grpc::ByteBuffer& raw_request,
                                       grpc::ByteBuffer& raw_response,
                                       absl::Status (SegrelServiceImpl::*handle)(const grpc::ServerContextBase&,
                                                                                 const Request&, Response&));
  absl::Status CancelJob(const grpc::ServerContextBase& context, const v1::CancelRequest& request,
                         v1::CancelResponse& response);
  absl::Status DeleteJob(const grpc::ServerContextBase& context, const v1::DeleteRequest& request,
                         v1::DeleteResponse& response);
  absl::Status ListBundles(const grpc::ServerContextBase& context, const v1::ListModelsRequest& request,
                           v1::ListModelsResponse& response);
  absl::Status ListCallersJobs(const grpc::ServerContextBase& context, const v1::ListJobsRequest& request,
                               v1::ListJobsResponse& response);

  v1::JobStatus StatusOf(const Job& job) const;
  struct CallersJob {
    Caller caller;
    std::shared_ptr<Job> job;
  };
  // Job `id` when the caller of `context` may watch, cancel or delete it. Errors: those of AccessControl::Admit and
  // MayAccess; NotFound for an unknown job.
  absl::StatusOr<CallersJob> FindForCaller(const grpc::ServerContextBase& context, const std::string& id) const;
  // Records a client's request on the audit trail.
  void AuditRequest(AuditEvent event, const Caller& caller, const Job& job, std::optional<uint64_t> bytes_out = {});
  // A place among the streams allowed at once. Errors: ResourceExhausted (RetryLater) when none is free.
  absl::Status TakeUploadSlot();
  void ReleaseUploadSlot();
  absl::Status TakeWatchSlot(const std::string& job_id);
  void ReleaseWatchSlot(const std::string& job_id);

  const ModelRepository* const models_;
  JobManager* const jobs_;
  Metrics* const metrics_;
  const ServiceOptions options_;
  IdleTimer upload_timer_;
  absl::Mutex slots_mutex_;
  size_t uploads_ ABSL_GUARDED_BY(slots_mutex_) = 0;
  size_t watches_ ABSL_GUARDED_BY(slots_mutex_) = 0;
  absl::flat_hash_map<std::string, size_t> watches_per_job_ ABSL_GUARDED_BY(slots_mutex_);
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_SERVICE_H_
