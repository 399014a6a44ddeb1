// Geometry helpers against independent references: resampling against analytic values (a linear ramp in world
// coordinates is reproduced exactly by trilinear interpolation wherever it is sampled; labels on exactly mapped
// grids are permuted copies), orientation against nibabel (aff2axcodes, as_closest_canonical; answers stored by
// tests/fixtures/make_geometry_fixtures.py), cropping against hand-counted boxes.
#include "core/volume/geometry.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <set>
#include <string>

#include "core/io/nifti.h"
#include "core/volume/volume.h"
#include "tests/core/io/dicom_test_util.h"
#include "tests/test_util.h"

namespace segrel::volume {
namespace {

using nlohmann::json;

// The ramp f(x) = c . x + c0 over world coordinates (mm).
constexpr std::array<double, 3> kRamp = {0.5, -1.25, 2.0};
constexpr double kRampOffset = 7.0;

double Ramp(const std::array<double, 3>& world) {
  return kRamp[0] * world[0] + kRamp[1] * world[1] + kRamp[2] * world[2] + kRampOffset;
}

std::array<double, 3> WorldOf(const Affine& affine, double i, double j, double k) {
  std::array<double, 3> world{};
  for (int r = 0; r < 3; ++r) world[r] = affine[r][0] * i + affine[r][1] * j + affine[r][2] * k + affine[r][3];
  return world;
}

// A volume on (sizes, affine) holding the ramp at its voxel centres (computed in double, stored as float32).
Volume RampVolume(const std::array<int64_t, 3>& sizes, const Affine& affine) {
  Volume volume;
  volume.affine = affine;
  volume.source = "ramp";
  volume.data = at::empty({sizes[0], sizes[1], sizes[2]}, at::kFloat);
  auto values = volume.data.accessor<float, 3>();
  for (int64_t i = 0; i < sizes[0]; ++i) {
    for (int64_t j = 0; j < sizes[1]; ++j) {
      for (int64_t k = 0; k < sizes[2]; ++k) values[i][j][k] = static_cast<float>(Ramp(WorldOf(affine, i, j, k)));
    }
  }
  return volume;
}

// A grid only (zeros) on (sizes, affine).
Volume Grid(const std::array<int64_t, 3>& sizes, const Affine& affine) {
  Volume grid;
  grid.affine = affine;
  grid.source = "grid";
  grid.data = at::zeros({sizes[0], sizes[1], sizes[2]}, at::kFloat);
  return grid;
}

Affine MakeAffine(const std::array<std::array<double, 3>, 3>& linear, const std::array<double, 3>& offset) {
  Affine affine = IdentityAffine();
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) affine[r][c] = linear[r][c];
    affine[r][3] = offset[r];
  }
  return affine;
}

// An oblique source grid: 2 x 1.5 x 3 mm voxels, rotated about an off-axis direction, 20 x 24 x 16 voxels.
Affine ObliqueSource() {
  const double c = std::cos(0.3), s = std::sin(0.3);
  // Rotation by 0.3 rad about z, then columns scaled by the spacing.
  return MakeAffine({{{2 * c, -1.5 * s, 0}, {2 * s, 1.5 * c, 0}, {0, 0, 3}}}, {-10, -12, -20});
}

// Float32 storage of values up to ~60 in magnitude: ~4e-6 rounding per stored value, interpolation adds none.
constexpr double kRampTolerance = 1e-4;

void ExpectRamp(const Volume& resampled) {
  auto values = resampled.data.accessor<float, 3>();
  const std::array<int64_t, 3> sizes = resampled.SpatialSizes();
  for (int64_t i = 0; i < sizes[0]; ++i) {
    for (int64_t j = 0; j < sizes[1]; ++j) {
      for (int64_t k = 0; k < sizes[2]; ++k) {
        ASSERT_NEAR(values[i][j][k], Ramp(WorldOf(resampled.affine, i, j, k)), kRampTolerance)
            << "voxel (" << i << ", " << j << ", " << k << ")";
      }
    }
  }
}

