#include "server/upload.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <filesystem>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/files.h"
#include "core/lrp/composite.h"
#include "server/job_queue.h"

namespace segrel::server {
namespace {

constexpr double kMaxDeadlineSeconds = 7 * 24 * 3600;  // a week: longer waits are mistakes, not deadlines

bool IsNameCharacter(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'; }

bool IsHexDigest(const std::string& text) {
  return text.size() == 64 &&
         std::all_of(text.begin(), text.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

bool IsValidName(const std::string& name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), IsNameCharacter);
}

// How a file is called in messages (never by a name the client's file system gave it).
std::string Label(const v1::UploadFile& file, int index) {
  switch (file.role()) {
    case v1::REFERENCE:
      return "reference";
    case v1::REGION:
      return absl::StrCat("region of class ", file.class_index());
    default:
      break;
  }
  if (file.format() == v1::NIFTI) return absl::StrCat("sequence ", file.name());
  return absl::StrCat("file ", index, " (", file.name(), ")");
}

// The metadata's files are well formed and within the limits, and make one study for the bundle: its sequences in
// NIfTI, or DICOM files (with series rules to map them), plus at most one reference and one region per class.
absl::Status CheckFiles(const v1::JobMetadata& metadata, const model::Bundle& bundle, const UploadLimits& limits) {
  if (static_cast<size_t>(metadata.files_size()) > limits.max_files) {
    return absl::ResourceExhaustedError(
        absl::StrCat(metadata.files_size(), " files; this server takes at most ", limits.max_files));
  }
  std::set<std::string> nifti_sequences;
  std::set<int> region_classes;
  int dicom_files = 0, references = 0;
  uint64_t total = 0;
  for (int f = 0; f < metadata.files_size(); ++f) {
    const v1::UploadFile& file = metadata.files(f);
    const std::string label = Label(file, f);
    if (!IsValidName(file.name())) {
      return absl::InvalidArgumentError(
          absl::StrCat("file ", f, ": name '", file.name(), "' must be 1 to 64 letters, digits, '.', '_' or '-'"));
    }
    if (!v1::FileRole_IsValid(file.role()))
      return absl::InvalidArgumentError(absl::StrCat("file ", f, ": unknown role"));
    if (file.format() != v1::NIFTI && (file.format() != v1::DICOM || file.role() != v1::SEQUENCE)) {
      return absl::InvalidArgumentError(
          absl::StrCat(label, ": format must be NIFTI", file.role() == v1::SEQUENCE ? " or DICOM" : " for masks"));
    }
    if (!IsHexDigest(file.sha256()))
      return absl::InvalidArgumentError(absl::StrCat(label, ": sha256 must be 64 hex digits"));
    total += file.size_bytes();
    if (file.size_bytes() > limits.max_study_bytes || total > limits.max_study_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the study is larger than this server's limit of ", limits.max_study_bytes, " bytes"));
    }
    if (file.role() == v1::REFERENCE && ++references > 1) {
      return absl::InvalidArgumentError("more than one reference segmentation");
    }
    if (file.role() == v1::REGION) {
      const int classes = static_cast<int>(bundle.classes.size());
      if (file.class_index() < 0 || (classes > 0 && file.class_index() >= classes)) {
        return absl::InvalidArgumentError(absl::StrCat(label, ": the class must be 0 to ", classes - 1, " (model ",
                                                       bundle.name, " has ", classes, " classes)"));
      }
      if (!region_classes.insert(file.class_index()).second) {
        return absl::InvalidArgumentError(absl::StrCat(label, " given twice"));
      }
    }
    if (file.role() != v1::SEQUENCE) continue;
    if (file.format() == v1::DICOM) {
      ++dicom_files;
    } else if (!nifti_sequences.insert(file.name()).second) {
      return absl::InvalidArgumentError(absl::StrCat(label, " given twice"));
    }
  }
  if (dicom_files > 0 && !nifti_sequences.empty()) {
    return absl::InvalidArgumentError("the study mixes NIfTI sequences and DICOM files: send one or the other");
  }
  if (dicom_files > 0) {
    if (!bundle.series_rules.has_value()) {
      return absl::FailedPreconditionError(
          absl::StrCat("model ", bundle.name, " has no series rules to read DICOM studies; send NIfTI"));
    }
    return absl::OkStatus();
  }
  return bundle.CheckSequences(std::vector<std::string>(nifti_sequences.begin(), nifti_sequences.end()));
}

}  // namespace

JobSpec SpecFor(const v1::JobMetadata& metadata, const model::Bundle& bundle, const UploadLimits& limits,
                const std::string& directory) {
  const v1::AnalysisOptions& options = metadata.options();
  JobSpec spec;
  spec.id = metadata.job_id();
  spec.model_name = bundle.name;
  spec.model_version = bundle.version;
  spec.bundle_path = bundle.path;
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
  return spec;
}

bool IsValidJobId(const std::string& id) { return IsValidName(id) && id != "." && id != ".."; }

std::string Fingerprint(const v1::JobMetadata& metadata) {
  v1::JobMetadata copy = metadata;
  copy.clear_job_id();
  for (v1::UploadFile& file : *copy.mutable_files()) file.set_sha256(absl::AsciiStrToLower(file.sha256()));
  std::string bytes;
  copy.SerializeToString(&bytes);
  return proto::Sha256Of(bytes);
}

absl::StatusOr<std::unique_ptr<Upload>> Upload::Start(const v1::JobMetadata& metadata, const ModelRepository& models,
                                                      const UploadLimits& limits, const std::string& directory) {
  // The upload owns `directory` from here on: an error removes it (after success, ~Upload does unless finished).
  struct RemovedUnlessKept {
    ~RemovedUnlessKept() {
      if (!kept) RemoveTree(path).IgnoreError();  // a leftover folder only takes space
    }
    const std::string& path;
    bool kept = false;
  } owned{directory};
  absl::StatusOr<model::Bundle> bundle = models.Find(metadata.model());
  if (!bundle.ok()) return bundle.status();
  if (absl::Status status = CheckFiles(metadata, *bundle, limits); !status.ok()) return status;
  const v1::AnalysisOptions& options = metadata.options();
  if (!options.composite().empty()) {
    if (const auto composite = lrp::Composite::Create(options.composite()); !composite.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("composite: ", composite.status().message()));
    }
  }
  // NaN and infinity compare false here too: a job must not be able to wait forever.
  if (!(metadata.deadline_seconds() >= 0 && metadata.deadline_seconds() <= kMaxDeadlineSeconds)) {
    return absl::InvalidArgumentError(
        absl::StrCat("deadline_seconds must be a number of seconds from 0 to ", kMaxDeadlineSeconds));
  }

