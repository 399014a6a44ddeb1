// One DICOM file as segrel's series reader sees it: the header fields that place and describe an image, and the
// decoding of its pixels. Used by dicom_series.cc (and the fuzz targets); DCMTK stays inside dicom_file.cc.
//
// A file is parsed once: the header at scan time, with large values (the pixel data, private blobs) left in the
// file; the pixel data is read when the slice is decoded. Thread-safe: different files may be scanned and
// decoded on different threads; one file's header is decoded by one thread.
#ifndef SEGREL_CORE_IO_DICOM_FILE_H_
#define SEGREL_CORE_IO_DICOM_FILE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace segrel::io::dicom {

// Opaque: the parsed file, holding what DecodeSlice still needs (defined in dicom_file.cc).
struct FileHandle;

// The header fields of one image file. Patient-identifying fields are never read.
struct SliceHeader {
  std::string path;
  std::string sop_class_uid;
  std::string sop_instance_uid;
  std::string series_instance_uid;
  std::string study_instance_uid;
  std::string frame_of_reference_uid;
  std::string modality;
  std::string series_description;
  std::string protocol_name;
  std::string patient_position;         // (0018,5100), e.g. "FFS"
  std::vector<std::string> image_type;  // (0008,0008) values
  std::string transfer_syntax;          // its name, e.g. "Little Endian Explicit"
  std::optional<int64_t> series_number;
  std::optional<int64_t> instance_number;
  std::optional<int64_t> acquisition_number;
  std::optional<double> echo_time;                     // ms
  std::optional<double> repetition_time;               // ms
  std::optional<double> flip_angle;                    // degrees
  std::optional<double> trigger_time;                  // ms
  std::optional<double> slice_thickness;               // mm
  std::optional<double> spacing_between_slices;        // mm
  std::optional<std::array<double, 3>> position;       // ImagePositionPatient, LPS mm
  std::optional<std::array<double, 6>> orientation;    // ImageOrientationPatient: row, then column cosines (LPS)
  std::optional<std::array<double, 2>> pixel_spacing;  // PixelSpacing: between rows, between columns (mm)
  int64_t rows = 0;
  int64_t columns = 0;
  int64_t frames = 1;  // NumberOfFrames
  int samples_per_pixel = 1;
  int bits_allocated = 0;
  int bits_stored = 0;
  int high_bit = 0;
  int pixel_representation = 0;  // 0 unsigned, 1 two's complement
  std::string photometric_interpretation;
  double rescale_slope = 1.0;
  double rescale_intercept = 0.0;

  std::shared_ptr<FileHandle> handle;  // for DecodeSlice
};

// What ScanDicomFile found.
enum class FileKind {
  kImage,     // a single-image DICOM file segrel can place: `header` is filled
  kNotDicom,  // not a DICOM file: skipped (`note` says so)
  kNotImage,  // a DICOM object without an image (SR, SEG, PR, ...): skipped (`note` says which)
  kBroken,    // a DICOM file that cannot be read (truncated, corrupt): `error`; `header` holds what was read
};

struct ScannedFile {
  FileKind kind = FileKind::kNotDicom;
  SliceHeader header;
  std::string note;
  absl::Status error;
};

// Prepares DCMTK once per process: checks that the DICOM data dictionary is loaded, registers the decoders for
// JPEG (baseline, extended, lossless), JPEG-LS and RLE, and silences DCMTK's own log (segrel reports statuses).
// Errors: FailedPrecondition when the data dictionary is missing (DCMTK's DCMDICTPATH).
absl::Status InitDicom();

// Reads the header of `path`. Never fails: a file that is not DICOM, or a DICOM object without an image, is
// reported as such; a DICOM file that cannot be parsed is kBroken with an InvalidArgument error naming it.
// A file counts as DICOM when it has the "DICM" preamble, or when DCMTK parses it and finds a SOP class.
// REQUIRES: InitDicom() returned OK.
ScannedFile ScanDicomFile(const std::string& path);

// Decodes the pixels of `header`'s image, applies RescaleSlope/Intercept and writes pixel (row r, column c) to
// out[r * row_stride + c * column_stride]. Releases the file's pixel data afterwards.
// Errors: InvalidArgument naming the file for pixel data that is shorter than the header says or cannot be
// decoded; Unimplemented for colour images, multi-frame images, pixel formats other than 8 or 16 bit integers,
// and transfer syntaxes DCMTK cannot decode (JPEG 2000, video).
// REQUIRES: header.handle is set (a kImage result of ScanDicomFile); each header is decoded at most once.
absl::Status DecodeSlice(const SliceHeader& header, float* out, int64_t row_stride, int64_t column_stride);

// `value` as a DICOM decimal string (DS: at most 16 characters), as precisely as 16 characters allow; "0" for
// values that are not finite. What segrel's DICOM writers (SEG, SR) put into DS attributes.
std::string DecimalString(double value);

}  // namespace segrel::io::dicom

#endif  // SEGREL_CORE_IO_DICOM_FILE_H_
