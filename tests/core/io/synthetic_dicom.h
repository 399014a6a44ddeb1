// A small synthetic MR series written with DCMTK, for DICOM tests that need files segrel can break at will
// (bad-input tests) or a reference for DICOM SEG output that does not depend on ../shared/data.
#ifndef SEGREL_TESTS_CORE_IO_SYNTHETIC_DICOM_H_
#define SEGREL_TESTS_CORE_IO_SYNTHETIC_DICOM_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace segrel::testing {

struct SyntheticSeries {
  int rows = 6;
  int columns = 5;
  int slices = 4;
  // ImageOrientationPatient (row, then column cosines, LPS), ImagePositionPatient of slice 0, PixelSpacing
  // (between rows, between columns) and the step between slices along row x column.
  std::array<double, 6> orientation = {0.8, 0.6, 0, -0.6, 0.8, 0};
  std::array<double, 3> origin = {-12.5, 40.25, 7.5};
  std::array<double, 2> pixel_spacing = {0.75, 0.5};
  double slice_spacing = 2.5;
  int series_number = 7;
  std::string series_description = "synthetic t2";
  // Filled by WriteSyntheticSeries when empty.
  std::string study_instance_uid;
  std::string series_instance_uid;
  std::string frame_of_reference_uid;
};

// The stored (uint16) value of pixel (row r, column c) of slice s.
inline uint16_t SyntheticPixel(int r, int c, int s) { return static_cast<uint16_t>(1000 * s + 10 * r + c); }

// Writes one file per slice into `dir` (created), named so that name order is not slice order, and returns the
// paths in slice order. Slice s lies at origin + s * slice_spacing * (row x column). Fails the test on error.
std::vector<std::string> WriteSyntheticSeries(SyntheticSeries& series, const std::string& dir);

}  // namespace segrel::testing

#endif  // SEGREL_TESTS_CORE_IO_SYNTHETIC_DICOM_H_
