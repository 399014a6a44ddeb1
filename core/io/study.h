// A study: the named sequences of one examination, read from NIfTI files onto one grid.
#ifndef SEGREL_CORE_IO_STUDY_H_
#define SEGREL_CORE_IO_STUDY_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/io/nifti.h"
#include "core/volume/volume.h"

namespace segrel::io {

struct SequenceFile {
  std::string name;  // e.g. "FLAIR"
  std::string path;
};

struct Study {
  std::vector<std::string> names;       // in channel order
  std::vector<volume::Volume> volumes;  // 3-D, all on the grid of the first

  // The network input [1, C, i, j, k] (float32), channels in the order given.
  at::Tensor Stack() const;
};

// Reads one 3-D NIfTI file per sequence. Errors: those of ReadNifti; InvalidArgument for duplicate or empty names,
// a 4-D file, or volumes whose shapes or grids differ (naming both files).
absl::StatusOr<Study> ReadNiftiStudy(const std::vector<SequenceFile>& files, const NiftiReadOptions& options = {});

// Checks that `volume` lies on `reference`'s grid. Errors: InvalidArgument naming both sources.
absl::Status CheckSameGrid(const volume::Volume& volume, const volume::Volume& reference);

}  // namespace segrel::io

#endif  // SEGREL_CORE_IO_STUDY_H_