TEST(Resample, LinearReproducesARampUnderShiftScaleAndPermutation) {
  const Volume source = RampVolume({20, 24, 16}, ObliqueSource());
  // Target grids well inside the source's field of view: shifted, finer, coarser, axes permuted and flipped.
  const std::vector<Affine> targets = {
      MakeAffine({{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}}, {0.37, 4.1, 0.6}),
      MakeAffine({{{0, 0.7, 0}, {0, 0, -0.9}, {1.3, 0, 0}}}, {5.2, 9.9, 2.3}),
      MakeAffine({{{-2.5, 0, 0}, {0, 0, 1.1}, {0, 2.2, 0}}}, {20.0, 3.3, -1.7}),
  };
  for (const Affine& target : targets) {
    ResampleStats stats;
    const absl::StatusOr<Volume> resampled = Resample(source, Grid({6, 5, 7}, target), Interpolation::kLinear, &stats);
    ASSERT_TRUE(resampled.ok()) << resampled.status();
    EXPECT_EQ(resampled->data.sizes(), at::IntArrayRef({6, 5, 7}));
    EXPECT_EQ(resampled->affine, target);
    EXPECT_EQ(stats.inside_fraction, 1.0);
    ExpectRamp(*resampled);
  }
}

TEST(Resample, IdentityGridGivesTheInputExactly) {
  const Volume source = RampVolume({20, 24, 16}, ObliqueSource());
  for (const Interpolation interpolation : {Interpolation::kLinear, Interpolation::kNearest}) {
    ResampleStats stats;
    const absl::StatusOr<Volume> resampled = Resample(source, source, interpolation, &stats);
    ASSERT_TRUE(resampled.ok()) << resampled.status();
    EXPECT_TRUE(at::equal(resampled->data, source.data));
    EXPECT_EQ(stats.inside_fraction, 1.0);
  }
}

TEST(Resample, PointsOutsideAreZeroAndCounted) {
  // Source: 10 voxels of 1 mm along x at 0..9; target: 20 voxels at -5..14 (1 mm). Inside [0, 9]: 10 of 20.
  const Volume source = RampVolume({10, 1, 1}, IdentityAffine());
  Affine target = IdentityAffine();
  target[0][3] = -5;
  ResampleStats stats;
  const absl::StatusOr<Volume> resampled = Resample(source, Grid({20, 1, 1}, target), Interpolation::kLinear, &stats);
  ASSERT_TRUE(resampled.ok()) << resampled.status();
  EXPECT_DOUBLE_EQ(stats.inside_fraction, 0.5);
  auto values = resampled->data.accessor<float, 3>();
  for (int64_t i = 0; i < 20; ++i) {
    const double x = static_cast<double>(i) - 5;
    const double expected = (x >= 0 && x <= 9) ? Ramp({x, 0, 0}) : 0.0;
    EXPECT_NEAR(values[i][0][0], expected, kRampTolerance) << "x = " << x;
  }
}

TEST(Resample, NearestCopiesLabelsOntoAPermutedFlippedGrid) {
  // Labels 0..59 on 3 x 4 x 5 voxels of 1 x 2 x 3 mm; the target is the same field of view with axes (k, i, j),
  // k reversed: each target voxel centre is exactly one source voxel centre, whose label it must hold.
  Volume labels;
  labels.affine = MakeAffine({{{1, 0, 0}, {0, 2, 0}, {0, 0, 3}}}, {10, 20, 30});
  labels.data = at::arange(60, at::kFloat).view({3, 4, 5});
  const Affine target = MakeAffine({{{0, 1, 0}, {0, 0, 2}, {-3, 0, 0}}}, {10, 20, 30 + 3 * 4});
  ResampleStats stats;
  const absl::StatusOr<Volume> resampled = Resample(labels, Grid({5, 3, 4}, target), Interpolation::kNearest, &stats);
  ASSERT_TRUE(resampled.ok()) << resampled.status();
  EXPECT_EQ(stats.inside_fraction, 1.0);
  const at::Tensor expected = labels.data.permute({2, 0, 1}).flip({0});
  EXPECT_TRUE(at::equal(resampled->data, expected)) << resampled->data;
}

