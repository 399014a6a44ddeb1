#include "fuzz/upload_entry.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/stubs/logging.h"
#include "proto/checksums.h"
#include "segrel/v1/segrel.pb.h"
#include "server/job.h"
#include "server/model_repository.h"
#include "server/upload.h"

namespace segrel::fuzz {
namespace {

namespace fs = std::filesystem;

// Small enough that the fuzzer's inputs cross them; no sync, which would only make each input slower.
server::UploadLimits FuzzLimits() {
  server::UploadLimits limits;
  limits.max_study_bytes = uint64_t{1} << 20;
  limits.max_files = 16;
  limits.sync_files = false;
  return limits;
}

constexpr char kModel[] = "unet-bn-test";  // tests/fixtures/data/bundle/segrel.json
constexpr char kJobId[] = "fuzz-job";
constexpr const char* kSequences[] = {"T1", "T2", "FLAIR"};

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "segrel upload fuzz entry: %s\n", what.c_str());
  std::abort();
}

void Check(bool condition, const std::string& what) {
  if (!condition) Fail(what);
}

// This process's own folder under the system's temporary folder (removed at exit); each input's job folder is
// made in it, as JobManager::NewJobDirectory makes one in the spool.
const fs::path& Root() {
  static const fs::path* const root = [] {
    std::string pattern = (fs::temp_directory_path() / "segrel-fuzz-upload-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) Fail("cannot create a temporary folder");
    return new fs::path(pattern);
  }();
  static const int registered = std::atexit([] {
    std::error_code error;
    fs::remove_all(*root, error);
  });
  (void)registered;
  return *root;
}

// Loaded once: reading the bundle is not what is fuzzed.
const server::ModelRepository& Models() {
  static const server::ModelRepository* const models = [] {
    absl::StatusOr<std::unique_ptr<server::ModelRepository>> created =
        server::ModelRepository::Create(SEGREL_FUZZ_MODEL_REPOSITORY);
    if (!created.ok()) Fail(absl::StrCat("cannot load the test models: ", created.status().ToString()));
    if (!(*created)->Find(kModel).ok()) Fail(absl::StrCat(SEGREL_FUZZ_MODEL_REPOSITORY, " holds no ", kModel));
    return created->release();
  }();
  return *models;
}

bool Exists(const fs::path& path) {
  std::error_code error;
  return fs::exists(path, error);
}

// The codes Upload's header names; anything else would reach the client as a code its documentation does not list.
void CheckError(const absl::Status& status, const std::string& where) {
  Check(!status.ok(), where + ": an error expected");
  Check(!status.message().empty(), where + ": an error without a message: " + status.ToString());
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kInternal:
      return;
    default:
      Fail(where + ": an error code Upload does not promise: " + status.ToString());
  }
}

void CheckRemoved(const fs::path& folder, const std::string& after) {
  Check(!Exists(folder), "the job folder is left behind after " + after);
}

// What a successful Finish promises: the spec names files that are there, within the limits, holding the bytes
// the spec counts (every byte received went to one of them).
void CheckSpec(const server::JobSpec& spec, const fs::path& folder, uint64_t declared_bytes) {
  Check(spec.directory == folder.string(), "Finish: the spec's folder is not the job's");
  Check(spec.bytes <= FuzzLimits().max_study_bytes, absl::StrCat("Finish: ", spec.bytes, " bytes over the limit"));
  Check(spec.bytes == declared_bytes,
        absl::StrCat("Finish: ", spec.bytes, " bytes received, ", declared_bytes, " declared"));
  Check(spec.dicom_dir.empty() ? spec.input_files.size() == spec.sequences.size() : spec.input_files.empty(),
        "Finish: input files do not match the sequences");
  std::vector<std::string> named = spec.input_files;
  if (!spec.reference_file.empty()) named.push_back(spec.reference_file);
  for (const auto& [class_index, file] : spec.region_files) named.push_back(file);
  for (const std::string& file : named) {
    std::error_code error;
    Check(fs::is_regular_file(file, error), "Finish: the spec names " + file + ", which does not exist");
    const fs::path relative = fs::path(file).lexically_relative(folder);
    Check(!relative.empty() && *relative.begin() != "..",
          "Finish: the spec names " + file + ", outside the job's folder");
  }
  if (!spec.dicom_dir.empty()) {
    std::error_code error;
    Check(fs::is_directory(spec.dicom_dir, error), "Finish: the spec's DICOM folder does not exist");
  }
  uint64_t on_disk = 0;
  for (const auto& entry : fs::recursive_directory_iterator(folder)) {
    if (entry.is_regular_file()) on_disk += entry.file_size();
  }
  Check(on_disk == spec.bytes, absl::StrCat("Finish: ", on_disk, " bytes on disk, the spec counts ", spec.bytes));
}

