// What a segrel-server that cannot start shows its probes: the standard gRPC health service alone, on the health
// address, answering NOT_SERVING overall (readiness fails, so no traffic comes) and SERVING for the service
// "liveness" (so that a liveness probe does not restart it in a loop over a fault a restart cannot fix, such as a
// missing certificate or an unusable spool). The reason is in the server's log, once.
#ifndef SEGREL_SERVER_HEALTH_ONLY_SERVER_H_
#define SEGREL_SERVER_HEALTH_ONLY_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace segrel::server {

// The health service name a liveness probe asks for; a running segrel-server always answers it with SERVING.
inline constexpr char kLivenessService[] = "liveness";

class HealthOnlyServer {
 public:
  // Errors: Unavailable when `address` cannot be listened on.
  static absl::StatusOr<std::unique_ptr<HealthOnlyServer>> Start(const std::string& address);
  ~HealthOnlyServer();
  int port() const { return port_; }

 private:
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_HEALTH_ONLY_SERVER_H_
