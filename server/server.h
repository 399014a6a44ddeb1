// segrel-server assembled: model repository, job manager, worker pool, metrics endpoint and the gRPC service with
// health checking and reflection. main.cc only turns flags into ServerOptions; tests start the same server in
// process on a free loopback port.
#ifndef SEGREL_SERVER_SERVER_H_
#define SEGREL_SERVER_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/access.h"
#include "server/dicom_node.h"
#include "server/job_manager.h"
#include "server/listener_watchdog.h"
#include "server/metrics.h"
#include "server/model_repository.h"
#include "server/service.h"
#include "server/transport_security.h"
#include "server/upload.h"
#include "server/worker_pool.h"

namespace segrel::server {

struct ServerOptions {
  std::string address = "127.0.0.1:50051";         // gRPC, HOST:PORT (port 0: any free port)
  std::string metrics_address = "127.0.0.1:9464";  // /metrics, [HOST:]PORT (port 0: any free port); empty: none
  // A second, plaintext gRPC port serving only the health service, for probes that cannot present a client
  // certificate (Kubernetes' gRPC probe); empty: none.
  std::string health_address;
  TlsOptions tls;                // of the gRPC port; default: plaintext
  std::string tokens_file;       // bearer tokens and rights (server/access.h); empty: every caller may do everything
  std::string audit_log = "-";   // the audit trail (server/audit_log.h): "-" standard error, a file, or empty: none
  std::string model_repository;  // folder of bundles (server/model_repository.h); required
  std::string spool_dir;         // uploads and results; required
  int workers = 1;               // CPU workers: jobs run at once on the CPU, one model replica each
  int threads = 0;               // LibTorch threads, shared by the workers; 0: all cores
  int cuda_workers = -1;         // one worker per CUDA device, on the first N devices; -1: every device
                                 // LibTorch sees (none in a CPU build)
  size_t queue_capacity = 16;    // jobs waiting; beyond it Submit answers RESOURCE_EXHAUSTED
  UploadLimits limits;
  StreamLimits streams;
  uint64_t min_free_bytes = uint64_t{1} << 30;  // storage watermark of the spool (JobManagerOptions)
  size_t max_jobs_kept = 1000;                  // ended jobs kept for Watch
  absl::Duration retention = absl::Hours(24);   // an ended job's results are deleted this long after it ended
  bool durable = true;  // jobs survive a crash or restart on the same spool (JobManager); off: memory only
  // A replica of a cluster sharing one job queue on NATS JetStream (server/cluster_jobs.h); none: in-process. The
  // spool must then be the one every replica mounts.
  std::optional<ClusterOptions> cluster;
  // A cluster replica's part: accepting uploads (Submit, DICOM), running jobs, or both. Watch, Cancel and the other
  // calls are served by every replica.
  enum class Role { kAll, kAccept, kWork };
  Role role = Role::kAll;
  // The DICOM node (server/dicom_node.h): on when dicom.receiver.port is set.
  std::optional<DicomNodeOptions> dicom;
  // A connection left unaccepted this long on a gRPC port means gRPC stopped accepting (server/listener_watchdog.h);
  // then on_listener_stuck is called once, on the watchdog's thread. No callback: not watched.
  absl::Duration listener_stuck_after = absl::Seconds(30);
  std::function<void(int port)> on_listener_stuck;
};

// Thread-safe.
class SegrelServer {
 public:
  // Loads the models, recovers the spool (JobManager::Create), starts workers, metrics endpoint and the gRPC server.
  // Errors: InvalidArgument for options out of range; NotFound for a missing model repository; those of
  // ModelRepository::Create, ServerCredentialsFor, AccessControl::FromTokensFile and AuditLog::Open; Unavailable when a
  // port cannot be opened; Internal when the spool folder cannot be made or read.
  static absl::StatusOr<std::unique_ptr<SegrelServer>> Create(const ServerOptions& options);
  ~SegrelServer();  // Shutdown(now) if not shut down
  SegrelServer(const SegrelServer&) = delete;
  SegrelServer& operator=(const SegrelServer&) = delete;

  int port() const { return port_; }
  int health_port() const { return health_port_; }
  int dicom_port() const { return dicom_ != nullptr ? dicom_->port() : 0; }
  const DicomNode* dicom() const { return dicom_.get(); }
  const AccessControl& access() const { return access_; }
  int metrics_port() const { return exposer_ ? exposer_->port() : 0; }
  int cuda_workers() const { return cuda_workers_; }
  const ModelRepository& models() const { return *models_; }
  Metrics& metrics() { return metrics_; }
  // While held, workers start no new job (JobQueue::SetHeld).
  void HoldQueue(bool held) { jobs_->SetHeld(held); }
  const JobManager& jobs() const { return *jobs_; }

  // Graceful stop: refuses new jobs (UNAVAILABLE, health NOT_SERVING), fails the jobs still queued with UNAVAILABLE
  // (their clients resubmit elsewhere), lets running jobs finish until `deadline` (then cancels them at their next
  // stage), then stops the gRPC server, ending open calls. Returns when everything has stopped. Idempotent.
  void Shutdown(absl::Time deadline);

 private:
  SegrelServer() = default;
  // Create's steps, in order.
  absl::Status OpenAccessAndAudit(const ServerOptions& options);
  absl::Status StartJobs(const ServerOptions& options);  // the job manager and the model repository
  absl::Status StartWorkersAndEndpoints(const ServerOptions& options,
                                        std::vector<at::Device> devices);  // + metrics, DICOM
  absl::Status StartGrpc(const ServerOptions& options, const std::shared_ptr<grpc::ServerCredentials>& credentials);

  Metrics metrics_;
  std::unique_ptr<AuditLog> audit_;  // before the job manager and the service, which record on it
  std::unique_ptr<ModelRepository> models_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<WorkerPool> workers_;
  std::unique_ptr<DicomNode> dicom_;
  std::unique_ptr<SegrelServiceImpl> service_;
  std::unique_ptr<MetricsExposer> exposer_;
  AccessControl access_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;
  std::unique_ptr<ListenerWatchdog> watchdog_;
  int port_ = 0;
  int health_port_ = 0;
  int cuda_workers_ = 0;
  absl::Mutex shutdown_mutex_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mutex_) = false;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_SERVER_H_
