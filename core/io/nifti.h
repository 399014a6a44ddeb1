// Reading and writing NIfTI-1 and NIfTI-2 volumes (.nii, .nii.gz) with nifticlib.
//
// Reading follows nibabel: voxel values scaled by scl_slope/scl_inter when the slope is non-zero; the affine from
// the sform when its code is positive, else from the qform when its code is positive, else nibabel's fall-back
// (pixdim scaling, x flipped, centred). Bad files give a status that names the file; no header makes segrel
// allocate more than ReadOptions::max_bytes.
#ifndef SEGREL_CORE_IO_NIFTI_H_
#define SEGREL_CORE_IO_NIFTI_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/volume/volume.h"

namespace segrel::io {

struct NiftiReadOptions {
  // Largest decoded image (voxels x 4 bytes, as float32) a header may ask for. Default: 8 GiB.
  int64_t max_bytes = int64_t{8} << 30;
};

// Reads a 3-D or 4-D NIfTI file into a float32 volume.
// Errors: NotFound (no such file); InvalidArgument (not NIfTI, truncated, unsupported data type, dimensions that
// are not positive, NaN or infinite voxels, zero or negative spacing); ResourceExhausted (larger than max_bytes).
absl::StatusOr<volume::Volume> ReadNifti(const std::string& path, const NiftiReadOptions& options = {});

// What WriteNifti stores voxels as. Integer types do not clamp: the caller checks that the values fit.
enum class NiftiDataType { kUInt8, kInt16, kUInt16, kInt32, kFloat32 };

// Writes `data` ([i, j, k] or [i, j, k, t], any numeric type, converted to `type`) as a NIfTI-1 file on `grid`'s
// grid, keeping its affine, codes and spacing; `.gz` paths are compressed. Errors: InvalidArgument when the spatial
// sizes differ from grid's; Internal when the file cannot be written (the path is named).
absl::Status WriteNifti(const std::string& path, const at::Tensor& data, NiftiDataType type,
                        const volume::Volume& grid);

}  // namespace segrel::io

#endif  // SEGREL_CORE_IO_NIFTI_H_
