// Bad DICOM input: each case breaks a synthetic series (synthetic_dicom.h) the way real folders break, and
// asserts the exact status code and that the message names the file(s) or the series at fault.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/io/dicom_seg.h"
#include "core/io/dicom_series.h"
#include "tests/core/io/dicom_test_util.h"
#include "tests/core/io/synthetic_dicom.h"
#include "tests/test_util.h"

namespace segrel::io {
namespace {

namespace fs = std::filesystem;
using segrel::testing::DeleteTag;
using segrel::testing::SetTag;
using segrel::testing::SyntheticSeries;
using segrel::testing::TestTempDir;
using segrel::testing::WriteSyntheticSeries;

// Expects `status` to have `code` and to mention every one of `names`.
void ExpectError(const absl::Status& status, absl::StatusCode code, const std::vector<std::string>& names) {
  EXPECT_EQ(status.code(), code) << status;
  for (const std::string& name : names) {
    EXPECT_TRUE(absl::StrContains(status.message(), name)) << "'" << name << "' not in: " << status;
  }
}

// Sets a US element (Rows, Columns), which SetTag's string form cannot.
void SetUint16(const std::string& path, const DcmTagKey& tag, Uint16 value) {
  DcmFileFormat file;
  ASSERT_TRUE(file.loadFile(path.c_str()).good()) << path;
  file.loadAllDataIntoMemory();
  ASSERT_TRUE(file.getDataset()->putAndInsertUint16(tag, value).good()) << path;
  ASSERT_TRUE(file.saveFile(path.c_str(), EXS_LittleEndianExplicit).good()) << path;
}

class DicomBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::path(TestTempDir()) / "series").string();
    series_.slices = 5;
    files_ = WriteSyntheticSeries(series_, dir_);
    ASSERT_TRUE(ReadDicomSeries(dir_).ok()) << "the unbroken series must read";
  }

  // Sets `tag` of every file.
  void SetTagEverywhere(const std::string& tag, const std::string& value) {
    for (const std::string& file : files_) SetTag(file, tag, value);
  }

  // ImagePositionPatient of slice s moved by `shift` mm along the slice normal (0, 0, 1) of the default series.
  std::string PositionOf(int s, double shift = 0) const {
    return absl::StrCat(series_.origin[0], "\\", series_.origin[1], "\\",
                        series_.origin[2] + s * series_.slice_spacing + shift);
  }

  SyntheticSeries series_;
  std::string dir_;
  std::vector<std::string> files_;  // in slice order
};

TEST_F(DicomBadInput, MissingSlice) {
  fs::remove(files_[2]);
  ExpectError(ReadDicomSeries(dir_).status(), absl::StatusCode::kInvalidArgument,
              {"missing slice", files_[1], files_[3]});
}

TEST_F(DicomBadInput, DuplicatedFile) {
  const std::string copy = (fs::path(dir_) / "copy.dcm").string();
  fs::copy_file(files_[3], copy);
  ExpectError(ReadDicomSeries(dir_).status(), absl::StatusCode::kInvalidArgument, {"duplicated", copy, files_[3]});
}

TEST_F(DicomBadInput, TwoImagesAtOneSlicePosition) {
  SetTag(files_[3], "ImagePositionPatient", PositionOf(2));
  ExpectError(ReadDicomSeries(dir_).status(), absl::StatusCode::kInvalidArgument,
              {"duplicated slice", files_[2], files_[3]});
}

TEST_F(DicomBadInput, UnevenlySpacedSlices) {
  SetTag(files_[3], "ImagePositionPatient", PositionOf(3, 0.7));
  ExpectError(ReadDicomSeries(dir_).status(), absl::StatusCode::kInvalidArgument,
              {"non-uniform slice spacing", files_[3]});
}

TEST_F(DicomBadInput, MixedOrientations) {
  SetTag(files_[4], "ImageOrientationPatient", "1\\0\\0\\0\\1\\0");
  ExpectError(ReadDicomSeries(dir_).status(), absl::StatusCode::kInvalidArgument, {"mixed orientations", files_[4]});
}

TEST_F(DicomBadInput, ImagesOfDifferentSize) {
  SetUint16(files_[1], DCM_Columns, 4);
  ExpectError(ReadDicomSeries(dir_).status(), absl::StatusCode::kInvalidArgument, {"different size", files_[1]});
}