  JobSpec spec = SpecFor(metadata, *bundle, limits, directory);
  const std::string input = spec.InputDirectory();
  std::vector<File> files;
  for (int f = 0; f < metadata.files_size(); ++f) {
    const v1::UploadFile& upload = metadata.files(f);
    File file;
    file.label = Label(upload, f);
    file.nifti = upload.format() == v1::NIFTI;
    file.role = upload.role();
    file.class_index = upload.class_index();
    file.size = upload.size_bytes();
    file.sha256 = absl::AsciiStrToLower(upload.sha256());
    if (upload.role() == v1::REFERENCE) {
      file.stem = input + "/masks/reference";  // a folder of its own: sequence names cannot collide with it
    } else if (upload.role() == v1::REGION) {
      file.stem = absl::StrCat(input, "/masks/region_", upload.class_index());
    } else if (!file.nifti) {
      spec.dicom_dir = input + "/dicom";
      file.stem = absl::StrCat(spec.dicom_dir, "/", f);  // numbered: the client's file names stay with the client
      file.path = file.stem + ".dcm";
    } else {
      file.stem = absl::StrCat(input, "/", upload.name());
      spec.sequences.push_back(upload.name());
    }
    files.push_back(std::move(file));
  }
  std::error_code error;
  for (const std::string& folder : {input + "/masks", spec.dicom_dir.empty() ? input : spec.dicom_dir}) {
    std::filesystem::create_directories(folder, error);
    if (error) return absl::InternalError(absl::StrCat("cannot create the job folder: ", error.message()));
  }
  std::unique_ptr<Upload> upload(new Upload(std::move(spec), std::move(files)));
  upload->sync_files_ = limits.sync_files;
  owned.kept = true;
  upload->SkipEmpty();
  return upload;
}

Upload::~Upload() {
  if (file_ != nullptr) std::fclose(file_);
  if (!finished_) {
    RemoveTree(spec_.directory).IgnoreError();  // a leftover folder only takes space
  }
}

void Upload::SkipEmpty() {
  while (current_ < files_.size() && files_[current_].size == 0 && file_ == nullptr) {
    // An empty file needs no chunk: create it so the job reads (and rejects) it as the pipeline would.
    File& file = files_[current_];
    if (file.path.empty()) file.path = file.stem + ".nii";
    if (std::FILE* empty = std::fopen(file.path.c_str(), "wb")) std::fclose(empty);
    ++current_;
  }
}

absl::Status Upload::OpenCurrent(const std::string& first_bytes) {
  File& file = files_[current_];
  if (file.nifti) {
    // The pipeline reads .nii.gz or .nii: gzip's magic number decides.
    const bool gzipped = first_bytes.size() >= 2 && static_cast<unsigned char>(first_bytes[0]) == 0x1f &&
                         static_cast<unsigned char>(first_bytes[1]) == 0x8b;
    file.path = file.stem + (gzipped ? ".nii.gz" : ".nii");
  }
  file_ = std::fopen(file.path.c_str(), "wb");
  if (file_ == nullptr) return SpoolError(file.label);
  hash_ = std::make_unique<proto::Sha256>();
  return absl::OkStatus();
}

absl::Status Upload::SpoolError(const std::string& label) {
  // errno is the failed call's. A full disk empties with time (jobs end, results expire): the client may retry.
  if (errno == ENOSPC || errno == EDQUOT) {
    return RetryLater(absl::ResourceExhaustedError(
        "the server's storage filled up during the upload; the upload was removed, retry later"));
  }
  return absl::InternalError(absl::StrCat(label, ": the server cannot store the upload"));
}

absl::Status Upload::CloseCurrent() {
  File& file = files_[current_];
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!closed) return SpoolError(file.label);
  if (hash_->HexDigest() != file.sha256) {
    return absl::DataLossError(absl::StrCat(file.label, ": SHA-256 does not match the bytes received"));
  }
  hash_.reset();
  ++current_;
  SkipEmpty();
  return absl::OkStatus();
}

