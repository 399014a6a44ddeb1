// Who may call the service: bearer tokens from a tokens file, each naming a client and its rights, checked in this
// one place for every call of the Segrel service (the health service is not ours and stays open for probes).
//
// Tokens file: one client per line, "NAME RIGHTS TOKEN"; RIGHTS is a comma-separated list of
//   submit       Submit studies
//   own-jobs     Watch, Cancel and Delete the jobs this client submitted
//   all-jobs     Watch, Cancel and Delete every client's jobs
//   list-models  ListModels
// or "all" for every right. '#' starts a comment. TOKEN is the secret the client sends as "authorization: Bearer
// TOKEN"; only its SHA-256 is kept in memory.
#ifndef SEGREL_SERVER_ACCESS_H_
#define SEGREL_SERVER_ACCESS_H_

#include <grpcpp/server_context.h>

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/job.h"

namespace segrel::server {

enum class Right : uint32_t { kSubmit = 1, kOwnJobs = 2, kAllJobs = 4, kListModels = 8 };

// An authenticated caller.
struct Caller {
  std::string name;     // the client's name from the tokens file; empty when access is open
  uint32_t rights = 0;  // Right bits
  // all-jobs implies own-jobs.
  bool Has(Right right) const {
    const uint32_t wanted = right == Right::kOwnJobs
                                ? static_cast<uint32_t>(Right::kOwnJobs) | static_cast<uint32_t>(Right::kAllJobs)
                                : static_cast<uint32_t>(right);
    return (rights & wanted) != 0;
  }
};

// Thread-safe (immutable after construction).
class AccessControl {
 public:
  // No tokens: every caller is anonymous with every right (for loopback development).
  AccessControl() = default;
  // Errors: NotFound when `path` cannot be read; InvalidArgument naming the file and line for a malformed line, an
  // unknown right or a token given twice.
  static absl::StatusOr<AccessControl> FromTokensFile(const std::string& path);

  bool requires_tokens() const { return !clients_.empty(); }
  size_t clients() const { return clients_.size(); }

  // The caller of `context` when it may use `right`. Errors: Unauthenticated for a missing or unknown token;
  // PermissionDenied when the caller lacks `right`.
  absl::StatusOr<Caller> Admit(const grpc::ServerContextBase& context, Right right) const;
  // Whether `caller` may watch, cancel or delete `job`. Errors: PermissionDenied.
  static absl::Status MayAccess(const Caller& caller, const Job& job);

 private:
  absl::flat_hash_map<std::string, Caller> clients_;  // by the SHA-256 of the token
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_ACCESS_H_
