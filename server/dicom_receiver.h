// segrel's DICOM node, receiving side: a Verification (C-ECHO) and Storage (C-STORE) SCP for the image SOP classes
// and transfer syntaxes the study reader decodes (core/io/dicom_file.h), a pool of associations (DCMTK's
// DcmBaseSCPPool, one DcmThreadSCP per association, at most `max_associations` at once; beyond that an association
// is rejected, "local limit exceeded"). Only the peers file's callers are accepted (server/dicom_peers.h). Every
// instance is committed to the InstanceStore, durably, before its C-STORE is answered with success; a full disk is
// answered "out of resources" (0xA700) and a dataset that cannot be stored "cannot understand" (0xC000), and the
// association goes on. No DICOM attribute is ever logged (DCMTK's logger is off).
//
// DCMTK binds every interface; a firewall or a Kubernetes NetworkPolicy limits who reaches the port.
#ifndef SEGREL_SERVER_DICOM_RECEIVER_H_
#define SEGREL_SERVER_DICOM_RECEIVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/dicom_peers.h"
#include "server/instance_store.h"
#include "server/metrics.h"

namespace segrel::server {

struct DicomReceiverOptions {
  int port = 104;                                    // REQUIRES: 1 to 65535
  std::string ae_title = "SEGREL";                   // the node's own AE title
  std::vector<std::string> called_ae_titles;         // further called AE titles it answers to (DicomNode's routes)
  DicomPeers peers;                                  // the callers accepted
  int max_associations = 25;                         // at once (MONAI Deploy Informatics Gateway's default)
  absl::Duration acse_timeout = absl::Seconds(30);   // association negotiation and release (ARTIM)
  absl::Duration dimse_timeout = absl::Seconds(60);  // an open association that sends nothing this long is aborted
};

// What the node received: called once per stored instance, on the association's thread.
struct ReceivedInstance {
  InstanceUids uids;
  std::string calling_ae_title;
  std::string called_ae_title;
  uint64_t bytes = 0;      // the stored file's size
  bool duplicate = false;  // stored before: the file on disk was kept
};
using InstanceListener = std::function<void(const ReceivedInstance&)>;

// Thread-safe.
class DicomReceiver {
 public:
  // Opens the port and serves on a thread of its own. `store` and `metrics` (it counts the segrel_dicom_* series)
  // must outlive the receiver; `on_instance` may be null.
  // Errors: InvalidArgument for options out of range; FailedPrecondition when DICOM cannot be initialised;
  // Unavailable when the port cannot be opened.
  static absl::StatusOr<std::unique_ptr<DicomReceiver>> Start(DicomReceiverOptions options, InstanceStore* store,
                                                              InstanceListener on_instance, Metrics* metrics);
  ~DicomReceiver();  // Stop()
  DicomReceiver(const DicomReceiver&) = delete;
  DicomReceiver& operator=(const DicomReceiver&) = delete;

  int port() const;
  // Accepts no new association and returns once the open ones have ended (each within its DIMSE timeout).
  // Idempotent.
  void Stop();

 private:
  class Pool;
  explicit DicomReceiver(std::unique_ptr<Pool> pool);
  std::unique_ptr<Pool> pool_;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_DICOM_RECEIVER_H_
