// Volume: a 3-D (or 4-D) image on a grid, and where its voxels lie in the world.
//
// Voxel values are a float32 tensor indexed [i, j, k] (and [i, j, k, t] for 4-D images) in the NIfTI voxel order
// that nibabel and MONAI use; `affine` maps voxel indices (i, j, k, 1) to world coordinates (x, y, z, 1) in RAS+
// millimetres, as nibabel's Nifti1Image.affine. NIfTI header fields that segrel writes back unchanged travel in
// `nifti` so that masks and relevance maps keep their input's codes.
#ifndef SEGREL_CORE_VOLUME_VOLUME_H_
#define SEGREL_CORE_VOLUME_VOLUME_H_

#include <ATen/ATen.h>

#include <array>
#include <optional>
#include <string>

namespace segrel::volume {

using Affine = std::array<std::array<double, 4>, 4>;

// Returns the 4x4 identity.
Affine IdentityAffine();

// The NIfTI geometry of a file: both transforms with their codes, as stored.
struct NiftiGeometry {
  int sform_code = 0;
  Affine sform = IdentityAffine();
  int qform_code = 0;
  double quatern_b = 0, quatern_c = 0, quatern_d = 0;
  double qoffset_x = 0, qoffset_y = 0, qoffset_z = 0;
  double qfac = 1;
  std::array<double, 3> spacing = {1, 1, 1};  // pixdim[1..3]
  int xyz_units = 0;
};

struct Volume {
  at::Tensor data;  // float32, [i, j, k] or [i, j, k, t]
  Affine affine = IdentityAffine();
  std::string source;  // where it was read from (a path), for messages
  std::optional<NiftiGeometry> nifti;

  // Spatial sizes (i, j, k).
  std::array<int64_t, 3> SpatialSizes() const;
};

// Whether two volumes share a grid: equal spatial sizes and affines equal within `tolerance_mm` (each entry).
bool SameGrid(const Volume& a, const Volume& b, double tolerance_mm = 1e-3);

// A one-line description of the grid ("182x218x182, 1x1x1 mm"), for messages.
std::string GridSummary(const Volume& volume);

}  // namespace segrel::volume

#endif  // SEGREL_CORE_VOLUME_VOLUME_H_
