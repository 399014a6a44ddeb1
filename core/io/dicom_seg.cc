#include "core/io/dicom_seg.h"

#include <dcmtk/config/osconfig.h>  // must come first among DCMTK headers
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmfg/fgfracon.h>
#include <dcmtk/dcmfg/fgpixmsr.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmiod/iodreferences.h>
#include <dcmtk/dcmiod/iodutil.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>

#include <array>
#include <cmath>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"
#include "core/io/dicom_file.h"

namespace segrel::io {
namespace {

// Longer values of the reference's header stay in its file: the attributes copied are short.
constexpr Uint32 kMaxHeaderValueLength = 256;

// The attributes of the reference's Patient, General Study and Frame of Reference modules that the SEG IOD
// requires (types 1 and 2) and that DCMTK does not fill itself, with the character set they are encoded in.
const std::array<DcmTagKey, 11>& CopiedTags() {
  static const std::array<DcmTagKey, 11> tags = {DCM_SpecificCharacterSet,
                                                 DCM_PatientName,
                                                 DCM_PatientID,
                                                 DCM_PatientBirthDate,
                                                 DCM_PatientSex,
                                                 DCM_StudyDate,
                                                 DCM_StudyTime,
                                                 DCM_ReferringPhysicianName,
                                                 DCM_StudyID,
                                                 DCM_AccessionNumber,
                                                 DCM_PositionReferenceIndicator};
  return tags;
}

// A DCMTK condition as a status that names `path`.
absl::Status Check(const OFCondition& condition, const std::string& path, const char* what) {
  if (condition.good()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(path, ": cannot ", what, " (DCMTK: ", condition.text(), ")"));
}

// DS values as OFString, DCMTK's string type.
OFString DecimalString(double value) { return dicom::DecimalString(value).c_str(); }

absl::Status CheckInput(const at::Tensor& labels, const std::vector<std::string>& class_names,
                        const DicomSeriesInfo& reference) {
  const std::string series = SeriesLabel(reference.series_number, reference.series_description);
  if (class_names.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("a DICOM SEG needs a background and at least one class; ", class_names.size(), " named"));
  }
  if (class_names.size() > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(class_names.size(), " classes; a DICOM SEG holds at most 65535"));
  }
  if (!labels.defined() || labels.dim() != 3 || labels.size(0) != reference.columns ||
      labels.size(1) != reference.rows || labels.size(2) != reference.slices) {
    return absl::InvalidArgumentError(absl::StrCat("the segmentation (",
                                                   labels.defined() ? absl::StrJoin(labels.sizes(), "x") : "none",
                                                   ") is not on the grid of series ", series, " (", reference.columns,
                                                   "x", reference.rows, "x", reference.slices, ")"));
  }
  if (reference.frame_of_reference_uid.empty() || reference.study_instance_uid.empty() ||
      reference.series_instance_uid.empty() || reference.sop_class_uid.empty() || reference.files.empty() ||
      reference.positions.size() != static_cast<size_t>(reference.slices) ||
      reference.sop_instance_uids.size() < static_cast<size_t>(reference.slices)) {
    return absl::InvalidArgumentError(
        absl::StrCat("series ", series,
                     " lacks what a DICOM SEG must reference (FrameOfReferenceUID, StudyInstanceUID, "
                     "SeriesInstanceUID, SOP class and instance UIDs and positions of its images)"));
  }
  return absl::OkStatus();
}

// The labels as whole numbers in [0, classes), or an error.
absl::StatusOr<at::Tensor> ClassIndices(const at::Tensor& labels, int64_t classes) {
  const at::Tensor values = labels.to(at::kDouble);
  const bool whole = at::equal(values, values.round());
  const bool in_range = whole && values.min().item<double>() >= 0 && values.max().item<double>() < classes;
  if (!in_range) {
    return absl::InvalidArgumentError(absl::StrCat("the segmentation holds values that are not class indices 0 to ",
                                                   classes - 1, " (values from ", values.min().item<double>(), " to ",
                                                   values.max().item<double>(), ")"));
  }
  return labels.to(at::kInt).contiguous();
}

// What segrel writes as the SEG's equipment and content identification.
IODGeneralEquipmentModule::EquipmentInfo Equipment(const DicomSegOptions& options) {
  return IODGeneralEquipmentModule::EquipmentInfo("segrel", "segrel", "none", options.software_version.c_str());
}

ContentIdentificationMacro ContentIdentification() {
  ContentIdentificationMacro content;
  content.setInstanceNumber("1");
  content.setContentLabel("SEGREL");
  content.setContentDescription("segmentation by segrel");
  content.setContentCreatorName("");
  return content;
}

