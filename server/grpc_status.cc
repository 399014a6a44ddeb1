#include "server/grpc_status.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace segrel::server {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  std::string message(status.message());
  if (message.size() > kMaxMessageChars) {
    message = absl::StrCat(message.substr(0, kMaxMessageChars), "... (", message.size(), " characters)");
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::move(message));
}

}  // namespace segrel::server