absl::Status Upload::Append(const v1::Chunk& chunk) {
  if (current_ >= files_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk for file ", chunk.file_index(), " after every file was complete"));
  }
  File& file = files_[current_];
  if (chunk.file_index() != current_ || chunk.offset() != file.received) {
    return absl::InvalidArgumentError(absl::StrCat("chunk out of order: file ", chunk.file_index(), " offset ",
                                                   chunk.offset(), ", expected file ", current_, " (", file.label,
                                                   ") offset ", file.received));
  }
  const std::string& data = chunk.data();
  if (data.size() > 4u << 20) return absl::InvalidArgumentError("chunk larger than 4 MiB");
  if (data.empty()) return absl::InvalidArgumentError("empty chunk");
  if (file.received + data.size() > file.size) {
    return absl::InvalidArgumentError(absl::StrCat(file.label, ": more bytes than the ", file.size, " declared"));
  }
  if (proto::Crc32(data) != chunk.crc32()) {
    return absl::DataLossError(
        absl::StrCat(file.label, ": chunk at offset ", chunk.offset(), " does not match its CRC-32"));
  }
  if (file_ == nullptr) {
    if (absl::Status status = OpenCurrent(data); !status.ok()) return status;
  }
  if (std::fwrite(data.data(), 1, data.size(), file_) != data.size()) return SpoolError(file.label);
  hash_->Update(data);
  file.received += data.size();
  spec_.bytes += data.size();
  if (file.received == file.size) return CloseCurrent();
  return absl::OkStatus();
}

absl::StatusOr<JobSpec> Upload::Finish() {
  if (current_ < files_.size()) {
    const File& file = files_[current_];
    return absl::InvalidArgumentError(
        absl::StrCat("upload incomplete: ", file.label, " has ", file.received, " of ", file.size, " bytes"));
  }
  for (const File& file : files_) {
    if (file.role == v1::REFERENCE) {
      spec_.reference_file = file.path;
    } else if (file.role == v1::REGION) {
      spec_.region_files.emplace_back(file.class_index, file.path);
    } else if (file.nifti) {
      spec_.input_files.push_back(file.path);
    }
  }
  if (sync_files_) {
    // One syncfs makes every file of the upload and the folders' entries durable (fsync per file would miss the
    // entries), before the job manager records the job as accepted.
    const int folder = open(spec_.directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const bool synced = folder >= 0 && syncfs(folder) == 0;
    if (folder >= 0) close(folder);
    if (!synced) return absl::InternalError("cannot sync the upload to the disk");
  }
  spec_.received = absl::Now();
  finished_ = true;
  return spec_;
}

}  // namespace segrel::server
