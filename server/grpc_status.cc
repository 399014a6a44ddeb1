#include "server/grpc_status.h"

#include <string>

#include "absl/strings/ascii.h"

namespace segrel::server {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

std::string CodeName(absl::StatusCode code) {
  // absl::StatusCodeToString gives "INVALID_ARGUMENT" for kInvalidArgument, as gRPC spells them.
  return absl::AsciiStrToUpper(absl::StatusCodeToString(code));
}

}  // namespace segrel::server
