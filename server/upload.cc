#include "server/upload.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/lrp/composite.h"

namespace segrel::server {
namespace {

bool IsNameCharacter(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

bool IsHexDigest(const std::string& text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c));
         });
}

// The metadata's sequences are exactly the bundle's, once each, well formed.
absl::Status CheckSequences(const v1::JobMetadata& metadata, const model::Bundle& bundle,
                            const UploadLimits& limits) {
  if (static_cast<size_t>(metadata.sequences_size()) > limits.max_sequences) {
    return absl::ResourceExhaustedError(absl::StrCat(metadata.sequences_size(), " sequences; this server takes at most ",
                                                     limits.max_sequences));
  }
  std::set<std::string> given;
  uint64_t total = 0;
  for (const v1::SequenceUpload& sequence : metadata.sequences()) {
    const std::string& name = sequence.name();
    if (name.empty() || name.size() > 64 || !std::all_of(name.begin(), name.end(), IsNameCharacter)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence name '", name, "': 1 to 64 letters, digits, '.', '_' or '-'"));
    }
    if (!given.insert(name).second) return absl::InvalidArgumentError(absl::StrCat("sequence ", name, " given twice"));
    if (sequence.format() == v1::DICOM) {
      return absl::UnimplementedError(absl::StrCat("sequence ", name, ": DICOM uploads are not served yet; send NIfTI"));
    }
    if (sequence.format() != v1::NIFTI) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", name, ": format must be NIFTI"));
    }
    if (!IsHexDigest(sequence.sha256())) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", name, ": sha256 must be 64 hex digits"));
    }
    total += sequence.size_bytes();
    if (sequence.size_bytes() > limits.max_study_bytes || total > limits.max_study_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the study is larger than this server's limit of ", limits.max_study_bytes, " bytes"));
    }
  }
  std::vector<std::string> missing, unexpected;
  const std::vector<std::string> expected = bundle.SequenceNames();
  for (const std::string& name : expected) {
    if (!given.count(name)) missing.push_back(name);
  }
  for (const std::string& name : given) {
    if (std::find(expected.begin(), expected.end(), name) == expected.end()) unexpected.push_back(name);
  }
  if (missing.empty() && unexpected.empty()) return absl::OkStatus();
  std::string problem;
  if (!missing.empty()) problem = absl::StrCat("missing sequence ", absl::StrJoin(missing, ", "));
  if (!unexpected.empty()) {
    absl::StrAppend(&problem, problem.empty() ? "" : "; ", "unexpected sequence ", absl::StrJoin(unexpected, ", "));
  }
  return absl::InvalidArgumentError(absl::StrCat(problem, "; model ", bundle.name, " expects ",
                                                 absl::StrJoin(expected, ", ")));
}

}  // namespace

bool IsValidJobId(const std::string& id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), IsNameCharacter) && id != "." &&
         id != "..";
}

std::string Fingerprint(const v1::JobMetadata& metadata) {
  v1::JobMetadata copy = metadata;
  copy.clear_job_id();
  for (v1::SequenceUpload& sequence : *copy.mutable_sequences()) {
    sequence.set_sha256(absl::AsciiStrToLower(sequence.sha256()));
  }
  std::string bytes;
  copy.SerializeToString(&bytes);
  proto::Sha256 hash;
  hash.Update(bytes);
  return hash.HexDigest();
}

absl::StatusOr<std::unique_ptr<Upload>> Upload::Start(const v1::JobMetadata& metadata, const ModelRepository& models,
                                                      const UploadLimits& limits, const std::string& directory) {
  if (!IsValidJobId(metadata.job_id())) {
    return absl::InvalidArgumentError("job_id: 1 to 64 letters, digits, '.', '_' or '-'");
  }
  absl::StatusOr<model::Bundle> bundle = models.Find(metadata.model());
  if (!bundle.ok()) return bundle.status();
  if (absl::Status status = CheckSequences(metadata, *bundle, limits); !status.ok()) return status;
  const v1::AnalysisOptions& options = metadata.options();
  if (!options.composite().empty()) {
    if (const auto composite = lrp::Composite::Create(options.composite()); !composite.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("composite: ", composite.status().message()));
    }
  }
  if (metadata.deadline_seconds() < 0) return absl::InvalidArgumentError("deadline_seconds must not be negative");

  JobSpec spec;
  spec.id = metadata.job_id();
  spec.model_name = bundle->name;
  spec.model_version = bundle->version;
  spec.bundle_path = bundle->path;
  spec.directory = directory;
  spec.composite = options.composite();
  spec.seed = options.seed();
  spec.maps = options.maps();
  spec.lesions = options.lesions();
  spec.ablation = options.ablation();
  spec.pictures = !options.no_pictures();
  spec.priority = metadata.priority();
  spec.fingerprint = Fingerprint(metadata);
  const absl::Duration wait =
      metadata.deadline_seconds() > 0 ? absl::Seconds(metadata.deadline_seconds()) : limits.default_deadline;
  spec.deadline = absl::Now() + wait;
  std::vector<Sequence> sequences;
  for (const v1::SequenceUpload& upload : metadata.sequences()) {
    spec.sequences.push_back(upload.name());
    sequences.push_back({upload.name(), upload.size_bytes(), absl::AsciiStrToLower(upload.sha256()), 0, ""});
  }
  std::error_code error;
  std::filesystem::create_directories(directory + "/input", error);
  if (error) return absl::InternalError(absl::StrCat("cannot create the job folder: ", error.message()));
  std::unique_ptr<Upload> upload(new Upload(std::move(spec), std::move(sequences)));
  upload->SkipEmpty();
  return upload;
}