TEST(Resample, NearestTakesTheVoxelWhoseCellHoldsThePoint) {
  // Target centres at x = 0.2, 0.6, 1.0, 1.4, 1.8: the cells [v - 0.5, v + 0.5) holding them are 0, 1, 1, 1, 2.
  Volume labels;
  labels.data = at::tensor({5.0f, 9.0f, 13.0f}).view({3, 1, 1});
  Affine target = IdentityAffine();
  target[0][0] = 0.4;
  target[0][3] = 0.2;
  const absl::StatusOr<Volume> resampled = Resample(labels, Grid({5, 1, 1}, target), Interpolation::kNearest);
  ASSERT_TRUE(resampled.ok()) << resampled.status();
  EXPECT_TRUE(at::equal(resampled->data.flatten(), at::tensor({5.0f, 9.0f, 9.0f, 9.0f, 13.0f})))
      << resampled->data.flatten();
}

TEST(Resample, FourDimensionalVolumesResampleEachVolume) {
  Volume source = RampVolume({20, 24, 16}, ObliqueSource());
  source.data = at::stack({source.data, 2 * source.data}, 3);
  const Affine target = MakeAffine({{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}}, {0.37, 4.1, 0.6});
  const absl::StatusOr<Volume> resampled = Resample(source, Grid({3, 3, 3}, target), Interpolation::kLinear);
  ASSERT_TRUE(resampled.ok()) << resampled.status();
  ASSERT_EQ(resampled->data.sizes(), at::IntArrayRef({3, 3, 3, 2}));
  Volume first = *resampled;
  first.data = resampled->data.select(3, 0).contiguous();
  ExpectRamp(first);
  EXPECT_TRUE(at::allclose(resampled->data.select(3, 1), 2 * resampled->data.select(3, 0), 0, 2e-4));
}

TEST(Resample, SingularAffineIsInvalidArgument) {
  Volume source = RampVolume({4, 4, 4}, IdentityAffine());
  Affine singular = IdentityAffine();
  singular[2][2] = 0;
  Volume bad = source;
  bad.affine = singular;
  EXPECT_EQ(Resample(bad, source, Interpolation::kLinear).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Resample(source, bad, Interpolation::kLinear).status().code(), absl::StatusCode::kInvalidArgument);
  Volume flat = source;
  flat.data = at::zeros({4, 4}, at::kFloat);
  EXPECT_EQ(Resample(flat, source, Interpolation::kLinear).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MaxCornerDisplacement, IsTheShiftOfAMovedGridAndZeroForAReorderedOne) {
  const Volume a = Grid({10, 20, 30}, MakeAffine({{{1, 0, 0}, {0, 2, 0}, {0, 0, 3}}}, {0, 0, 0}));
  const Volume shifted = Grid({10, 20, 30}, MakeAffine({{{1, 0, 0}, {0, 2, 0}, {0, 0, 3}}}, {3, 4, 0}));
  EXPECT_NEAR(MaxCornerDisplacement(a, shifted), 5.0, 1e-12);
  EXPECT_EQ(MaxCornerDisplacement(a, a), 0.0);
  // The same field of view with axes (j, k, i), j reversed: same corners.
  const Volume reordered = Grid({20, 30, 10}, MakeAffine({{{0, 0, 1}, {-2, 0, 0}, {0, 3, 0}}}, {0, 2 * 19, 0}));
  EXPECT_NEAR(MaxCornerDisplacement(a, reordered), 0.0, 1e-12);
  // 5 voxels of 2 mm centred at 0.5, 2.5, ..., 8.5 span [-0.5, 9.5] along x, like 10 voxels of 1 mm.
  const Volume coarser = Grid({5, 20, 30}, MakeAffine({{{2, 0, 0}, {0, 2, 0}, {0, 0, 3}}}, {0.5, 0, 0}));
  EXPECT_NEAR(MaxCornerDisplacement(a, coarser), 0.0, 1e-12);
}

Affine AffineFromJson(const json& rows) {
  Affine affine{};
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) affine[r][c] = rows[r][c].get<double>();
  }
  return affine;
}

