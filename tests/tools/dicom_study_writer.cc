#include "tests/tools/dicom_study_writer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/io/nifti.h"
#include "tests/dicom_writer.h"
#include "tests/test_util.h"

namespace segrel::testing {
namespace {

constexpr double kSlope = 1.0 / 1024;
constexpr double kIntercept = -8;

// The FrameOfReferenceUID of each study written (one study per StudyInstanceUID).
std::string FrameOfReference(const std::string& study_uid) {
  static std::map<std::string, std::string> frames;
  auto& frame = frames[study_uid];
  if (frame.empty()) frame = NewDicomUid();
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
  const std::string series_uid = NewDicomUid();
  const std::string folder = absl::StrCat(dir, "/", series.series_number);
  std::filesystem::create_directories(folder);
  const auto values = stored.accessor<double, 3>();
  for (int64_t k = 0; k < slices; ++k) {
    MrSlice slice;
    slice.study_uid = study_uid;
    slice.series_uid = series_uid;
    slice.frame_of_reference_uid = FrameOfReference(study_uid);
    slice.series_number = series.series_number;
    slice.series_description = series.series_description;
    slice.protocol_name = series.series_description;
    slice.image_type = "ORIGINAL\\PRIMARY\\M\\ND";
    slice.instance_number = static_cast<int>(k) + 1;
    slice.position = absl::StrFormat("%.6f\\%.6f\\%.6f", series.origin[0], series.origin[1],
                                     series.origin[2] + static_cast<double>(k) * series.spacing[2]);
    slice.orientation = "1\\0\\0\\0\\1\\0";
    slice.pixel_spacing = absl::StrFormat("%.6f\\%.6f", series.spacing[1], series.spacing[0]);
    slice.slice_thickness = absl::StrFormat("%.6f", series.spacing[2]);
    slice.rescale_slope = "0.0009765625";
    slice.rescale_intercept = "-8";
    slice.rows = static_cast<int>(rows);
    slice.columns = static_cast<int>(columns);
    // Pixel (row r, column c) holds voxel (i = c, j = rows - 1 - r).
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < columns; ++c) slice.pixels.push_back(static_cast<uint16_t>(values[c][rows - 1 - r][k]));
    }
    WriteMrSlice(slice, absl::StrCat(folder, "/slice", k, ".dcm"));
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
