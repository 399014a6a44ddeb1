#include "server/dicom_receiver.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/io/dicom_file.h"
#include "dcmtk/config/osconfig.h"  // first of DCMTK's headers
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmnet/dcmtrans.h"
#include "dcmtk/dcmnet/diutil.h"
#include "dcmtk/dcmnet/scppool.h"
#include "dcmtk/dcmnet/scpthrd.h"

namespace segrel::server {
namespace {

// The image storage SOP classes of the studies segrel analyses.
constexpr const char* kStorageSopClasses[] = {UID_MRImageStorage, UID_EnhancedMRImageStorage, UID_CTImageStorage,
                                              UID_EnhancedCTImageStorage};
// What the study reader decodes (core/io/dicom_file.cc): uncompressed, deflated, JPEG, JPEG-LS and RLE.
constexpr const char* kImageTransferSyntaxes[] = {
    UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax,
    UID_BigEndianExplicitTransferSyntax,    UID_DeflatedExplicitVRLittleEndianTransferSyntax,
    UID_JPEGProcess1TransferSyntax,         UID_JPEGProcess2_4TransferSyntax,
    UID_JPEGProcess14TransferSyntax,        UID_JPEGProcess14SV1TransferSyntax,
    UID_JPEGLSLosslessTransferSyntax,       UID_JPEGLSLossyTransferSyntax,
    UID_RLELosslessTransferSyntax};

// C-STORE response statuses (PS3.4 B.2.3, PS3.7 C).
constexpr Uint16 kStoreSuccess = STATUS_Success;
constexpr Uint16 kOutOfResources = STATUS_STORE_Refused_OutOfResources;  // 0xA700
constexpr Uint16 kCannotUnderstand = 0xC000;
constexpr Uint16 kProcessingFailure = 0x0110;

struct Shared {
  DicomReceiverOptions options;
  InstanceStore* store;
  InstanceListener on_instance;
  Metrics* metrics;
};

std::string Trimmed(const OFString& text) { return std::string(absl::StripAsciiWhitespace(text.c_str())); }

std::string StringOf(DcmDataset& dataset, const DcmTagKey& tag) {
  OFString value;
  dataset.findAndGetOFString(tag, value);
  return Trimmed(value);
}

// One association at a time, on a thread of the pool.
class Worker final : public DcmBaseSCPPool::DcmBaseSCPWorker, private DcmThreadSCP {
 public:
  Worker(DcmBaseSCPPool& pool, const Shared& shared) : DcmBaseSCPWorker(pool), shared_(shared) {}

  OFCondition setSharedConfig(const DcmSharedSCPConfig& config) override {
    return DcmThreadSCP::setSharedConfig(config);
  }
  OFBool busy() override { return DcmThreadSCP::isConnected(); }

 protected:
  OFCondition workerListen(T_ASC_Association* const association) override { return DcmThreadSCP::run(association); }

 private:
  OFBool checkCalledAETitleAccepted(const OFString& called) override {
    const std::string title = Trimmed(called);
    const std::vector<std::string>& others = shared_.options.called_ae_titles;
    const bool known =
        title == shared_.options.ae_title || std::find(others.begin(), others.end(), title) != others.end();
    if (!known) shared_.metrics->dicom_associations.Add({"unknown_called_ae"});
    return known;
  }
  // The calling AE title and the host it calls from must be a peer's.
  OFBool checkCallingAETitleAccepted(const OFString& calling) override {
    const bool known = shared_.options.peers.Find(calling.c_str(), getPeerIP().c_str()) != nullptr;
    if (!known) shared_.metrics->dicom_associations.Add({"unknown_caller"});
    return known;
  }
  void notifyAssociationAcknowledge() override { shared_.metrics->dicom_associations.Add({"accepted"}); }

