// Receives one Submit stream's files: checks the metadata against the model and the server's limits, writes each
// file's chunks straight to a file in the job's folder (the study is never held whole in memory), verifies every
// chunk's CRC-32 and every file's SHA-256, and finally describes the job to run.
#ifndef SEGREL_SERVER_UPLOAD_H_
#define SEGREL_SERVER_UPLOAD_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/checksums.h"
#include "segrel/v1/segrel.pb.h"
#include "server/job.h"
#include "server/model_repository.h"

namespace segrel::server {

struct UploadLimits {
  uint64_t max_study_bytes = uint64_t{4} << 30;      // all files together
  size_t max_files = 10000;                          // a DICOM study has one file per slice
  absl::Duration default_deadline = absl::Hours(1);  // queued jobs fail after this (JobMetadata.deadline_seconds)
  bool sync_files = true;                            // Finish syncs the files to the disk (durable jobs)
};

// The job that valid `metadata` for `bundle` describes, in job folder `directory`, before its files are received
// (no input files yet, no received time). The DICOM node makes its jobs so too.
JobSpec SpecFor(const v1::JobMetadata& metadata, const model::Bundle& bundle, const UploadLimits& limits,
                const std::string& directory);

// Whether `id` is a valid job id: 1 to 64 characters from [A-Za-z0-9._-].
bool IsValidJobId(const std::string& id);

// A digest of the submission without its job id (model, files with sizes and SHA-256, options, priority): two
// submissions with the same id must have the same fingerprint to count as one.
std::string Fingerprint(const v1::JobMetadata& metadata);

// One upload in progress. Not thread-safe (a Submit stream delivers its messages one at a time). Removes its folder
// when destroyed, unless Finish succeeded (the job owns the folder then).
class Upload {
 public:
  // Checks `metadata` and creates `directory`/input (`directory`: the job's new folder, JobManager::NewJobDirectory;
  // REQUIRES: the job id is valid, IsValidJobId). Errors: InvalidArgument for a sequence missing, unexpected or
  // given twice, NIfTI and DICOM mixed, a malformed name, format, role, class, size or checksum field, an unknown
  // composite; NotFound for an unknown model; FailedPrecondition for a DICOM study and a model without series
  // rules; ResourceExhausted beyond `limits`; Internal when the folder cannot be made. On error `directory` is
  // removed.
  static absl::StatusOr<std::unique_ptr<Upload>> Start(const v1::JobMetadata& metadata, const ModelRepository& models,
                                                       const UploadLimits& limits, const std::string& directory);
  ~Upload();
  Upload(const Upload&) = delete;
  Upload& operator=(const Upload&) = delete;

  // Appends one chunk. Errors: InvalidArgument for a chunk out of order (other file, other offset), too large, or
  // past the declared size; DataLoss when its CRC-32 or, on a file's last chunk, the file's SHA-256 does not match;
  // ResourceExhausted (RetryLater) when the disk is full; Internal when the file cannot be written otherwise. After
  // an error the upload is unusable (and removes its folder when destroyed).
  absl::Status Append(const v1::Chunk& chunk);

  // Ends the upload and describes the job. Errors: InvalidArgument when a file has fewer bytes than declared.
  absl::StatusOr<JobSpec> Finish();

 private:
  struct File {
    std::string label;  // for messages: "sequence T1", "file 17 (dicom-17)", "reference"
    std::string stem;   // the spool path without extension (NIfTI: .nii or .nii.gz is added by the first bytes)
    bool nifti = true;
    v1::FileRole role = v1::SEQUENCE;
    int64_t class_index = 0;  // regions
    uint64_t size = 0;
    std::string sha256;  // expected, lower case
    uint64_t received = 0;
    std::string path;  // where it was spooled
  };
  Upload(JobSpec spec, std::vector<File> files) : spec_(std::move(spec)), files_(std::move(files)) {}
  absl::Status OpenCurrent(const std::string& first_bytes);
  absl::Status CloseCurrent();
  static absl::Status SpoolError(const std::string& label);
  void SkipEmpty();

  JobSpec spec_;
  std::vector<File> files_;
  size_t current_ = 0;  // the file being received
  std::FILE* file_ = nullptr;
  std::unique_ptr<proto::Sha256> hash_;  // of the file being received
  bool finished_ = false;
  bool sync_files_ = true;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_UPLOAD_H_
