#include "core/volume/volume.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace segrel::volume {

Affine IdentityAffine() {
  Affine affine{};
  for (int i = 0; i < 4; ++i) affine[i][i] = 1.0;
  return affine;
}

std::array<int64_t, 3> Volume::SpatialSizes() const { return {data.size(0), data.size(1), data.size(2)}; }

bool SameGrid(const Volume& a, const Volume& b, double tolerance_mm) {
  if (a.SpatialSizes() != b.SpatialSizes()) return false;
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      if (std::abs(a.affine[r][c] - b.affine[r][c]) > tolerance_mm) return false;
    }
  }
  return true;
}

std::string GridSummary(const Volume& volume) {
  const std::array<int64_t, 3> sizes = volume.SpatialSizes();
  std::array<double, 3> spacing{};
  for (int c = 0; c < 3; ++c) {
    spacing[c] = std::sqrt(volume.affine[0][c] * volume.affine[0][c] + volume.affine[1][c] * volume.affine[1][c] +
                           volume.affine[2][c] * volume.affine[2][c]);
  }
  return absl::StrFormat("%dx%dx%d, %gx%gx%g mm", sizes[0], sizes[1], sizes[2], spacing[0], spacing[1], spacing[2]);
}

}  // namespace segrel::volume
