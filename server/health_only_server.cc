#include "server/health_only_server.h"

#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"

namespace segrel::server {

absl::StatusOr<std::unique_ptr<HealthOnlyServer>> HealthOnlyServer::Start(const std::string& address) {
  auto health = std::unique_ptr<HealthOnlyServer>(new HealthOnlyServer());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &health->port_);
  health->server_ = builder.BuildAndStart();
  if (health->server_ == nullptr || health->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  grpc::HealthCheckServiceInterface* service = health->server_->GetHealthCheckService();
  service->SetServingStatus(false);  // every service, so before liveness's own
  service->SetServingStatus(kLivenessService, true);
  return health;
}

HealthOnlyServer::~HealthOnlyServer() {
  if (server_ != nullptr) server_->Shutdown();
}

}  // namespace segrel::server
