#include "server/result_sender.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "dcmtk/config/osconfig.h"  // first of DCMTK's headers
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/dcmnet/scu.h"
#include "server/durable_file.h"

namespace segrel::server {
namespace {

constexpr char kDeliveryFile[] = ".delivery";  // in the job's output folder: "sent" or "failed"

std::string DeliveryPath(const Job& job) { return absl::StrCat(job.spec().OutputDirectory(), "/", kDeliveryFile); }

// C-STORE statuses that mean stored: success and the warnings (PS3.4 B.2.3).
bool Stored(Uint16 status) { return status == 0x0000 || (status & 0xF000) == 0xB000; }

}  // namespace

std::string DeliveryState(const Job& job) {
  if (!absl::StartsWith(job.spec().owner, "dicom:") || job.Get().state != JobState::kDone) return "";
  std::ifstream file(DeliveryPath(job));
  std::string state;
  return file >> state ? state : "pending";
}

ResultSender::ResultSender(std::string calling_ae_title, std::vector<absl::Duration> backoff, Metrics* metrics,
                           AuditLog* audit)
    : calling_ae_title_(std::move(calling_ae_title)),
      backoff_(std::move(backoff)),
      metrics_(metrics),
      audit_(audit),
      thread_([this] { Run(); }) {}

ResultSender::~ResultSender() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

void ResultSender::Send(ResultDelivery delivery) {
  absl::MutexLock lock(&mutex_);
  pending_.push_back(Pending{std::move(delivery), 0, absl::Now()});
}

size_t ResultSender::pending() const {
  absl::MutexLock lock(&mutex_);
  return pending_.size();
}

absl::Status ResultSender::Attempt(const ResultDelivery& delivery) const {
  const DicomPeer& peer = delivery.peer;
  if (peer.addresses.empty()) return absl::UnavailableError(absl::StrCat("peer ", peer.ae_title, " has no address"));
  DcmSCU scu;
  scu.setAETitle(calling_ae_title_.c_str());
  scu.setPeerAETitle(peer.ae_title.c_str());
  scu.setPeerHostName(peer.addresses.front().c_str());
  scu.setPeerPort(static_cast<Uint16>(peer.port));
  scu.setACSETimeout(30);
  scu.setDIMSETimeout(60);
  scu.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  // One presentation context per file's SOP class, in the file's own transfer syntax and explicit little endian.
  std::vector<std::pair<std::string, std::string>> contexts;
  for (const std::string& file : delivery.files) {
    DcmFileFormat dicom;
    if (dicom.loadFile(file.c_str(), EXS_Unknown, EGL_noChange, 0).bad()) {
      return absl::InternalError("a result file cannot be read");
    }
    OFString sop_class;
    dicom.getMetaInfo()->findAndGetOFString(DCM_MediaStorageSOPClassUID, sop_class);
    const std::string syntax = DcmXfer(dicom.getDataset()->getOriginalXfer()).getXferID();
    contexts.emplace_back(sop_class.c_str(), syntax);
  }
  for (const auto& [sop_class, syntax] : contexts) {
    OFList<OFString> syntaxes;
    syntaxes.push_back(syntax.c_str());
    if (syntax != UID_LittleEndianExplicitTransferSyntax) syntaxes.push_back(UID_LittleEndianExplicitTransferSyntax);
    scu.addPresentationContext(sop_class.c_str(), syntaxes);
  }
  if (scu.initNetwork().bad() || scu.negotiateAssociation().bad()) {
    return absl::UnavailableError(
        absl::StrCat("peer ", peer.ae_title, " cannot be reached or refused the association"));
  }
  absl::Status status;
  for (size_t f = 0; f < delivery.files.size() && status.ok(); ++f) {
    const T_ASC_PresentationContextID context = scu.findAnyPresentationContextID(contexts[f].first.c_str(), "");
    Uint16 response = 0;
    if (context == 0 || scu.sendSTORERequest(context, delivery.files[f].c_str(), nullptr, response).bad() ||
        !Stored(response)) {
      status = absl::UnavailableError(
          absl::StrCat("peer ", peer.ae_title, " did not store a result (status 0x", absl::Hex(response), ")"));
    }
  }
  scu.releaseAssociation();
  return status;
}

void ResultSender::Run() {
  while (true) {
    Pending due;
    {
      absl::MutexLock lock(&mutex_);
      // Deliveries are kept in the order of their next attempt; a new one is looked at within 100 ms.
      const absl::Duration wait =
          pending_.empty() ? absl::Seconds(1) : std::max(pending_.front().next - absl::Now(), absl::ZeroDuration());
      mutex_.AwaitWithTimeout(absl::Condition(&stopping_), std::min(wait, absl::Milliseconds(100)));
      if (stopping_) return;
      if (pending_.empty() || pending_.front().next > absl::Now()) continue;
      due = std::move(pending_.front());
      pending_.pop_front();
    }
    const absl::Status sent = Attempt(due.delivery);
    if (sent.ok()) {
      WriteFileDurably(DeliveryPath(*due.delivery.job), "sent\n")
          .IgnoreError();  // else it is sent again after a restart
      metrics_->dicom_results.Add({"sent"});
      uint64_t bytes = 0;
      for (const std::string& file : due.delivery.files) {
        struct stat status;
        if (stat(file.c_str(), &status) == 0) bytes += static_cast<uint64_t>(status.st_size);
      }
      AuditDetails details;
      details.by = absl::StrCat("dicom:", due.delivery.peer.ae_title);
      details.bytes_out = bytes;
      Audit(audit_, AuditEvent::kDelivered, *due.delivery.job, details);
      continue;
    }
    if (due.attempts >= backoff_.size()) {
      WriteFileDurably(DeliveryPath(*due.delivery.job), "failed\n").IgnoreError();
      metrics_->dicom_results.Add({"failed"});
      continue;
    }
    metrics_->dicom_results.Add({"retried"});
    due.next = absl::Now() + backoff_[due.attempts++];
    absl::MutexLock lock(&mutex_);
    auto at = pending_.begin();
    while (at != pending_.end() && at->next <= due.next) ++at;
    pending_.insert(at, std::move(due));
  }
}

}  // namespace segrel::server
