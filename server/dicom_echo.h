// C-ECHO (the DICOM Verification service) from segrel to a peer: how segrel-server shows at start-up whether each
// destination in the peers file can be reached before any result has to go there.
#ifndef SEGREL_SERVER_DICOM_ECHO_H_
#define SEGREL_SERVER_DICOM_ECHO_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/dicom_peers.h"

namespace segrel::server {

// Opens an association from `calling_ae_title` to `peer` (its first address and port), sends one C-ECHO and
// releases it. Errors: Unavailable, saying whether the peer could not be reached, refused the association, or
// did not answer the echo with success, within `timeout` for each step.
absl::Status EchoPeer(const DicomPeer& peer, const std::string& calling_ae_title, absl::Duration timeout);

}  // namespace segrel::server

#endif  // SEGREL_SERVER_DICOM_ECHO_H_
