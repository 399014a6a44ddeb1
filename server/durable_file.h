// Files that are on disk once a call returns: written to a temporary name, synced, renamed into place, and the
// folder's entry synced, so that a crash leaves the old file or the new one, never a part of one. The job records
// (server/job_record.h) and the DICOM node's received instances (server/instance_store.h) are written so.
#ifndef SEGREL_SERVER_DURABLE_FILE_H_
#define SEGREL_SERVER_DURABLE_FILE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace segrel::server {

// Writes `bytes` to `path` durably (the file comment), replacing it. Errors: Internal naming the file and the
// system's reason; ResourceExhausted when the disk is full (ENOSPC, EDQUOT). Nothing is left at the temporary name.
absl::Status WriteFileDurably(const std::string& path, absl::string_view bytes);

// Syncs the finished file `temporary` and renames it to `path`, then syncs the folder. Errors: as WriteFileDurably;
// `temporary` is removed on error.
absl::Status CommitFile(const std::string& temporary, const std::string& path);

// As CommitFile, but a file already at `path` stays (and `temporary` is removed): returns false then, true when
// `temporary` became `path`. Of two commits to one path at once, exactly one returns true.
absl::StatusOr<bool> CommitNewFile(const std::string& temporary, const std::string& path);

// Syncs folder `path` (its entries: files renamed or folders made in it). Errors: as WriteFileDurably.
absl::Status SyncFolder(const std::string& path);

}  // namespace segrel::server

#endif  // SEGREL_SERVER_DURABLE_FILE_H_
