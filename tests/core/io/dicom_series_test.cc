// The DICOM series reader against dcm2niix (an independent reader) on every ProstateX series, and its
// behaviour on re-encoded, renamed, reordered and rescaled copies of real series.
//
// dcm2niix runs with `-x i` (do not rotate or crop 3-D acquisitions), `-b n` (no JSON sidecar) and `-z n`; its
// NIfTI is read with segrel's ReadNifti (which the NIfTI tests check against nibabel). With that, dcm2niix's
// voxel order is segrel's: i = DICOM column, j = DICOM row reversed, k = along the slice normal, t = images at
// one position by InstanceNumber.
#include "core/io/dicom_series.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/io/nifti.h"
#include "core/volume/volume.h"
#include "tests/core/io/dicom_test_util.h"
#include "tests/test_util.h"

namespace segrel::io {
namespace {

namespace fs = std::filesystem;
using segrel::testing::AllProstateXSeries;
using segrel::testing::CopySeries;
using segrel::testing::FilesIn;
using segrel::testing::ProstateXSeries;
using segrel::testing::Reencode;
using segrel::testing::RunDcm2niix;
using segrel::testing::SetTag;
using segrel::testing::SharedDataDir;
using segrel::testing::TestTempDir;

// Affines agree with dcm2niix to 1e-3 mm (the bound): dcm2niix stores its affine as float32 sform rows
// (~1e-5 relative, entries up to ~150 mm) and derives it from the same DS strings.
constexpr double kAffineToleranceMm = 1e-3;

double MaxAffineDifference(const volume::Affine& a, const volume::Affine& b) {
  double difference = 0;
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) difference = std::max(difference, std::abs(a[r][c] - b[r][c]));
  }
  return difference;
}

// Expects `ours` to equal dcm2niix's NIfTI of `series_dir`: same sizes, affine within 1e-3 mm, identical values.
void ExpectSameAsDcm2niix(const volume::Volume& ours, const std::string& series_dir, const std::string& out_dir) {
  const std::vector<std::string> written = RunDcm2niix(series_dir, out_dir, "-x i -b n -z n -f reference");
  ASSERT_EQ(written.size(), 1u) << "dcm2niix wrote " << written.size() << " NIfTI files for " << series_dir;
  const absl::StatusOr<volume::Volume> reference = ReadNifti(written.front());
  ASSERT_TRUE(reference.ok()) << reference.status();
  ASSERT_EQ(ours.data.sizes(), reference->data.sizes()) << series_dir;
  EXPECT_LE(MaxAffineDifference(ours.affine, reference->affine), kAffineToleranceMm) << series_dir;
  EXPECT_TRUE(at::equal(ours.data, reference->data)) << series_dir << ": voxel values differ, max |difference| "
                                                     << (ours.data - reference->data).abs().max().item<float>();
}

TEST(DicomSeries, AgreesWithDcm2niixOnEveryProstateXSeries) {
  SKIP_WITHOUT_SHARED_DATA();
  const std::vector<std::string> series_dirs = AllProstateXSeries();
  ASSERT_EQ(series_dirs.size(), 21u);  // 7 series of ProstateX-0000, 14 of ProstateX-0218
  const std::string temp = TestTempDir();
  int compared = 0;
  for (const std::string& dir : series_dirs) {
    SCOPED_TRACE(dir);
    const absl::StatusOr<DicomSeries> series = ReadDicomSeries(dir);
    ASSERT_TRUE(series.ok()) << series.status();
    ExpectSameAsDcm2niix(series->volume, dir, (fs::path(temp) / absl::StrCat(compared)).string());
    ++compared;
  }
  EXPECT_EQ(compared, 21);
}

TEST(DicomSeries, DiffusionSeriesIsFourDimensionalInInstanceOrder) {
  SKIP_WITHOUT_SHARED_DATA();
  // Series 8 of ProstateX-0218: 80 images, four b-values (0, 100, 400, 800) at each of 20 positions.
  const absl::StatusOr<DicomSeries> series = ReadDicomSeries(ProstateXSeries("ProstateX-0218", 8));
  ASSERT_TRUE(series.ok()) << series.status();
  EXPECT_EQ(series->volume.data.sizes(), at::IntArrayRef({160, 130, 20, 4}));
  EXPECT_EQ(series->info.volumes, 4);
  ASSERT_EQ(series->info.files.size(), 80u);
  // Volume t holds instances 20 t + 1 .. 20 t + 20 (files 1-01 .. 1-80 are named by instance number).
  EXPECT_EQ(fs::path(series->info.files[0]).filename(), "1-01.dcm");
  EXPECT_EQ(fs::path(series->info.files[20]).filename(), "1-21.dcm");
  EXPECT_EQ(fs::path(series->info.files[79]).filename(), "1-80.dcm");
}

