// The NIfTI reader and writer against nibabel: voxel values, affines (sform / qform / fall-back precedence), data
// types and scaling, round trips, and the status of every kind of bad input.
//
// Expected numbers come from tests/fixtures/make_nifti_fixtures.py, which reads its files back with nibabel
// (img.affine, img.get_fdata()). Broken files are made here by patching the bytes of a valid fixture.
#include "core/io/nifti.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/volume/volume.h"
#include "tests/test_util.h"

namespace segrel::io {
namespace {

using segrel::testing::FixturePath;
using segrel::testing::ReadJson;
using segrel::testing::TestTempDir;
using volume::Affine;
using volume::Volume;

// The shared scans the real-file tests compare with nibabel; they are skipped where the directory is absent.
constexpr char kSharedData[] = "/work/shared/data";

// Tolerances.
// Voxel values are compared exactly: nibabel and segrel both compute value * slope + intercept in float64 from
// the same stored numbers, and the float32 tensor holds that result rounded once.
// Affines of the small fixtures: 1e-6 mm. sform entries are float32 in the file and read unchanged; qform
// affines are rebuilt from the float32 quaternion by nifticlib and nibabel with the same double formula, so they
// differ only by double rounding (~1e-15).
constexpr double kFixtureAffineTolerance = 1e-6;
// Affines of the real scans: 1e-4 mm, as agreed for this test; far below a voxel, above any rounding difference.
constexpr double kRealAffineTolerance = 1e-4;
// Sums over a real scan: relative 1e-6. Both sides add float32 values in float64, in different orders.
constexpr double kSumRelativeTolerance = 1e-6;
// Round trip through a grid without NIfTI geometry: 1e-5 mm. The writer stores the affine as float32 sform rows
// and as a float32 quaternion, so entries of about 1 to 100 keep ~7 significant digits.
constexpr double kWrittenAffineTolerance = 1e-5;

// NIfTI-1 header layout (nifti1.h): byte offsets of the fields the broken-file tests patch.
constexpr size_t kDimOffset = 40;         // int16[8]
constexpr size_t kDatatypeOffset = 70;    // int16
constexpr size_t kBitpixOffset = 72;      // int16
constexpr size_t kPixdimOffset = 76;      // float32[8]
constexpr size_t kVoxOffsetOffset = 108;  // float32
constexpr size_t kSclSlopeOffset = 112;   // float32
constexpr size_t kSclInterOffset = 116;   // float32
constexpr size_t kQformCodeOffset = 252;  // int16
constexpr size_t kSformCodeOffset = 254;  // int16
constexpr size_t kSrowOffset = 280;       // float32[3][4]: srow_x, srow_y, srow_z
// NIfTI-2 header layout (nifti2.h).
constexpr size_t kNifti2DimOffset = 16;  // int64[8]

// --- Files and bytes -------------------------------------------------------------------------------------------

std::string NiftiFixture(const std::string& name) { return FixturePath("nifti/" + name); }

std::vector<char> ReadBytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  EXPECT_TRUE(file.good()) << "cannot read " << path;
  return std::vector<char>((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
}

std::string WriteBytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream file(path, std::ios::binary);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EXPECT_TRUE(file.good()) << "cannot write " << path;
  return path;
}

// Writes the first `size` bytes of `bytes` to `path`.
std::string WritePrefix(const std::string& path, const std::vector<char>& bytes, size_t size) {
  return WriteBytes(path, std::vector<char>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(size)));
}

template <typename T>
void Put(std::vector<char>& bytes, size_t offset, T value) {
  ASSERT_LE(offset + sizeof(T), bytes.size());
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

template <typename T>
T Get(const std::vector<char>& bytes, size_t offset) {
  T value{};
  EXPECT_LE(offset + sizeof(T), bytes.size());
  if (offset + sizeof(T) <= bytes.size()) std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

// voxel_order.nii: uncompressed little-endian NIfTI-1, float32 5x4x3, value 100 i + 10 j + k, sform and qform
// code 1, data at byte 352. The base of the broken files.
constexpr int64_t kOrderSizes[3] = {5, 4, 3};
constexpr size_t kOrderDataOffset = 352;

std::vector<char> VoxelOrderBytes() {
  std::vector<char> bytes = ReadBytes(NiftiFixture("voxel_order.nii"));
  EXPECT_EQ(bytes.size(), kOrderDataOffset + 60 * sizeof(float));
  return bytes;
}

// The float32 voxel at (i, j, k) of voxel_order.nii's bytes (x fastest).
size_t OrderVoxelOffset(int64_t i, int64_t j, int64_t k) {
  return kOrderDataOffset + sizeof(float) * static_cast<size_t>(i + kOrderSizes[0] * (j + kOrderSizes[1] * k));
}

NiftiReadOptions Limit(int64_t max_bytes) {
  NiftiReadOptions options;
  options.max_bytes = max_bytes;
  return options;
}

// --- Expectations ----------------------------------------------------------------------------------------------

const nlohmann::json& ExpectedFixtures() {
  static const nlohmann::json* const expected = new nlohmann::json(ReadJson("nifti/expected.json"));
  return *expected;
}

Affine AffineFromJson(const nlohmann::json& rows) {
  Affine affine{};
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) affine[r][c] = rows.at(r).at(c).get<double>();
  }
  return affine;
}

void ExpectAffineNear(const Affine& actual, const Affine& expected, double tolerance) {
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      EXPECT_NEAR(actual[r][c], expected[r][c], tolerance) << "affine[" << r << "][" << c << "]";
    }
  }
}

