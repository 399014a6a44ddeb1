// The one place that turns segrel's absl::Status into the status a gRPC call ends with (CONVENTIONS: error
// mapping). absl and gRPC share the canonical codes, so the code carries over; the message is kept, shortened to
// kMaxMessageChars: messages quote client strings (ids, names), and a client that sent a 1 MiB name must still see
// its INVALID_ARGUMENT, not a grpc-message its own library refuses.
#ifndef SEGREL_SERVER_GRPC_STATUS_H_
#define SEGREL_SERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace segrel::server {

inline constexpr size_t kMaxMessageChars = 512;

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace segrel::server

#endif  // SEGREL_SERVER_GRPC_STATUS_H_
