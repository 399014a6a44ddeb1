// Reading DICOM series (DCMTK) into segrel volumes.
//
// A folder is searched recursively; every file is looked at whatever its name. Images are grouped by
// SeriesInstanceUID and ordered along the slice normal (ImagePositionPatient . (row x column cosines)), never by
// file name or InstanceNumber; images sharing a position (diffusion b-values, repetitions) make a 4-D volume
// ordered by InstanceNumber. Each series is checked: one orientation, one image size and pixel spacing, evenly
// spaced slices, no missing or duplicated slice; what is wrong is said with the files at fault. Voxel values are
// RescaleSlope * stored value + RescaleIntercept. Uncompressed, JPEG (including lossless), JPEG-LS and RLE
// transfer syntaxes are decoded. Files that are not DICOM, and DICOM objects without an image (SR, SEG, PR, KO,
// RT structures, ...), are skipped with a note.
//
// Volumes follow the voxel order dcm2niix writes (`dcm2niix -x i`): i = DICOM column, j = DICOM row from the last
// row to the first, k = along the slice normal; the affine maps (i, j, k) to RAS+ mm (DICOM's LPS with x and y
// negated), as nibabel reads dcm2niix's NIfTI. So a series read here and the same series converted by dcm2niix
// and read with ReadNifti give the same tensor and the same affine. (See core/io/dicom_layout.h.)
//
// Patient names and IDs are never read, so nothing here can print them.
#ifndef SEGREL_CORE_IO_DICOM_SERIES_H_
#define SEGREL_CORE_IO_DICOM_SERIES_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/volume/volume.h"

namespace segrel::io {

struct DicomReadOptions {
  // Largest decoded series (voxels x 4 bytes, as float32) the headers may make segrel allocate. Default: 8 GiB.
  int64_t max_bytes = int64_t{8} << 30;
  // Slice gaps may differ from the series' median gap by this fraction of it. Default: 1%.
  double spacing_tolerance = 0.01;
  // Direction cosines may differ by this much between the images of a series. Default: 1e-4.
  double orientation_tolerance = 1e-4;
};

// What segrel knows about a series besides its voxels. Taken from the first image unless said otherwise.
struct DicomSeriesInfo {
  std::string series_instance_uid;
  std::string study_instance_uid;
  std::string frame_of_reference_uid;
  std::string sop_class_uid;  // of the images, e.g. MR Image Storage
  std::string modality;       // e.g. "MR"
  std::optional<int64_t> series_number;
  std::string series_description;
  std::string protocol_name;
  std::vector<std::string> image_type;    // e.g. {"ORIGINAL", "PRIMARY", "M", "ND"}
  std::optional<double> echo_time;        // ms
  std::optional<double> repetition_time;  // ms
  std::optional<double> flip_angle;       // degrees
  std::optional<double> trigger_time;     // ms
  std::string patient_position;           // (0018,5100), e.g. "FFS"
  std::string transfer_syntax;            // e.g. "Little Endian Explicit"
  std::string folder;                     // the deepest folder holding all its files
  // Per image, index t * slices + k (slice k of volume t): the file and its SOPInstanceUID.
  std::vector<std::string> files;
  std::vector<std::string> sop_instance_uids;
  // ImagePositionPatient (LPS mm) of slice k, volume 0.
  std::vector<std::array<double, 3>> positions;
  std::array<double, 6> orientation{};    // ImageOrientationPatient: row, then column cosines (LPS)
  std::array<double, 2> pixel_spacing{};  // between rows, between columns (mm)
  std::optional<double> slice_thickness;  // mm
  double slice_spacing = 0;               // mm between slice centres
  int64_t rows = 0, columns = 0, slices = 0, volumes = 0;
  std::vector<std::string> notes;  // assumptions made while reading
};

struct DicomSeries {
  DicomSeriesInfo info;
  volume::Volume volume;  // [i, j, k] float32, or [i, j, k, t] when volumes > 1
};

// A series that was found but could not be read.
struct FailedDicomSeries {
  std::string series_instance_uid;
  std::optional<int64_t> series_number;
  std::string series_description;
  absl::Status status;  // what is wrong, naming the files
};

struct DicomFolder {
  std::vector<DicomSeries> series;         // ordered by SeriesNumber, then SeriesInstanceUID
  std::vector<FailedDicomSeries> failed;   // likewise
  std::vector<absl::Status> broken_files;  // unreadable DICOM files of no known series
  std::vector<std::string> notes;          // files skipped and why
  int64_t files = 0;                       // files looked at
};

// Reads every series under `dir`. A series that cannot be read does not stop the others: it is listed in
// `failed` with its status (InvalidArgument or Unimplemented, as ReadDicomSeries says).
// Errors: NotFound when `dir` is not a folder or holds no DICOM image (the message counts the files skipped);
// FailedPrecondition when DCMTK's data dictionary is missing.
absl::StatusOr<DicomFolder> ReadDicomFolder(const std::string& dir, const DicomReadOptions& options = {});

// Reads the one series under `dir`. Errors: those of ReadDicomFolder; InvalidArgument when `dir` holds several
// series (naming them) or an unreadable DICOM file (truncated, corrupt), and for a series with a missing,
// duplicated or unevenly spaced slice, mixed orientations, images without position, orientation or spacing
// (each message names the files); Unimplemented for multi-frame and colour images, transfer syntaxes DCMTK
// cannot decode, and sheared stacks; ResourceExhausted when the series would need more than max_bytes.
absl::StatusOr<DicomSeries> ReadDicomSeries(const std::string& dir, const DicomReadOptions& options = {});

// A one-line name of a series for messages and file names: "5 t2_tse_tra_320_p2" (number, description).
std::string SeriesLabel(const std::optional<int64_t>& series_number, const std::string& description);

}  // namespace segrel::io

#endif  // SEGREL_CORE_IO_DICOM_SERIES_H_