// nibabel's get_fdata() of a fixture, rounded once to float32, in the fixture's shape ([i, j, k(, t)]).
at::Tensor ExpectedValues(const nlohmann::json& fixture) {
  const std::vector<double> values = fixture.at("values").get<std::vector<double>>();
  at::Tensor tensor = at::empty({static_cast<int64_t>(values.size())}, at::kFloat);
  for (size_t n = 0; n < values.size(); ++n) tensor[n] = static_cast<float>(values[n]);
  return tensor.reshape(fixture.at("shape").get<std::vector<int64_t>>());
}

// A status with `code` whose message names `path`.
void ExpectError(const absl::Status& status, absl::StatusCode code, const std::string& path) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_NE(status.message().find(path), absl::string_view::npos)
      << "the message does not name " << path << ": " << status;
}

void ExpectMessageHas(const absl::Status& status, const std::string& text) {
  EXPECT_NE(status.message().find(text), absl::string_view::npos) << "no \"" << text << "\" in: " << status;
}

// Reads a fixture and checks it against nibabel: shape, every voxel, affine, codes and spacing.
void ExpectMatchesNibabel(const std::string& key) {
  SCOPED_TRACE(key);
  const nlohmann::json& fixture = ExpectedFixtures().at(key);
  const std::string path = NiftiFixture(fixture.at("file").get<std::string>());
  const absl::StatusOr<Volume> volume = ReadNifti(path);
  ASSERT_TRUE(volume.ok()) << volume.status();

  const at::Tensor expected = ExpectedValues(fixture);
  EXPECT_EQ(volume->data.scalar_type(), at::kFloat);
  ASSERT_EQ(volume->data.sizes(), expected.sizes());
  EXPECT_TRUE(at::equal(volume->data, expected))
      << "largest difference " << (volume->data - expected).abs().max().item<float>();
  ExpectAffineNear(volume->affine, AffineFromJson(fixture.at("affine")), kFixtureAffineTolerance);
  EXPECT_EQ(volume->source, path);
  ASSERT_TRUE(volume->nifti.has_value());
  EXPECT_EQ(volume->nifti->sform_code, fixture.at("sform_code").get<int>());
  EXPECT_EQ(volume->nifti->qform_code, fixture.at("qform_code").get<int>());
  const std::vector<double> zooms = fixture.at("zooms").get<std::vector<double>>();
  for (int d = 0; d < 3; ++d) EXPECT_DOUBLE_EQ(volume->nifti->spacing[d], zooms[d]) << "pixdim[" << d + 1 << "]";
}

// --- Real scans ------------------------------------------------------------------------------------------------

// Where a scan listed in real_files.json lies.
std::string RealFilePath(const nlohmann::json& entry) {
  return std::string(kSharedData) + "/" + entry.at("path").get<std::string>();
}

absl::StatusOr<Volume> ReadRealFile(const nlohmann::json& entry) { return ReadNifti(RealFilePath(entry)); }

void ExpectRealFileMatchesNibabel(const std::string& key) {
  const nlohmann::json entry = ReadJson("nifti/real_files.json").at(key);
  const absl::StatusOr<Volume> volume = ReadRealFile(entry);
  ASSERT_TRUE(volume.ok()) << volume.status();
  ASSERT_EQ(volume->data.sizes().vec(), entry.at("shape").get<std::vector<int64_t>>());
  ExpectAffineNear(volume->affine, AffineFromJson(entry.at("affine")), kRealAffineTolerance);

  const at::Tensor values = volume->data.to(at::kDouble);
  const double sum = values.sum().item<double>();
  const double sum_of_squares = (values * values).sum().item<double>();
  const double expected_sum = entry.at("sum").get<double>();
  const double expected_squares = entry.at("sum_of_squares").get<double>();
  EXPECT_NEAR(sum, expected_sum, kSumRelativeTolerance * std::abs(expected_sum));
  EXPECT_NEAR(sum_of_squares, expected_squares, kSumRelativeTolerance * expected_squares);

  const auto accessor = volume->data.accessor<float, 3>();
  for (const nlohmann::json& voxel : entry.at("voxels")) {
    const std::vector<int64_t> ijk = voxel.at("ijk").get<std::vector<int64_t>>();
    EXPECT_EQ(accessor[ijk[0]][ijk[1]][ijk[2]], static_cast<float>(voxel.at("value").get<double>()))
        << "voxel (" << ijk[0] << ", " << ijk[1] << ", " << ijk[2] << ")";
  }
}

TEST(ReadNifti, MatchesNibabelOnMsLesjakFlair) {
  const std::string path = RealFilePath(ReadJson("nifti/real_files.json").at("flair"));
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
  ExpectRealFileMatchesNibabel("flair");
}

TEST(ReadNifti, MatchesNibabelOnBratsT1c) {
  const std::string path = RealFilePath(ReadJson("nifti/real_files.json").at("t1c"));
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
  ExpectRealFileMatchesNibabel("t1c");
}

