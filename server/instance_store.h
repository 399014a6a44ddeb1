// The DICOM node's received instances on disk: one file per SOP instance, ROOT/STUDY/SERIES/INSTANCE.dcm (the
// UIDs as names: digits and dots only), each committed durably before the C-STORE is answered, so a success status
// is given only for what is on disk; an instance received twice is stored once. The receiver writes each
// instance to a temporary file first (TemporaryPath, in ROOT/.partial: the same file system, so committing is a
// rename); Create removes what a crashed process left there.
#ifndef SEGREL_SERVER_INSTANCE_STORE_H_
#define SEGREL_SERVER_INSTANCE_STORE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace segrel::server {

struct InstanceUids {
  std::string study;
  std::string series;
  std::string instance;  // SOP Instance UID
};

// Whether `uid` is a DICOM UID: 1 to 64 characters, digits and dots, no empty component.
bool IsValidUid(absl::string_view uid);

// Thread-safe.
class InstanceStore {
 public:
  // Makes `root` (and its .partial folder), emptying .partial. Errors: Internal naming the folder.
  static absl::StatusOr<std::unique_ptr<InstanceStore>> Create(std::string root);

  const std::string& root() const { return root_; }
  // A fresh temporary file name (nothing is created).
  std::string TemporaryPath();
  // Moves the finished file `temporary` into place as instance `uids`, durably. Returns true for a new instance,
  // false for one stored before (the stored file stays). `temporary` is gone afterwards, also on error. Errors:
  // InvalidArgument for a UID that is not one; ResourceExhausted when the disk is full; Internal otherwise.
  absl::StatusOr<bool> Commit(const std::string& temporary, const InstanceUids& uids);
  std::string StudyFolder(absl::string_view study_uid) const;

 private:
  explicit InstanceStore(std::string root) : root_(std::move(root)) {}

  const std::string root_;
  std::atomic<uint64_t> next_temporary_{0};
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_INSTANCE_STORE_H_
