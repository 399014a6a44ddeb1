#include "core/io/dicom_file.h"

#include <dcmtk/config/osconfig.h>  // must come first among DCMTK headers
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcstack.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace segrel::io::dicom {

struct FileHandle {
  std::unique_ptr<DcmFileFormat> file;  // reset once the pixels are decoded
};

namespace {

// Values longer than this stay in the file until asked for: the pixel data and the scanners' private blobs.
constexpr Uint32 kMaxHeaderValueLength = 256;

// Modalities of DICOM objects that carry no image segrel could read, even where they have pixel data.
const std::set<std::string>& NonImageModalities() {
  static const auto* modalities =
      new std::set<std::string>{"SR", "SEG", "PR", "KO", "RTSTRUCT", "RTPLAN", "RTRECORD", "REG", "DOC", "FID"};
  return *modalities;
}

// Whether the file has the 128-byte preamble followed by "DICM" (DICOM Part 10).
bool HasDicomPreamble(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  char bytes[132];
  if (!file.read(bytes, sizeof(bytes))) return false;
  return std::memcmp(bytes + 128, "DICM", 4) == 0;
}

std::string GetString(DcmItem& item, const DcmTagKey& tag) {
  DcmElement* element = nullptr;
  OFString value;
  // A longer value was left in the file (and may be corrupt): no header string is that long.
  if (item.findAndGetElement(tag, element).bad() || element == nullptr ||
      element->getLengthField() > kMaxHeaderValueLength || element->getOFStringArray(value).bad()) {
    return "";
  }
  return std::string(absl::StripAsciiWhitespace(value.c_str()));
}

std::optional<double> GetDouble(DcmItem& item, const DcmTagKey& tag, unsigned long position = 0) {
  Float64 value = 0;
  if (item.findAndGetFloat64(tag, value, position).bad() || !std::isfinite(value)) return std::nullopt;
  return value;
}

std::optional<int64_t> GetInteger(DcmItem& item, const DcmTagKey& tag) {
  Sint32 value = 0;
  if (item.findAndGetSint32(tag, value).bad()) return std::nullopt;
  return value;
}

int GetUint16(DcmItem& item, const DcmTagKey& tag, int fallback) {
  Uint16 value = 0;
  if (item.findAndGetUint16(tag, value).bad()) return fallback;
  return value;
}

template <size_t N>
std::optional<std::array<double, N>> GetDoubles(DcmItem& item, const DcmTagKey& tag) {
  std::array<double, N> values{};
  for (size_t n = 0; n < N; ++n) {
    const std::optional<double> value = GetDouble(item, tag, n);
    if (!value.has_value()) return std::nullopt;
    values[n] = *value;
  }
  return values;
}

void ReadIdentity(DcmDataset& dataset, SliceHeader& header) {
  header.sop_instance_uid = GetString(dataset, DCM_SOPInstanceUID);
  header.series_instance_uid = GetString(dataset, DCM_SeriesInstanceUID);
  header.study_instance_uid = GetString(dataset, DCM_StudyInstanceUID);
  header.frame_of_reference_uid = GetString(dataset, DCM_FrameOfReferenceUID);
  header.modality = GetString(dataset, DCM_Modality);
  header.series_description = GetString(dataset, DCM_SeriesDescription);
  header.protocol_name = GetString(dataset, DCM_ProtocolName);
  header.patient_position = GetString(dataset, DCM_PatientPosition);
  const std::string image_type = GetString(dataset, DCM_ImageType);
  if (!image_type.empty()) {
    for (absl::string_view value : absl::StrSplit(image_type, '\\')) {
      header.image_type.emplace_back(absl::StripAsciiWhitespace(value));
    }
  }
  header.series_number = GetInteger(dataset, DCM_SeriesNumber);
  header.instance_number = GetInteger(dataset, DCM_InstanceNumber);
  header.acquisition_number = GetInteger(dataset, DCM_AcquisitionNumber);
  header.echo_time = GetDouble(dataset, DCM_EchoTime);
  header.repetition_time = GetDouble(dataset, DCM_RepetitionTime);
  header.flip_angle = GetDouble(dataset, DCM_FlipAngle);
  header.trigger_time = GetDouble(dataset, DCM_TriggerTime);
}

void ReadGeometry(DcmDataset& dataset, SliceHeader& header) {
  header.slice_thickness = GetDouble(dataset, DCM_SliceThickness);
  header.spacing_between_slices = GetDouble(dataset, DCM_SpacingBetweenSlices);
  header.position = GetDoubles<3>(dataset, DCM_ImagePositionPatient);
  header.orientation = GetDoubles<6>(dataset, DCM_ImageOrientationPatient);
  header.pixel_spacing = GetDoubles<2>(dataset, DCM_PixelSpacing);
  header.rows = GetUint16(dataset, DCM_Rows, 0);
  header.columns = GetUint16(dataset, DCM_Columns, 0);
  header.frames = GetInteger(dataset, DCM_NumberOfFrames).value_or(1);
  header.samples_per_pixel = GetUint16(dataset, DCM_SamplesPerPixel, 1);
  header.bits_allocated = GetUint16(dataset, DCM_BitsAllocated, 0);
  header.bits_stored = GetUint16(dataset, DCM_BitsStored, header.bits_allocated);
  header.high_bit = GetUint16(dataset, DCM_HighBit, header.bits_stored - 1);
  header.pixel_representation = GetUint16(dataset, DCM_PixelRepresentation, 0);
  header.photometric_interpretation = GetString(dataset, DCM_PhotometricInterpretation);
  // Absent means identity (PS3.3 C.11.1.1.2); a value that is present but unreadable is caught in DecodeSlice.
  header.rescale_slope = dataset.tagExists(DCM_RescaleSlope) ? GetDouble(dataset, DCM_RescaleSlope).value_or(NAN) : 1.0;
  header.rescale_intercept =
      dataset.tagExists(DCM_RescaleIntercept) ? GetDouble(dataset, DCM_RescaleIntercept).value_or(NAN) : 0.0;
}

// DCMTK allocates a value's declared length when it loads the value, before reading it: a header declaring a
// value longer than its file would make a file of a few bytes allocate up to 4 GiB (found by fuzz/dicom_fuzzer).
// Says which value does so, if any. Deflated files, whose values may be longer than the file, are not checked.
std::optional<std::string> ValueLongerThanFile(DcmFileFormat& file, const std::string& path) {
  std::error_code error;
  const uintmax_t file_size = std::filesystem::file_size(path, error);
  if (error || DcmXfer(file.getDataset()->getOriginalXfer()).getStreamCompression() != ESC_none) return std::nullopt;
  DcmStack stack;
  while (file.nextObject(stack, OFTrue).good()) {
    DcmObject* object = stack.top();
    // The length field as read: getLength() would load (and allocate) some values to compute their padding.
    const Uint32 length = object->isLeaf() ? object->getLengthField() : 0;
    if (length != DCM_UndefinedLength && length > file_size) {
      return absl::StrCat("element ", object->getTag().toString().c_str(), " declares ", length, " bytes in a file of ",
                          file_size);
    }
  }
  return std::nullopt;
}

std::string SopClassName(const std::string& uid) {
  if (uid.empty()) return "an object without SOP class";
  return dcmFindNameOfUID(uid.c_str(), uid.c_str());
}

// Stored pixel values -> modality values: the BitsStored bits ending at HighBit, sign-extended when
// PixelRepresentation is 1, times RescaleSlope plus RescaleIntercept (computed in double, rounded once).
template <typename T>
void ConvertPixels(const T* raw, const SliceHeader& h, float* out, int64_t row_stride, int64_t column_stride) {
  const int shift = h.high_bit + 1 - h.bits_stored;
  const uint32_t mask = h.bits_stored >= 32 ? ~uint32_t{0} : (uint32_t{1} << h.bits_stored) - 1;
  const uint32_t sign_bit = uint32_t{1} << (h.bits_stored - 1);
  const bool is_signed = h.pixel_representation == 1;
  for (int64_t r = 0; r < h.rows; ++r) {
    const T* row = raw + r * h.columns;
    float* target = out + r * row_stride;
    for (int64_t c = 0; c < h.columns; ++c) {
      const uint32_t bits = (static_cast<uint32_t>(row[c]) >> shift) & mask;
      int64_t value = bits;
      if (is_signed && (bits & sign_bit) != 0) value -= int64_t{1} << h.bits_stored;
      target[c * column_stride] =
          static_cast<float>(static_cast<double>(value) * h.rescale_slope + h.rescale_intercept);
    }
  }
}

absl::Status CheckPixelFormat(const SliceHeader& h) {
  if (h.samples_per_pixel != 1) {
    return absl::UnimplementedError(absl::StrCat(h.path, ": colour image (", h.photometric_interpretation, ", ",
                                                 h.samples_per_pixel, " samples per pixel); segrel reads greyscale"));
  }
  if (h.bits_allocated != 8 && h.bits_allocated != 16) {
    return absl::UnimplementedError(
        absl::StrCat(h.path, ": ", h.bits_allocated, "-bit pixels; segrel reads 8- and 16-bit integer pixels"));
  }
  if (h.bits_stored < 1 || h.bits_stored > h.bits_allocated || h.high_bit >= h.bits_allocated ||
      h.high_bit + 1 < h.bits_stored) {
    return absl::InvalidArgumentError(absl::StrCat(h.path, ": inconsistent pixel format (BitsAllocated ",
                                                   h.bits_allocated, ", BitsStored ", h.bits_stored, ", HighBit ",
                                                   h.high_bit, ")"));
  }
  if (h.rows <= 0 || h.columns <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(h.path, ": image of ", h.rows, "x", h.columns, " pixels"));
  }
  if (!std::isfinite(h.rescale_slope) || h.rescale_slope == 0.0 || !std::isfinite(h.rescale_intercept)) {
    return absl::InvalidArgumentError(absl::StrCat(h.path, ": RescaleSlope ", h.rescale_slope, " and RescaleIntercept ",
                                                   h.rescale_intercept,
                                                   " do not give values (the slope must be finite and non-zero)"));
  }
  // Every stored value times the slope plus the intercept must be a finite float32 (never an infinite voxel).
  const double largest = std::ldexp(std::abs(h.rescale_slope), h.bits_stored) + std::abs(h.rescale_intercept);
  if (!(largest <= std::numeric_limits<float>::max())) {
    return absl::InvalidArgumentError(absl::StrCat(h.path, ": RescaleSlope ", h.rescale_slope, " and RescaleIntercept ",
                                                   h.rescale_intercept, " give values beyond the float32 range"));
  }
  return absl::OkStatus();
}

// Brings encapsulated (compressed) pixel data into the uncompressed representation.
absl::Status Decompress(DcmDataset& dataset, const std::string& path) {
  const DcmXfer xfer(dataset.getOriginalXfer());
  if (!xfer.isEncapsulated()) return absl::OkStatus();
  const OFCondition condition = dataset.chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
  if (condition.good() && dataset.canWriteXfer(EXS_LittleEndianExplicit)) return absl::OkStatus();
  if (condition == EC_CannotChangeRepresentation) {
    return absl::UnimplementedError(absl::StrCat(path, ": transfer syntax ", xfer.getXferName(),
                                                 " cannot be decoded (segrel decodes uncompressed, JPEG, JPEG-LS "
                                                 "and RLE pixel data)"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": the ", xfer.getXferName(), " pixel data cannot be decoded (", condition.text(), ")"));
}

}  // namespace

absl::Status InitDicom() {
  static const absl::Status* const status = [] {
    OFLog::configure(OFLogger::OFF_LOG_LEVEL);
    if (!dcmDataDict.isDictionaryLoaded()) {
      return new absl::Status(absl::FailedPreconditionError(
          "the DICOM data dictionary is not loaded (DCMTK looks for it where DCMDICTPATH says)"));
    }
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
    return new absl::Status();
  }();
  return *status;
}

ScannedFile ScanDicomFile(const std::string& path) {
  ScannedFile result;
  SliceHeader& header = result.header;
  header.path = path;
  const bool has_preamble = HasDicomPreamble(path);
  auto file = std::make_unique<DcmFileFormat>();
  const OFCondition condition =
      file->loadFile(path.c_str(), EXS_Unknown, EGL_noChange, kMaxHeaderValueLength, ERM_autoDetect);
  const std::optional<std::string> too_long = ValueLongerThanFile(*file, path);
  if (too_long.has_value()) {
    result.kind = has_preamble ? FileKind::kBroken : FileKind::kNotDicom;
    result.note = absl::StrCat(path, ": skipped, not a DICOM file");
    // So that the file's series fails rather than reads without it.
    header.series_instance_uid = GetString(*file->getDataset(), DCM_SeriesInstanceUID);
    result.error =
        absl::InvalidArgumentError(absl::StrCat(path, ": truncated or corrupt DICOM file (", *too_long, ")"));
    return result;
  }
  DcmDataset& dataset = *file->getDataset();
  header.sop_class_uid = GetString(dataset, DCM_SOPClassUID);
  if (header.sop_class_uid.empty()) header.sop_class_uid = GetString(*file->getMetaInfo(), DCM_MediaStorageSOPClassUID);
  if (!has_preamble && (condition.bad() || header.sop_class_uid.empty())) {
    result.kind = FileKind::kNotDicom;
    result.note = absl::StrCat(path, ": skipped, not a DICOM file");
    return result;
  }
  if (condition.bad()) {
    header.series_instance_uid = GetString(dataset, DCM_SeriesInstanceUID);
    result.kind = FileKind::kBroken;
    result.error =
        absl::InvalidArgumentError(absl::StrCat(path, ": truncated or corrupt DICOM file (", condition.text(), ")"));
    return result;
  }
  ReadIdentity(dataset, header);
  // Float pixel data is an image too: DecodeSlice refuses it by name rather than skipping it as a non-image.
  const bool has_pixels = dataset.tagExists(DCM_PixelData) || dataset.tagExists(DCM_FloatPixelData) ||
                          dataset.tagExists(DCM_DoubleFloatPixelData);
  if (!has_pixels || header.sop_class_uid == UID_SegmentationStorage ||
      NonImageModalities().count(header.modality) > 0) {
    result.kind = FileKind::kNotImage;
    result.note = absl::StrCat(path, ": skipped, not an image (", SopClassName(header.sop_class_uid),
                               header.modality.empty() ? "" : absl::StrCat(", modality ", header.modality), ")");
    return result;
  }
  if (header.series_instance_uid.empty()) {
    result.kind = FileKind::kBroken;
    result.error = absl::InvalidArgumentError(absl::StrCat(path, ": image without SeriesInstanceUID"));
    return result;
  }
  ReadGeometry(dataset, header);
  header.transfer_syntax = DcmXfer(dataset.getOriginalXfer()).getXferName();
  result.kind = FileKind::kImage;
  header.handle = std::make_shared<FileHandle>();
  header.handle->file = std::move(file);
  return result;
}

absl::Status DecodeSlice(const SliceHeader& header, float* out, int64_t row_stride, int64_t column_stride) {
  if (header.handle == nullptr || header.handle->file == nullptr) {
    return absl::InternalError(absl::StrCat(header.path, ": the file's pixels were decoded before"));
  }
  // Frees the file's pixel data however this ends.
  const std::unique_ptr<DcmFileFormat> file = std::move(header.handle->file);
  const absl::Status format = CheckPixelFormat(header);
  if (!format.ok()) return format;
  if (header.frames != 1) {
    return absl::UnimplementedError(
        absl::StrCat(header.path, ": multi-frame image (", header.frames, " frames); segrel reads one image per file"));
  }
  DcmDataset& dataset = *file->getDataset();
  const absl::Status decompressed = Decompress(dataset, header.path);
  if (!decompressed.ok()) return decompressed;

  DcmElement* element = nullptr;
  if (dataset.findAndGetElement(DCM_PixelData, element).bad() || element == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(header.path, ": no pixel data"));
  }
  const int64_t pixels = header.rows * header.columns;
  const int64_t bytes_per_pixel = header.bits_allocated / 8;
  const auto truncated = [&](const OFCondition& condition) {
    return absl::InvalidArgumentError(absl::StrCat(header.path, ": the pixel data is truncated or unreadable (",
                                                   element->getLength(), " bytes, ", header.rows, "x", header.columns,
                                                   "x", bytes_per_pixel, " expected; ", condition.text(), ")"));
  };
  if (header.bits_allocated == 16) {
    Uint16* values = nullptr;
    const OFCondition condition = element->getUint16Array(values);
    if (condition.bad() || values == nullptr || static_cast<int64_t>(element->getLength()) < pixels * 2) {
      return truncated(condition);
    }
    ConvertPixels(values, header, out, row_stride, column_stride);
  } else {
    Uint8* values = nullptr;
    const OFCondition condition = element->getUint8Array(values);
    if (condition.bad() || values == nullptr || static_cast<int64_t>(element->getLength()) < pixels) {
      return truncated(condition);
    }
    ConvertPixels(values, header, out, row_stride, column_stride);
  }
  return absl::OkStatus();
}

std::string DecimalString(double value) {
  if (!std::isfinite(value)) return "0";
  for (int digits = 15; digits > 0; --digits) {
    std::string text = absl::StrFormat("%.*g", digits, value);
    if (text.size() <= 16) return text;
  }
  return "0";
}

}  // namespace segrel::io::dicom