TEST(ReadNifti, CountsGoldStandardLesionVoxels) {
  const nlohmann::json entry = ReadJson("nifti/real_files.json").at("gold_standard");
  if (!std::filesystem::exists(RealFilePath(entry))) GTEST_SKIP() << "no " << RealFilePath(entry);
  const absl::StatusOr<Volume> volume = ReadRealFile(entry);
  ASSERT_TRUE(volume.ok()) << volume.status();
  ASSERT_EQ(volume->data.sizes().vec(), entry.at("shape").get<std::vector<int64_t>>());
  EXPECT_EQ(entry.at("non_zero").get<int64_t>(), 49769);  // the count stated for patient19's mask
  EXPECT_EQ(volume->data.ne(0).sum().item<int64_t>(), 49769);
  EXPECT_EQ(volume->data.eq(1).sum().item<int64_t>(), 49769);  // a binary mask: its ones are its non-zeros
}

// --- Data types, layouts and scaling -----------------------------------------------------------------------------

class ReadNiftiFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(ReadNiftiFixture, MatchesNibabel) { ExpectMatchesNibabel(GetParam()); }

INSTANTIATE_TEST_SUITE_P(DataTypesAndLayouts, ReadNiftiFixture,
                         ::testing::Values("uint8", "int8", "uint16", "int16_scaled", "int16_big_endian", "int32",
                                           "float64", "nifti2", "voxel_order", "four_d"));

TEST(ReadNifti, AppliesSlopeAndIntercept) {
  // int16_scaled.nii.gz holds raw = 97 (100 i + 10 j + k) - 20000 with scl_slope 2.5 and scl_inter -3.
  const absl::StatusOr<Volume> volume = ReadNifti(NiftiFixture("int16_scaled.nii.gz"));
  ASSERT_TRUE(volume.ok()) << volume.status();
  const auto values = volume->data.accessor<float, 3>();
  for (int64_t i = 0; i < 5; ++i) {
    for (int64_t j = 0; j < 4; ++j) {
      for (int64_t k = 0; k < 3; ++k) {
        const double raw = 97.0 * static_cast<double>(100 * i + 10 * j + k) - 20000.0;
        EXPECT_EQ(values[i][j][k], static_cast<float>(raw * 2.5 - 3.0)) << i << "," << j << "," << k;
      }
    }
  }
}

