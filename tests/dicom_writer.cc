#include "tests/dicom_writer.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace segrel::testing {
namespace {

void Put(DcmDataset& dataset, const DcmTagKey& tag, const std::string& value) {
  ASSERT_TRUE(dataset.putAndInsertOFStringArray(tag, value.c_str()).good()) << DcmTag(tag).getTagName();
}

void PutNumber(DcmDataset& dataset, const DcmTagKey& tag, int value) {
  ASSERT_TRUE(dataset.putAndInsertUint16(tag, static_cast<Uint16>(value)).good()) << DcmTag(tag).getTagName();
}

void PutPatient(DcmDataset& d) {
  Put(d, DCM_PatientName, "SYNTHETIC^PATIENT");
  Put(d, DCM_PatientID, "SYNTH-0001");
  Put(d, DCM_PatientBirthDate, "19700101");
  Put(d, DCM_PatientSex, "O");
  Put(d, DCM_StudyDate, "20240102");
  Put(d, DCM_StudyTime, "101500");
  Put(d, DCM_StudyID, "S1");
  Put(d, DCM_AccessionNumber, "A1");
  Put(d, DCM_ReferringPhysicianName, "");
}

}  // namespace

std::string NewDicomUid() {
  char uid[100];
  return dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT);
}

void WriteMrSlice(const MrSlice& slice, const std::string& path) {
  DcmFileFormat file;
  DcmDataset& d = *file.getDataset();
  Put(d, DCM_SOPClassUID, UID_MRImageStorage);
  Put(d, DCM_SOPInstanceUID, NewDicomUid());
  Put(d, DCM_StudyInstanceUID, slice.study_uid);
  Put(d, DCM_SeriesInstanceUID, slice.series_uid);
  Put(d, DCM_FrameOfReferenceUID, slice.frame_of_reference_uid);
  if (slice.pseudonymous_patient) PutPatient(d);
  Put(d, DCM_Modality, "MR");
  Put(d, DCM_SeriesNumber, absl::StrCat(slice.series_number));
  Put(d, DCM_SeriesDescription, slice.series_description);
  if (!slice.protocol_name.empty()) Put(d, DCM_ProtocolName, slice.protocol_name);
  if (!slice.image_type.empty()) Put(d, DCM_ImageType, slice.image_type);
  Put(d, DCM_InstanceNumber, absl::StrCat(slice.instance_number));
  Put(d, DCM_ImagePositionPatient, slice.position);
  Put(d, DCM_ImageOrientationPatient, slice.orientation);
  Put(d, DCM_PixelSpacing, slice.pixel_spacing);
  Put(d, DCM_SliceThickness, slice.slice_thickness);
  if (!slice.rescale_slope.empty()) Put(d, DCM_RescaleSlope, slice.rescale_slope);
  if (!slice.rescale_intercept.empty()) Put(d, DCM_RescaleIntercept, slice.rescale_intercept);
  Put(d, DCM_PhotometricInterpretation, "MONOCHROME2");
  PutNumber(d, DCM_Rows, slice.rows);
  PutNumber(d, DCM_Columns, slice.columns);
  PutNumber(d, DCM_SamplesPerPixel, 1);
  PutNumber(d, DCM_BitsAllocated, 16);
  PutNumber(d, DCM_BitsStored, 16);
  PutNumber(d, DCM_HighBit, 15);
  PutNumber(d, DCM_PixelRepresentation, 0);
  ASSERT_EQ(slice.pixels.size(), static_cast<size_t>(slice.rows * slice.columns));
  ASSERT_TRUE(d.putAndInsertUint16Array(DCM_PixelData, slice.pixels.data(), slice.pixels.size()).good());
  ASSERT_TRUE(file.saveFile(path.c_str(), EXS_LittleEndianExplicit).good()) << path;
}

}  // namespace segrel::testing