TEST_F(DicomBadInput, NonImageObjectsAreSkippedWithANote) {
  // A DICOM SEG of the series itself, and a minimal Basic Text SR, both in the series' folder.
  const absl::StatusOr<DicomSeries> series = ReadDicomSeries(dir_);
  ASSERT_TRUE(series.ok()) << series.status();
  const std::string seg = (fs::path(dir_) / "zz_seg.dcm").string();
  const at::Tensor labels = at::ones({series_.columns, series_.rows, series_.slices}, at::kByte);
  ASSERT_TRUE(WriteDicomSeg(seg, labels, {"background", "lesion"}, series->info).ok());
  const std::string sr = (fs::path(dir_) / "zz_report.dcm").string();
  DcmFileFormat report;
  report.getDataset()->putAndInsertString(DCM_SOPClassUID, UID_BasicTextSRStorage);
  report.getDataset()->putAndInsertString(DCM_SOPInstanceUID, "1.2.826.0.1.3680043.2.1143.99.1");
  report.getDataset()->putAndInsertString(DCM_Modality, "SR");
  report.getDataset()->putAndInsertString(DCM_SeriesInstanceUID, "1.2.826.0.1.3680043.2.1143.99.2");
  ASSERT_TRUE(report.saveFile(sr.c_str(), EXS_LittleEndianExplicit).good());

  const absl::StatusOr<DicomFolder> folder = ReadDicomFolder(dir_);
  ASSERT_TRUE(folder.ok()) << folder.status();
  ASSERT_EQ(folder->series.size(), 1u);
  EXPECT_TRUE(folder->failed.empty());
  EXPECT_EQ(folder->series[0].info.slices, series_.slices);
  ASSERT_EQ(folder->notes.size(), 2u);
  EXPECT_TRUE(absl::StrContains(folder->notes[0], sr) && absl::StrContains(folder->notes[0], "not an image"))
      << folder->notes[0];
  EXPECT_TRUE(absl::StrContains(folder->notes[1], seg) && absl::StrContains(folder->notes[1], "not an image"))
      << folder->notes[1];
  EXPECT_TRUE(ReadDicomSeries(dir_).ok());
}

TEST(DicomBadFolder, EmptyFolder) {
  const std::string dir = (fs::path(TestTempDir()) / "empty").string();
  fs::create_directories(dir);
  ExpectError(ReadDicomSeries(dir).status(), absl::StatusCode::kNotFound, {dir, "no DICOM image"});
}

TEST(DicomBadFolder, MissingFolder) {
  const std::string dir = (fs::path(TestTempDir()) / "absent").string();
  ExpectError(ReadDicomFolder(dir).status(), absl::StatusCode::kNotFound, {dir});
}

TEST(DicomBadFolder, OnlyNonDicomFiles) {
  const std::string dir = (fs::path(TestTempDir()) / "texts").string();
  fs::create_directories(dir / fs::path("sub"));
  for (const char* name : {"readme.txt", "sub/notes.dcm"}) {
    std::ofstream((fs::path(dir) / name).string()) << "not DICOM at all, though one is named .dcm\n";
  }
  ExpectError(ReadDicomSeries(dir).status(), absl::StatusCode::kNotFound,
              {dir, "no DICOM image", "2 files", "not a DICOM file"});
}

TEST_F(DicomBadInput, FileTruncatedInItsPixelData) {
  fs::resize_file(files_[2], fs::file_size(files_[2]) - 20);
  ExpectError(ReadDicomSeries(dir_).status(), absl::StatusCode::kInvalidArgument, {files_[2], "truncated"});
}

TEST_F(DicomBadInput, FileTruncatedInItsHeader) {
  fs::resize_file(files_[2], 300);
  ExpectError(ReadDicomSeries(dir_).status(), absl::StatusCode::kInvalidArgument, {files_[2], "truncated"});
}

TEST_F(DicomBadInput, HeaderClaimingAHugeImageIsRefusedBeforeAllocating) {
  // 65535 x 65535 x 5 slices x 4 bytes = 86 GB, from files of a few hundred bytes.
  for (const std::string& file : files_) {
    SetUint16(file, DCM_Rows, 65535);
    SetUint16(file, DCM_Columns, 65535);
  }
  DicomReadOptions options;
  options.max_bytes = int64_t{1} << 30;
  // "limit": refused by the size check, not by a failed allocation.
  ExpectError(ReadDicomSeries(dir_, options).status(), absl::StatusCode::kResourceExhausted,
              {dir_, series_.series_description, "limit"});
}