// A segment per class but the background. The classes' names are free text: they are coded in a private scheme
// (PS3.3 8.2: coding scheme designators starting with "99"), with the name as code meaning.
absl::Status AddSegments(DcmSegmentation& seg, const std::vector<std::string>& class_names,
                         const DicomSegOptions& options, const std::string& path) {
  for (size_t c = 1; c < class_names.size(); ++c) {
    DcmSegment* created = nullptr;
    const OFCondition condition = DcmSegment::create(
        created, class_names[c].substr(0, 64).c_str(), CodeSequenceMacro("SEGRELCLASS", "99SEGREL", "segrel class"),
        CodeSequenceMacro(absl::StrCat("CLASS", c).c_str(), "99SEGREL", class_names[c].substr(0, 64).c_str()),
        DcmSegTypes::SAT_AUTOMATIC, options.algorithm_name.c_str());
    std::unique_ptr<DcmSegment> segment(created);
    SEGREL_RETURN_IF_ERROR(Check(condition, path, "create a segment"));
    Uint16 number = 0;
    SEGREL_RETURN_IF_ERROR(Check(seg.addSegment(segment.get(), number), path, "add a segment"));
    segment.release();  // the SEG owns it now
    if (number != c) return absl::InternalError(absl::StrCat(path, ": segment ", c, " was numbered ", number));
  }
  return absl::OkStatus();
}

// Orientation and pixel measures (the same for every frame), and the frames' two dimensions: segment, position.
absl::Status AddSharedGroups(DcmSegmentation& seg, const DicomSeriesInfo& reference, const std::string& path) {
  const std::array<double, 6>& o = reference.orientation;
  const std::unique_ptr<FGPlaneOrientationPatient> orientation(
      FGPlaneOrientationPatient::createMinimal(DecimalString(o[0]), DecimalString(o[1]), DecimalString(o[2]),
                                               DecimalString(o[3]), DecimalString(o[4]), DecimalString(o[5])));
  if (orientation == nullptr) return absl::InternalError(absl::StrCat(path, ": cannot create the orientation"));
  SEGREL_RETURN_IF_ERROR(Check(seg.addForAllFrames(*orientation), path, "add the orientation"));

  FGPixelMeasures measures;
  const OFString spacing = DecimalString(reference.pixel_spacing[0]) + "\\" + DecimalString(reference.pixel_spacing[1]);
  SEGREL_RETURN_IF_ERROR(Check(measures.setPixelSpacing(spacing), path, "set PixelSpacing"));
  SEGREL_RETURN_IF_ERROR(
      Check(measures.setSliceThickness(DecimalString(reference.slice_thickness.value_or(reference.slice_spacing))),
            path, "set SliceThickness"));
  SEGREL_RETURN_IF_ERROR(
      Check(measures.setSpacingBetweenSlices(DecimalString(reference.slice_spacing)), path, "set the slice spacing"));
  SEGREL_RETURN_IF_ERROR(Check(seg.addForAllFrames(measures), path, "add the pixel measures"));

  char uid[100];
  dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT);
  IODMultiframeDimensionModule& dimensions = seg.getDimensions();
  SEGREL_RETURN_IF_ERROR(Check(
      dimensions.addDimensionIndex(DCM_ReferencedSegmentNumber, uid, DCM_SegmentIdentificationSequence, "Segment"),
      path, "add the segment dimension"));
  SEGREL_RETURN_IF_ERROR(
      Check(dimensions.addDimensionIndex(DCM_ImagePositionPatient, uid, DCM_PlanePositionSequence, "Position"), path,
            "add the position dimension"));
  return absl::OkStatus();
}

// The per-frame groups of slice k of segment `segment`: position, dimension indices, source image.
struct FrameGroups {
  std::unique_ptr<FGPlanePosPatient> position;
  FGFrameContent content;
  std::unique_ptr<FGDerivationImage> derivation;
};

absl::StatusOr<FrameGroups> MakeFrameGroups(const DicomSeriesInfo& reference, int64_t k, Uint16 segment,
                                            const std::string& path) {
  FrameGroups groups;
  const std::array<double, 3>& p = reference.positions[k];
  groups.position.reset(
      FGPlanePosPatient::createMinimal(DecimalString(p[0]), DecimalString(p[1]), DecimalString(p[2])));
  if (groups.position == nullptr) return absl::InternalError(absl::StrCat(path, ": cannot create a position"));
  SEGREL_RETURN_IF_ERROR(Check(groups.content.setDimensionIndexValues(segment, 0), path, "index a frame"));
  SEGREL_RETURN_IF_ERROR(
      Check(groups.content.setDimensionIndexValues(static_cast<Uint32>(k + 1), 1), path, "index a frame"));
  ImageSOPInstanceReferenceMacro source;
  SEGREL_RETURN_IF_ERROR(
      Check(source.setReferencedSOPClassUID(reference.sop_class_uid.c_str()), path, "reference a source image"));
  SEGREL_RETURN_IF_ERROR(Check(source.setReferencedSOPInstanceUID(reference.sop_instance_uids[k].c_str()), path,
                               "reference a source image"));
  const OFVector<ImageSOPInstanceReferenceMacro> sources(1, source);
  groups.derivation.reset(DcmSegmentation::createDerivationImageFG(sources, "segmentation by segrel"));
  if (groups.derivation == nullptr) return absl::InternalError(absl::StrCat(path, ": cannot reference a source"));
  return groups;
}

