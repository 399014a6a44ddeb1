#include "server/access.h"

#include <fstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "proto/checksums.h"

namespace segrel::server {
namespace {

constexpr uint32_t kAllRights = 15;

std::string TokenDigest(absl::string_view token) { return proto::Sha256Of(token); }

absl::StatusOr<uint32_t> ParseRights(absl::string_view text) {
  uint32_t rights = 0;
  for (absl::string_view name : absl::StrSplit(text, ',')) {
    if (name == "all") {
      rights |= kAllRights;
    } else if (name == "submit") {
      rights |= static_cast<uint32_t>(Right::kSubmit);
    } else if (name == "own-jobs") {
      rights |= static_cast<uint32_t>(Right::kOwnJobs);
    } else if (name == "all-jobs") {
      rights |= static_cast<uint32_t>(Right::kAllJobs);
    } else if (name == "list-models") {
      rights |= static_cast<uint32_t>(Right::kListModels);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown right '", name.substr(0, 40), "' (submit, own-jobs, all-jobs, list-models or all)"));
    }
  }
  return rights;
}

absl::string_view RightName(Right right) {
  switch (right) {
    case Right::kSubmit:
      return "submit";
    case Right::kOwnJobs:
      return "own-jobs";
    case Right::kAllJobs:
      return "all-jobs";
    case Right::kListModels:
      return "list-models";
  }
  return "?";
}

}  // namespace

absl::StatusOr<AccessControl> AccessControl::FromTokensFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read the tokens file"));
  AccessControl access;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string uncommented = line.substr(0, line.find('#'));
    const absl::string_view content = absl::StripAsciiWhitespace(uncommented);
    if (content.empty()) continue;
    const std::vector<absl::string_view> fields = absl::StrSplit(content, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    // Never the line itself in a message: it holds a secret.
    const std::string where = absl::StrCat(path, " line ", number, ": ");
    if (fields.size() != 3) return absl::InvalidArgumentError(absl::StrCat(where, "expected NAME RIGHTS TOKEN"));
    absl::StatusOr<uint32_t> rights = ParseRights(fields[1]);
    if (!rights.ok()) return absl::InvalidArgumentError(absl::StrCat(where, rights.status().message()));
    if (fields[2].size() < 16)
      return absl::InvalidArgumentError(absl::StrCat(where, "tokens need 16 characters or more"));
    if (!access.clients_.emplace(TokenDigest(fields[2]), Caller{std::string(fields[0]), *rights}).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, "this token is given to another client too"));
    }
  }
  if (access.clients_.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": names no client"));
  return access;
}

absl::StatusOr<Caller> AccessControl::Admit(const grpc::ServerContextBase& context, Right right) const {
  if (clients_.empty()) return Caller{"", kAllRights};
  const auto& metadata = context.client_metadata();
  const auto header = metadata.find("authorization");
  if (header == metadata.end()) {
    return absl::UnauthenticatedError("no token: send 'authorization: Bearer TOKEN'");
  }
  const absl::string_view value(header->second.data(), header->second.size());
  constexpr absl::string_view kScheme = "Bearer ";
  if (!absl::StartsWithIgnoreCase(value, kScheme)) {
    return absl::UnauthenticatedError("the authorization header must be 'Bearer TOKEN'");
  }
  const auto client = clients_.find(TokenDigest(value.substr(kScheme.size())));
  if (client == clients_.end()) return absl::UnauthenticatedError("unknown token");
  if (!client->second.Has(right)) {
    return absl::PermissionDeniedError(
        absl::StrCat("client ", client->second.name, " lacks the right '", RightName(right), "'"));
  }
  return client->second;
}

absl::Status AccessControl::MayAccess(const Caller& caller, const Job& job) {
  if (caller.Has(Right::kAllJobs)) return absl::OkStatus();
  if (caller.Has(Right::kOwnJobs) && job.spec().owner == caller.name) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("job ", job.spec().id, " is not client ", caller.name, "'s"));
}

}  // namespace segrel::server