TEST(DicomSeries, KeepsSeriesMetadataInSliceOrder) {
  SKIP_WITHOUT_SHARED_DATA();
  const std::string dir = ProstateXSeries("ProstateX-0218", 5);
  const absl::StatusOr<DicomSeries> series = ReadDicomSeries(dir);
  ASSERT_TRUE(series.ok()) << series.status();
  const DicomSeriesInfo& info = series->info;
  EXPECT_EQ(info.series_number, 5);
  EXPECT_EQ(info.series_description, "t2_tse_tra_320_p2");
  EXPECT_EQ(info.modality, "MR");
  EXPECT_EQ(info.sop_class_uid, "1.2.840.10008.5.1.4.1.1.4");
  EXPECT_EQ(info.image_type, std::vector<std::string>({"ORIGINAL", "PRIMARY", "M", "ND"}));
  EXPECT_EQ(info.echo_time, 101.0);
  EXPECT_EQ(info.repetition_time, 4000.0);
  EXPECT_EQ(info.flip_angle, 150.0);
  EXPECT_FALSE(info.trigger_time.has_value());
  EXPECT_FALSE(info.frame_of_reference_uid.empty());
  EXPECT_EQ(info.rows, 320);
  EXPECT_EQ(info.columns, 320);
  EXPECT_EQ(info.slices, 20);
  EXPECT_EQ(info.volumes, 1);
  EXPECT_EQ(info.pixel_spacing, (std::array<double, 2>{0.625, 0.625}));
  EXPECT_NEAR(info.slice_spacing, 3.6, 1e-6);
  ASSERT_EQ(info.files.size(), 20u);
  ASSERT_EQ(info.sop_instance_uids.size(), 20u);
  ASSERT_EQ(info.positions.size(), 20u);
  // Slice order: ascending along the normal (0, 0.3955, 0.9184) = row x column cosines (LPS).
  const std::array<double, 3> normal = {0.0, 0.3955455357214, 0.91844636706283};
  for (size_t k = 0; k + 1 < info.positions.size(); ++k) {
    double step = 0;
    for (int a = 0; a < 3; ++a) step += (info.positions[k + 1][a] - info.positions[k][a]) * normal[a];
    EXPECT_NEAR(step, 3.6, 1e-4) << "slice " << k;
  }
  for (size_t k = 0; k < info.files.size(); ++k) {
    EXPECT_EQ(segrel::testing::GetTag(info.files[k], "SOPInstanceUID"), info.sop_instance_uids[k]);
  }
}

TEST(DicomSeries, FolderGroupsSeriesRecursivelyInSeriesNumberOrder) {
  SKIP_WITHOUT_SHARED_DATA();
  const absl::StatusOr<DicomFolder> folder =
      ReadDicomFolder((fs::path(SharedDataDir()) / "prostatex-dicom" / "ProstateX-0218").string());
  ASSERT_TRUE(folder.ok()) << folder.status();
  EXPECT_TRUE(folder->failed.empty());
  EXPECT_TRUE(folder->notes.empty());
  EXPECT_EQ(folder->files, 340);
  std::vector<int64_t> numbers;
  for (const DicomSeries& s : folder->series) numbers.push_back(s.info.series_number.value_or(-1));
  EXPECT_EQ(numbers, std::vector<int64_t>({5, 8, 9, 10, 23, 24, 25, 26, 27, 30, 40, 54, 72, 96}));
}

// Copies series 27 (160x160x20) to `dir` with the files renamed at random into nested folders.
std::vector<std::string> CopyShuffled(const std::string& dir) {
  const std::vector<std::string> copies = CopySeries(ProstateXSeries("ProstateX-0218", 27), dir + "/flat");
  std::mt19937 random(7);
  std::vector<std::string> moved;
  for (size_t n = 0; n < copies.size(); ++n) {
    const fs::path target = fs::path(dir) / absl::StrCat("sub", random() % 3) / absl::StrCat("x", random());
    fs::create_directories(target.parent_path());
    fs::rename(copies[n], target);
    moved.push_back(target.string());
  }
  fs::remove(dir + "/flat");
  return moved;
}

