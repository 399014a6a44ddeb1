// How the images of one DICOM series make a volume: their order along the slice normal (and in time), the
// checks that this order is sound, and the voxel-to-world affine. Pure geometry on header fields; no DCMTK, no
// LibTorch (the fuzz targets use it as it is).
//
// Voxel order, chosen to agree with dcm2niix's NIfTI output (`dcm2niix -x i`; its default also rotates 3-D
// acquisitions to the closest canonical orientation, which `-x i` turns off):
//   i = DICOM column c (0 = the first pixel of a row),
//   j = Rows - 1 - r, where r is the DICOM row (dcm2niix stores rows bottom-up),
//   k = position along the slice normal n = row cosines x column cosines, ascending,
//   t = images at the same position (e.g. diffusion b-values), ordered by InstanceNumber.
// World coordinates: DICOM's LPS+ turned into RAS+ (x and y negated), as nibabel's affine.
#ifndef SEGREL_CORE_IO_DICOM_LAYOUT_H_
#define SEGREL_CORE_IO_DICOM_LAYOUT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/io/dicom_file.h"

namespace segrel::io::dicom {

using Matrix4 = std::array<std::array<double, 4>, 4>;

struct LayoutOptions {
  // Slice gaps may differ from the median gap by this fraction of it. Default: 1%.
  double spacing_tolerance = 0.01;
  // Direction cosines of the slices of a series may differ by this much (each component). Default: 1e-4.
  double orientation_tolerance = 1e-4;
  // Images whose positions along the normal differ by at most this share a position. Default: 0.01 mm.
  double position_tolerance_mm = 0.01;
};

struct SeriesLayout {
  int64_t columns = 0;  // i
  int64_t rows = 0;     // j
  int64_t slices = 0;   // k
  int64_t volumes = 0;  // t
  // order[t * slices + k]: the index (into PlanSeries' argument) of the image at slice k of volume t.
  std::vector<size_t> order;
  Matrix4 affine{};                // voxel (i, j, k) -> RAS+ mm
  double slice_spacing = 0;        // mm between slice centres
  std::vector<std::string> notes;  // assumptions made, e.g. the spacing of a single slice
};

// Orders `slices` (the images of one series, any order) and checks them. Errors, each naming the files at fault:
// InvalidArgument for an image without ImagePositionPatient, ImageOrientationPatient or PixelSpacing; direction
// cosines that are not orthonormal; images of different orientation, size or pixel spacing (mixed
// orientations); a duplicated image or position; a missing image or slice; slices that are not evenly spaced.
// Unimplemented for multi-frame images and for stacks whose slices are shifted within the image plane (gantry
// tilt).
absl::StatusOr<SeriesLayout> PlanSeries(const std::vector<SliceHeader>& slices, const LayoutOptions& options = {});

}  // namespace segrel::io::dicom

#endif  // SEGREL_CORE_IO_DICOM_LAYOUT_H_
