// The one DICOM writer of the tests: an MR image slice with chosen geometry and pixels, written with DCMTK. The
// synthetic series (tests/core/io/synthetic_dicom.h) and the studies for `segrel analyze` and the server
// (tests/tools/dicom_study_writer.h) are both made of such slices.
#ifndef SEGREL_TESTS_DICOM_WRITER_H_
#define SEGREL_TESTS_DICOM_WRITER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace segrel::testing {

// A new DICOM UID.
std::string NewDicomUid();

// One slice of MR Image Storage. Geometry fields are DICOM decimal strings as written ("a\b\c").
struct MrSlice {
  std::string study_uid;
  std::string series_uid;
  std::string frame_of_reference_uid;
  int series_number = 1;
  std::string series_description;
  std::string protocol_name;  // empty: not written
  std::string image_type;     // empty: not written
  int instance_number = 1;
  std::string position;       // ImagePositionPatient
  std::string orientation;    // ImageOrientationPatient
  std::string pixel_spacing;  // between rows \ between columns
  std::string slice_thickness;
  std::string rescale_slope;          // empty: none
  std::string rescale_intercept;      // empty: none
  bool pseudonymous_patient = false;  // a made-up patient, study date, ID and accession number
  int rows = 0;
  int columns = 0;
  std::vector<uint16_t> pixels;  // rows x columns, row by row
};

// Writes `slice` to `path` (explicit VR little endian). Fails the test on error.
void WriteMrSlice(const MrSlice& slice, const std::string& path);

}  // namespace segrel::testing

#endif  // SEGREL_TESTS_DICOM_WRITER_H_