  OFCondition handleIncomingCommand(T_DIMSE_Message* message, const DcmPresentationContextInfo& context) override {
    if (message->CommandField != DIMSE_C_STORE_RQ) return DcmThreadSCP::handleIncomingCommand(message, context);
    const absl::Time started = absl::Now();
    T_DIMSE_C_StoreRQ& request = message->msg.CStoreRQ;
    DcmDataset* received = nullptr;
    const OFCondition condition = receiveSTORERequest(request, context.presentationContextID, received);
    std::unique_ptr<DcmDataset> dataset(received);
    if (condition.bad()) {
      // The data set did not arrive whole; if the association still stands, the caller learns it and goes on.
      shared_.metrics->dicom_store_failures.Add({"cannot_understand"});
      return sendSTOREResponse(context.presentationContextID, request, kCannotUnderstand);
    }
    const Uint16 status = Store(request, std::move(dataset));
    if (status != kStoreSuccess) {
      shared_.metrics->dicom_store_failures.Add({status == kOutOfResources     ? "out_of_resources"
                                                 : status == kCannotUnderstand ? "cannot_understand"
                                                                               : "failure"});
    }
    const OFCondition answered = sendSTOREResponse(context.presentationContextID, request, status);
    if (status == kStoreSuccess)
      shared_.metrics->dicom_store_seconds.Observe({}, absl::ToDoubleSeconds(absl::Now() - started));
    return answered;
  }

  // Commits the instance to the store; the C-STORE status.
  Uint16 Store(const T_DIMSE_C_StoreRQ& request, std::unique_ptr<DcmDataset> dataset) {
    if (dataset == nullptr) return kCannotUnderstand;
    ReceivedInstance instance;
    instance.uids = {StringOf(*dataset, DCM_StudyInstanceUID), StringOf(*dataset, DCM_SeriesInstanceUID),
                     StringOf(*dataset, DCM_SOPInstanceUID)};
    if (instance.uids.instance != Trimmed(request.AffectedSOPInstanceUID) ||
        StringOf(*dataset, DCM_SOPClassUID) != Trimmed(request.AffectedSOPClassUID)) {
      return kCannotUnderstand;  // the data set is not the instance the command names
    }
    const E_TransferSyntax syntax = dataset->getOriginalXfer();
    DcmFileFormat file(dataset.release(), /*deepCopy=*/OFFalse);
    const std::string temporary = shared_.store->TemporaryPath();
    errno = 0;
    const OFCondition saved = file.saveFile(temporary.c_str(), syntax);
    if (saved.bad()) {
      const bool disk_full = errno == ENOSPC || errno == EDQUOT || absl::StrContains(saved.text(), "No space left");
      unlink(temporary.c_str());
      return disk_full ? kOutOfResources : kProcessingFailure;
    }
    struct stat status;
    instance.bytes = stat(temporary.c_str(), &status) == 0 ? static_cast<uint64_t>(status.st_size) : 0;
    const absl::StatusOr<bool> committed = shared_.store->Commit(temporary, instance.uids);
    if (!committed.ok()) {
      if (absl::IsResourceExhausted(committed.status())) return kOutOfResources;
      return absl::IsInvalidArgument(committed.status()) ? kCannotUnderstand : kProcessingFailure;
    }
    instance.duplicate = !*committed;
    if (!instance.duplicate) {
      shared_.metrics->dicom_instances.Add({});
      shared_.metrics->dicom_bytes.Add({}, static_cast<double>(instance.bytes));
    }
    instance.calling_ae_title = Trimmed(getPeerAETitle());
    instance.called_ae_title = Trimmed(getCalledAETitle());
    if (shared_.on_instance) shared_.on_instance(instance);
    return kStoreSuccess;
  }

  const Shared& shared_;
};

// Whether something else listens on `port` already (DCMTK would only find out on its own thread).
bool PortIsFree(int port) {
  const int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return true;  // no IPv6: DCMTK finds out itself
  const int yes = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  sockaddr_in6 address{};
  address.sin6_family = AF_INET6;
  address.sin6_port = htons(static_cast<uint16_t>(port));
  address.sin6_addr = in6addr_any;
  const bool free = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return free;
}

}  // namespace

class DicomReceiver::Pool final : public DcmBaseSCPPool {
 public:
  explicit Pool(Shared shared) : shared_(std::move(shared)) {}
  ~Pool() override { Stop(); }

