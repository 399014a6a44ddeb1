#include "core/common/files.h"

#include <ftw.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace segrel {

absl::Status WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << text;
  file.close();
  if (!file) return absl::InternalError(absl::StrCat(path, ": cannot write"));
  return absl::OkStatus();
}

namespace {

// nftw visits children before their folder (FTW_DEPTH), so each folder is empty when removed. nftw's callback
// cannot carry state: the first failure goes to this thread's slot.
thread_local std::string remove_failure;

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  if (std::remove(path) == 0 || errno == ENOENT) return 0;
  remove_failure = absl::StrCat(path, ": cannot remove (", std::strerror(errno), ")");
  return 1;
}

}  // namespace

absl::Status RemoveTree(const std::string& path) {
  struct stat info;
  if (lstat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::InternalError(absl::StrCat(path, ": cannot remove (", std::strerror(errno), ")"));
  }
  remove_failure.clear();
  if (nftw(path.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
    return absl::InternalError(remove_failure.empty() ? absl::StrCat(path, ": cannot remove") : remove_failure);
  }
  return absl::OkStatus();
}

}  // namespace segrel