TEST(ReadNifti, ZeroOrNonFiniteSlopeMeansUnscaled) {
  // As nibabel: a slope of 0 or NaN turns the scaling off, intercept included.
  const std::string dir = TestTempDir();
  const absl::StatusOr<Volume> original = ReadNifti(NiftiFixture("voxel_order.nii"));
  ASSERT_TRUE(original.ok()) << original.status();
  for (const float slope : {0.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    SCOPED_TRACE(slope);
    std::vector<char> bytes = VoxelOrderBytes();
    Put<float>(bytes, kSclSlopeOffset, slope);
    Put<float>(bytes, kSclInterOffset, 5.0f);
    const absl::StatusOr<Volume> volume = ReadNifti(WriteBytes(dir + "/unscaled.nii", bytes));
    ASSERT_TRUE(volume.ok()) << volume.status();
    EXPECT_TRUE(at::equal(volume->data, original->data));
  }
}

TEST(ReadNifti, NonFiniteInterceptWithSlopeIsInvalidArgument) {
  // nibabel refuses such a header ("Valid slope but invalid intercept").
  std::vector<char> bytes = VoxelOrderBytes();
  Put<float>(bytes, kSclSlopeOffset, 2.0f);
  Put<float>(bytes, kSclInterOffset, std::numeric_limits<float>::infinity());
  const std::string path = WriteBytes(TestTempDir() + "/bad_intercept.nii", bytes);
  ExpectError(ReadNifti(path).status(), absl::StatusCode::kInvalidArgument, path);
}

TEST(ReadNifti, VoxelOrderIsIJK) {
  const absl::StatusOr<Volume> volume = ReadNifti(NiftiFixture("voxel_order.nii"));
  ASSERT_TRUE(volume.ok()) << volume.status();
  ASSERT_EQ(volume->data.sizes(), at::IntArrayRef({5, 4, 3}));
  const auto values = volume->data.accessor<float, 3>();
  for (int64_t i = 0; i < 5; ++i) {
    for (int64_t j = 0; j < 4; ++j) {
      for (int64_t k = 0; k < 3; ++k) EXPECT_EQ(values[i][j][k], 100 * i + 10 * j + k) << i << "," << j << "," << k;
    }
  }
}

TEST(ReadNifti, FourDimensionalIsIJKT) {
  const absl::StatusOr<Volume> volume = ReadNifti(NiftiFixture("four_d.nii.gz"));
  ASSERT_TRUE(volume.ok()) << volume.status();
  ASSERT_EQ(volume->data.sizes(), at::IntArrayRef({5, 4, 3, 2}));
  EXPECT_EQ(volume->SpatialSizes(), (std::array<int64_t, 3>{5, 4, 3}));
  const auto values = volume->data.accessor<float, 4>();
  for (int64_t i = 0; i < 5; ++i) {
    for (int64_t j = 0; j < 4; ++j) {
      for (int64_t k = 0; k < 3; ++k) {
        for (int64_t t = 0; t < 2; ++t) {
          EXPECT_EQ(values[i][j][k][t], 1000 * t + 100 * i + 10 * j + k) << i << "," << j << "," << k << "," << t;
        }
      }
    }
  }
}

TEST(ReadNifti, SingletonTrailingDimensionsAreDropped) {
  // dim = {5, 5, 4, 3, 1, 1}: a 5-D header whose 4th and 5th sizes are 1 holds a 3-D image.
  std::vector<char> bytes = VoxelOrderBytes();
  Put<int16_t>(bytes, kDimOffset, 5);
  Put<int16_t>(bytes, kDimOffset + 2 * 4, 1);
  Put<int16_t>(bytes, kDimOffset + 2 * 5, 1);
  const absl::StatusOr<Volume> volume = ReadNifti(WriteBytes(TestTempDir() + "/five_d.nii", bytes));
  ASSERT_TRUE(volume.ok()) << volume.status();
  EXPECT_EQ(volume->data.sizes(), at::IntArrayRef({5, 4, 3}));
}

TEST(ReadNifti, FiveDimensionalImageIsInvalidArgument) {
  // dim[5] = 2 is a real fifth dimension; dim[5] = 0 is no size at all (nifticlib alone would read it as 1).
  const std::string dir = TestTempDir();
  for (const int16_t fifth : {2, 0}) {
    SCOPED_TRACE(fifth);
    std::vector<char> bytes = VoxelOrderBytes();
    Put<int16_t>(bytes, kDimOffset, 5);
    Put<int16_t>(bytes, kDimOffset + 2 * 4, 1);
    Put<int16_t>(bytes, kDimOffset + 2 * 5, fifth);
    bytes.resize(kOrderDataOffset + std::max<int16_t>(fifth, 1) * 60 * sizeof(float), 0);
    const std::string path = WriteBytes(dir + "/five_d_" + std::to_string(fifth) + ".nii", bytes);
    const absl::Status status = ReadNifti(path).status();
    ExpectError(status, absl::StatusCode::kInvalidArgument, path);
    ExpectMessageHas(status, "5-D");
  }
}

// --- Affine precedence ---------------------------------------------------------------------------------------------

TEST(ReadNifti, SformWinsWhenBothCodesArePositive) {
  const nlohmann::json& fixture = ExpectedFixtures().at("sform_and_qform");
  ASSERT_GT(fixture.at("sform_code").get<int>(), 0);
  ASSERT_GT(fixture.at("qform_code").get<int>(), 0);
  ExpectMatchesNibabel("sform_and_qform");
  // The qform of this file has 2 x 3 x 4 mm voxels (pixdim); the sform, and so the affine, 1.5 x 2 x 2.5 mm.
  const absl::StatusOr<Volume> volume = ReadNifti(NiftiFixture("sform_and_qform.nii.gz"));
  ASSERT_TRUE(volume.ok()) << volume.status();
  EXPECT_EQ(volume->nifti->spacing, (std::array<double, 3>{2, 3, 4}));
  EXPECT_DOUBLE_EQ(volume->affine[0][0], -1.5);
  EXPECT_DOUBLE_EQ(volume->affine[1][1], 2.0);
  EXPECT_DOUBLE_EQ(volume->affine[2][2], 2.5);
}

TEST(ReadNifti, QformWhenSformCodeIsZero) {
  const nlohmann::json& fixture = ExpectedFixtures().at("qform_only");
  ASSERT_EQ(fixture.at("sform_code").get<int>(), 0);
  ASSERT_GT(fixture.at("qform_code").get<int>(), 0);
  ExpectMatchesNibabel("qform_only");
}

TEST(ReadNifti, NibabelFallbackWhenBothCodesAreZero) {
  const nlohmann::json& fixture = ExpectedFixtures().at("no_xform");
  ASSERT_EQ(fixture.at("sform_code").get<int>(), 0);
  ASSERT_EQ(fixture.at("qform_code").get<int>(), 0);
  ExpectMatchesNibabel("no_xform");
  // nibabel's header.get_base_affine() for 5x4x3 voxels of 2 x 3 x 4 mm: x flipped, centred on the grid.
  const Affine expected = {{{-2, 0, 0, 4}, {0, 3, 0, -4.5}, {0, 0, 4, -4}, {0, 0, 0, 1}}};
  ExpectAffineNear(ReadNifti(NiftiFixture("no_xform.nii.gz")).value().affine, expected, 0.0);
}

// Patches voxel_order.nii to have no sform, so that pixdim decides the affine, with `pixdim` as pixdim[1..3].
std::vector<char> WithoutSform(float pixdim_x, float pixdim_y, float pixdim_z, int16_t qform_code) {
  std::vector<char> bytes = VoxelOrderBytes();
  Put<int16_t>(bytes, kSformCodeOffset, 0);
  Put<int16_t>(bytes, kQformCodeOffset, qform_code);
  Put<float>(bytes, kPixdimOffset + 4, pixdim_x);
  Put<float>(bytes, kPixdimOffset + 8, pixdim_y);
  Put<float>(bytes, kPixdimOffset + 12, pixdim_z);
  return bytes;
}

TEST(ReadNifti, NonPositiveSpacingIsInvalidArgument) {
  // Where pixdim gives the affine (qform or fall-back), a zero or negative spacing is refused, as documented.
  // (nibabel would silently take |pixdim| and turn 0 into 1; nifticlib's qform turns both into 1.)
  const std::string dir = TestTempDir();
  struct Case {
    const char* name;
    float x, y, z;
    int16_t qform_code;
  };
  for (const Case& c : {Case{"negative_fallback", -2, 3, 4, 0}, Case{"zero_fallback", 2, 0, 4, 0},
                        Case{"negative_qform", 2, 3, -4, 1}, Case{"zero_qform", 0, 3, 4, 1}}) {
    SCOPED_TRACE(c.name);
    const std::string path = WriteBytes(dir + "/" + c.name + ".nii", WithoutSform(c.x, c.y, c.z, c.qform_code));
    ExpectError(ReadNifti(path).status(), absl::StatusCode::kInvalidArgument, path);
  }
}

TEST(ReadNifti, DegenerateSformIsInvalidArgument) {
  std::vector<char> bytes = VoxelOrderBytes();
  for (int row = 0; row < 3; ++row) Put<float>(bytes, kSrowOffset + 16 * row, 0.0f);  // column 0 of the sform
  const std::string path = WriteBytes(TestTempDir() + "/zero_column.nii", bytes);
  ExpectError(ReadNifti(path).status(), absl::StatusCode::kInvalidArgument, path);
}

// --- Bad input -----------------------------------------------------------------------------------------------------

TEST(ReadNifti, MissingFileIsNotFound) {
  const std::string path = TestTempDir() + "/no_such_file.nii.gz";
  ExpectError(ReadNifti(path).status(), absl::StatusCode::kNotFound, path);
}

TEST(ReadNifti, DirectoryIsNotFound) {
  const std::string path = TestTempDir();
  ExpectError(ReadNifti(path).status(), absl::StatusCode::kNotFound, path);
}

TEST(ReadNifti, NotNiftiIsInvalidArgument) {
  const std::string dir = TestTempDir();
  std::vector<char> random(4096);
  uint32_t state = 12345;  // a fixed linear congruential sequence: the same "random" bytes every run
  for (char& byte : random) {
    state = state * 1664525u + 1013904223u;
    byte = static_cast<char>(state >> 24);
  }
  const std::string text = "This is a text file, not a NIfTI image.\n";
  const std::vector<std::string> paths = {
      WriteBytes(dir + "/random.nii", random),
      WriteBytes(dir + "/random.nii.gz", random),
      WriteBytes(dir + "/text.nii", std::vector<char>(text.begin(), text.end())),
      WriteBytes(dir + "/empty.nii", {}),
  };
  for (const std::string& path : paths) {
    SCOPED_TRACE(path);
    ExpectError(ReadNifti(path).status(), absl::StatusCode::kInvalidArgument, path);
  }
}

TEST(ReadNifti, TruncatedNiiIsInvalidArgument) {
  const std::vector<char> bytes = VoxelOrderBytes();
  const std::string dir = TestTempDir();
  // Cut inside the voxel data, right after the header, and inside the header.
  for (const size_t size : {bytes.size() - 1, bytes.size() / 2 + 200, kOrderDataOffset, size_t{200}}) {
    SCOPED_TRACE(size);
    const std::string path = WritePrefix(dir + "/cut_" + std::to_string(size) + ".nii", bytes, size);
    ExpectError(ReadNifti(path).status(), absl::StatusCode::kInvalidArgument, path);
  }
}

TEST(ReadNifti, TruncatedNiiGzIsInvalidArgument) {
  // A volume of noise does not compress: half the .nii.gz holds the header and about half the voxels.
  const std::string dir = TestTempDir();
  Volume grid;
  grid.data = at::zeros({40, 40, 40}, at::kFloat);
  const at::Tensor noise = at::rand({40, 40, 40}, at::make_generator<at::CPUGeneratorImpl>(/*seed_in=*/7));
  const std::string whole = dir + "/noise.nii.gz";
  ASSERT_TRUE(WriteNifti(whole, noise, NiftiDataType::kFloat32, grid).ok());
  ASSERT_TRUE(ReadNifti(whole).ok());
  const std::vector<char> bytes = ReadBytes(whole);
  ASSERT_GT(bytes.size(), 40u * 40 * 40 * 4 / 2);
  for (const size_t size : {bytes.size() / 2, bytes.size() - 16, size_t{100}}) {
    SCOPED_TRACE(size);
    const std::string path = WritePrefix(dir + "/cut_" + std::to_string(size) + ".nii.gz", bytes, size);
    ExpectError(ReadNifti(path).status(), absl::StatusCode::kInvalidArgument, path);
  }
}

TEST(ReadNifti, NonPositiveDimensionIsInvalidArgument) {
  const std::string dir = TestTempDir();
  for (const auto& [d, size] : {std::pair<int, int16_t>{2, 0}, {1, -5}, {3, -1}}) {
    SCOPED_TRACE(::testing::Message() << "dim[" << d << "] = " << size);
    std::vector<char> bytes = VoxelOrderBytes();
    Put<int16_t>(bytes, kDimOffset + 2 * d, size);
    const std::string path = WriteBytes(dir + "/dim" + std::to_string(d) + ".nii", bytes);
    ExpectError(ReadNifti(path).status(), absl::StatusCode::kInvalidArgument, path);
  }
}

TEST(ReadNifti, AbsurdNifti1DimensionsAreResourceExhausted) {
  // 30000^3 voxels (108 TB as float32) in a 592-byte file. Had the reader tried to load it, it would have failed
  // to allocate or found the file truncated (InvalidArgument), not ResourceExhausted.
  std::vector<char> bytes = VoxelOrderBytes();
  for (int d = 1; d <= 3; ++d) Put<int16_t>(bytes, kDimOffset + 2 * d, 30000);
  const std::string path = WriteBytes(TestTempDir() + "/huge.nii", bytes);
  ExpectError(ReadNifti(path).status(), absl::StatusCode::kResourceExhausted, path);
  ExpectError(ReadNifti(path, Limit(1 << 20)).status(), absl::StatusCode::kResourceExhausted, path);
}

TEST(ReadNifti, AbsurdNifti2DimensionsAreResourceExhausted) {
  const std::string dir = TestTempDir();
  for (const int64_t size : {int64_t{100000}, int64_t{1} << 40}) {  // 1e15 voxels; 2^120 overflows int64
    SCOPED_TRACE(size);
    std::vector<char> bytes = ReadBytes(NiftiFixture("nifti2.nii"));
    ASSERT_EQ(Get<int32_t>(bytes, 0), 540);
    for (int d = 1; d <= 3; ++d) Put<int64_t>(bytes, kNifti2DimOffset + 8 * d, size);
    const std::string path = WriteBytes(dir + "/huge_" + std::to_string(size) + ".nii", bytes);
    ExpectError(ReadNifti(path, Limit(1 << 20)).status(), absl::StatusCode::kResourceExhausted, path);
  }
}

TEST(ReadNifti, MaxBytesIsAnUpperBound) {
  // voxel_order.nii: 60 voxels, 240 bytes as float32. A header over the limit is refused before any data is read,
  // so the 512x512x2 header (4 MiB) on a 592-byte file is ResourceExhausted, not "truncated".
  const std::string path = NiftiFixture("voxel_order.nii");
  EXPECT_TRUE(ReadNifti(path, Limit(240)).ok());
  ExpectError(ReadNifti(path, Limit(239)).status(), absl::StatusCode::kResourceExhausted, path);

  std::vector<char> bytes = VoxelOrderBytes();
  Put<int16_t>(bytes, kDimOffset + 2, 512);
  Put<int16_t>(bytes, kDimOffset + 4, 512);
  Put<int16_t>(bytes, kDimOffset + 6, 2);
  const std::string large = WriteBytes(TestTempDir() + "/large.nii", bytes);
  ExpectError(ReadNifti(large, Limit(1 << 20)).status(), absl::StatusCode::kResourceExhausted, large);
  ExpectError(ReadNifti(large).status(), absl::StatusCode::kInvalidArgument, large);  // within 8 GiB: truncated
}

TEST(ReadNifti, NonFiniteVoxelsAreInvalidArgument) {
  std::vector<char> bytes = VoxelOrderBytes();
  Put<float>(bytes, OrderVoxelOffset(0, 0, 0), std::numeric_limits<float>::quiet_NaN());
  Put<float>(bytes, OrderVoxelOffset(4, 3, 2), std::numeric_limits<float>::infinity());
  Put<float>(bytes, OrderVoxelOffset(2, 1, 0), -std::numeric_limits<float>::infinity());
  const std::string path = WriteBytes(TestTempDir() + "/non_finite.nii", bytes);
  const absl::Status status = ReadNifti(path).status();
  ExpectError(status, absl::StatusCode::kInvalidArgument, path);
  ExpectMessageHas(status, "3 voxels");
}

TEST(ReadNifti, UnsupportedDataTypeIsInvalidArgument) {
  // Each header is consistent (bitpix and data size match the type), so only the type itself can be refused.
  struct Case {
    const char* name;
    int16_t datatype;
    int16_t bitpix;
  };
  const std::string dir = TestTempDir();
  for (const Case& c : {Case{"COMPLEX64", 32, 64}, Case{"RGB24", 128, 24}, Case{"RGBA32", 2304, 32}}) {
    SCOPED_TRACE(c.name);
    std::vector<char> bytes = VoxelOrderBytes();
    Put<int16_t>(bytes, kDatatypeOffset, c.datatype);
    Put<int16_t>(bytes, kBitpixOffset, c.bitpix);
    bytes.resize(kOrderDataOffset + 60 * c.bitpix / 8, 1);
    const std::string path = WriteBytes(dir + "/" + c.name + ".nii", bytes);
    const absl::Status status = ReadNifti(path).status();
    ExpectError(status, absl::StatusCode::kInvalidArgument, path);
    ExpectMessageHas(status, c.name);
  }
}

TEST(ReadNifti, VoxOffsetBeyondTheFileIsInvalidArgument) {
  std::vector<char> bytes = VoxelOrderBytes();
  Put<float>(bytes, kVoxOffsetOffset, 4096.0f);
  const std::string path = WriteBytes(TestTempDir() + "/far_offset.nii", bytes);
  ExpectError(ReadNifti(path).status(), absl::StatusCode::kInvalidArgument, path);
}

// --- Writing ---------------------------------------------------------------------------------------------------------

Volume ReadFixture(const std::string& name) {
  absl::StatusOr<Volume> volume = ReadNifti(NiftiFixture(name));
  EXPECT_TRUE(volume.ok()) << volume.status();
  return volume.ok() ? *std::move(volume) : Volume{};
}

// Values that are not integers and of both signs, and that no transposition of a 5x4x3 grid maps onto themselves.
at::Tensor FloatPattern(const std::array<int64_t, 3>& sizes) {
  return at::arange(sizes[0] * sizes[1] * sizes[2], at::kFloat).reshape({sizes[0], sizes[1], sizes[2]}) * 0.37f - 7.25f;
}

// Writes `data` on `grid` to `path`, reads the file back and checks that the voxels are unchanged.
Volume WriteAndReadBack(const std::string& path, const at::Tensor& data, NiftiDataType type, const Volume& grid) {
  const absl::Status written = WriteNifti(path, data, type, grid);
  EXPECT_TRUE(written.ok()) << written;
  absl::StatusOr<Volume> read_back = ReadNifti(path);
  EXPECT_TRUE(read_back.ok()) << read_back.status();
  if (!read_back.ok()) return Volume{};
  EXPECT_TRUE(at::equal(read_back->data, data.to(at::kFloat)));
  return *std::move(read_back);
}

void ExpectSameGeometry(const Volume& read_back, const Volume& grid) {
  ExpectAffineNear(read_back.affine, grid.affine, 0.0);  // the same float32 header fields, written back unchanged
  ASSERT_TRUE(read_back.nifti.has_value());
  ASSERT_TRUE(grid.nifti.has_value());
  EXPECT_EQ(read_back.nifti->sform_code, grid.nifti->sform_code);
  EXPECT_EQ(read_back.nifti->qform_code, grid.nifti->qform_code);
  EXPECT_EQ(read_back.nifti->spacing, grid.nifti->spacing);
  EXPECT_EQ(read_back.nifti->qfac, grid.nifti->qfac);
  EXPECT_EQ(read_back.nifti->quatern_b, grid.nifti->quatern_b);
  EXPECT_EQ(read_back.nifti->quatern_c, grid.nifti->quatern_c);
  EXPECT_EQ(read_back.nifti->quatern_d, grid.nifti->quatern_d);
  EXPECT_EQ(read_back.nifti->xyz_units, grid.nifti->xyz_units);
  if (grid.nifti->sform_code > 0) ExpectAffineNear(read_back.nifti->sform, grid.nifti->sform, 0.0);
}

TEST(WriteNifti, Float32RoundTripKeepsTheGrid) {
  const std::string dir = TestTempDir();
  for (const std::string grid_name :
       {"sform_and_qform.nii.gz", "qform_only.nii.gz", "no_xform.nii.gz", "nifti2.nii", "int16_big_endian.nii.gz"}) {
    const Volume grid = ReadFixture(grid_name);
    const at::Tensor data = FloatPattern(grid.SpatialSizes());
    for (const std::string extension : {".nii", ".nii.gz"}) {
      SCOPED_TRACE(grid_name + " -> " + extension);
      const std::string path = dir + "/" + grid_name + ".out" + extension;
      ExpectSameGeometry(WriteAndReadBack(path, data, NiftiDataType::kFloat32, grid), grid);
    }
  }
}

TEST(WriteNifti, UInt8RoundTrip) {
  const std::string dir = TestTempDir();
  const Volume grid = ReadFixture("qform_only.nii.gz");
  // Every byte value appears; the writer converts any numeric type (here int64) to uint8.
  const at::Tensor mask = (at::arange(60, at::kLong) * 37 % 256).reshape({5, 4, 3});
  for (const std::string extension : {".nii", ".nii.gz"}) {
    SCOPED_TRACE(extension);
    ExpectSameGeometry(WriteAndReadBack(dir + "/mask" + extension, mask, NiftiDataType::kUInt8, grid), grid);
  }
}

TEST(WriteNifti, StoresTheRequestedTypeAndCompression) {
  const std::string dir = TestTempDir();
  const Volume grid = ReadFixture("voxel_order.nii");
  const at::Tensor data = FloatPattern(grid.SpatialSizes());
  struct Case {
    NiftiDataType type;
    int16_t datatype, bitpix;
  };
  for (const Case& c : {Case{NiftiDataType::kUInt8, 2, 8}, Case{NiftiDataType::kFloat32, 16, 32}}) {
    SCOPED_TRACE(c.datatype);
    ASSERT_TRUE(WriteNifti(dir + "/plain.nii", data.abs(), c.type, grid).ok());
    const std::vector<char> bytes = ReadBytes(dir + "/plain.nii");
    EXPECT_EQ(Get<int32_t>(bytes, 0), 348);  // a NIfTI-1 header, uncompressed
    EXPECT_EQ(std::string(bytes.data() + 344, 4), std::string("n+1\0", 4));
    EXPECT_EQ(Get<int16_t>(bytes, kDatatypeOffset), c.datatype);
    EXPECT_EQ(Get<int16_t>(bytes, kBitpixOffset), c.bitpix);
    EXPECT_EQ(bytes.size(), static_cast<size_t>(Get<float>(bytes, kVoxOffsetOffset)) + 60 * c.bitpix / 8);

    ASSERT_TRUE(WriteNifti(dir + "/packed.nii.gz", data.abs(), c.type, grid).ok());
    const std::vector<char> packed = ReadBytes(dir + "/packed.nii.gz");
    ASSERT_GE(packed.size(), 2u);
    EXPECT_EQ(static_cast<uint8_t>(packed[0]), 0x1f);  // the gzip magic number
    EXPECT_EQ(static_cast<uint8_t>(packed[1]), 0x8b);
  }
}

TEST(WriteNifti, GridWithoutNiftiGeometryKeepsItsAffine) {
  // A rotation about an oblique axis, a reflection and 0.8 x 1.25 x 2.5 mm voxels; no NIfTI header fields.
  const double c = std::cos(0.5), s = std::sin(0.5);
  const double rotation[3][3] = {{c, -s, 0}, {s * 0.6, c * 0.6, -0.8}, {s * 0.8, c * 0.8, 0.6}};
  const double zooms[3] = {0.8, 1.25, -2.5};  // the negative zoom makes it left-handed (qfac = -1)
  Volume grid;
  grid.data = at::zeros({5, 4, 3}, at::kFloat);
  for (int r = 0; r < 3; ++r) {
    for (int col = 0; col < 3; ++col) grid.affine[r][col] = rotation[r][col] * zooms[col];
  }
  grid.affine[0][3] = 12.5;
  grid.affine[1][3] = -101.25;
  grid.affine[2][3] = 40.0;
  const at::Tensor data = FloatPattern(grid.SpatialSizes());

  const std::string dir = TestTempDir();
  const std::string path = dir + "/no_geometry.nii";
  const Volume read_back = WriteAndReadBack(path, data, NiftiDataType::kFloat32, grid);
  ExpectAffineNear(read_back.affine, grid.affine, kWrittenAffineTolerance);
  ASSERT_TRUE(read_back.nifti.has_value());
  EXPECT_GT(read_back.nifti->sform_code, 0);
  EXPECT_GT(read_back.nifti->qform_code, 0);
  EXPECT_EQ(read_back.nifti->qfac, -1.0);
  // Spacings are float32 in the file: 1e-6 is a few float32 rounding steps of values up to 2.5.
  for (int d = 0; d < 3; ++d) EXPECT_NEAR(read_back.nifti->spacing[d], std::abs(zooms[d]), 1e-6);

  // The qform alone gives the same affine: switch the sform off in the written file.
  std::vector<char> bytes = ReadBytes(path);
  Put<int16_t>(bytes, kSformCodeOffset, 0);
  const absl::StatusOr<Volume> from_qform = ReadNifti(WriteBytes(dir + "/qform_only.nii", bytes));
  ASSERT_TRUE(from_qform.ok()) << from_qform.status();
  ExpectAffineNear(from_qform->affine, grid.affine, kWrittenAffineTolerance);
}

TEST(WriteNifti, FourDimensionalGridTakesThreeDimensionalData) {
  const Volume grid = ReadFixture("four_d.nii.gz");
  const at::Tensor data = FloatPattern(grid.SpatialSizes());
  const Volume read_back = WriteAndReadBack(TestTempDir() + "/from_4d.nii.gz", data, NiftiDataType::kFloat32, grid);
  EXPECT_EQ(read_back.data.sizes(), at::IntArrayRef({5, 4, 3}));
  ExpectAffineNear(read_back.affine, grid.affine, 0.0);
}

TEST(WriteNifti, WrongSizesAreInvalidArgument) {
  const std::string dir = TestTempDir();
  const Volume grid = ReadFixture("voxel_order.nii");
  for (const at::Tensor& data :
       {at::zeros({5, 4, 2}), at::zeros({3, 4, 5}), at::zeros({5, 4, 2, 1}), at::zeros({5, 4}), at::zeros({60})}) {
    SCOPED_TRACE(::testing::Message() << data.sizes());
    const std::string path = dir + "/wrong.nii";
    ExpectError(WriteNifti(path, data, NiftiDataType::kFloat32, grid), absl::StatusCode::kInvalidArgument, path);
    EXPECT_FALSE(std::filesystem::exists(path));
  }
}

TEST(WriteNifti, MissingDirectoryIsInternal) {
  const Volume grid = ReadFixture("voxel_order.nii");
  const std::string path = TestTempDir() + "/no/such/directory/out.nii.gz";
  ExpectError(WriteNifti(path, grid.data, NiftiDataType::kFloat32, grid), absl::StatusCode::kInternal, path);
}

TEST(WriteNifti, NameWithoutNiftiExtensionIsInvalidArgument) {
  // nifticlib would append ".nii" and write another file than the one asked for.
  const std::string dir = TestTempDir();
  const Volume grid = ReadFixture("voxel_order.nii");
  const std::string path = dir + "/out.txt";
  ExpectError(WriteNifti(path, grid.data, NiftiDataType::kFloat32, grid), absl::StatusCode::kInvalidArgument, path);
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}

}  // namespace
}  // namespace segrel::io
