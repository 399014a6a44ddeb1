// Geometry of volumes on grids: how far apart two grids are, resampling one volume onto another's grid by world
// coordinates, reorientation to the closest canonical (RAS) orientation by axis permutations and flips, and
// cropping to a bounding box and back. (SameGrid, the same-grid test with a tolerance, is in volume.h.)
//
// Every function works on 3-D volumes [i, j, k] and on 4-D volumes [i, j, k, t] (each t alike); volumes keep
// float32 data. Resample and Uncrop results carry their grid's affine and NIfTI geometry; reoriented and cropped
// volumes carry their new affine and no NIfTI geometry, so that WriteNifti stores the new affine.
// Thread-compatible: functions only read their arguments.
#ifndef SEGREL_CORE_VOLUME_GEOMETRY_H_
#define SEGREL_CORE_VOLUME_GEOMETRY_H_

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/volume/volume.h"

namespace segrel::volume {

// The distance between two grids' fields of view: over the 8 corners of each field of view (the outer voxel
// corners, at index -0.5 and n - 0.5), the largest distance to the nearest corner of the other's, in mm.
// 0 for the same grid; invariant to axis order and direction.
double MaxCornerDisplacement(const Volume& a, const Volume& b);

enum class Interpolation {
  kLinear,   // trilinear: for images
  kNearest,  // the nearest voxel: for label maps
};

struct ResampleStats {
  // Fraction of the target grid's voxels whose centres fall inside the resampled volume (the rest are 0).
  double inside_fraction = 0;
};

// Samples `volume` at the world positions of `grid`'s voxel centres. Linear interpolation uses the 8 voxels
// around a point and is defined between the first and the last voxel centre of each axis; nearest takes the
// voxel whose cell holds the point. Points outside give 0. The result has grid's sizes (and volume's t), grid's
// affine and NIfTI geometry, and volume's source. Errors: InvalidArgument when either affine is singular or a volume is
// not 3-D or 4-D.
absl::StatusOr<Volume> Resample(const Volume& volume, const Volume& grid, Interpolation interpolation,
                                ResampleStats* stats = nullptr);

// The orientation of each voxel axis as nibabel's aff2axcodes says it: the world direction (R/L, A/P, S/I) the
// axis points to, after the closest rotation is found (polar decomposition, as nibabel's io_orientation), e.g.
// "LAS". Returns "???" for a singular affine.
std::string AxisCodes(const Affine& affine);

// A reorientation by axis permutation and flips: output axis a is input axis source_axis[a], reversed where
// flip[a].
struct AxisTransform {
  std::array<int, 3> source_axis = {0, 1, 2};
  std::array<bool, 3> flip = {false, false, false};
};

// The transform that brings `affine`'s voxel axes to R, A, S (nibabel's as_closest_canonical).
// Errors: InvalidArgument for a singular affine.
absl::StatusOr<AxisTransform> TransformToCanonical(const Affine& affine);

// The transform that undoes `transform`.
AxisTransform Inverse(const AxisTransform& transform);

// Permutes and flips the voxels of `volume` and updates the affine so that every voxel keeps its world position.
// Errors: InvalidArgument for a transform that is not a permutation or a volume that is not 3-D or 4-D.
absl::StatusOr<Volume> ApplyAxisTransform(const Volume& volume, const AxisTransform& transform);

// `volume` reoriented to RAS (TransformToCanonical, then ApplyAxisTransform).
absl::StatusOr<Volume> ToClosestCanonical(const Volume& volume);

// A box of voxels [begin, end) per spatial axis.
struct BoundingBox {
  std::array<int64_t, 3> begin = {0, 0, 0};
  std::array<int64_t, 3> end = {0, 0, 0};
};

// The smallest box holding every nonzero voxel of `mask` ([i, j, k], any numeric type, or [i, j, k, t]: any t),
// grown by `margin` voxels on each side and clipped to the volume. Errors: NotFound when no voxel is nonzero;
// InvalidArgument for a negative margin or a mask that is not 3-D or 4-D.
absl::StatusOr<BoundingBox> NonzeroBoundingBox(const at::Tensor& mask, int64_t margin = 0);

// The voxels of `volume` inside `box`, with the affine moved so that they keep their world positions.
// Errors: InvalidArgument for a box that is empty or leaves the volume.
absl::StatusOr<Volume> Crop(const Volume& volume, const BoundingBox& box);

// Puts a cropped volume back into `full_grid` (zeros elsewhere); the result has full_grid's affine and NIfTI
// geometry. Errors: InvalidArgument when `cropped`'s sizes are not the box's, the box leaves full_grid, or
// `cropped` does not lie where the box says (affine differs by more than 1e-3 mm).
absl::StatusOr<Volume> Uncrop(const Volume& cropped, const BoundingBox& box, const Volume& full_grid);

}  // namespace segrel::volume

#endif  // SEGREL_CORE_VOLUME_GEOMETRY_H_
