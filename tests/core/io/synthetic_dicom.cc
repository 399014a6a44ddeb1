#include "tests/core/io/synthetic_dicom.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "tests/dicom_writer.h"

namespace segrel::testing {
namespace {

std::string Decimals(const double* values, int count) {
  std::vector<std::string> texts;
  for (int n = 0; n < count; ++n) texts.push_back(absl::StrFormat("%.10g", values[n]));
  return absl::StrJoin(texts, "\\");
}

}  // namespace

std::vector<std::string> WriteSyntheticSeries(SyntheticSeries& series, const std::string& dir) {
  if (series.study_instance_uid.empty()) series.study_instance_uid = NewDicomUid();
  if (series.series_instance_uid.empty()) series.series_instance_uid = NewDicomUid();
  if (series.frame_of_reference_uid.empty()) series.frame_of_reference_uid = NewDicomUid();
  std::filesystem::create_directories(dir);
  const std::array<double, 6>& o = series.orientation;
  const std::array<double, 3> normal = {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5],
                                        o[0] * o[4] - o[1] * o[3]};
  std::vector<std::string> paths;
  for (int s = 0; s < series.slices; ++s) {
    MrSlice slice;
    slice.study_uid = series.study_instance_uid;
    slice.series_uid = series.series_instance_uid;
    slice.frame_of_reference_uid = series.frame_of_reference_uid;
    slice.pseudonymous_patient = true;
    slice.series_number = series.series_number;
    slice.series_description = series.series_description;
    slice.instance_number = series.slices - s;  // against the slice order: the reader must order by position
    std::array<double, 3> position;
    for (int a = 0; a < 3; ++a) position[a] = series.origin[a] + s * series.slice_spacing * normal[a];
    slice.position = Decimals(position.data(), 3);
    slice.orientation = Decimals(o.data(), 6);
    slice.pixel_spacing = Decimals(series.pixel_spacing.data(), 2);
    slice.slice_thickness = absl::StrFormat("%.10g", series.slice_spacing);
    slice.rows = series.rows;
    slice.columns = series.columns;
    for (int r = 0; r < series.rows; ++r) {
      for (int c = 0; c < series.columns; ++c) slice.pixels.push_back(SyntheticPixel(r, c, s));
    }
    // Names in reverse slice order.
    const std::string path = (std::filesystem::path(dir) / absl::StrFormat("img%03d.dcm", series.slices - s)).string();
    WriteMrSlice(slice, path);
    paths.push_back(path);
  }
  return paths;
}

}  // namespace segrel::testing