// Frame pixel (row r, column c) of slice k is voxel (i = c, j = rows - 1 - r, k); 1 where it is of `segment`.
void FillFrame(at::TensorAccessor<int32_t, 3> voxels, int64_t segment, int64_t k, int64_t rows, int64_t columns,
               Uint8* frame) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < columns; ++c) frame[r * columns + c] = voxels[c][rows - 1 - r][k] == segment ? 1 : 0;
  }
}

// One frame per segment and slice, with its functional groups.
absl::Status AddFrames(DcmSegmentation& seg, const at::Tensor& classes, int64_t segments,
                       const DicomSeriesInfo& reference, const std::string& path) {
  const int64_t rows = reference.rows, columns = reference.columns;
  const auto voxels = classes.accessor<int32_t, 3>();
  std::vector<Uint8> frame(rows * columns);
  for (int64_t s = 1; s <= segments; ++s) {
    for (int64_t k = 0; k < reference.slices; ++k) {
      FillFrame(voxels, s, k, rows, columns, frame.data());
      SEGREL_ASSIGN_OR_RETURN(FrameGroups groups, MakeFrameGroups(reference, k, static_cast<Uint16>(s), path));
      OFVector<FGBase*> per_frame = {groups.position.get(), &groups.content, groups.derivation.get()};
      SEGREL_RETURN_IF_ERROR(Check(seg.addFrame(frame.data(), static_cast<Uint16>(s), per_frame), path, "add a frame"));
    }
  }
  return absl::OkStatus();
}

// Writes the frames' bits as PS3.5 8.1.1 says: one bit per pixel, least significant bit first, the frames one
// after the other without padding between them. DCMTK 3.6.7 pads every frame to a whole byte, which readers
// (pydicom, highdicom) misread when rows x columns is not a multiple of 8, so the pixel data it wrote is replaced.
absl::Status PutPackedFrames(const at::Tensor& classes, int64_t segments, const DicomSeriesInfo& reference,
                             DcmDataset& dataset, const std::string& path) {
  const int64_t pixels = reference.rows * reference.columns;
  const int64_t bits = segments * reference.slices * pixels;
  std::vector<Uint8> packed((bits + 15) / 16 * 2, 0);  // an even length, as every DICOM value
  std::vector<Uint8> frame(pixels);
  const auto voxels = classes.accessor<int32_t, 3>();
  int64_t bit = 0;
  for (int64_t s = 1; s <= segments; ++s) {
    for (int64_t k = 0; k < reference.slices; ++k) {
      FillFrame(voxels, s, k, reference.rows, reference.columns, frame.data());
      for (int64_t p = 0; p < pixels; ++p, ++bit) {
        if (frame[p] != 0) packed[bit / 8] |= static_cast<Uint8>(1u << (bit % 8));
      }
    }
  }
  return Check(dataset.putAndInsertUint8Array(DCM_PixelData, packed.data(), packed.size()), path,
               "write the pixel data");
}

