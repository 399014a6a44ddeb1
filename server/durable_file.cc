#include "server/durable_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace segrel::server {
namespace {

// The status of the failed system call `what` on `path` (errno).
absl::Status Errno(const std::string& what, const std::string& path) {
  const int error = errno;
  const std::string message = absl::StrCat(path, ": cannot ", what, ": ", std::strerror(error));
  if (error == ENOSPC || error == EDQUOT) return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

absl::Status Sync(const std::string& path, int flags) {
  const int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Errno("open", path);
  absl::Status status = fsync(fd) == 0 ? absl::OkStatus() : Errno("sync", path);
  close(fd);
  return status;
}

}  // namespace

absl::Status WriteFileDurably(const std::string& path, absl::string_view bytes) {
  const std::string temporary = path + ".new";
  const int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("create", temporary);
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      absl::Status status = Errno("write", temporary);
      close(fd);
      unlink(temporary.c_str());
      return status;
    }
    written += static_cast<size_t>(n);
  }
  if (close(fd) != 0) {
    absl::Status status = Errno("close", temporary);
    unlink(temporary.c_str());
    return status;
  }
  return CommitFile(temporary, path);
}

absl::StatusOr<bool> CommitNewFile(const std::string& temporary, const std::string& path) {
  absl::Status status = Sync(temporary, O_RDONLY);
  bool placed = false;
  if (status.ok()) {
    // RENAME_NOREPLACE: the check for an existing file and the rename are one step.
    if (renameat2(AT_FDCWD, temporary.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0) {
      placed = true;
    } else if (errno != EEXIST) {
      status = Errno("rename into place", path);
    }
  }
  if (!placed) unlink(temporary.c_str());
  if (!status.ok()) return status;
  if (!placed) return false;
  if (absl::Status synced = SyncFolder(std::filesystem::path(path).parent_path().string()); !synced.ok()) {
    return synced;
  }
  return true;
}

absl::Status CommitFile(const std::string& temporary, const std::string& path) {
  absl::Status status = Sync(temporary, O_RDONLY);
  if (status.ok() && rename(temporary.c_str(), path.c_str()) != 0) status = Errno("rename into place", path);
  if (!status.ok()) {
    unlink(temporary.c_str());
    return status;
  }
  // The rename is durable only once the folder's entry is.
  return SyncFolder(std::filesystem::path(path).parent_path().string());
}

absl::Status SyncFolder(const std::string& path) { return Sync(path, O_RDONLY | O_DIRECTORY); }

}  // namespace segrel::server
