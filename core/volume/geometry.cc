#include "core/volume/geometry.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"

namespace segrel::volume {
namespace {

using Matrix3 = std::array<std::array<double, 3>, 3>;

Matrix3 Linear(const Affine& a) {
  Matrix3 m{};
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) m[r][c] = a[r][c];
  }
  return m;
}

double Determinant(const Matrix3& m) {
  return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
         m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
}

// Inverse of a non-singular 3x3 matrix (adjugate over determinant).
Matrix3 Inverse3(const Matrix3& m) {
  const double d = Determinant(m);
  Matrix3 inverse{};
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {
      const int r1 = (c + 1) % 3, r2 = (c + 2) % 3, c1 = (r + 1) % 3, c2 = (r + 2) % 3;
      inverse[r][c] = (m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]) / d;
    }
  }
  return inverse;
}

bool IsSingular(const Affine& a) {
  const Matrix3 m = Linear(a);
  double scale = 0;
  for (const auto& row : m) {
    for (double v : row) scale = std::max(scale, std::abs(v));
  }
  return !(std::abs(Determinant(m)) > 1e-12 * scale * scale * scale);
}

absl::StatusOr<Affine> InverseAffine(const Affine& a, const std::string& source) {
  if (IsSingular(a)) return absl::InvalidArgumentError(absl::StrCat(source, ": singular voxel-to-world affine"));
  const Matrix3 inverse = Inverse3(Linear(a));
  Affine result = IdentityAffine();
  for (int r = 0; r < 3; ++r) {
    result[r][3] = 0;
    for (int c = 0; c < 3; ++c) {
      result[r][c] = inverse[r][c];
      result[r][3] -= inverse[r][c] * a[c][3];
    }
  }
  return result;
}

Affine Multiply(const Affine& a, const Affine& b) {
  Affine m{};
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      for (int n = 0; n < 4; ++n) m[r][c] += a[r][n] * b[n][c];
    }
  }
  return m;
}

std::array<double, 3> Apply(const Affine& a, const std::array<double, 3>& p) {
  std::array<double, 3> q{};
  for (int r = 0; r < 3; ++r) q[r] = a[r][0] * p[0] + a[r][1] * p[1] + a[r][2] * p[2] + a[r][3];
  return q;
}

absl::Status CheckDimensions(const Volume& volume) {
  if (volume.data.dim() != 3 && volume.data.dim() != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat(volume.source, ": a ", volume.data.dim(), "-D volume; geometry works on 3-D and 4-D volumes"));
  }
  return absl::OkStatus();
}

std::vector<std::array<double, 3>> FieldOfViewCorners(const Volume& volume) {
  const std::array<int64_t, 3> sizes = volume.SpatialSizes();
  std::vector<std::array<double, 3>> corners;
  for (int corner = 0; corner < 8; ++corner) {
    std::array<double, 3> index{};
    for (int a = 0; a < 3; ++a) index[a] = (corner >> a) & 1 ? static_cast<double>(sizes[a]) - 0.5 : -0.5;
    corners.push_back(Apply(volume.affine, index));
  }
  return corners;
}

double Distance(const std::array<double, 3>& a, const std::array<double, 3>& b) {
  return std::sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
}

// Continuous indices within this much of the first or last voxel centre count as inside (rounding of the
// index transform, e.g. 1e-13 for the identity).
constexpr double kIndexTolerance = 1e-6;

// Where a continuous index falls on one axis of n voxels for linear interpolation: the lower voxel and the weight
// of the upper one; false when outside [0, n - 1].
bool LinearCell(double x, int64_t n, int64_t& lower, double& weight) {
  // On a voxel centre up to rounding: take that voxel's value exactly.
  if (std::abs(x - std::round(x)) < kIndexTolerance) x = std::round(x);
  if (!(x >= -kIndexTolerance && x <= static_cast<double>(n - 1) + kIndexTolerance)) return false;
  lower = std::min<int64_t>(static_cast<int64_t>(std::floor(std::max(x, 0.0))), std::max<int64_t>(n - 2, 0));
  weight = n == 1 ? 0.0 : std::clamp(x - static_cast<double>(lower), 0.0, 1.0);
  return true;
}