TEST_F(DicomBadInput, SeriesLargerThanTheLimit) {
  DicomReadOptions options;
  options.max_bytes = series_.rows * series_.columns * series_.slices * 4 - 1;
  ExpectError(ReadDicomSeries(dir_, options).status(), absl::StatusCode::kResourceExhausted,
              {dir_, series_.series_description, "limit"});
  options.max_bytes += 1;
  EXPECT_TRUE(ReadDicomSeries(dir_, options).ok());
}

TEST_F(DicomBadInput, ZeroPixelSpacing) {
  SetTagEverywhere("PixelSpacing", "0\\0.5");
  ExpectError(ReadDicomSeries(dir_).status(), absl::StatusCode::kInvalidArgument, {"PixelSpacing", "positive"});
  EXPECT_TRUE(absl::StrContains(ReadDicomSeries(dir_).status().message(), dir_));
}

TEST_F(DicomBadInput, NegativePixelSpacing) {
  SetTagEverywhere("PixelSpacing", "0.75\\-0.5");
  ExpectError(ReadDicomSeries(dir_).status(), absl::StatusCode::kInvalidArgument, {"PixelSpacing", "positive"});
}

TEST_F(DicomBadInput, ParallelDirectionCosines) {
  SetTagEverywhere("ImageOrientationPatient", "1\\0\\0\\1\\0\\0");
  ExpectError(ReadDicomSeries(dir_).status(), absl::StatusCode::kInvalidArgument, {"ImageOrientationPatient"});
}

TEST_F(DicomBadInput, NonOrthogonalDirectionCosines) {
  SetTagEverywhere("ImageOrientationPatient", "1\\0\\0\\0.5\\0.8660254\\0");
  ExpectError(ReadDicomSeries(dir_).status(), absl::StatusCode::kInvalidArgument,
              {"ImageOrientationPatient", "orthogonal"});
}

TEST_F(DicomBadInput, ZeroDirectionCosines) {
  SetTagEverywhere("ImageOrientationPatient", "0\\0\\0\\0\\0\\0");
  ExpectError(ReadDicomSeries(dir_).status(), absl::StatusCode::kInvalidArgument, {"ImageOrientationPatient"});
}

TEST_F(DicomBadInput, MissingPosition) {
  DeleteTag(files_[1], "ImagePositionPatient");
  ExpectError(ReadDicomSeries(dir_).status(), absl::StatusCode::kInvalidArgument, {files_[1], "ImagePositionPatient"});
}

TEST_F(DicomBadInput, NotANumberRescaleSlope) {
  SetTag(files_[2], "RescaleSlope", "NaN");
  ExpectError(ReadDicomSeries(dir_).status(), absl::StatusCode::kInvalidArgument, {files_[2], "RescaleSlope"});
}

TEST_F(DicomBadInput, RescaleSlopeBeyondFloatRange) {
  // Finite as a double, but stored value x slope is infinite as float32: never pass infinite voxels on.
  SetTag(files_[2], "RescaleSlope", "1e300");
  ExpectError(ReadDicomSeries(dir_).status(), absl::StatusCode::kInvalidArgument, {files_[2], "RescaleSlope"});
}

TEST_F(DicomBadInput, FloatPixelDataWithNaNIsNotReadSilently) {
  // An image with Float Pixel Data (7FE0,0008) holding a NaN: segrel reads integer pixels only; the file must be
  // refused by name, neither read nor skipped as a non-image.
  for (const std::string& file : files_) {
    DcmFileFormat image;
    ASSERT_TRUE(image.loadFile(file.c_str()).good());
    DcmDataset& dataset = *image.getDataset();
    dataset.findAndDeleteElement(DCM_PixelData);
    std::vector<Float32> values(series_.rows * series_.columns, 1.0f);
    values[3] = std::numeric_limits<Float32>::quiet_NaN();
    ASSERT_TRUE(dataset.putAndInsertFloat32Array(DCM_FloatPixelData, values.data(), values.size()).good());
    dataset.putAndInsertUint16(DCM_BitsAllocated, 32);
    dataset.findAndDeleteElement(DCM_BitsStored);
    dataset.findAndDeleteElement(DCM_HighBit);
    dataset.findAndDeleteElement(DCM_PixelRepresentation);
    ASSERT_TRUE(image.saveFile(file.c_str(), EXS_LittleEndianExplicit).good());
  }
  const absl::Status status = ReadDicomSeries(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), dir_)) << status;
}

}  // namespace
}  // namespace segrel::io