  absl::Status Configure() {
    const DicomReceiverOptions& options = shared_.options;
    DcmSCPConfig& config = getConfig();
    config.setPort(static_cast<Uint16>(options.port));
    config.setAETitle(options.ae_title.c_str());
    config.setHostLookupEnabled(OFFalse);  // numeric peer addresses: no reverse DNS, matched against the peers
    config.setConnectionBlockingMode(DUL_NOBLOCK);
    config.setConnectionTimeout(1);  // the listening loop looks at Stop once a second
    config.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
    config.setDIMSETimeout(static_cast<Uint32>(absl::ToInt64Seconds(options.dimse_timeout)));
    config.setACSETimeout(static_cast<Uint32>(absl::ToInt64Seconds(options.acse_timeout)));
    setMaxThreads(static_cast<Uint16>(options.max_associations));
    OFList<OFString> image_syntaxes;
    for (const char* syntax : kImageTransferSyntaxes) image_syntaxes.push_back(syntax);
    for (const char* sop_class : kStorageSopClasses) {
      if (config.addPresentationContext(sop_class, image_syntaxes).bad()) {
        return absl::InternalError("cannot configure the DICOM storage presentation contexts");
      }
    }
    OFList<OFString> verification_syntaxes;
    verification_syntaxes.push_back(UID_LittleEndianExplicitTransferSyntax);
    verification_syntaxes.push_back(UID_LittleEndianImplicitTransferSyntax);
    if (config.addPresentationContext(UID_VerificationSOPClass, verification_syntaxes).bad()) {
      return absl::InternalError("cannot configure the DICOM verification presentation context");
    }
    return absl::OkStatus();
  }

  // Listens on a thread of its own; returns once the port is open. Errors: Unavailable when listening ended first.
  absl::Status Serve() {
    thread_ = std::thread([this] {
      listen();
      listening_ended_ = true;
    });
    for (int wait = 0; wait < 500; ++wait) {  // DCMTK opens the port on that thread: a few milliseconds
      if (!PortIsFree(shared_.options.port)) return absl::OkStatus();
      if (listening_ended_) break;
      usleep(10 * 1000);
    }
    Stop();
    return absl::UnavailableError(absl::StrCat("cannot listen for DICOM on port ", shared_.options.port));
  }
  void Stop() {
    stopAfterCurrentAssociations();
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return shared_.options.port; }

 protected:
  DcmBaseSCPWorker* createSCPWorker() override { return new Worker(*this, shared_); }

 private:
  const Shared shared_;
  std::atomic<bool> listening_ended_{false};
  std::thread thread_;
};

DicomReceiver::DicomReceiver(std::unique_ptr<Pool> pool) : pool_(std::move(pool)) {}
DicomReceiver::~DicomReceiver() { Stop(); }

absl::StatusOr<std::unique_ptr<DicomReceiver>> DicomReceiver::Start(DicomReceiverOptions options, InstanceStore* store,
                                                                    InstanceListener on_instance, Metrics* metrics) {
  if (options.port < 1 || options.port > 65535) return absl::InvalidArgumentError("the DICOM port must be 1 to 65535");
  if (!IsValidAeTitle(options.ae_title)) {
    return absl::InvalidArgumentError("the DICOM AE title has 1 to 16 printable characters and no backslash");
  }
  if (options.max_associations < 1 || options.max_associations > 1000) {
    return absl::InvalidArgumentError("the most DICOM associations at once must be 1 to 1000");
  }
  if (options.acse_timeout < absl::Seconds(1) || options.dimse_timeout < absl::Seconds(1)) {
    return absl::InvalidArgumentError("the DICOM timeouts must be at least 1 s");
  }
  if (absl::Status ready = io::dicom::InitDicom(); !ready.ok()) return ready;
  // DCMTK waits for the rest of a PDU that has begun (an association request, a data set fragment) as long as its
  // socket receive timeout says, 60 s by default and not the ACSE timeout: a caller that sends half a request would
  // hold one of the association slots that long. The ACSE timeout bounds it instead (a process-wide DCMTK setting).
  dcmSocketReceiveTimeout.set(static_cast<Sint32>(absl::ToInt64Seconds(options.acse_timeout)));
  if (!PortIsFree(options.port)) {
    return absl::UnavailableError(absl::StrCat("cannot listen for DICOM on port ", options.port, ": in use"));
  }
  auto pool = std::make_unique<Pool>(Shared{std::move(options), store, std::move(on_instance), metrics});
  if (absl::Status configured = pool->Configure(); !configured.ok()) return configured;
  if (absl::Status serving = pool->Serve(); !serving.ok()) return serving;
  return std::unique_ptr<DicomReceiver>(new DicomReceiver(std::move(pool)));
}

int DicomReceiver::port() const { return pool_->port(); }

void DicomReceiver::Stop() { pool_->Stop(); }

}  // namespace segrel::server