// The voxel whose cell [v - 0.5, v + 0.5) holds x; false when outside.
bool NearestCell(double x, int64_t n, int64_t& voxel) {
  const double rounded = std::floor(x + 0.5);
  if (!(rounded >= 0 && rounded <= static_cast<double>(n - 1))) return false;
  voxel = static_cast<int64_t>(rounded);
  return true;
}

// Samples source [I, J, K, T] (contiguous) at the continuous index p into out[0..T).
bool Sample(const float* source, const std::array<int64_t, 4>& sizes, const std::array<double, 3>& p,
            Interpolation interpolation, float* out) {
  const int64_t T = sizes[3];
  const std::array<int64_t, 3> strides = {sizes[1] * sizes[2] * T, sizes[2] * T, T};
  if (interpolation == Interpolation::kNearest) {
    std::array<int64_t, 3> v{};
    for (int a = 0; a < 3; ++a) {
      if (!NearestCell(p[a], sizes[a], v[a])) return false;
    }
    const float* at = source + v[0] * strides[0] + v[1] * strides[1] + v[2] * strides[2];
    std::copy(at, at + T, out);
    return true;
  }
  std::array<int64_t, 3> lower{};
  std::array<double, 3> weight{};
  for (int a = 0; a < 3; ++a) {
    if (!LinearCell(p[a], sizes[a], lower[a], weight[a])) return false;
  }
  for (int64_t t = 0; t < T; ++t) {
    double value = 0;
    for (int corner = 0; corner < 8; ++corner) {
      double w = 1;
      int64_t offset = t;
      for (int a = 0; a < 3; ++a) {
        const bool upper = (corner >> a) & 1;
        w *= upper ? weight[a] : 1.0 - weight[a];
        offset += (lower[a] + (upper && sizes[a] > 1 ? 1 : 0)) * strides[a];
      }
      if (w != 0) value += w * static_cast<double>(source[offset]);
    }
    out[t] = static_cast<float>(value);
  }
  return true;
}

}  // namespace

double MaxCornerDisplacement(const Volume& a, const Volume& b) {
  const auto corners_a = FieldOfViewCorners(a), corners_b = FieldOfViewCorners(b);
  double displacement = 0;
  for (const auto* pair : {&corners_a, &corners_b}) {
    const auto& from = *pair;
    const auto& to = pair == &corners_a ? corners_b : corners_a;
    for (const auto& p : from) {
      double nearest = std::numeric_limits<double>::infinity();
      for (const auto& q : to) nearest = std::min(nearest, Distance(p, q));
      displacement = std::max(displacement, nearest);
    }
  }
  return displacement;
}

