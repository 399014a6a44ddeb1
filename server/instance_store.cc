#include "server/instance_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/common/files.h"
#include "server/durable_file.h"

namespace segrel::server {
namespace {

constexpr char kPartial[] = ".partial";

// Makes `path` unless it exists; a new folder's entry is synced in its parent, so the files committed into it stay
// reachable after a crash.
absl::Status MakeFolder(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0) {
    if (errno == EEXIST) return absl::OkStatus();
    const int error = errno;
    const std::string message = absl::StrCat(path, ": cannot create: ", std::strerror(error));
    return error == ENOSPC || error == EDQUOT ? absl::ResourceExhaustedError(message) : absl::InternalError(message);
  }
  return SyncFolder(std::filesystem::path(path).parent_path().string());
}

}  // namespace

bool IsValidUid(absl::string_view uid) {
  if (uid.empty() || uid.size() > 64) return false;
  for (absl::string_view component : absl::StrSplit(uid, '.')) {
    if (component.empty()) return false;
    for (char c : component) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
    }
  }
  return true;
}

absl::StatusOr<std::unique_ptr<InstanceStore>> InstanceStore::Create(std::string root) {
  if (absl::Status made = MakeFolder(root); !made.ok()) return made;
  const std::string partial = absl::StrCat(root, "/", kPartial);
  if (absl::Status removed = RemoveTree(partial); !removed.ok()) return removed;
  if (absl::Status made = MakeFolder(partial); !made.ok()) return made;
  return std::unique_ptr<InstanceStore>(new InstanceStore(std::move(root)));
}

std::string InstanceStore::TemporaryPath() {
  return absl::StrCat(root_, "/", kPartial, "/", getpid(), ".", next_temporary_++, ".dcm");
}

std::string InstanceStore::StudyFolder(absl::string_view study_uid) const {
  return absl::StrCat(root_, "/", study_uid);
}

absl::StatusOr<bool> InstanceStore::Commit(const std::string& temporary, const InstanceUids& uids) {
  for (const auto& [name, uid] : {std::pair<const char*, const std::string&>{"StudyInstanceUID", uids.study},
                                  {"SeriesInstanceUID", uids.series},
                                  {"SOPInstanceUID", uids.instance}}) {
    if (!IsValidUid(uid)) {
      unlink(temporary.c_str());
      return absl::InvalidArgumentError(absl::StrCat("the instance's ", name, " is not a UID"));
    }
  }
  const std::string study = StudyFolder(uids.study);
  const std::string series = absl::StrCat(study, "/", uids.series);
  for (const std::string& folder : {study, series}) {
    if (absl::Status made = MakeFolder(folder); !made.ok()) {
      unlink(temporary.c_str());
      return made;
    }
  }
  return CommitNewFile(temporary, absl::StrCat(series, "/", uids.instance, ".dcm"));
}

}  // namespace segrel::server
