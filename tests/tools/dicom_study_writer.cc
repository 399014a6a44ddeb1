#include "tests/tools/dicom_study_writer.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/io/nifti.h"
#include "tests/test_util.h"

namespace segrel::testing {
namespace {

constexpr double kSlope = 1.0 / 1024;
constexpr double kIntercept = -8;

std::string NewUid() {
  char uid[100];
  return dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT);
}

void Put(DcmDataset& dataset, const DcmTagKey& tag, const std::string& value) {
  ASSERT_TRUE(dataset.putAndInsertOFStringArray(tag, value.c_str()).good()) << DcmTag(tag).getTagName();
}

// The FrameOfReferenceUID of each study written (one study per StudyInstanceUID).
std::string FrameOfReference(const std::string& study_uid) {
  static std::map<std::string, std::string> frames;
  auto& frame = frames[study_uid];
  if (frame.empty()) frame = NewUid();
  return frame;
}

}  // namespace

at::Tensor QuantisedLikeDicom(const at::Tensor& voxels) {
  return (((voxels.to(at::kDouble) - kIntercept) / kSlope).round() * kSlope + kIntercept).to(at::kFloat);
}

std::array<std::array<double, 4>, 4> ExpectedAffine(const SeriesToWrite& series) {
  const double rows = static_cast<double>(series.voxels.size(1));
  const auto& [sc, sr, ss] = series.spacing;
  const auto& o = series.origin;
  return {{{-sc, 0, 0, -o[0]}, {0, sr, 0, -o[1] - (rows - 1) * sr}, {0, 0, ss, o[2]}, {0, 0, 0, 1}}};
}

void WriteDicomSeries(const SeriesToWrite& series, const std::string& study_uid, const std::string& dir) {
  const int64_t columns = series.voxels.size(0), rows = series.voxels.size(1), slices = series.voxels.size(2);
  const at::Tensor stored = ((series.voxels.to(at::kDouble) - kIntercept) / kSlope).round();
  ASSERT_GE(stored.min().item<double>(), 0);
  ASSERT_LE(stored.max().item<double>(), 65535);
  const std::string series_uid = NewUid();
  const std::string folder = absl::StrCat(dir, "/", series.series_number);
  std::filesystem::create_directories(folder);
  for (int64_t k = 0; k < slices; ++k) {
    DcmFileFormat file;
    DcmDataset& dataset = *file.getDataset();
    Put(dataset, DCM_SOPClassUID, UID_MRImageStorage);
    Put(dataset, DCM_SOPInstanceUID, NewUid());
    Put(dataset, DCM_StudyInstanceUID, study_uid);
    Put(dataset, DCM_SeriesInstanceUID, series_uid);
    Put(dataset, DCM_FrameOfReferenceUID, FrameOfReference(study_uid));
    Put(dataset, DCM_Modality, "MR");
    Put(dataset, DCM_SeriesNumber, absl::StrCat(series.series_number));
    Put(dataset, DCM_SeriesDescription, series.series_description);
    Put(dataset, DCM_ProtocolName, series.series_description);
    Put(dataset, DCM_ImageType, "ORIGINAL\\PRIMARY\\M\\ND");
    Put(dataset, DCM_InstanceNumber, absl::StrCat(k + 1));
    Put(dataset, DCM_ImagePositionPatient,
        absl::StrFormat("%.6f\\%.6f\\%.6f", series.origin[0], series.origin[1],
                        series.origin[2] + static_cast<double>(k) * series.spacing[2]));
    Put(dataset, DCM_ImageOrientationPatient, "1\\0\\0\\0\\1\\0");
    Put(dataset, DCM_PixelSpacing, absl::StrFormat("%.6f\\%.6f", series.spacing[1], series.spacing[0]));
    Put(dataset, DCM_SliceThickness, absl::StrFormat("%.6f", series.spacing[2]));
    Put(dataset, DCM_RescaleSlope, "0.0009765625");
    Put(dataset, DCM_RescaleIntercept, "-8");
    Put(dataset, DCM_PhotometricInterpretation, "MONOCHROME2");
    ASSERT_TRUE(dataset.putAndInsertUint16(DCM_Rows, static_cast<Uint16>(rows)).good());
    ASSERT_TRUE(dataset.putAndInsertUint16(DCM_Columns, static_cast<Uint16>(columns)).good());
    ASSERT_TRUE(dataset.putAndInsertUint16(DCM_SamplesPerPixel, 1).good());
    ASSERT_TRUE(dataset.putAndInsertUint16(DCM_BitsAllocated, 16).good());
    ASSERT_TRUE(dataset.putAndInsertUint16(DCM_BitsStored, 16).good());
    ASSERT_TRUE(dataset.putAndInsertUint16(DCM_HighBit, 15).good());
    ASSERT_TRUE(dataset.putAndInsertUint16(DCM_PixelRepresentation, 0).good());
    // Pixel (row r, column c) holds voxel (i = c, j = rows - 1 - r).
    std::vector<Uint16> pixels(rows * columns);
    auto values = stored.accessor<double, 3>();
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < columns; ++c) pixels[r * columns + c] = static_cast<Uint16>(values[c][rows - 1 - r][k]);
    }
    ASSERT_TRUE(dataset.putAndInsertUint16Array(DCM_PixelData, pixels.data(), pixels.size()).good());
    const std::string path = absl::StrCat(folder, "/slice", k, ".dcm");
    ASSERT_TRUE(file.saveFile(path.c_str(), EXS_LittleEndianExplicit).good()) << path;
  }
}

std::string BundleWithRules(const std::string& dir) {
  nlohmann::json bundle = ReadJson("bundle/segrel.json");
  bundle["model"] = FixturePath("unet_bn.pt");
  bundle["series_rules"] = nlohmann::json::parse(R"({"sequences": [
      {"name": "T1", "conditions": {"SeriesDescription": "(?i)t1_mprage"}},
      {"name": "T2", "conditions": {"SeriesDescription": "(?i)t2_tse"}},
      {"name": "FLAIR", "conditions": {"SeriesDescription": "(?i)flair"}, "prefer": "last"}]})");
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/segrel.json") << bundle.dump(2);
  return dir;
}

std::map<std::string, at::Tensor> WriteStudy(const std::string& dir, bool t1_on_other_grid) {
  const std::map<std::string, std::pair<int, std::string>> series = {
      {"FLAIR", {3, "ax flair"}}, {"T1", {11, "t1_mprage_tra"}}, {"T2", {7, "t2_tse_tra"}}};
  std::map<std::string, at::Tensor> voxels;
  for (const auto& [name, number_description] : series) {
    const absl::StatusOr<volume::Volume> volume = io::ReadNifti(FixturePath("study/" + name + ".nii.gz"));
    EXPECT_TRUE(volume.ok()) << volume.status();
    SeriesToWrite to_write;
    to_write.series_number = number_description.first;
    to_write.series_description = number_description.second;
    to_write.voxels = volume->data;
    to_write.origin = {-20, 10, 30};
    to_write.spacing = {1.5, 1.5, 2};
    if (name == "T1" && t1_on_other_grid) to_write.origin = {-20.6, 10, 30.8};  // 0.4 voxel off in x and z
    WriteDicomSeries(to_write, "1.2.826.0.1.3680043.2.1143.999.1", dir);
    voxels[name] = QuantisedLikeDicom(volume->data);
  }
  return voxels;
}

}  // namespace segrel::testing
