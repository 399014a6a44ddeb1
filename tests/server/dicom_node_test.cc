// segrel's DICOM node, receiving side: the peers file, the instance store, and the receiver against DCMTK's own SCU
// on loopback: C-ECHO, C-STORE committed before success and stored once, unknown callers and hosts rejected at
// association, unsupported SOP classes refused, an instance that cannot be stored answered and the association
// going on, the association limit, a full disk, an association aborted mid-study, PDUs cut short, and Stop.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/client.h"
#include "core/pipeline/pipeline.h"
#include "dcmtk/config/osconfig.h"  // first of DCMTK's headers
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmnet/scu.h"
#include "proto/checksums.h"
#include "server/dicom_peers.h"
#include "server/dicom_receiver.h"
#include "server/instance_store.h"
#include "server/server.h"
#include "tests/dicom_writer.h"
#include "tests/server/server_test_fixture.h"
#include "tests/test_util.h"
#include "tests/tools/dicom_study_writer.h"

namespace segrel::server {
namespace {

namespace fs = std::filesystem;
using segrel::testing::StatusIs;
using segrel::testing::TestTempDir;
using ::testing::HasSubstr;

std::string WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

TEST(DicomPeers, ReadsPeersAndNamesTheLineOfAMistake) {
  const std::string dir = TestTempDir();
  absl::StatusOr<DicomPeers> peers = DicomPeers::FromFile(
      WriteFile(dir + "/peers", "# the hospital's PACS\nORTHANC 127.0.0.1 4242\n  MODALITY  localhost 104 # CT\n"));
  ASSERT_TRUE(peers.ok()) << peers.status();
  ASSERT_EQ(peers->peers().size(), 2u);
  EXPECT_EQ(peers->peers()[1].port, 104);
  EXPECT_NE(peers->Find("ORTHANC", "127.0.0.1"), nullptr);
  EXPECT_NE(peers->Find("ORTHANC ", "::ffff:127.0.0.1"), nullptr) << "padded AE title, IPv4 on an IPv6 socket";
  EXPECT_EQ(peers->Find("ORTHANC", "10.0.0.7"), nullptr) << "another host";
  EXPECT_EQ(peers->Find("STRANGER", "127.0.0.1"), nullptr);
  EXPECT_NE(peers->Find("MODALITY", "127.0.0.1"), nullptr) << "localhost resolved";

  const std::vector<std::pair<std::string, std::string>> mistakes = {
      {"A 127.0.0.1\n", ":1: expected AE_TITLE HOST PORT"},
      {"A 127.0.0.1 0\n", ":1: the port"},
      {"# ok\nTHIS_TITLE_IS_TOO_LONG 127.0.0.1 104\n", ":2: an AE title"},
      {"A\\B 127.0.0.1 104\n", ":1: an AE title"},
      {"A 127.0.0.1 104\nA 127.0.0.1 105\n", ":2: AE title A is listed twice"},
      {"A no-such-host.invalid 104\n", ":1: host 'no-such-host.invalid' does not resolve"},
  };
  for (const auto& [text, expected] : mistakes) {
    EXPECT_THAT(DicomPeers::FromFile(WriteFile(dir + "/bad", text)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(expected)))
        << text;
  }
  EXPECT_THAT(DicomPeers::FromFile(dir + "/missing"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
}

TEST(InstanceStore, CommitsOnceByUidAndRefusesWhatIsNotAUid) {
  const std::string root = TestTempDir() + "/incoming";
  fs::create_directories(root + "/.partial");
  WriteFile(root + "/.partial/left-by-a-crash.dcm", "half");
  std::unique_ptr<InstanceStore> store = InstanceStore::Create(root).value();
  EXPECT_TRUE(fs::is_empty(root + "/.partial")) << "what a crashed process left is removed";
  const InstanceUids uids{"1.2.3", "1.2.3.4", "1.2.3.4.5"};
  const std::string first = store->TemporaryPath();
  WriteFile(first, "first");
  EXPECT_EQ(store->Commit(first, uids).value(), true);
  const std::string again = store->TemporaryPath();
  EXPECT_NE(again, first);
  WriteFile(again, "second");
  EXPECT_EQ(store->Commit(again, uids).value(), false) << "a duplicate";
  EXPECT_EQ(segrel::testing::ReadFile(root + "/1.2.3/1.2.3.4/1.2.3.4.5.dcm"), "first") << "the first copy stays";
  EXPECT_FALSE(fs::exists(again));
  for (const std::string& bad : {std::string("../1.2"), std::string("1..2"), std::string(""), std::string(65, '1')}) {
    const std::string temporary = store->TemporaryPath();
    WriteFile(temporary, "x");
    EXPECT_THAT(store->Commit(temporary, {bad, "1.2", "1.3"}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("StudyInstanceUID")))
        << bad;
    EXPECT_FALSE(fs::exists(temporary));
  }
  EXPECT_TRUE(IsValidUid("1.2.840.10008.5.1.4.1.1.4"));
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

// A DCMTK SCU calling the receiver on loopback.
class Caller {
 public:
  Caller(int port, const std::string& calling_ae, const std::vector<const char*>& sop_classes,
         const std::string& called_ae = "SEGREL") {
    scu_.setAETitle(calling_ae.c_str());
    scu_.setPeerAETitle(called_ae.c_str());
    scu_.setPeerHostName("127.0.0.1");
    scu_.setPeerPort(static_cast<Uint16>(port));
    scu_.setACSETimeout(10);
    scu_.setDIMSETimeout(10);
    scu_.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
    OFList<OFString> syntaxes;
    syntaxes.push_back(UID_LittleEndianExplicitTransferSyntax);
    for (const char* sop_class : sop_classes) scu_.addPresentationContext(sop_class, syntaxes);
  }
  // Whether the association was accepted.
  bool Associate() { return scu_.initNetwork().good() && scu_.negotiateAssociation().good(); }
  bool Accepted(const char* sop_class) {
    return scu_.findPresentationContextID(sop_class, UID_LittleEndianExplicitTransferSyntax) != 0;
  }
  bool Echo() {
    const T_ASC_PresentationContextID context =
        scu_.findPresentationContextID(UID_VerificationSOPClass, UID_LittleEndianExplicitTransferSyntax);
    return context != 0 && scu_.sendECHORequest(context).good();
  }
  // The C-STORE status of `file` (-1 when the request failed).
  int Store(const std::string& file) {
    const T_ASC_PresentationContextID context =
        scu_.findPresentationContextID(UID_MRImageStorage, UID_LittleEndianExplicitTransferSyntax);
    Uint16 status = 0;
    if (context == 0 || scu_.sendSTORERequest(context, file.c_str(), nullptr, status).bad()) return -1;
    return status;
  }
  void Release() { scu_.releaseAssociation(); }
  // A-ABORT: the sender gives up in the middle, as a PACS that is stopped or loses the network does.
  void Abort() { scu_.abortAssociation(); }

 private:
  DcmSCU scu_;
};

// A caller that speaks the upper layer protocol (PS3.8) byte by byte over a plain socket, so that a test can stop
// in the middle of a PDU, as a sender whose connection breaks does.
class RawCaller {
 public:
  explicit RawCaller(int port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  }
  ~RawCaller() { close(fd_); }
  RawCaller(const RawCaller&) = delete;
  RawCaller& operator=(const RawCaller&) = delete;

  bool Send(const std::string& bytes) {
    return connected_ && write(fd_, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  }
  // The type of the PDU the node answers with (2: A-ASSOCIATE-AC), after reading all of it; -1 on end of stream.
  int ReadPduType() {
    unsigned char header[6];
    if (!ReadExactly(header, sizeof(header))) return -1;
    const uint32_t length = (uint32_t{header[2]} << 24) | (uint32_t{header[3]} << 16) | (header[4] << 8) | header[5];
    std::string body(length, '\0');
    if (!ReadExactly(body.data(), length)) return -1;
    return header[0];
  }
  // A-ASSOCIATE-RQ from SENDER to SEGREL with presentation context 1: MR Image Storage in explicit little endian.
  static std::string AssociateRequest() {
    std::string items = Item(0x10, "1.2.840.10008.3.1.1.1");
    items += Item(0x20, std::string("\x01\0\0\0", 4) + Item(0x30, UID_MRImageStorage) +
                            Item(0x40, UID_LittleEndianExplicitTransferSyntax));
    items += Item(0x50, Item(0x51, BigEndian(16384, 4)) + Item(0x52, "1.2.826.0.1.3680043.8.498.1"));
    std::string body =
        BigEndian(1, 2) + std::string(2, '\0') + Padded("SEGREL") + Padded("SENDER") + std::string(32, '\0') + items;
    return std::string("\x01\0", 2) + BigEndian(body.size(), 4) + body;
  }
  // A P-DATA-TF PDU holding one PDV of presentation context 1: a command or data set fragment. `declared` is the
  // length its headers give (the fragment's own when 0): longer than the fragment, the PDU is cut short.
  static std::string DataPdu(const std::string& fragment, bool command, bool last, size_t declared = 0) {
    const size_t length = declared == 0 ? fragment.size() : declared;
    const char control = static_cast<char>((command ? 1 : 0) | (last ? 2 : 0));
    return std::string("\x04\0", 2) + BigEndian(length + 6, 4) + BigEndian(length + 2, 4) + '\x01' + control + fragment;
  }

 private:
  static std::string BigEndian(uint64_t value, int bytes) {
    std::string out;
    for (int b = bytes - 1; b >= 0; --b) out += static_cast<char>((value >> (8 * b)) & 0xFF);
    return out;
  }
  static std::string Item(int type, const std::string& value) {
    return std::string(1, static_cast<char>(type)) + '\0' + BigEndian(value.size(), 2) + value;
  }
  static std::string Padded(const std::string& ae_title) { return ae_title + std::string(16 - ae_title.size(), ' '); }
  bool ReadExactly(void* out, size_t length) {
    auto* bytes = static_cast<char*>(out);
    for (size_t done = 0; done < length;) {
      const ssize_t got = read(fd_, bytes + done, length - done);
      if (got <= 0) return false;
      done += static_cast<size_t>(got);
    }
    return true;
  }

  int fd_;
  bool connected_ = false;
};

// `dataset` encoded in `syntax` without a file meta header, as it travels in P-DATA.
std::string Encoded(DcmDataset& dataset, E_TransferSyntax syntax, E_GrpLenEncoding group_length,
                    const std::string& scratch) {
  EXPECT_TRUE(dataset.saveFile(scratch.c_str(), syntax, EET_ExplicitLength, group_length).good());
  std::ifstream in(scratch, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The C-STORE-RQ command set for the instance in `file`, encoded (commands are always implicit little endian).
std::string StoreCommand(const std::string& file, const std::string& scratch) {
  DcmFileFormat instance;
  EXPECT_TRUE(instance.loadFile(file.c_str()).good());
  OFString uid;
  instance.getDataset()->findAndGetOFString(DCM_SOPInstanceUID, uid);
  DcmDataset command;
  command.putAndInsertString(DCM_AffectedSOPClassUID, UID_MRImageStorage);
  command.putAndInsertUint16(DCM_CommandField, 0x0001);  // C-STORE-RQ
  command.putAndInsertUint16(DCM_MessageID, 1);
  command.putAndInsertUint16(DCM_Priority, 0);
  command.putAndInsertUint16(DCM_CommandDataSetType, 0x0000);  // a data set follows
  command.putAndInsertString(DCM_AffectedSOPInstanceUID, uid.c_str());
  return Encoded(command, EXS_LittleEndianImplicit, EGL_withGL, scratch);  // with (0000,0000), as PS3.7 requires
}

// A slice of MR Image Storage of `study`/`series`, 64 x 64 pixels.
std::string Slice(const std::string& dir, const std::string& study, const std::string& series, int number) {
  segrel::testing::MrSlice slice;
  slice.study_uid = study;
  slice.series_uid = series;
  slice.frame_of_reference_uid = "1.2.826.0.1.3680043.8.498.1";
  slice.series_description = "AX FLAIR";
  slice.instance_number = number;
  slice.position = absl::StrCat("0\\0\\", number);
  slice.orientation = "1\\0\\0\\0\\1\\0";
  slice.pixel_spacing = "1\\1";
  slice.slice_thickness = "1";
  slice.pseudonymous_patient = true;
  slice.rows = 64;
  slice.columns = 64;
  slice.pixels.assign(64 * 64, static_cast<uint16_t>(number));
  const std::string path = absl::StrCat(dir, "/slice-", series, "-", number, ".dcm");
  segrel::testing::WriteMrSlice(slice, path);
  return path;
}

class DicomReceiverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestTempDir();
    store_root_ = dir_ + "/incoming";
  }

  void Start(int max_associations = 4) {
    store_ = InstanceStore::Create(store_root_).value();
    DicomReceiverOptions options;
    options.port = FreePort();
    options.peers =
        DicomPeers::FromFile(WriteFile(dir_ + "/peers", "SENDER 127.0.0.1 11112\nFAR 192.0.2.1 104\n")).value();
    options.max_associations = max_associations;
    options.acse_timeout = absl::Seconds(5);
    options.dimse_timeout = absl::Seconds(5);
    absl::StatusOr<std::unique_ptr<DicomReceiver>> receiver = DicomReceiver::Start(
        options, store_.get(),
        [this](const ReceivedInstance& instance) {
          absl::MutexLock lock(&mutex_);
          received_.push_back(instance);
        },
        &metrics_);
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
  }

  std::vector<ReceivedInstance> Received() {
    absl::MutexLock lock(&mutex_);
    return received_;
  }

  // The value of one series of the receiver's metrics, or -1.
  double Counted(const std::string& series) {
    return server_testing::SeriesValue(metrics_.registry().Render(), series);
  }

  Metrics metrics_;
  std::string dir_;
  std::string store_root_;
  std::unique_ptr<InstanceStore> store_;
  std::unique_ptr<DicomReceiver> receiver_;
  absl::Mutex mutex_;
  std::vector<ReceivedInstance> received_ ABSL_GUARDED_BY(mutex_);
};

TEST_F(DicomReceiverTest, EchoesAndStoresEveryInstanceOnceBeforeAnsweringSuccess) {
  Start();
  Caller caller(receiver_->port(), "SENDER", {UID_VerificationSOPClass, UID_MRImageStorage});
  ASSERT_TRUE(caller.Associate());
  EXPECT_TRUE(caller.Echo());
  const std::string study = segrel::testing::NewDicomUid();
  const std::string series = segrel::testing::NewDicomUid();
  std::vector<std::string> files;
  for (int n = 1; n <= 3; ++n) files.push_back(Slice(dir_, study, series, n));
  for (const std::string& file : files) EXPECT_EQ(caller.Store(file), STATUS_Success) << file;
  // The success status came after the file was in place: it is there now, whole.
  EXPECT_EQ(std::distance(fs::directory_iterator(absl::StrCat(store_root_, "/", study, "/", series)),
                          fs::directory_iterator()),
            3);
  EXPECT_EQ(caller.Store(files[0]), STATUS_Success) << "a duplicate is acknowledged";
  caller.Release();

  const std::vector<ReceivedInstance> received = Received();
  ASSERT_EQ(received.size(), 4u);
  for (int n = 0; n < 3; ++n) {
    EXPECT_EQ(received[n].uids.study, study);
    EXPECT_EQ(received[n].uids.series, series);
    EXPECT_FALSE(received[n].duplicate);
    EXPECT_EQ(received[n].calling_ae_title, "SENDER");
    EXPECT_EQ(received[n].called_ae_title, "SEGREL");
    EXPECT_GT(received[n].bytes, 64u * 64u * 2u);
  }
  EXPECT_TRUE(received[3].duplicate);
  EXPECT_EQ(received[3].uids.instance, received[0].uids.instance);
  EXPECT_EQ(Counted("segrel_dicom_instances_received_total"), 3);
  EXPECT_EQ(Counted("segrel_dicom_store_seconds_count"), 4) << "every instance answered with success, the repeat too";
  EXPECT_GT(Counted("segrel_dicom_store_seconds_sum"), 0);
  EXPECT_EQ(Counted("segrel_dicom_bytes_received_total"),
            static_cast<double>(received[0].bytes + received[1].bytes + received[2].bytes));
  EXPECT_EQ(Counted("segrel_dicom_associations_total{result=\"accepted\"}"), 1);
  // The stored file is the instance: its pixels and UIDs read back.
  DcmFileFormat stored;
  ASSERT_TRUE(
      stored
          .loadFile(absl::StrCat(store_root_, "/", study, "/", series, "/", received[1].uids.instance, ".dcm").c_str())
          .good());
  OFString uid;
  stored.getDataset()->findAndGetOFString(DCM_SOPInstanceUID, uid);
  EXPECT_EQ(uid.c_str(), received[1].uids.instance);
  EXPECT_TRUE(fs::is_empty(store_root_ + "/.partial"));
}

TEST_F(DicomReceiverTest, UnknownCallersOtherHostsAndOtherCalledTitlesAreRejectedAtAssociation) {
  Start();
  EXPECT_FALSE(Caller(receiver_->port(), "STRANGER", {UID_VerificationSOPClass}).Associate());
  EXPECT_FALSE(Caller(receiver_->port(), "FAR", {UID_VerificationSOPClass}).Associate()) << "FAR calls from elsewhere";
  EXPECT_FALSE(Caller(receiver_->port(), "SENDER", {UID_VerificationSOPClass}, "NOT_SEGREL").Associate());
  EXPECT_EQ(Counted("segrel_dicom_associations_total{result=\"unknown_caller\"}"), 2);
  EXPECT_EQ(Counted("segrel_dicom_associations_total{result=\"unknown_called_ae\"}"), 1);
  Caller known(receiver_->port(), "SENDER", {UID_VerificationSOPClass});
  ASSERT_TRUE(known.Associate()) << "the node goes on serving";
  EXPECT_TRUE(known.Echo());
  known.Release();
}

TEST_F(DicomReceiverTest, SopClassesItCannotAnalyseAreRefusedPerPresentationContext) {
  Start();
  Caller caller(receiver_->port(), "SENDER", {UID_MRImageStorage, UID_RTDoseStorage, UID_EncapsulatedPDFStorage});
  ASSERT_TRUE(caller.Associate());
  EXPECT_TRUE(caller.Accepted(UID_MRImageStorage));
  EXPECT_FALSE(caller.Accepted(UID_RTDoseStorage));
  EXPECT_FALSE(caller.Accepted(UID_EncapsulatedPDFStorage));
  caller.Release();
}

TEST_F(DicomReceiverTest, AnInstanceThatCannotBeStoredIsAnsweredAndTheAssociationGoesOn) {
  Start();
  const std::string series = segrel::testing::NewDicomUid();
  const std::string broken = Slice(dir_, "not.a..uid", series, 1);  // a StudyInstanceUID no folder may be named by
  const std::string fine = Slice(dir_, segrel::testing::NewDicomUid(), series, 2);
  Caller caller(receiver_->port(), "SENDER", {UID_MRImageStorage});
  ASSERT_TRUE(caller.Associate());
  EXPECT_EQ(caller.Store(broken), 0xC000);
  EXPECT_EQ(caller.Store(fine), STATUS_Success);
  caller.Release();
  EXPECT_EQ(Counted("segrel_dicom_store_failures_total{reason=\"cannot_understand\"}"), 1);
  EXPECT_EQ(Received().size(), 1u);
  EXPECT_TRUE(fs::is_empty(store_root_ + "/.partial"));
}

TEST_F(DicomReceiverTest, AssociationsBeyondTheLimitAreRejectedUntilOneEnds) {
  Start(/*max_associations=*/1);
  Caller first(receiver_->port(), "SENDER", {UID_VerificationSOPClass});
  ASSERT_TRUE(first.Associate());
  Caller second(receiver_->port(), "SENDER", {UID_VerificationSOPClass});
  EXPECT_FALSE(second.Associate()) << "local limit exceeded";
  first.Release();
  bool accepted = false;
  for (int attempt = 0; attempt < 50 && !accepted; ++attempt) {  // the worker frees itself after the release
    Caller third(receiver_->port(), "SENDER", {UID_VerificationSOPClass});
    accepted = third.Associate();
    if (accepted) {
      EXPECT_TRUE(third.Echo());
      third.Release();
    } else {
      usleep(100 * 1000);
    }
  }
  EXPECT_TRUE(accepted);
}

TEST_F(DicomReceiverTest, AFullDiskIsOutOfResourcesAndLeavesNoPartialFile) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root (CI runs as root)";
  fs::create_directories(store_root_);
  if (mount("tmpfs", store_root_.c_str(), "tmpfs", 0, "size=256k") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  }
  struct Unmount {  // also when an assertion ends the test early
    ~Unmount() { umount2(path.c_str(), MNT_DETACH); }
    std::string path;
  } unmount{store_root_};
  Start();
  const std::string study = segrel::testing::NewDicomUid();
  const std::string series = segrel::testing::NewDicomUid();
  Caller caller(receiver_->port(), "SENDER", {UID_MRImageStorage});
  ASSERT_TRUE(caller.Associate());
  int stored = 0;
  int status = STATUS_Success;
  for (int n = 1; n <= 40 && status == STATUS_Success; ++n) {  // 8 KB each: the 256 KB fill up
    status = caller.Store(Slice(dir_, study, series, n));
    if (status == STATUS_Success) ++stored;
  }
  EXPECT_EQ(status, 0xA700) << "out of resources";
  EXPECT_EQ(Counted("segrel_dicom_store_failures_total{reason=\"out_of_resources\"}"), 1);
  EXPECT_GT(stored, 0);
  caller.Release();
  EXPECT_EQ(static_cast<int>(Received().size()), stored) << "only what was stored was reported";
  EXPECT_TRUE(fs::is_empty(store_root_ + "/.partial")) << "nothing half-written";
  receiver_.reset();
}

TEST_F(DicomReceiverTest, AnAssociationAbortedMidStudyKeepsWhatWasStoredAndTheNodeGoesOn) {
  Start();
  const std::string study = segrel::testing::NewDicomUid();
  const std::string series = segrel::testing::NewDicomUid();
  std::vector<std::string> files;
  for (int n = 1; n <= 3; ++n) files.push_back(Slice(dir_, study, series, n));
  Caller sender(receiver_->port(), "SENDER", {UID_MRImageStorage});
  ASSERT_TRUE(sender.Associate());
  EXPECT_EQ(sender.Store(files[0]), STATUS_Success);
  EXPECT_EQ(sender.Store(files[1]), STATUS_Success);
  sender.Abort();
  const std::string series_dir = absl::StrCat(store_root_, "/", study, "/", series);
  EXPECT_EQ(std::distance(fs::directory_iterator(series_dir), fs::directory_iterator()), 2)
      << "what was acknowledged stays";
  // The sender starts again, as a PACS retrying the study does: the repeated instance is stored once.
  bool again = false;
  for (int attempt = 0; attempt < 50 && !again; ++attempt) {  // the aborted worker frees its slot shortly
    Caller retry(receiver_->port(), "SENDER", {UID_MRImageStorage});
    again = retry.Associate();
    if (!again) {
      usleep(100 * 1000);
      continue;
    }
    EXPECT_EQ(retry.Store(files[1]), STATUS_Success);
    EXPECT_EQ(retry.Store(files[2]), STATUS_Success);
    retry.Release();
  }
  ASSERT_TRUE(again);
  EXPECT_EQ(std::distance(fs::directory_iterator(series_dir), fs::directory_iterator()), 3);
  const std::vector<ReceivedInstance> received = Received();
  ASSERT_EQ(received.size(), 4u);
  EXPECT_TRUE(received[2].duplicate);
  EXPECT_TRUE(fs::is_empty(store_root_ + "/.partial"));
}

TEST_F(DicomReceiverTest, APduCutShortStoresNothingAndTheNodeGoesOn) {
  Start();
  const std::string file = Slice(dir_, segrel::testing::NewDicomUid(), segrel::testing::NewDicomUid(), 1);
  DcmFileFormat instance;
  ASSERT_TRUE(instance.loadFile(file.c_str()).good());
  const std::string data = Encoded(*instance.getDataset(), EXS_LittleEndianExplicit, EGL_recalcGL, dir_ + "/data.bin");
  const std::string command = StoreCommand(file, dir_ + "/command.bin");
  {
    // The association request itself cut short while the connection stays open: the node gives up on it after
    // the ACSE timeout (5 s here), not DCMTK's 60 s socket timeout.
    RawCaller cut(receiver_->port());
    EXPECT_TRUE(cut.Send(RawCaller::AssociateRequest().substr(0, 40)));
    const absl::Time sent = absl::Now();
    EXPECT_EQ(cut.ReadPduType(), -1);
    EXPECT_LT(absl::Now() - sent, absl::Seconds(20)) << "the slot was held for DCMTK's socket timeout";
    // Garbage that is no PDU at all.
    RawCaller garbage(receiver_->port());
    EXPECT_TRUE(garbage.Send(std::string(64, '\x7f')));
    const int answer = garbage.ReadPduType();
    EXPECT_TRUE(answer == -1 || answer == 7)
        << "a stream that is no DICOM is closed or aborted, not answered: " << answer;
  }
  {
    // An accepted association whose C-STORE data set stops halfway through its PDU.
    RawCaller sender(receiver_->port());
    ASSERT_TRUE(sender.Send(RawCaller::AssociateRequest()));
    ASSERT_EQ(sender.ReadPduType(), 2) << "A-ASSOCIATE-AC";
    ASSERT_TRUE(sender.Send(RawCaller::DataPdu(command, /*command=*/true, /*last=*/true)));
    ASSERT_TRUE(sender.Send(
        RawCaller::DataPdu(data.substr(0, data.size() / 2), /*command=*/false, /*last=*/true, data.size())));
  }  // the connection closes here, mid-PDU
  // The node goes on serving, stored nothing and left nothing behind.
  bool served = false;
  for (int attempt = 0; attempt < 50 && !served; ++attempt) {
    Caller next(receiver_->port(), "SENDER", {UID_VerificationSOPClass, UID_MRImageStorage});
    served = next.Associate();
    if (!served) {
      usleep(100 * 1000);
      continue;
    }
    EXPECT_TRUE(next.Echo());
    EXPECT_EQ(next.Store(Slice(dir_, segrel::testing::NewDicomUid(), segrel::testing::NewDicomUid(), 2)),
              STATUS_Success);
    next.Release();
  }
  ASSERT_TRUE(served);
  ASSERT_EQ(Received().size(), 1u) << "only the whole instance sent afterwards";
  EXPECT_TRUE(fs::is_empty(store_root_ + "/.partial")) << "nothing half-written";
}

TEST_F(DicomReceiverTest, StopEndsListeningAndLaterCallersFindNobody) {
  Start();
  const int port = receiver_->port();
  receiver_->Stop();
  EXPECT_FALSE(Caller(port, "SENDER", {UID_VerificationSOPClass}).Associate());
  receiver_->Stop();  // idempotent
}

// ---------------------------------------------------------------------------------------------------------------
// The whole node in segrel-server: studies sent by C-STORE become jobs, routed by series rules or called AE title.

std::vector<std::string> FilesUnder(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string StudyUidOf(const std::string& file) {
  DcmFileFormat dicom;
  EXPECT_TRUE(dicom.loadFile(file.c_str()).good()) << file;
  OFString uid;
  dicom.getDataset()->findAndGetOFString(DCM_StudyInstanceUID, uid);
  return uid.c_str();
}

// The job id the node documents (server/dicom_node.h), computed here from its definition.
std::string ExpectedJobId(const std::string& study_uid, size_t instances) {
  proto::Sha256 hash;
  hash.Update(study_uid);
  return absl::StrCat("dicom-", hash.HexDigest().substr(0, 16), "-", instances);
}

nlohmann::json RelevanceWithoutSeconds(const std::string& dir) {
  nlohmann::json report = nlohmann::json::parse(segrel::testing::ReadFile(dir + "/relevance.json"));
  report.erase("seconds");
  report.erase("threads");
  return report;
}

class DicomNodeTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<DicomRoute> routes = {}, size_t queue_capacity = 4,
                   absl::Duration study_quiet = absl::Milliseconds(300)) {
    if (temp_.empty()) temp_ = TestTempDir();  // a restart keeps the spool
    bundle_ = segrel::testing::BundleWithRules(temp_ + "/repository/unet");
    ServerOptions options;
    options.address = "127.0.0.1:0";
    options.metrics_address = "";
    options.model_repository = temp_ + "/repository";
    options.spool_dir = temp_ + "/spool";
    options.min_free_bytes = 0;
    options.queue_capacity = queue_capacity;
    audit_path_ = server_testing::TestAuditLogPath(temp_);
    if (server_ == nullptr && client_ == nullptr) fs::remove(audit_path_);  // an earlier run's
    options.audit_log = audit_path_;
    DicomNodeOptions dicom;
    dicom.receiver.port = FreePort();
    dicom.receiver.peers = DicomPeers::FromFile(WriteFile(temp_ + "/peers", "SENDER 127.0.0.1 11112\n")).value();
    dicom.routes = std::move(routes);
    dicom.study_quiet = study_quiet;
    dicom.retry = absl::Milliseconds(200);
    dicom.result_backoff = result_backoff_;
    options.dicom = dicom;
    absl::StatusOr<std::unique_ptr<SegrelServer>> server = SegrelServer::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client_ = std::make_unique<client::SegrelClient>(
        client::SegrelClient::Connect(absl::StrCat("127.0.0.1:", server_->port())));
  }

  // Sends `files` in one association to `called`; every C-STORE must succeed.
  void Send(const std::vector<std::string>& files, const std::string& called = "SEGREL") {
    Caller caller(server_->dicom_port(), "SENDER", {UID_MRImageStorage}, called);
    ASSERT_TRUE(caller.Associate());
    for (const std::string& file : files) ASSERT_EQ(caller.Store(file), STATUS_Success) << file;
    caller.Release();
  }

  // Follows job `id` once it exists (the node makes it after the study's quiet time) into `out`.
  v1::JobStatus WatchWhenThere(const std::string& id, const std::string& out) {
    for (int attempt = 0; attempt < 200; ++attempt) {
      absl::StatusOr<v1::JobStatus> status = client_->Watch(id, out);
      if (status.ok()) return *status;
      EXPECT_TRUE(absl::IsNotFound(status.status())) << status.status();
      usleep(50 * 1000);
    }
    ADD_FAILURE() << "job " << id << " never appeared";
    return {};
  }

  std::vector<absl::Duration> result_backoff_;  // none: a failed delivery is not tried again
  std::string temp_;
  std::string bundle_;
  std::string audit_path_;
  std::unique_ptr<SegrelServer> server_;
  std::unique_ptr<client::SegrelClient> client_;
};

TEST_F(DicomNodeTest, AStudySentByCStoreBecomesAJobThatGivesWhatSegrelAnalyzeGives) {
  StartServer();
  segrel::testing::WriteStudy(temp_ + "/study", /*t1_on_other_grid=*/true);
  const std::vector<std::string> files = FilesUnder(temp_ + "/study");
  Send(files);
  const std::string id = ExpectedJobId(StudyUidOf(files[0]), files.size());
  const v1::JobStatus status = WatchWhenThere(id, temp_ + "/served");
  ASSERT_EQ(status.state(), v1::DONE) << status.message();

  pipeline::AnalysisRequest request;
  request.model = bundle_;
  request.study_dir = temp_ + "/study";
  absl::StatusOr<pipeline::AnalysisResult> expected = pipeline::RunAnalysis(request);
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_TRUE(pipeline::WriteAnalysis(*expected, temp_ + "/in_process", /*pictures=*/true, /*maps=*/false).ok());
  EXPECT_EQ(segrel::testing::ReadFile(temp_ + "/served/segmentation.nii.gz"),
            segrel::testing::ReadFile(temp_ + "/in_process/segmentation.nii.gz"));
  EXPECT_EQ(RelevanceWithoutSeconds(temp_ + "/served"), RelevanceWithoutSeconds(temp_ + "/in_process"));
  EXPECT_TRUE(fs::exists(temp_ + "/served/segmentation.dcm"));

  const v1::ListJobsResponse listed = client_->ListJobs().value();
  ASSERT_EQ(listed.jobs_size(), 1);
  EXPECT_EQ(listed.jobs(0).status().job_id(), id);
  EXPECT_EQ(listed.jobs(0).owner(), "dicom:SENDER");
  const DicomNodeCounts counts = server_->dicom()->counts();
  EXPECT_EQ(counts.studies_completed, 1u);
  EXPECT_EQ(counts.studies_dispatched, 1u);
  // The job's inputs are gone with the job; the audit trail names the calling AE, not the study.
  for (const auto& entry : fs::directory_iterator(temp_ + "/spool")) {
    EXPECT_FALSE(fs::exists(entry.path() / "input")) << entry.path();
  }
  const std::string audit = segrel::testing::ReadFile(audit_path_);
  EXPECT_THAT(audit, HasSubstr(absl::StrCat("event=submitted job=", id, " client=dicom:SENDER model=unet-bn-test")));
  EXPECT_EQ(audit.find(StudyUidOf(files[0])), std::string::npos) << "the audit trail shows no Study Instance UID";
  // Sent again unchanged: the same study, the same job.
  Send(files);
  usleep(800 * 1000);
  EXPECT_EQ(server_->dicom()->counts().studies_completed, 2u);
  EXPECT_EQ(client_->Watch(id, "").value().state(), v1::DONE);
}

TEST_F(DicomNodeTest, AStudyNoModelTakesIsNotAnalysedAndARoutedStudyMissingASeriesFails) {
  StartServer({{"SEGREL_UNET", "unet-bn-test"}});
  segrel::testing::WriteStudy(temp_ + "/study", /*t1_on_other_grid=*/false);
  std::vector<std::string> two_series;
  for (const std::string& file : FilesUnder(temp_ + "/study")) {
    if (file.find("/study/3/") == std::string::npos) two_series.push_back(file);  // without FLAIR (series 3)
  }
  ASSERT_FALSE(two_series.empty());
  Send(two_series);  // to the node's own AE title: no model's series rules are met
  for (int wait = 0; wait < 100 && server_->dicom()->counts().studies_completed < 1; ++wait) usleep(50 * 1000);
  EXPECT_EQ(server_->dicom()->counts().studies_unrouted, 1u);
  EXPECT_EQ(server_->dicom()->counts().studies_dispatched, 0u);
  EXPECT_EQ(server_testing::SeriesValue(server_->metrics().registry().Render(),
                                        "segrel_dicom_studies_total{outcome=\"unrouted\"}"),
            1);

  Send(two_series, "SEGREL_UNET");  // routed by its AE title: the job runs and says what is missing
  const v1::JobStatus status = WatchWhenThere(ExpectedJobId(StudyUidOf(two_series[0]), two_series.size()), "");
  EXPECT_EQ(status.state(), v1::FAILED);
  EXPECT_EQ(status.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_THAT(status.message(), HasSubstr("FLAIR"));
}

TEST_F(DicomNodeTest, AStudyTheQueueCannotTakeWaitsAndRunsOnceThereIsRoom) {
  StartServer({}, /*queue_capacity=*/1);
  server_->HoldQueue(true);
  client::SubmitOptions filler;
  filler.job_id = "filler";
  filler.model = "unet-bn-test";
  for (const char* name : {"T1", "T2", "FLAIR"}) {
    filler.inputs.push_back({name, segrel::testing::FixturePath(absl::StrCat("study/", name, ".nii.gz"))});
  }
  ASSERT_TRUE(client_->Submit(filler).ok());
  segrel::testing::WriteStudy(temp_ + "/study", /*t1_on_other_grid=*/false);
  const std::vector<std::string> files = FilesUnder(temp_ + "/study");
  Send(files);  // acknowledged: the node keeps it although the queue is full
  for (int wait = 0; wait < 100 && server_->dicom()->counts().studies_waiting < 1; ++wait) usleep(50 * 1000);
  EXPECT_EQ(server_->dicom()->counts().studies_waiting, 1u);
  server_->HoldQueue(false);
  EXPECT_EQ(WatchWhenThere(ExpectedJobId(StudyUidOf(files[0]), files.size()), "").state(), v1::DONE);
  EXPECT_EQ(server_->dicom()->counts().studies_waiting, 0u);
}

TEST_F(DicomNodeTest, AStudyReceivedButNotYetAJobBecomesOneInTheNextProcess) {
  StartServer({}, 4, /*study_quiet=*/absl::Hours(1));  // received, never complete in this process
  segrel::testing::WriteStudy(temp_ + "/study", /*t1_on_other_grid=*/false);
  const std::vector<std::string> files = FilesUnder(temp_ + "/study");
  Send(files);
  const std::string id = ExpectedJobId(StudyUidOf(files[0]), files.size());
  EXPECT_EQ(client_->Watch(id, "").status().code(), absl::StatusCode::kNotFound);
  client_.reset();
  server_.reset();  // as after a crash: the acknowledged instances are all the next process has
  StartServer();
  const v1::JobStatus status = WatchWhenThere(id, "");
  EXPECT_EQ(status.state(), v1::DONE) << status.message();
  EXPECT_THAT(segrel::testing::ReadFile(audit_path_), HasSubstr("client=dicom:SENDER"));
}

TEST_F(DicomNodeTest, ResultsForAPeerThatIsDownAreTriedAgainAlsoAfterARestartThenGivenUp) {
  result_backoff_ = {absl::Hours(1)};  // the first attempt fails; the next would be in an hour
  StartServer();                       // the peer SENDER's own port (11112) has nobody listening
  segrel::testing::WriteStudy(temp_ + "/study", /*t1_on_other_grid=*/false);
  const std::vector<std::string> files = FilesUnder(temp_ + "/study");
  Send(files);
  const std::string id = ExpectedJobId(StudyUidOf(files[0]), files.size());
  ASSERT_EQ(WatchWhenThere(id, "").state(), v1::DONE);
  const auto counted = [this](const std::string& outcome) {
    return server_testing::SeriesValue(server_->metrics().registry().Render(),
                                       absl::StrCat("segrel_dicom_results_total{outcome=\"", outcome, "\"}"));
  };
  const auto delivery = [this] { return client_->ListJobs().value().jobs(0).delivery(); };
  for (int wait = 0; wait < 100 && counted("retried") < 1; ++wait) usleep(50 * 1000);
  EXPECT_EQ(counted("retried"), 1);
  EXPECT_EQ(delivery(), "pending");

  // The next process takes the delivery up again: tried once more, then given up.
  result_backoff_ = {absl::Milliseconds(100)};
  client_.reset();
  server_.reset();
  StartServer();
  for (int wait = 0; wait < 100 && counted("failed") < 1; ++wait) usleep(50 * 1000);
  EXPECT_EQ(counted("retried"), 1);
  EXPECT_EQ(counted("failed"), 1);
  EXPECT_EQ(counted("sent"), -1) << "nothing was sent";
  EXPECT_EQ(delivery(), "failed");
  bool seg_kept = false;
  for (const auto& entry : fs::recursive_directory_iterator(temp_ + "/spool")) {
    seg_kept = seg_kept || entry.path().filename() == "segmentation.dcm";
  }
  EXPECT_TRUE(seg_kept) << "the results stay in the spool";

  // Given up is final: a third process does not try again.
  client_.reset();
  server_.reset();
  StartServer();
  usleep(300 * 1000);
  EXPECT_EQ(counted("retried"), -1);
  EXPECT_EQ(delivery(), "failed");
}

TEST(DicomReceiver, OptionsOutOfRangeAreNamed) {
  std::unique_ptr<InstanceStore> store = InstanceStore::Create(TestTempDir() + "/incoming").value();
  Metrics metrics;
  DicomReceiverOptions options;
  options.port = 0;
  EXPECT_THAT(DicomReceiver::Start(options, store.get(), nullptr, &metrics),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("port")));
  options.port = FreePort();
  options.ae_title = "WAY_TOO_LONG_AE_TITLE";
  EXPECT_THAT(DicomReceiver::Start(options, store.get(), nullptr, &metrics),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("AE title")));
}

}  // namespace
}  // namespace segrel::server