Upload::~Upload() {
  if (file_ != nullptr) std::fclose(file_);
  if (!finished_) {
    std::error_code error;
    std::filesystem::remove_all(spec_.directory, error);
  }
}

void Upload::SkipEmpty() {
  while (current_ < sequences_.size() && sequences_[current_].size == 0 && file_ == nullptr) {
    // An empty file needs no chunk: create it so the job reads (and rejects) it as the pipeline would.
    Sequence& sequence = sequences_[current_];
    sequence.path = absl::StrCat(spec_.directory, "/input/", sequence.name, ".nii");
    if (std::FILE* empty = std::fopen(sequence.path.c_str(), "wb")) std::fclose(empty);
    ++current_;
  }
}

absl::Status Upload::OpenCurrent(const std::string& first_bytes) {
  Sequence& sequence = sequences_[current_];
  // The pipeline reads NAME.nii.gz or NAME.nii: gzip's magic number decides.
  const bool gzipped = first_bytes.size() >= 2 && static_cast<unsigned char>(first_bytes[0]) == 0x1f &&
                       static_cast<unsigned char>(first_bytes[1]) == 0x8b;
  sequence.path = absl::StrCat(spec_.directory, "/input/", sequence.name, gzipped ? ".nii.gz" : ".nii");
  file_ = std::fopen(sequence.path.c_str(), "wb");
  if (file_ == nullptr) return absl::InternalError(absl::StrCat("sequence ", sequence.name, ": cannot spool"));
  hash_ = std::make_unique<proto::Sha256>();
  return absl::OkStatus();
}

absl::Status Upload::CloseCurrent() {
  Sequence& sequence = sequences_[current_];
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!closed) return absl::InternalError(absl::StrCat("sequence ", sequence.name, ": cannot spool"));
  if (hash_->HexDigest() != sequence.sha256) {
    return absl::DataLossError(absl::StrCat("sequence ", sequence.name, ": SHA-256 does not match the bytes received"));
  }
  hash_.reset();
  ++current_;
  SkipEmpty();
  return absl::OkStatus();
}

absl::Status Upload::Append(const v1::Chunk& chunk) {
  if (current_ >= sequences_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk for sequence ", chunk.sequence_index(), " after every sequence was complete"));
  }
  Sequence& sequence = sequences_[current_];
  if (chunk.sequence_index() != current_ || chunk.offset() != sequence.received) {
    return absl::InvalidArgumentError(absl::StrCat("chunk out of order: sequence ", chunk.sequence_index(),
                                                   " offset ", chunk.offset(), ", expected sequence ", current_, " (",
                                                   sequence.name, ") offset ", sequence.received));
  }
  const std::string& data = chunk.data();
  if (data.size() > 4u << 20) return absl::InvalidArgumentError("chunk larger than 4 MiB");
  if (data.empty()) return absl::InvalidArgumentError("empty chunk");
  if (sequence.received + data.size() > sequence.size) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence ", sequence.name, ": more bytes than the ", sequence.size, " declared"));
  }
  if (proto::Crc32(data) != chunk.crc32()) {
    return absl::DataLossError(absl::StrCat("sequence ", sequence.name, ": chunk at offset ", chunk.offset(),
                                            " does not match its CRC-32"));
  }
  if (file_ == nullptr) {
    if (absl::Status status = OpenCurrent(data); !status.ok()) return status;
  }
  if (std::fwrite(data.data(), 1, data.size(), file_) != data.size()) {
    return absl::InternalError(absl::StrCat("sequence ", sequence.name, ": cannot spool"));
  }
  hash_->Update(data);
  sequence.received += data.size();
  spec_.bytes += data.size();
  if (sequence.received == sequence.size) return CloseCurrent();
  return absl::OkStatus();
}

absl::StatusOr<JobSpec> Upload::Finish() {
  if (current_ < sequences_.size()) {
    const Sequence& sequence = sequences_[current_];
    return absl::InvalidArgumentError(absl::StrCat("upload incomplete: sequence ", sequence.name, " has ",
                                                   sequence.received, " of ", sequence.size, " bytes"));
  }
  for (const Sequence& sequence : sequences_) spec_.input_files.push_back(sequence.path);
  spec_.received = absl::Now();
  finished_ = true;
  return spec_;
}

}  // namespace segrel::server
