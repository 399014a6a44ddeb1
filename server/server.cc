#include "server/server.h"

#include <ATen/Parallel.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/health_only_server.h"

namespace segrel::server {
namespace {

// Chunk data is at most 4 MiB; the rest of a message is small.
constexpr int kMaxMessageBytes = (4 << 20) + (64 << 10);

}  // namespace

absl::StatusOr<std::unique_ptr<SegrelServer>> SegrelServer::Create(const ServerOptions& options) {
  if (options.role != ServerOptions::Role::kAll && !options.cluster.has_value()) {
    return absl::InvalidArgumentError("a replica role other than accept-and-work needs a cluster queue");
  }
  const bool works = options.role != ServerOptions::Role::kAccept;
  absl::StatusOr<std::vector<at::Device>> devices =
      works ? WorkerDevices(options.workers, options.cuda_workers) : std::vector<at::Device>{};
  if (!devices.ok()) return devices.status();
  // Once, before any worker starts: LibTorch's default here is one thread, and workers inherit the setting.
  if (options.threads < 0) return absl::InvalidArgumentError("threads must not be negative");
  const int threads = options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(std::max(threads, 1));

  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = ServerCredentialsFor(options.tls);
  if (!credentials.ok()) return credentials.status();
  std::unique_ptr<SegrelServer> server(new SegrelServer());
  if (absl::Status opened = server->OpenAccessAndAudit(options); !opened.ok()) return opened;
  if (absl::Status started = server->StartJobs(options); !started.ok()) return started;
  if (absl::Status started = server->StartWorkersAndEndpoints(options, *std::move(devices)); !started.ok())
    return started;
  if (absl::Status started = server->StartGrpc(options, *credentials); !started.ok()) return started;
  return server;
}

absl::Status SegrelServer::OpenAccessAndAudit(const ServerOptions& options) {
  if (!options.tokens_file.empty()) {
    absl::StatusOr<AccessControl> access = AccessControl::FromTokensFile(options.tokens_file);
    if (!access.ok()) return access.status();
    access_ = *std::move(access);
  }
  if (!options.audit_log.empty()) {
    absl::StatusOr<std::unique_ptr<AuditLog>> audit = AuditLog::Open(options.audit_log);
    if (!audit.ok()) return audit.status();
    audit_ = *std::move(audit);
  }
  return absl::OkStatus();
}

absl::Status SegrelServer::StartJobs(const ServerOptions& options) {
  JobManagerOptions job_options;
  job_options.spool_dir = options.spool_dir;
  job_options.queue_capacity = options.queue_capacity;
  job_options.max_jobs_kept = options.max_jobs_kept;
  job_options.retention = options.retention;
  job_options.min_free_bytes = options.min_free_bytes;
  job_options.durable = options.durable;
  job_options.reserved_entries = {kDicomIncomingFolder};
  job_options.cluster = options.cluster;
  job_options.accepts_uploads = options.role != ServerOptions::Role::kWork;
  absl::StatusOr<std::unique_ptr<JobManager>> jobs =
      JobManager::Create(std::move(job_options), &metrics_, audit_.get());
  if (!jobs.ok()) return jobs.status();
  jobs_ = *std::move(jobs);
  absl::StatusOr<std::unique_ptr<ModelRepository>> models = ModelRepository::Create(options.model_repository);
  if (!models.ok()) return models.status();
  models_ = *std::move(models);
  for (const model::Bundle& bundle : models_->models()) {
    metrics_.model_loaded.Set({bundle.name, bundle.version}, 1);
  }
  for (const FailedModel& failed : models_->failed()) {
    metrics_.model_loaded.Set({failed.name, ""}, 0);
  }

  return absl::OkStatus();
}

absl::Status SegrelServer::StartWorkersAndEndpoints(const ServerOptions& options, std::vector<at::Device> devices) {
  cuda_workers_ = static_cast<int>(
      std::count_if(devices.begin(), devices.end(), [](const at::Device& device) { return device.is_cuda(); }));
  // None for a replica that only accepts (ServerOptions::Role::kAccept).
  if (!devices.empty()) workers_ = std::make_unique<WorkerPool>(jobs_.get(), &metrics_, std::move(devices));
  if (!options.metrics_address.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsExposer>> exposer =
        MetricsExposer::Create(options.metrics_address, &metrics_.registry());
    if (!exposer.ok()) return exposer.status();
    exposer_ = *std::move(exposer);
  }
  if (options.dicom.has_value()) {
    DicomNodeOptions dicom = *options.dicom;
    dicom.limits = options.limits;
    dicom.retention = options.retention;
    absl::StatusOr<std::unique_ptr<DicomNode>> node =
        DicomNode::Start(std::move(dicom), models_.get(), jobs_.get(), &metrics_, audit_.get());
    if (!node.ok()) return node.status();
    dicom_ = *std::move(node);
  }
  return absl::OkStatus();
}

absl::Status SegrelServer::StartGrpc(const ServerOptions& options,
                                     const std::shared_ptr<grpc::ServerCredentials>& credentials) {
  ServiceOptions service_options;
  service_options.limits = options.limits;
  service_options.limits.sync_files = options.durable;
  service_options.access = access_;
  service_options.streams = options.streams;
  service_options.audit = audit_.get();
  service_ = std::make_unique<SegrelServiceImpl>(models_.get(), jobs_.get(), &metrics_, std::move(service_options));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.address, credentials, &port_);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  // Connections that carry no call are closed after a while, and one connection carries a bounded number of calls:
  // idle or hoarding clients cannot pile up file descriptors (see RaiseOpenFileLimit in main.cc).
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 5 * 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 256);
  // A connection that never completes its HTTP/2 (or TLS) handshake is closed after 10 s, not gRPC's 120 s.
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 10 * 1000);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.address));
  }
  if (!options.health_address.empty()) {
    // A server of its own: a second port on the main server would serve every service in plaintext.
    grpc::ServerBuilder health;
    health.AddListeningPort(options.health_address, grpc::InsecureServerCredentials(), &health_port_);
    health_server_ = health.BuildAndStart();
    if (health_server_ == nullptr || health_port_ == 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", options.health_address));
    }
  }
  // Liveness is SERVING while the process runs; the overall status (readiness) is SERVING only with a model to
  // serve (server/health_only_server.h).
  for (grpc::Server* grpc_server : {server_.get(), health_server_.get()}) {
    if (grpc_server == nullptr) continue;
    // SetServingStatus(bool) sets every service, so the overall status goes first.
    if (models_->models().empty()) grpc_server->GetHealthCheckService()->SetServingStatus(false);
    grpc_server->GetHealthCheckService()->SetServingStatus(kLivenessService, true);
  }
  if (options.on_listener_stuck && options.listener_stuck_after > absl::ZeroDuration()) {
    watchdog_ = std::make_unique<ListenerWatchdog>(std::vector<int>{port_, health_port_}, options.listener_stuck_after,
                                                   options.on_listener_stuck);
  }
  return absl::OkStatus();
}

SegrelServer::~SegrelServer() { Shutdown(absl::Now()); }

void SegrelServer::Shutdown(absl::Time deadline) {
  absl::MutexLock lock(&shutdown_mutex_);
  if (shut_down_) return;
  shut_down_ = true;
  watchdog_.reset();                      // a port closing is no reason to call
  if (dicom_ != nullptr) dicom_->Stop();  // no new studies; received ones stay for the next process
  if (server_ != nullptr) server_->GetHealthCheckService()->Shutdown();
  if (health_server_ != nullptr) health_server_->GetHealthCheckService()->Shutdown();
  if (jobs_ != nullptr) jobs_->Shutdown();
  if (workers_ != nullptr) workers_->Stop(deadline);
  // Watch calls end now that every job has ended; give them until the deadline (at least a moment) to send.
  if (server_ != nullptr) server_->Shutdown(absl::ToChronoTime(std::max(deadline, absl::Now() + absl::Seconds(1))));
  if (health_server_ != nullptr) health_server_->Shutdown(absl::ToChronoTime(absl::Now()));
  exposer_.reset();
}

}  // namespace segrel::server
