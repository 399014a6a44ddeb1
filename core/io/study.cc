#include "core/io/study.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"

namespace segrel::io {

at::Tensor Study::Stack() const {
  std::vector<at::Tensor> channels;
  for (const volume::Volume& v : volumes) channels.push_back(v.data);
  return at::stack(channels).unsqueeze(0);
}

absl::Status CheckSameGrid(const volume::Volume& volume, const volume::Volume& reference) {
  if (volume.SpatialSizes() != reference.SpatialSizes()) {
    return absl::InvalidArgumentError(absl::StrCat(volume.source, " has shape ", volume::GridSummary(volume), " but ",
                                                   reference.source, " has ", volume::GridSummary(reference),
                                                   ": the shapes differ"));
  }
  if (!volume::SameGrid(volume, reference)) {
    return absl::InvalidArgumentError(absl::StrCat(volume.source, " lies on another grid than ", reference.source,
                                                   " (same shape, different voxel-to-world transform)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Study> ReadNiftiStudy(const std::vector<SequenceFile>& files, const NiftiReadOptions& options) {
  if (files.empty()) return absl::InvalidArgumentError("no input sequence given");
  Study study;
  std::set<std::string> seen;
  for (const SequenceFile& file : files) {
    if (file.name.empty()) return absl::InvalidArgumentError(absl::StrCat(file.path, ": the sequence has no name"));
    if (!seen.insert(file.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", file.name, " is given twice"));
    }
    SEGREL_ASSIGN_OR_RETURN(volume::Volume volume, ReadNifti(file.path, options));
    if (volume.data.dim() != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.path, ": a ", volume.data.dim(), "-D image; each sequence must be one 3-D volume"));
    }
    if (!study.volumes.empty()) SEGREL_RETURN_IF_ERROR(CheckSameGrid(volume, study.volumes.front()));
    study.names.push_back(file.name);
    study.volumes.push_back(std::move(volume));
  }
  return study;
}

}  // namespace segrel::io