absl::StatusOr<Volume> Resample(const Volume& volume, const Volume& grid, Interpolation interpolation,
                                ResampleStats* stats) {
  SEGREL_RETURN_IF_ERROR(CheckDimensions(volume));
  SEGREL_RETURN_IF_ERROR(CheckDimensions(grid));
  SEGREL_ASSIGN_OR_RETURN(const Affine world_to_volume, InverseAffine(volume.affine, volume.source));
  if (IsSingular(grid.affine)) {
    return absl::InvalidArgumentError(absl::StrCat(grid.source, ": singular voxel-to-world affine"));
  }
  // Grid voxel index -> volume voxel index.
  const Affine index_map = Multiply(world_to_volume, grid.affine);
  return CatchTorch(absl::StrCat("resampling ", volume.source), [&]() -> absl::StatusOr<Volume> {
    const at::Tensor source =
        (volume.data.dim() == 3 ? volume.data.unsqueeze(3) : volume.data).to(at::kCPU, at::kFloat).contiguous();
    const std::array<int64_t, 4> source_sizes = {source.size(0), source.size(1), source.size(2), source.size(3)};
    const std::array<int64_t, 3> out_sizes = grid.SpatialSizes();
    const int64_t T = source_sizes[3];
    at::Tensor out = at::zeros({out_sizes[0], out_sizes[1], out_sizes[2], T}, at::kFloat);
    const float* in_data = source.data_ptr<float>();
    float* out_data = out.data_ptr<float>();
    std::atomic<int64_t> inside{0};
    at::parallel_for(0, out_sizes[0], 1, [&](int64_t begin, int64_t end) {
      int64_t inside_here = 0;
      for (int64_t i = begin; i < end; ++i) {
        for (int64_t j = 0; j < out_sizes[1]; ++j) {
          for (int64_t k = 0; k < out_sizes[2]; ++k) {
            const std::array<double, 3> p =
                Apply(index_map, {static_cast<double>(i), static_cast<double>(j), static_cast<double>(k)});
            float* target = out_data + ((i * out_sizes[1] + j) * out_sizes[2] + k) * T;
            if (Sample(in_data, source_sizes, p, interpolation, target)) ++inside_here;
          }
        }
      }
      inside += inside_here;
    });
    if (stats != nullptr) {
      stats->inside_fraction = static_cast<double>(inside.load()) /
                               static_cast<double>(std::max<int64_t>(1, out_sizes[0] * out_sizes[1] * out_sizes[2]));
    }
    Volume result;
    result.data = volume.data.dim() == 3 ? out.squeeze(3) : out;
    result.affine = grid.affine;
    result.nifti = grid.nifti;
    result.source = volume.source;
    return result;
  });
}

namespace {

// The orthogonal polar factor of a non-singular matrix: Newton's iteration X <- (X + X^-T) / 2 (Higham 1986),
// the closest rotation (possibly with reflection) that nibabel's io_orientation finds by SVD.
Matrix3 OrthogonalPolarFactor(Matrix3 x) {
  for (int iteration = 0; iteration < 100; ++iteration) {
    const Matrix3 inverse = Inverse3(x);
    Matrix3 next{};
    double change = 0;
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 3; ++c) {
        next[r][c] = 0.5 * (x[r][c] + inverse[c][r]);
        change = std::max(change, std::abs(next[r][c] - x[r][c]));
      }
    }
    x = next;
    if (change < 1e-15) break;
  }
  return x;
}

// For each voxel axis: the world axis it is closest to and the direction (nibabel's io_orientation).
absl::StatusOr<std::array<std::pair<int, int>, 3>> Orientation(const Affine& affine) {
  if (IsSingular(affine)) return absl::InvalidArgumentError("singular voxel-to-world affine");
  Matrix3 rs = Linear(affine);
  for (int c = 0; c < 3; ++c) {
    const double zoom = std::sqrt(rs[0][c] * rs[0][c] + rs[1][c] * rs[1][c] + rs[2][c] * rs[2][c]);
    for (int r = 0; r < 3; ++r) rs[r][c] /= zoom;
  }
  Matrix3 rotation = OrthogonalPolarFactor(rs);
  std::array<std::pair<int, int>, 3> orientation{};
  for (int in_axis = 0; in_axis < 3; ++in_axis) {
    int out_axis = 0;
    for (int r = 1; r < 3; ++r) {
      if (std::abs(rotation[r][in_axis]) > std::abs(rotation[out_axis][in_axis])) out_axis = r;
    }
    orientation[in_axis] = {out_axis, rotation[out_axis][in_axis] < 0 ? -1 : 1};
    for (int c = 0; c < 3; ++c) rotation[out_axis][c] = 0;  // this world axis is taken
  }
  return orientation;
}

}  // namespace

std::string AxisCodes(const Affine& affine) {
  const absl::StatusOr<std::array<std::pair<int, int>, 3>> orientation = Orientation(affine);
  if (!orientation.ok()) return "???";
  std::string codes;
  for (const auto& [axis, sign] : *orientation) codes += (sign > 0 ? "RAS" : "LPI")[axis];
  return codes;
}