TEST(DicomSeries, IgnoresFileNamesAndInstanceNumbers) {
  SKIP_WITHOUT_SHARED_DATA();
  const absl::StatusOr<DicomSeries> original = ReadDicomSeries(ProstateXSeries("ProstateX-0218", 27));
  ASSERT_TRUE(original.ok()) << original.status();
  const std::string dir = TestTempDir();
  const std::vector<std::string> files = CopyShuffled(dir);
  // Reverse the instance numbers too: the order must come from the positions alone.
  for (const std::string& file : files) {
    const int instance = std::stoi(segrel::testing::GetTag(file, "InstanceNumber"));
    SetTag(file, "InstanceNumber", absl::StrCat(100 - instance));
  }
  const absl::StatusOr<DicomSeries> shuffled = ReadDicomSeries(dir);
  ASSERT_TRUE(shuffled.ok()) << shuffled.status();
  EXPECT_TRUE(at::equal(shuffled->volume.data, original->volume.data));
  EXPECT_EQ(shuffled->volume.affine, original->volume.affine);
  EXPECT_EQ(shuffled->info.sop_instance_uids, original->info.sop_instance_uids);
}

// Each lossless transfer syntax DCMTK decodes gives exactly the voxels of the uncompressed files.
TEST(DicomSeries, DecodesLosslessTransferSyntaxes) {
  SKIP_WITHOUT_SHARED_DATA();
  const std::string source = ProstateXSeries("ProstateX-0218", 27);
  const absl::StatusOr<DicomSeries> original = ReadDicomSeries(source);
  ASSERT_TRUE(original.ok()) << original.status();
  const std::vector<std::pair<std::string, std::string>> syntaxes = {
      {"1.2.840.10008.1.2", "implicit VR little endian"},
      {"1.2.840.10008.1.2.2", "explicit VR big endian"},
      {"1.2.840.10008.1.2.1.99", "deflated explicit VR little endian"},
      {"1.2.840.10008.1.2.4.70", "JPEG lossless, first-order prediction"},
      {"1.2.840.10008.1.2.4.57", "JPEG lossless"},
      {"1.2.840.10008.1.2.4.80", "JPEG-LS lossless"},
      {"1.2.840.10008.1.2.5", "RLE lossless"},
  };
  const std::string temp = TestTempDir();
  for (const auto& [uid, name] : syntaxes) {
    SCOPED_TRACE(name);
    const std::string dir = (fs::path(temp) / uid).string();
    for (const std::string& file : CopySeries(source, dir)) Reencode(file, uid);
    const absl::StatusOr<DicomSeries> series = ReadDicomSeries(dir);
    ASSERT_TRUE(series.ok()) << series.status();
    EXPECT_TRUE(at::equal(series->volume.data, original->volume.data));
    EXPECT_EQ(series->volume.affine, original->volume.affine);
  }
}

// RescaleSlope and RescaleIntercept, checked against dcm2niix (which stores them as scl_slope / scl_inter).
TEST(DicomSeries, AppliesRescaleSlopeAndIntercept) {
  SKIP_WITHOUT_SHARED_DATA();
  const std::string temp = TestTempDir();
  const std::string dir = temp + "/series";
  for (const std::string& file : CopySeries(ProstateXSeries("ProstateX-0218", 27), dir)) {
    SetTag(file, "RescaleSlope", "2.5");
    SetTag(file, "RescaleIntercept", "-1000");
  }
  const absl::StatusOr<DicomSeries> series = ReadDicomSeries(dir);
  ASSERT_TRUE(series.ok()) << series.status();
  const absl::StatusOr<DicomSeries> unscaled = ReadDicomSeries(ProstateXSeries("ProstateX-0218", 27));
  ASSERT_TRUE(unscaled.ok()) << unscaled.status();
  EXPECT_TRUE(at::equal(series->volume.data, (unscaled->volume.data.to(at::kDouble) * 2.5 - 1000).to(at::kFloat)));
  ExpectSameAsDcm2niix(series->volume, dir, temp + "/dcm2niix");
}

}  // namespace
}  // namespace segrel::io
