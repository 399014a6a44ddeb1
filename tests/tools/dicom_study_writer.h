// Writes small multi-series MR studies as DICOM files (DCMTK) with chosen voxel values and geometry, for the tests
// of `segrel analyze` on DICOM folders. Values are stored as uint16 with RescaleSlope 1/1024 and RescaleIntercept
// -8, so every value k/1024 - 8 in [-8, 56) is exact in float32 on both sides.
#ifndef SEGREL_TESTS_TOOLS_DICOM_STUDY_WRITER_H_
#define SEGREL_TESTS_TOOLS_DICOM_STUDY_WRITER_H_

#include <ATen/ATen.h>

#include <array>
#include <map>
#include <string>

namespace segrel::testing {

struct SeriesToWrite {
  int series_number = 1;
  std::string series_description;
  // [i, j, k] float voxels in segrel's (dcm2niix's) order: i = column, j = row from the last to the first,
  // k = slice. Rounded to the nearest k/1024 - 8.
  at::Tensor voxels;
  // Axial slices, rows along +y (LPS), columns along +x: the position of pixel (row 0, column 0) of slice 0 and
  // the spacing (column, row, slice) in mm.
  std::array<double, 3> origin = {0, 0, 0};
  std::array<double, 3> spacing = {1, 1, 1};
};

// The values as stored and decoded: round((v + 8) * 1024) / 1024 - 8.
at::Tensor QuantisedLikeDicom(const at::Tensor& voxels);

// The RAS voxel-to-world affine (4x4 row-major) of the written series as dcm2niix gives it: LPS x and y negated,
// j running from the last row to the first.
std::array<std::array<double, 4>, 4> ExpectedAffine(const SeriesToWrite& series);

// Writes the series as one file per slice into `dir`/<series_number>/ in one study (same StudyInstanceUID and
// FrameOfReferenceUID across calls with the same `study_uid`). Fails the test on error.
void WriteDicomSeries(const SeriesToWrite& series, const std::string& study_uid, const std::string& dir);

// Writes the test bundle (tests/fixtures/data/bundle) with series rules into `dir`/segrel.json: "t1_mprage" is T1,
// "t2_tse" T2, "flair" FLAIR. Returns `dir`.
std::string BundleWithRules(const std::string& dir);

// Writes the fixture study's sequences (tests/fixtures/data/study) as DICOM series into `dir`: FLAIR as series 3
// "ax flair", T1 as 11 "t1_mprage_tra", T2 as 7 "t2_tse_tra" (numbers that do not follow the bundle's order),
// origin (-20, 10, 30) mm, spacing 1.5 x 1.5 x 2 mm; with `t1_on_other_grid` T1's origin is 0.4 voxel off in x and
// z. Returns each sequence's voxels quantised as DICOM stores them.
std::map<std::string, at::Tensor> WriteStudy(const std::string& dir, bool t1_on_other_grid);

}  // namespace segrel::testing

#endif  // SEGREL_TESTS_TOOLS_DICOM_STUDY_WRITER_H_