absl::StatusOr<AxisTransform> TransformToCanonical(const Affine& affine) {
  SEGREL_ASSIGN_OR_RETURN(const auto orientation, Orientation(affine));
  AxisTransform transform;
  for (int in_axis = 0; in_axis < 3; ++in_axis) {
    const auto [world_axis, sign] = orientation[in_axis];
    transform.source_axis[world_axis] = in_axis;
    transform.flip[world_axis] = sign < 0;
  }
  return transform;
}

AxisTransform Inverse(const AxisTransform& transform) {
  AxisTransform inverse;
  for (int a = 0; a < 3; ++a) {
    inverse.source_axis[transform.source_axis[a]] = a;
    inverse.flip[transform.source_axis[a]] = transform.flip[a];
  }
  return inverse;
}

absl::StatusOr<Volume> ApplyAxisTransform(const Volume& volume, const AxisTransform& transform) {
  SEGREL_RETURN_IF_ERROR(CheckDimensions(volume));
  std::array<int, 3> sorted = transform.source_axis;
  std::sort(sorted.begin(), sorted.end());
  if (sorted != std::array<int, 3>{0, 1, 2}) {
    return absl::InvalidArgumentError(absl::StrFormat("axis transform (%d, %d, %d) is not a permutation",
                                                      transform.source_axis[0], transform.source_axis[1],
                                                      transform.source_axis[2]));
  }
  const std::array<int64_t, 3> sizes = volume.SpatialSizes();
  Volume result;
  result.source = volume.source;
  result.affine = IdentityAffine();
  for (int r = 0; r < 3; ++r) result.affine[r][3] = volume.affine[r][3];
  for (int a = 0; a < 3; ++a) {
    const int s = transform.source_axis[a];
    const double sign = transform.flip[a] ? -1.0 : 1.0;
    for (int r = 0; r < 3; ++r) {
      result.affine[r][a] = sign * volume.affine[r][s];
      // Voxel 0 of a reversed axis is the source's last voxel.
      if (transform.flip[a]) result.affine[r][3] += volume.affine[r][s] * static_cast<double>(sizes[s] - 1);
    }
  }
  return CatchTorch(volume.source, [&]() -> absl::StatusOr<Volume> {
    std::vector<int64_t> order(transform.source_axis.begin(), transform.source_axis.end());
    if (volume.data.dim() == 4) order.push_back(3);
    std::vector<int64_t> flipped;
    for (int a = 0; a < 3; ++a) {
      if (transform.flip[a]) flipped.push_back(a);
    }
    at::Tensor data = volume.data.permute(order);
    if (!flipped.empty()) data = data.flip(flipped);
    result.data = data.contiguous();
    return result;
  });
}

absl::StatusOr<Volume> ToClosestCanonical(const Volume& volume) {
  absl::StatusOr<AxisTransform> transform = TransformToCanonical(volume.affine);
  if (!transform.ok())
    return absl::InvalidArgumentError(absl::StrCat(volume.source, ": ", transform.status().message()));
  return ApplyAxisTransform(volume, *transform);
}

absl::StatusOr<BoundingBox> NonzeroBoundingBox(const at::Tensor& mask, int64_t margin) {
  if (margin < 0) return absl::InvalidArgumentError(absl::StrCat("negative bounding box margin ", margin));
  if (mask.dim() != 3 && mask.dim() != 4) {
    return absl::InvalidArgumentError(absl::StrCat("a ", mask.dim(), "-D mask; expected 3-D or 4-D"));
  }
  return CatchTorch("bounding box", [&]() -> absl::StatusOr<BoundingBox> {
    at::Tensor any = mask != 0;
    if (any.dim() == 4) any = any.any(3);
    BoundingBox box;
    for (int a = 0; a < 3; ++a) {
      std::vector<int64_t> others;
      for (int b = 0; b < 3; ++b) {
        if (b != a) others.push_back(b);
      }
      const at::Tensor along = any.sum(others) > 0;  // nonzero voxels per index of axis a
      const at::Tensor indices = along.nonzero();
      if (indices.numel() == 0) return absl::NotFoundError("the mask has no nonzero voxel");
      box.begin[a] = std::max<int64_t>(0, indices.min().item<int64_t>() - margin);
      box.end[a] = std::min<int64_t>(mask.size(a), indices.max().item<int64_t>() + 1 + margin);
    }
    return box;
  });
}