// Study, series, frame of reference and the referenced images (Common Instance Reference module).
absl::Status SetHierarchy(DcmSegmentation& seg, const DicomSeriesInfo& reference, const DicomSegOptions& options,
                          const std::string& path) {
  SEGREL_RETURN_IF_ERROR(
      Check(seg.getStudy().setStudyInstanceUID(reference.study_instance_uid.c_str()), path, "set StudyInstanceUID"));
  SEGREL_RETURN_IF_ERROR(
      Check(seg.getFrameOfReference().setFrameOfReferenceUID(reference.frame_of_reference_uid.c_str()), path,
            "set FrameOfReferenceUID"));
  char uid[100];
  SEGREL_RETURN_IF_ERROR(
      Check(seg.getSeries().setSeriesInstanceUID(dcmGenerateUniqueIdentifier(uid, SITE_SERIES_UID_ROOT)), path,
            "set SeriesInstanceUID"));
  SEGREL_RETURN_IF_ERROR(
      Check(seg.getSOPCommon().setSOPInstanceUID(dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT)), path,
            "set SOPInstanceUID"));
  SEGREL_RETURN_IF_ERROR(
      Check(seg.getSeries().setSeriesNumber(absl::StrCat(options.series_number).c_str()), path, "set SeriesNumber"));
  SEGREL_RETURN_IF_ERROR(Check(seg.getSeries().setSeriesDescription(options.series_description.substr(0, 64).c_str()),
                               path, "set SeriesDescription"));

  IODReferences references;
  for (int64_t k = 0; k < reference.slices; ++k) {
    auto image = std::make_unique<IODImageReference>(IODReference::LEVEL_SERIES);
    image->m_StudyInstanceUID = reference.study_instance_uid.c_str();
    image->m_SeriesInstanceUID = reference.series_instance_uid.c_str();
    image->m_SOPClassUID = reference.sop_class_uid.c_str();
    image->m_SOPInstanceUID = reference.sop_instance_uids[k].c_str();
    if (!references.add(image.get())) {
      return absl::InternalError(absl::StrCat(path, ": cannot reference image ", reference.files[k]));
    }
    image.release();  // `references` owns it now
  }
  if (seg.getCommonInstanceReference().addReferences(references, reference.study_instance_uid.c_str()) !=
      static_cast<size_t>(reference.slices)) {
    return absl::InternalError(absl::StrCat(path, ": cannot reference the images of the series"));
  }
  return absl::OkStatus();
}

// Copies CopiedTags() from the reference's first file into `dataset`, verbatim (absent ones stay empty).
absl::Status CopyPatientAndStudy(const DicomSeriesInfo& reference, DcmDataset& dataset, const std::string& path) {
  DcmFileFormat source;
  const std::string& file = reference.files.front();
  if (source.loadFile(file.c_str(), EXS_Unknown, EGL_noChange, kMaxHeaderValueLength, ERM_autoDetect).bad()) {
    return absl::NotFoundError(absl::StrCat(file, ": cannot read the reference image for ", path));
  }
  for (const DcmTagKey& tag : CopiedTags()) {
    DcmElement* element = nullptr;
    if (source.getDataset()->findAndGetElement(tag, element).bad() || element == nullptr) continue;
    DcmElement* copy = OFstatic_cast(DcmElement*, element->clone());
    if (dataset.insert(copy, /*replaceOld=*/OFTrue).bad()) {
      delete copy;
      return absl::InternalError(absl::StrCat(path, ": cannot copy an attribute of the reference"));
    }
  }
  return absl::OkStatus();
}

absl::Status Write(const std::string& path, const at::Tensor& classes, const std::vector<std::string>& class_names,
                   const DicomSeriesInfo& reference, const DicomSegOptions& options) {
  DcmSegmentation* created = nullptr;
  const OFCondition condition = DcmSegmentation::createBinarySegmentation(created, static_cast<Uint16>(reference.rows),
                                                                          static_cast<Uint16>(reference.columns),
                                                                          Equipment(options), ContentIdentification());
  std::unique_ptr<DcmSegmentation> seg(created);
  SEGREL_RETURN_IF_ERROR(Check(condition, path, "create the segmentation object"));
  SEGREL_RETURN_IF_ERROR(SetHierarchy(*seg, reference, options, path));
  SEGREL_RETURN_IF_ERROR(AddSegments(*seg, class_names, options, path));
  SEGREL_RETURN_IF_ERROR(AddSharedGroups(*seg, reference, path));
  SEGREL_RETURN_IF_ERROR(AddFrames(*seg, classes, static_cast<int64_t>(class_names.size()) - 1, reference, path));

  DcmFileFormat file;
  SEGREL_RETURN_IF_ERROR(Check(seg->writeDataset(*file.getDataset()), path, "build the segmentation object"));
  SEGREL_RETURN_IF_ERROR(
      PutPackedFrames(classes, static_cast<int64_t>(class_names.size()) - 1, reference, *file.getDataset(), path));
  SEGREL_RETURN_IF_ERROR(CopyPatientAndStudy(reference, *file.getDataset(), path));
  SEGREL_RETURN_IF_ERROR(Check(file.saveFile(path.c_str(), EXS_LittleEndianExplicit), path, "write the file"));
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteDicomSeg(const std::string& path, const at::Tensor& labels,
                           const std::vector<std::string>& class_names, const DicomSeriesInfo& reference,
                           const DicomSegOptions& options) {
  SEGREL_RETURN_IF_ERROR(dicom::InitDicom());
  SEGREL_RETURN_IF_ERROR(CheckInput(labels, class_names, reference));
  return CatchTorch(path, [&]() -> absl::Status {
    SEGREL_ASSIGN_OR_RETURN(const at::Tensor classes,
                            ClassIndices(labels.cpu(), static_cast<int64_t>(class_names.size())));
    return Write(path, classes, class_names, reference, options);
  });
}

}  // namespace segrel::io
