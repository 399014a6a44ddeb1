#include "tests/core/io/synthetic_dicom.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace segrel::testing {
namespace {

std::string NewUid(const char* root) {
  char uid[100];
  return dcmGenerateUniqueIdentifier(uid, root);
}

std::string Decimals(const double* values, int count) {
  std::vector<std::string> texts;
  for (int n = 0; n < count; ++n) texts.push_back(absl::StrFormat("%.10g", values[n]));
  return absl::StrJoin(texts, "\\");
}

void Put(DcmDataset& dataset, const DcmTagKey& tag, const std::string& value) {
  ASSERT_TRUE(dataset.putAndInsertOFStringArray(tag, value.c_str()).good()) << DcmTag(tag).getTagName();
}

}  // namespace

std::vector<std::string> WriteSyntheticSeries(SyntheticSeries& series, const std::string& dir) {
  if (series.study_instance_uid.empty()) series.study_instance_uid = NewUid(SITE_STUDY_UID_ROOT);
  if (series.series_instance_uid.empty()) series.series_instance_uid = NewUid(SITE_SERIES_UID_ROOT);
  if (series.frame_of_reference_uid.empty()) series.frame_of_reference_uid = NewUid(SITE_INSTANCE_UID_ROOT);
  std::filesystem::create_directories(dir);
  const std::array<double, 6>& o = series.orientation;
  const std::array<double, 3> normal = {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5],
                                        o[0] * o[4] - o[1] * o[3]};
  std::vector<std::string> paths;
  for (int s = 0; s < series.slices; ++s) {
    DcmFileFormat file;
    DcmDataset& d = *file.getDataset();
    Put(d, DCM_SOPClassUID, UID_MRImageStorage);
    Put(d, DCM_SOPInstanceUID, NewUid(SITE_INSTANCE_UID_ROOT));
    Put(d, DCM_StudyInstanceUID, series.study_instance_uid);
    Put(d, DCM_SeriesInstanceUID, series.series_instance_uid);
    Put(d, DCM_FrameOfReferenceUID, series.frame_of_reference_uid);
    Put(d, DCM_PatientName, "SYNTHETIC^PATIENT");
    Put(d, DCM_PatientID, "SYNTH-0001");
    Put(d, DCM_PatientBirthDate, "19700101");
    Put(d, DCM_PatientSex, "O");
    Put(d, DCM_StudyDate, "20240102");
    Put(d, DCM_StudyTime, "101500");
    Put(d, DCM_StudyID, "S1");
    Put(d, DCM_AccessionNumber, "A1");
    Put(d, DCM_ReferringPhysicianName, "");
    Put(d, DCM_Modality, "MR");
    Put(d, DCM_SeriesNumber, absl::StrCat(series.series_number));
    Put(d, DCM_SeriesDescription, series.series_description);
    // Instance numbers run against the slice order: the reader must order by position.
    Put(d, DCM_InstanceNumber, absl::StrCat(series.slices - s));
    std::array<double, 3> position;
    for (int a = 0; a < 3; ++a) position[a] = series.origin[a] + s * series.slice_spacing * normal[a];
    Put(d, DCM_ImagePositionPatient, Decimals(position.data(), 3));
    Put(d, DCM_ImageOrientationPatient, Decimals(o.data(), 6));
    Put(d, DCM_PixelSpacing, Decimals(series.pixel_spacing.data(), 2));
    Put(d, DCM_SliceThickness, absl::StrFormat("%.10g", series.slice_spacing));
    EXPECT_TRUE(d.putAndInsertUint16(DCM_Rows, series.rows).good());
    EXPECT_TRUE(d.putAndInsertUint16(DCM_Columns, series.columns).good());
    EXPECT_TRUE(d.putAndInsertUint16(DCM_SamplesPerPixel, 1).good());
    Put(d, DCM_PhotometricInterpretation, "MONOCHROME2");
    EXPECT_TRUE(d.putAndInsertUint16(DCM_BitsAllocated, 16).good());
    EXPECT_TRUE(d.putAndInsertUint16(DCM_BitsStored, 16).good());
    EXPECT_TRUE(d.putAndInsertUint16(DCM_HighBit, 15).good());
    EXPECT_TRUE(d.putAndInsertUint16(DCM_PixelRepresentation, 0).good());
    std::vector<Uint16> pixels(series.rows * series.columns);
    for (int r = 0; r < series.rows; ++r) {
      for (int c = 0; c < series.columns; ++c) pixels[r * series.columns + c] = SyntheticPixel(r, c, s);
    }
    EXPECT_TRUE(d.putAndInsertUint16Array(DCM_PixelData, pixels.data(), pixels.size()).good());
    // Names in reverse slice order.
    const std::string path = (std::filesystem::path(dir) / absl::StrFormat("img%03d.dcm", series.slices - s)).string();
    EXPECT_TRUE(file.saveFile(path.c_str(), EXS_LittleEndianExplicit).good()) << path;
    paths.push_back(path);
  }
  return paths;
}

}  // namespace segrel::testing