namespace {

absl::Status CheckBox(const BoundingBox& box, const std::array<int64_t, 3>& sizes, const std::string& source) {
  for (int a = 0; a < 3; ++a) {
    if (box.begin[a] < 0 || box.begin[a] >= box.end[a] || box.end[a] > sizes[a]) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: bounding box [%d, %d) x [%d, %d) x [%d, %d) is empty or leaves the %dx%dx%d grid", source, box.begin[0],
          box.end[0], box.begin[1], box.end[1], box.begin[2], box.end[2], sizes[0], sizes[1], sizes[2]));
    }
  }
  return absl::OkStatus();
}

Affine CroppedAffine(const Affine& affine, const BoundingBox& box) {
  Affine result = affine;
  const std::array<double, 3> origin =
      Apply(affine,
            {static_cast<double>(box.begin[0]), static_cast<double>(box.begin[1]), static_cast<double>(box.begin[2])});
  for (int r = 0; r < 3; ++r) result[r][3] = origin[r];
  return result;
}

}  // namespace

absl::StatusOr<Volume> Crop(const Volume& volume, const BoundingBox& box) {
  SEGREL_RETURN_IF_ERROR(CheckDimensions(volume));
  SEGREL_RETURN_IF_ERROR(CheckBox(box, volume.SpatialSizes(), volume.source));
  return CatchTorch(volume.source, [&]() -> absl::StatusOr<Volume> {
    Volume result;
    result.source = volume.source;
    result.affine = CroppedAffine(volume.affine, box);
    at::Tensor data = volume.data;
    for (int a = 0; a < 3; ++a) data = data.slice(a, box.begin[a], box.end[a]);
    result.data = data.contiguous();
    return result;
  });
}

absl::StatusOr<Volume> Uncrop(const Volume& cropped, const BoundingBox& box, const Volume& full_grid) {
  SEGREL_RETURN_IF_ERROR(CheckDimensions(cropped));
  SEGREL_RETURN_IF_ERROR(CheckDimensions(full_grid));
  SEGREL_RETURN_IF_ERROR(CheckBox(box, full_grid.SpatialSizes(), full_grid.source));
  for (int a = 0; a < 3; ++a) {
    if (cropped.data.size(a) != box.end[a] - box.begin[a]) {
      return absl::InvalidArgumentError(
          absl::StrCat(cropped.source, ": ", GridSummary(cropped), " does not fit the bounding box"));
    }
  }
  Volume expected = cropped;
  expected.affine = CroppedAffine(full_grid.affine, box);
  if (!SameGrid(cropped, expected)) {
    return absl::InvalidArgumentError(absl::StrCat(cropped.source, " does not lie where the bounding box of ",
                                                   full_grid.source, " says (different affine)"));
  }
  return CatchTorch(cropped.source, [&]() -> absl::StatusOr<Volume> {
    const std::array<int64_t, 3> sizes = full_grid.SpatialSizes();
    std::vector<int64_t> out_sizes(sizes.begin(), sizes.end());
    if (cropped.data.dim() == 4) out_sizes.push_back(cropped.data.size(3));
    Volume result;
    result.source = cropped.source;
    result.affine = full_grid.affine;
    result.nifti = full_grid.nifti;
    result.data = at::zeros(out_sizes, cropped.data.options());
    at::Tensor target = result.data;
    for (int a = 0; a < 3; ++a) target = target.slice(a, box.begin[a], box.end[a]);
    target.copy_(cropped.data);
    return result;
  });
}

}  // namespace segrel::volume
