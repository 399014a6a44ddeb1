#include "server/dicom_echo.h"

#include <dcmtk/config/osconfig.h>  // must come first among DCMTK headers
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmnet/scu.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace segrel::server {

absl::Status EchoPeer(const DicomPeer& peer, const std::string& calling_ae_title, absl::Duration timeout) {
  const std::string who = absl::StrCat("peer ", peer.ae_title, " (", peer.host, ":", peer.port, ")");
  if (peer.addresses.empty() || peer.port <= 0) return absl::UnavailableError(absl::StrCat(who, " has no address"));
  const auto seconds = static_cast<Uint32>(std::max<int64_t>(1, absl::ToInt64Seconds(timeout)));
  DcmSCU scu;
  scu.setAETitle(calling_ae_title.c_str());
  scu.setPeerAETitle(peer.ae_title.c_str());
  scu.setPeerHostName(peer.addresses.front().c_str());
  scu.setPeerPort(static_cast<Uint16>(peer.port));
  scu.setConnectionTimeout(static_cast<Sint32>(seconds));
  scu.setACSETimeout(seconds);
  scu.setDIMSETimeout(seconds);
  scu.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  OFList<OFString> syntaxes;
  syntaxes.push_back(UID_LittleEndianImplicitTransferSyntax);
  scu.addPresentationContext(UID_VerificationSOPClass, syntaxes);
  if (scu.initNetwork().bad()) return absl::UnavailableError(absl::StrCat(who, ": cannot start the network"));
  const OFCondition negotiated = scu.negotiateAssociation();
  if (negotiated == DUL_ASSOCIATIONREJECTED) {
    return absl::UnavailableError(
        absl::StrCat(who, " rejected the association (does it list segrel's AE title ", calling_ae_title, "?)"));
  }
  if (negotiated.bad()) return absl::UnavailableError(absl::StrCat(who, " cannot be reached"));
  const OFCondition echoed = scu.sendECHORequest(0);
  scu.releaseAssociation();
  if (echoed.bad()) return absl::UnavailableError(absl::StrCat(who, " did not answer the C-ECHO with success"));
  return absl::OkStatus();
}

}  // namespace segrel::server