uint64_t DeclaredBytes(const v1::JobMetadata& metadata) {
  uint64_t total = 0;
  for (const v1::UploadFile& file : metadata.files()) total += file.size_bytes();
  return total;
}

v1::SubmitRequest ChunkMessage(uint32_t file_index, uint64_t offset, absl::string_view data) {
  v1::SubmitRequest request;
  v1::Chunk& chunk = *request.mutable_chunk();
  chunk.set_file_index(file_index);
  chunk.set_offset(offset);
  chunk.set_data(std::string(data));
  chunk.set_crc32(proto::Crc32(data));
  return request;
}

// Raw pieces: SubmitRequests, or chunks of the bytes that do not parse as one.
void AppendRaw(const std::vector<absl::string_view>& pieces, size_t first, std::vector<v1::SubmitRequest>& messages) {
  // Mutated strings are often not UTF-8: protobuf refuses them, and its log line for each would slow the fuzzer.
  const google::protobuf::LogSilencer quiet;
  uint64_t raw_offset = 0;
  for (size_t p = first; p < pieces.size(); ++p) {
    v1::SubmitRequest request;
    if (request.ParseFromArray(pieces[p].data(), static_cast<int>(pieces[p].size()))) {
      messages.push_back(std::move(request));
      continue;
    }
    messages.push_back(ChunkMessage(0, raw_offset, pieces[p]));
    raw_offset += pieces[p].size();
  }
}

// The synthesised mode (upload_entry.h): valid metadata for the test model, and chunks that follow the plan.
void Synthesise(const std::vector<absl::string_view>& pieces, std::vector<v1::SubmitRequest>& messages) {
  const auto piece = [&](size_t p) { return p < pieces.size() ? pieces[p] : absl::string_view(); };
  const absl::string_view plan = piece(4);
  const uint8_t tweaks = plan.empty() ? 0 : static_cast<uint8_t>(plan[0]);

  struct Source {
    v1::UploadFile file;
    absl::string_view bytes;
  };
  std::vector<Source> sources;
  for (int s = 0; s < 3; ++s) {
    Source source{{}, piece(1 + s)};
    source.file.set_name(kSequences[s]);
    source.file.set_format((tweaks & kTweakDicom) ? v1::DICOM : v1::NIFTI);
    source.file.set_role(v1::SEQUENCE);
    sources.push_back(std::move(source));
  }
  if (tweaks & kTweakReference) {
    Source reference{{}, piece(1)};
    reference.file.set_name("reference");
    reference.file.set_format(v1::NIFTI);
    reference.file.set_role(v1::REFERENCE);
    sources.push_back(std::move(reference));
  }
  if (tweaks & kTweakRegion) {
    Source region{{}, piece(2)};
    region.file.set_name("region");
    region.file.set_format(v1::NIFTI);
    region.file.set_role(v1::REGION);
    region.file.set_class_index(1);
    sources.push_back(std::move(region));
  }
  if (tweaks & kTweakReversed) std::reverse(sources.begin(), sources.end());
  for (Source& source : sources) {
    source.file.set_size_bytes(source.bytes.size());
    source.file.set_sha256(proto::Sha256Of(source.bytes));
    if (source.file.name() == "T1" && (tweaks & kTweakHugeSize)) source.file.set_size_bytes(uint64_t{1} << 63);
    if (source.file.name() == "T2" && (tweaks & kTweakLongerSize)) source.file.set_size_bytes(source.bytes.size() + 1);
    if (source.file.name() == "FLAIR" && (tweaks & kTweakUpperCaseSha)) {
      source.file.set_sha256(absl::AsciiStrToUpper(source.file.sha256()));
    }
  }

  v1::SubmitRequest first;
  v1::JobMetadata& metadata = *first.mutable_metadata();
  metadata.set_job_id(kJobId);
  metadata.set_model(kModel);
  for (const Source& source : sources) *metadata.add_files() = source.file;
  if (tweaks & kTweakOptions) {
    metadata.mutable_options()->set_composite("epsilon-plus");
    metadata.set_priority(3);
    metadata.set_deadline_seconds(60);
  }
  messages.push_back(first);

  // The cursor a correct client keeps: the file being sent and the offset of its next byte.
  size_t file = 0;
  uint64_t offset = 0;
  const auto skip_done = [&] {
    while (file < sources.size() && offset >= sources[file].bytes.size()) {
      ++file;
      offset = 0;
    }
  };
  skip_done();
  for (size_t step = 1; file < sources.size(); ++step) {
    const absl::string_view bytes = sources[file].bytes;
    const uint8_t instruction = step < plan.size() ? static_cast<uint8_t>(plan[step]) : 0;
    const int length_code = instruction & 0x0f;
    const int op = instruction >> 4;
    const uint64_t rest = bytes.size() - offset;
    uint64_t length = step < plan.size() ? rest : std::min<uint64_t>(rest, kUploadChunkBytes);
    if (step < plan.size() && length_code > 0) length = std::min<uint64_t>(rest, uint64_t{1} << (length_code - 1));
    uint32_t index = static_cast<uint32_t>(file);
    uint64_t at = offset;
    absl::string_view sent = bytes.substr(offset, length);
    switch (op) {
      case kGap:
        at = offset + 1;
        sent = bytes.substr(at, length);
        break;
      case kOverlap:
        at = offset - 1;  // at offset 0: 2^64 - 1
        if (offset > 0) sent = bytes.substr(at, length);
        break;
      case kOtherFile:
        ++index;
        break;
      case kEmptyChunk:
        sent = absl::string_view();
        break;
      case kHugeOffset:
        at = uint64_t{1} << 63;
        break;
      default:
        break;
    }
    v1::SubmitRequest request = op == kMetadataAgain ? first : ChunkMessage(index, at, sent);
    if (op == kBadCrc) request.mutable_chunk()->set_crc32(request.chunk().crc32() ^ 1);
    if (op == kDuplicate) messages.push_back(request);
    messages.push_back(std::move(request));
    offset += length;
    skip_done();
  }
  AppendRaw(pieces, 5, messages);
}