double MaxDifference(const Affine& a, const Affine& b) {
  double difference = 0;
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) difference = std::max(difference, std::abs(a[r][c] - b[r][c]));
  }
  return difference;
}

TEST(Orientation, AgreesWithNibabelOnPermutedFlippedAndObliqueAffines) {
  const json fixture = segrel::testing::ReadJson("geometry/orientation.json");
  ASSERT_EQ(fixture["synthetic"].size(), 96u);  // 6 permutations x 8 flips x (aligned, oblique)
  for (const json& entry : fixture["synthetic"]) {
    const Affine affine = AffineFromJson(entry["affine"]);
    SCOPED_TRACE(entry["affine"].dump());
    EXPECT_EQ(AxisCodes(affine), entry["axcodes"].get<std::string>());
    Volume volume;
    volume.affine = affine;
    const std::vector<int64_t> shape = entry["shape"].get<std::vector<int64_t>>();
    const at::Tensor i = at::arange(shape[0], at::kFloat).view({-1, 1, 1});
    const at::Tensor j = at::arange(shape[1], at::kFloat).view({1, -1, 1});
    const at::Tensor k = at::arange(shape[2], at::kFloat).view({1, 1, -1});
    volume.data = (100 * i + 10 * j + k).contiguous();
    const absl::StatusOr<Volume> canonical = ToClosestCanonical(volume);
    ASSERT_TRUE(canonical.ok()) << canonical.status();
    EXPECT_EQ(AxisCodes(canonical->affine), "RAS");
    // nibabel computes the same products of the same doubles: 1e-9 mm allows for a different order of additions.
    EXPECT_LE(MaxDifference(canonical->affine, AffineFromJson(entry["canonical_affine"])), 1e-9);
    const std::vector<double> values = entry["canonical_values"].get<std::vector<double>>();
    const at::Tensor expected =
        at::tensor(values, at::kDouble).to(at::kFloat).view(entry["canonical_shape"].get<std::vector<int64_t>>());
    EXPECT_TRUE(at::equal(canonical->data, expected));
    // And back: the inverse transform restores voxels and affine.
    const absl::StatusOr<AxisTransform> transform = TransformToCanonical(affine);
    ASSERT_TRUE(transform.ok());
    const absl::StatusOr<Volume> back = ApplyAxisTransform(*canonical, Inverse(*transform));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(at::equal(back->data, volume.data));
    EXPECT_LE(MaxDifference(back->affine, affine), 1e-9);
  }
}

TEST(Orientation, AgreesWithNibabelOnTheSharedNiftiFiles) {
  const std::string shared = segrel::testing::SharedDataDir();
  if (shared.empty()) GTEST_SKIP() << "../shared/data is absent";
  const json fixture = segrel::testing::ReadJson("geometry/orientation.json");
  ASSERT_GE(fixture["real_files"].size(), 31u);
  // One file per folder: a folder's files share their affine, and reading all 31 takes minutes on a busy machine.
  std::set<std::string> folders;
  for (const auto& [name, entry] : fixture["real_files"].items()) {
    SCOPED_TRACE(name);
    const std::string path = (std::filesystem::path(shared) / name).string();
    if (!std::filesystem::exists(path) || !folders.insert(std::filesystem::path(name).parent_path()).second) continue;
    const absl::StatusOr<Volume> volume = io::ReadNifti(path);
    ASSERT_TRUE(volume.ok()) << volume.status();
    EXPECT_EQ(AxisCodes(volume->affine), entry["axcodes"].get<std::string>());
    const absl::StatusOr<Volume> canonical = ToClosestCanonical(*volume);
    ASSERT_TRUE(canonical.ok()) << canonical.status();
    // The file's affine is float32 in the header; both sides read the same floats: 1e-6 mm.
    EXPECT_LE(MaxDifference(canonical->affine, AffineFromJson(entry["canonical_affine"])), 1e-6);
    ASSERT_EQ(canonical->data.sizes(), at::IntArrayRef(entry["canonical_shape"].get<std::vector<int64_t>>()));
    auto values = canonical->data.accessor<float, 3>();
    for (const json& sample : entry["samples"]) {
      EXPECT_EQ(values[sample[0].get<int64_t>()][sample[1].get<int64_t>()][sample[2].get<int64_t>()],
                static_cast<float>(sample[3].get<double>()))
          << sample.dump();
    }
  }
  EXPECT_EQ(folders.size(), 7u);  // 3 ms-lesjak patients, 4 BraTS cases
}

