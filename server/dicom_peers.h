// Who may send studies to segrel's DICOM node: a peers file names each calling application entity (AE title and
// host) and where its results go back. An association from an AE title not listed, or from another host than its
// entry names, is rejected at association (calling AE title not recognised).
//
// Peers file: one peer per line, "AE_TITLE HOST PORT"; HOST is an IP address or a name (resolved once, when the
// file is read); PORT is the peer's own DICOM port, where results are sent. '#' starts a comment.
#ifndef SEGREL_SERVER_DICOM_PEERS_H_
#define SEGREL_SERVER_DICOM_PEERS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace segrel::server {

struct DicomPeer {
  std::string ae_title;
  std::string host;                    // as the file names it
  std::vector<std::string> addresses;  // its IP addresses (numeric), the host resolved
  int port = 0;
};

// Thread-safe (immutable after construction).
class DicomPeers {
 public:
  // Errors: NotFound when `path` cannot be read; InvalidArgument naming the file and line for a malformed line, an
  // AE title of more than 16 characters or with backslashes or control characters, an AE title listed twice, a
  // port out of range, or a host that does not resolve.
  static absl::StatusOr<DicomPeers> FromFile(const std::string& path);

  // The peer with `ae_title` (compared without surrounding spaces) calling from `address` (numeric IP), or null.
  const DicomPeer* Find(absl::string_view ae_title, absl::string_view address) const;
  // The peer with `ae_title`, wherever it calls from, or null.
  const DicomPeer* FindByTitle(absl::string_view ae_title) const;
  const std::vector<DicomPeer>& peers() const { return peers_; }

 private:
  std::vector<DicomPeer> peers_;
};

// Whether `ae_title` is a valid AE title: 1 to 16 characters of the default character repertoire, no backslash and
// no control characters, not only spaces.
bool IsValidAeTitle(absl::string_view ae_title);

}  // namespace segrel::server

#endif  // SEGREL_SERVER_DICOM_PEERS_H_