// The messages of one Submit stream, run as SubmitReactor runs them (server/service.cc: Handle, Begin, Complete,
// Reject), without the job manager: the folder is made here, and a successful Finish is where the job would be
// accepted.
void RunStream(const std::vector<v1::SubmitRequest>& messages, const fs::path& folder) {
  if (messages.empty() || !messages[0].has_metadata()) return;  // rejected before an upload starts
  const v1::JobMetadata& metadata = messages[0].metadata();
  if (!server::IsValidJobId(metadata.job_id())) return;  // Start REQUIRES a valid id: the service checks first
  Check(mkdir(folder.c_str(), 0700) == 0, "cannot create the job folder " + folder.string());

  absl::StatusOr<std::unique_ptr<server::Upload>> started =
      server::Upload::Start(metadata, Models(), FuzzLimits(), folder.string());
  if (!started.ok()) {
    CheckError(started.status(), "Start");
    CheckRemoved(folder, "Start failed");
    return;
  }
  std::unique_ptr<server::Upload> upload = *std::move(started);
  Check(Exists(folder), "Start succeeded without the job folder");
  for (size_t m = 1; m < messages.size(); ++m) {
    if (!messages[m].has_chunk()) {  // the service rejects the stream and drops the upload
      upload.reset();
      CheckRemoved(folder, "an upload was dropped");
      return;
    }
    const absl::Status appended = upload->Append(messages[m].chunk());
    if (!appended.ok()) {
      CheckError(appended, "Append");
      upload.reset();
      CheckRemoved(folder, "Append failed");
      return;
    }
  }
  absl::StatusOr<server::JobSpec> spec = upload->Finish();
  if (!spec.ok()) {
    CheckError(spec.status(), "Finish");
    upload.reset();
    CheckRemoved(folder, "Finish failed");
    return;
  }
  CheckSpec(*spec, folder, DeclaredBytes(metadata));
  upload.reset();
  Check(Exists(folder), "the job folder was removed after a successful Finish (the job owns it)");
  Check(spec->id == metadata.job_id(), "Finish: the spec's id is not the metadata's");
}

}  // namespace

int FuzzUpload(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::vector<absl::string_view> pieces =
      absl::StrSplit(bytes, absl::MaxSplits(kUploadMessageSeparator, kMaxUploadPieces - 1));
  std::vector<v1::SubmitRequest> messages;
  if (pieces[0].empty()) {
    Synthesise(pieces, messages);
  } else {
    AppendRaw(pieces, 0, messages);
  }
  const fs::path folder = Root() / "job";
  std::error_code error;
  fs::remove_all(folder, error);  // left by the last input's successful Finish
  RunStream(messages, folder);
  fs::remove_all(folder, error);
  return 0;
}

}  // namespace segrel::fuzz