TEST(Orientation, SingularAffine) {
  Affine singular = IdentityAffine();
  singular[1][1] = 0;
  EXPECT_EQ(AxisCodes(singular), "???");
  EXPECT_EQ(TransformToCanonical(singular).status().code(), absl::StatusCode::kInvalidArgument);
  Volume volume;
  volume.data = at::zeros({2, 2, 2});
  AxisTransform not_permutation;
  not_permutation.source_axis = {0, 0, 2};
  EXPECT_EQ(ApplyAxisTransform(volume, not_permutation).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Crop, BoundingBoxCropAndUncropRoundTrip) {
  at::Tensor mask = at::zeros({10, 12, 14}, at::kByte);
  mask.index_put_({3, 5, 7}, 1);
  mask.index_put_({6, 2, 9}, 2);
  const absl::StatusOr<BoundingBox> box = NonzeroBoundingBox(mask, /*margin=*/1);
  ASSERT_TRUE(box.ok()) << box.status();
  EXPECT_EQ(box->begin, (std::array<int64_t, 3>{2, 1, 6}));
  EXPECT_EQ(box->end, (std::array<int64_t, 3>{8, 7, 11}));
  // A large margin is clipped to the volume.
  const absl::StatusOr<BoundingBox> clipped = NonzeroBoundingBox(mask, /*margin=*/100);
  ASSERT_TRUE(clipped.ok());
  EXPECT_EQ(clipped->begin, (std::array<int64_t, 3>{0, 0, 0}));
  EXPECT_EQ(clipped->end, (std::array<int64_t, 3>{10, 12, 14}));

  const Volume full = RampVolume({10, 12, 14}, ObliqueSource());
  const absl::StatusOr<Volume> cropped = Crop(full, *box);
  ASSERT_TRUE(cropped.ok()) << cropped.status();
  EXPECT_EQ(cropped->data.sizes(), at::IntArrayRef({6, 6, 5}));
  ExpectRamp(*cropped);  // voxels kept their world positions
  const absl::StatusOr<Volume> restored = Uncrop(*cropped, *box, full);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->affine, full.affine);
  at::Tensor expected = at::zeros_like(full.data);
  expected.slice(0, 2, 8).slice(1, 1, 7).slice(2, 6, 11).copy_(full.data.slice(0, 2, 8).slice(1, 1, 7).slice(2, 6, 11));
  EXPECT_TRUE(at::equal(restored->data, expected));
}

TEST(Crop, Errors) {
  EXPECT_EQ(NonzeroBoundingBox(at::zeros({3, 3, 3})).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(NonzeroBoundingBox(at::ones({3, 3, 3}), -1).status().code(), absl::StatusCode::kInvalidArgument);
  const Volume full = RampVolume({4, 4, 4}, IdentityAffine());
  BoundingBox outside;
  outside.begin = {0, 0, 0};
  outside.end = {5, 4, 4};
  EXPECT_EQ(Crop(full, outside).status().code(), absl::StatusCode::kInvalidArgument);
  BoundingBox box;
  box.begin = {1, 1, 1};
  box.end = {3, 3, 3};
  const absl::StatusOr<Volume> cropped = Crop(full, box);
  ASSERT_TRUE(cropped.ok());
  Volume moved = *cropped;
  moved.affine[0][3] += 1;  // not where the box says
  EXPECT_EQ(Uncrop(moved, box, full).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace segrel::volume
