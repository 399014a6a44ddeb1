#include "core/io/dicom_sr.h"

#include <dcmtk/config/osconfig.h>  // must come first among DCMTK headers
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmsr/cmr/tid1500.h>
#include <dcmtk/dcmsr/codes/dcm.h>
#include <dcmtk/dcmsr/dsrdoc.h>

#include <array>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
#include "core/io/dicom_file.h"

namespace segrel::io {
namespace {

// segrel's private codes (docs/conventions.md, "The structured report").
constexpr const char* kScheme = "99SEGREL";
DSRCodedEntryValue RelevanceShare() { return DSRCodedEntryValue("RSHARE", kScheme, "Relevance share"); }
DSRCodedEntryValue RelevanceSum() { return DSRCodedEntryValue("RSUM", kScheme, "Relevance sum"); }
DSRCodedEntryValue InputSequence() { return DSRCodedEntryValue("INSEQ", kScheme, "Input sequence"); }
DSRCodedEntryValue VoxelCount() { return DSRCodedEntryValue("VOXELS", kScheme, "Number of voxels"); }
DSRCodedEntryValue ExplainedVoxelCount() {
  return DSRCodedEntryValue("EXPLVOXELS", kScheme, "Number of voxels explained");
}
DSRCodedEntryValue LesionCount() { return DSRCodedEntryValue("LESIONS", kScheme, "Number of lesions"); }
DSRCodedEntryValue DiceWithReference() {
  return DSRCodedEntryValue("DICE", kScheme, "Dice coefficient with reference");
}
// (118565006, SCT, "Volume"): the standard code for a region's volume.
const CMR_CID7469 kVolume(CMR_CID7469::Volume);

// A CodeValue (SH, at most 16 characters) for a name: the name itself when it fits, else PREFIX + index.
OFString CodeValueFor(const std::string& name, const char* prefix, size_t index) {
  if (!name.empty() && name.size() <= 16 && name.find('\\') == std::string::npos) return name.c_str();
  return absl::StrCat(prefix, index).c_str();
}

// The sequence `s` as the value of the "Input sequence" modifier.
DSRCodedEntryValue SequenceCode(const RelevanceReportContent& content, size_t s) {
  return DSRCodedEntryValue(CodeValueFor(content.sequences[s], "SEQ", s), kScheme, content.sequences[s].c_str());
}

// DS values as OFString, DCMTK's string type.
OFString DecimalString(double value) { return dicom::DecimalString(value).c_str(); }

CMR_TID1411_in_TID1500::MeasurementValue Value(double value, CMR_CID7181::EnumType unit) {
  return CMR_TID1411_in_TID1500::MeasurementValue(DecimalString(value), CMR_CID7181(unit));
}

absl::Status Check(const OFCondition& condition, const std::string& path, const std::string& what) {
  if (condition.good()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(path, ": cannot ", what, " (DCMTK: ", condition.text(), ")"));
}

absl::Status CheckContent(const RelevanceReportContent& content) {
  const size_t n = content.sequences.size();
  if (n == 0 || content.series.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("a relevance report needs one series per sequence; ", n,
                                                   " sequences, ", content.series.size(), " series"));
  }
  if (content.regions.empty()) return absl::InvalidArgumentError("a relevance report needs an explained region");
  for (const ExplainedRegion& region : content.regions) {
    if (region.shares.size() != n || region.raw.size() != n) {
      return absl::InvalidArgumentError(absl::StrCat("region ", region.name, ": ", region.shares.size(), " shares and ",
                                                     region.raw.size(), " sums for ", n, " sequences"));
    }
    if (region.segments.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("region ", region.name, " names no segment of the SEG"));
    }
  }
  return absl::OkStatus();
}

// The SEG's SOP class and instance, study, series and the voxel volume its grid implies (mm3).
struct SegFacts {
  OFString sop_class, sop_instance, study, series;
  double voxel_mm3 = 0;
};

// Multiplies out PixelSpacing and SliceThickness of the SEG's shared pixel measures.
double VoxelVolume(DcmItem& dataset) {
  DcmItem* shared = nullptr;
  DcmItem* measures = nullptr;
  if (dataset.findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, shared).bad() ||
      shared->findAndGetSequenceItem(DCM_PixelMeasuresSequence, measures).bad()) {
    return 0;
  }
  Float64 row = 0, column = 0, thickness = 0;
  if (measures->findAndGetFloat64(DCM_PixelSpacing, row, 0).bad() ||
      measures->findAndGetFloat64(DCM_PixelSpacing, column, 1).bad() ||
      measures->findAndGetFloat64(DCM_SliceThickness, thickness).bad()) {
    return 0;
  }
  return row * column * thickness;
}

// The algorithm every TID 1411 measurement names (TID 4019).
struct Algorithm {
  OFString name, version;
  std::array<std::string, 4> parameters;
};

Algorithm AlgorithmOf(const RelevanceReportContent& content) {
  return {
      absl::StrCat("segrel ", content.model, content.model_version.empty() ? "" : " ", content.model_version).c_str(),
      content.software_version.c_str(),
      {absl::StrCat("composite=", content.composite), absl::StrCat("seed=", content.seed),
       absl::StrCat("tau=", DecimalString(content.tau).c_str()), absl::StrCat("region=", content.region_kind)}};
}

// Names the algorithm in a TID 1419 measurement; TID 300 (in TID 1501 groups) has no place for it.
OFCondition Identify(CMR_TID1419_in_TID1411_in_TID1500& measurement, const Algorithm& algorithm) {
  OFCondition condition = measurement.setAlgorithmIdentification(algorithm.name, algorithm.version);
  for (const std::string& parameter : algorithm.parameters) {
    if (condition.good()) condition = measurement.getAlgorithmIdentification().addParameter(parameter.c_str());
  }
  return condition;
}
OFCondition Identify(CMR_TID300_in_TID1501_in_TID1500&, const Algorithm&) { return EC_Normal; }

// The measurements of `region` for sequence `s` into `group` (TID 1411 or TID 1501); `describe` adds what a
// measurement of that template says besides its value.
template <typename Group, typename Describe>
absl::Status AddMeasurements(Group& group, const RelevanceReportContent& content, const ExplainedRegion& region,
                             size_t s, const SegFacts& seg, Describe describe, const std::string& path) {
  const Algorithm algorithm = AlgorithmOf(content);
  auto measure = [&](const CMR_CID7469& concept, double value, CMR_CID7181::EnumType unit,
                     bool of_sequence) -> absl::Status {
    const std::string meaning = concept.getSelectedValue().getCodeMeaning().c_str();
    const std::string measuring = absl::StrCat("add measurement ", meaning, " of region ", region.name);
    SEGREL_RETURN_IF_ERROR(Check(group.addMeasurement(concept, Value(value, unit), OFFalse), path, measuring));
    auto& measurement = group.getMeasurement();
    if (of_sequence) {
      SEGREL_RETURN_IF_ERROR(
          Check(measurement.addModifier(InputSequence(), SequenceCode(content, s)), path, measuring));
      SEGREL_RETURN_IF_ERROR(Check(
          measurement.setEquivalentMeaningOfConceptName(absl::StrCat(meaning, " of ", content.sequences[s]).c_str()),
          path, measuring));
    }
    SEGREL_RETURN_IF_ERROR(Check(Identify(measurement, algorithm), path, measuring));
    return Check(describe(measurement), path, measuring);
  };
  SEGREL_RETURN_IF_ERROR(measure(CMR_CID7469(RelevanceShare()), region.shares[s], CMR_CID7181::Ratio, true));
  SEGREL_RETURN_IF_ERROR(measure(CMR_CID7469(RelevanceSum()), region.raw[s], CMR_CID7181::NoUnits, true));
  SEGREL_RETURN_IF_ERROR(
      measure(CMR_CID7469(VoxelCount()), static_cast<double>(region.voxels), CMR_CID7181::NoUnits, false));
  if (seg.voxel_mm3 > 0) {
    SEGREL_RETURN_IF_ERROR(
        measure(kVolume, static_cast<double>(region.voxels) * seg.voxel_mm3, CMR_CID7181::CubicMillimeter, false));
  }
  if (region.lesions) {
    SEGREL_RETURN_IF_ERROR(
        measure(CMR_CID7469(LesionCount()), static_cast<double>(*region.lesions), CMR_CID7181::NoUnits, false));
  }
  SEGREL_RETURN_IF_ERROR(measure(CMR_CID7469(ExplainedVoxelCount()), static_cast<double>(region.explained_voxels),
                                 CMR_CID7181::NoUnits, false));
  if (region.dice) {
    SEGREL_RETURN_IF_ERROR(measure(CMR_CID7469(DiceWithReference()), *region.dice, CMR_CID7181::Ratio, false));
  }
  return absl::OkStatus();
}

// The SEG's segment `number` as an image reference.
DSRImageReferenceValue Segment(const SegFacts& seg, uint16_t number) {
  DSRImageReferenceValue segment(seg.sop_class, seg.sop_instance);
  segment.getSegmentList().addItem(number);
  return segment;
}

// A region of one segment for sequence `s`: a TID 1411 group (Volumetric ROI measurements) referencing the segment
// and, as the source series, the sequence's.
absl::Status AddRoiGroup(CMR_TID1500& report, bool first, const RelevanceReportContent& content,
                         const ExplainedRegion& region, size_t s, const SegFacts& seg, const OFString& tracking_uid,
                         const std::string& path) {
  if (!first) SEGREL_RETURN_IF_ERROR(Check(report.addVolumetricROIMeasurements(), path, "add a measurement group"));
  CMR_TID1411_in_TID1500& group = report.getVolumetricROIMeasurements();
  const std::string what = absl::StrCat("describe region ", region.name);
  SEGREL_RETURN_IF_ERROR(Check(group.setTrackingIdentifier(region.name.c_str()), path, what));
  SEGREL_RETURN_IF_ERROR(Check(group.setTrackingUniqueIdentifier(tracking_uid), path, what));
  SEGREL_RETURN_IF_ERROR(Check(group.setReferencedSegment(Segment(seg, region.segments.front())), path, what));
  SEGREL_RETURN_IF_ERROR(
      Check(group.setSourceSeriesForSegmentation(content.series[s].series_instance_uid.c_str()), path, what));
  return AddMeasurements(
      group, content, region, s, seg, [](CMR_TID1419_in_TID1411_in_TID1500&) { return EC_Normal; }, path);
}

// A region of several segments for sequence `s`: a TID 1501 group (Measurement Group), since a TID 1411 group
// references exactly one segment; each measurement names the segments as its "Source of measurement" images.
absl::Status AddMultiSegmentGroup(CMR_TID1500& report, bool first, const RelevanceReportContent& content,
                                  const ExplainedRegion& region, size_t s, const SegFacts& seg,
                                  const OFString& tracking_uid, const std::string& path) {
  if (!first) SEGREL_RETURN_IF_ERROR(Check(report.addIndividualMeasurements(), path, "add a measurement group"));
  CMR_TID1501_in_TID1500& group = report.getIndividualMeasurements();
  const std::string what = absl::StrCat("describe region ", region.name);
  SEGREL_RETURN_IF_ERROR(Check(group.setTrackingIdentifier(region.name.c_str()), path, what));
  SEGREL_RETURN_IF_ERROR(Check(group.setTrackingUniqueIdentifier(tracking_uid), path, what));
  const DSRCodedEntryValue source_of_measurement("121112", "DCM", "Source of Measurement");
  return AddMeasurements(
      group, content, region, s, seg,
      [&](CMR_TID300_in_TID1501_in_TID1500& measurement) {
        OFCondition condition = EC_Normal;
        for (const uint16_t number : region.segments) {
          if (condition.good()) condition = measurement.addImage(source_of_measurement, Segment(seg, number));
        }
        return condition;
      },
      path);
}

// The attributes of the SEG's Patient and General Study modules that the SR IOD requires, with their character
// set; the SEG copied them from the source images.
const std::array<DcmTagKey, 10>& CopiedTags() {
  static const std::array<DcmTagKey, 10> tags = {DCM_SpecificCharacterSet,
                                                 DCM_PatientName,
                                                 DCM_PatientID,
                                                 DCM_PatientBirthDate,
                                                 DCM_PatientSex,
                                                 DCM_StudyDate,
                                                 DCM_StudyTime,
                                                 DCM_StudyID,
                                                 DCM_ReferringPhysicianName,
                                                 DCM_AccessionNumber};
  return tags;
}

absl::Status CopyPatientAndStudy(DcmItem& from, DcmItem& to, const std::string& path) {
  for (const DcmTagKey& tag : CopiedTags()) {
    DcmElement* element = nullptr;
    if (from.findAndGetElement(tag, element).bad() || element == nullptr) continue;
    SEGREL_RETURN_IF_ERROR(
        Check(to.insert(OFstatic_cast(DcmElement*, element->clone()), OFTrue), path, "copy the study's attributes"));
  }
  return absl::OkStatus();
}

// What the report needs to know of the SEG it measures.
absl::StatusOr<SegFacts> ReadSegFacts(DcmDataset& seg_dataset, const std::string& seg_path) {
  SegFacts seg;
  seg_dataset.findAndGetOFString(DCM_SOPClassUID, seg.sop_class);
  seg_dataset.findAndGetOFString(DCM_SOPInstanceUID, seg.sop_instance);
  seg_dataset.findAndGetOFString(DCM_StudyInstanceUID, seg.study);
  seg_dataset.findAndGetOFString(DCM_SeriesInstanceUID, seg.series);
  if (seg.sop_instance.empty() || seg.study.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(seg_path, " lacks SOPInstanceUID or StudyInstanceUID"));
  }
  seg.voxel_mm3 = VoxelVolume(seg_dataset);
  return seg;
}

// The TID 1500 content: the observer, the procedure and one measurement group per region and sequence.
absl::Status FillReport(CMR_TID1500& report, const RelevanceReportContent& content, const SegFacts& seg,
                        const std::string& path) {
  char device_uid[100];
  SEGREL_RETURN_IF_ERROR(Check(
      report.getObservationContext().addDeviceObserver(dcmGenerateUniqueIdentifier(device_uid, SITE_INSTANCE_UID_ROOT),
                                                       "segrel", "segrel", content.model.c_str()),
      path, "name the observer"));
  SEGREL_RETURN_IF_ERROR(
      Check(report.addProcedureReported(CMR_CID100::MRIUnspecifiedBodyRegion), path, "name the procedure"));
  bool first_roi_group = true;
  bool first_multi_segment_group = true;
  for (const ExplainedRegion& region : content.regions) {
    char tracking_uid[100];
    dcmGenerateUniqueIdentifier(tracking_uid, SITE_INSTANCE_UID_ROOT);
    for (size_t s = 0; s < content.sequences.size(); ++s) {
      if (region.segments.size() == 1) {
        SEGREL_RETURN_IF_ERROR(AddRoiGroup(report, first_roi_group, content, region, s, seg, tracking_uid, path));
        first_roi_group = false;
      } else {
        SEGREL_RETURN_IF_ERROR(
            AddMultiSegmentGroup(report, first_multi_segment_group, content, region, s, seg, tracking_uid, path));
        first_multi_segment_group = false;
      }
    }
  }
  if (!report.isValid()) return absl::InternalError(absl::StrCat(path, ": the TID 1500 report is incomplete"));
  return absl::OkStatus();
}

// The document around the report: its series, the device, the private coding scheme, and the evidence (the SEG it
// measures and every image the explanation was computed from).
absl::Status DescribeDocument(DSRDocument& document, const RelevanceReportContent& content, const SegFacts& seg,
                              const DicomSrOptions& options, const std::string& path) {
  document.setSeriesDescription(options.series_description.c_str());
  document.setSeriesNumber(absl::StrCat(options.series_number).c_str());
  document.setInstanceNumber("1");
  document.setManufacturer("segrel");
  document.setManufacturerModelName("segrel");
  document.setDeviceSerialNumber("none");
  document.setSoftwareVersions(content.software_version.c_str());
  SEGREL_RETURN_IF_ERROR(Check(document.completeDocument(), path, "complete the report"));
  // The private coding scheme, declared so that readers (and dciodvfy) know whose codes they are.
  DSRCodingSchemeIdentificationList& schemes = document.getCodingSchemeIdentification();
  SEGREL_RETURN_IF_ERROR(Check(schemes.addItem(kScheme), path, "declare the coding scheme"));
  SEGREL_RETURN_IF_ERROR(Check(schemes.setCodingSchemeName("segrel relevance codes"), path, "name the coding scheme"));
  SEGREL_RETURN_IF_ERROR(
      Check(schemes.setCodingSchemeResponsibleOrganization("segrel"), path, "name the coding scheme's owner"));
  DSRSOPInstanceReferenceList& evidence = document.getCurrentRequestedProcedureEvidence();
  SEGREL_RETURN_IF_ERROR(
      Check(evidence.addItem(seg.study, seg.series, seg.sop_class, seg.sop_instance), path, "reference the SEG"));
  for (const DicomSeriesInfo& series : content.series) {
    for (const std::string& instance : series.sop_instance_uids) {
      SEGREL_RETURN_IF_ERROR(
          Check(evidence.addItem(series.study_instance_uid.c_str(), series.series_instance_uid.c_str(),
                                 series.sop_class_uid.c_str(), instance.c_str()),
                path, "reference the source images"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteDicomRelevanceReport(const std::string& path, const RelevanceReportContent& content,
                                       const std::string& seg_path, const DicomSrOptions& options) {
  SEGREL_RETURN_IF_ERROR(dicom::InitDicom());
  SEGREL_RETURN_IF_ERROR(CheckContent(content));
  DcmFileFormat seg_file;
  if (seg_file.loadFile(seg_path.c_str()).bad()) {
    return absl::NotFoundError(absl::StrCat(seg_path, ": cannot read the DICOM SEG the report refers to"));
  }
  DcmDataset& seg_dataset = *seg_file.getDataset();
  SEGREL_ASSIGN_OR_RETURN(const SegFacts seg, ReadSegFacts(seg_dataset, seg_path));
  CMR_TID1500 report(CMR_CID7021::ImagingMeasurementReport);
  SEGREL_RETURN_IF_ERROR(FillReport(report, content, seg, path));
  DSRDocument document(DSRTypes::DT_ComprehensiveSR);
  SEGREL_RETURN_IF_ERROR(Check(document.createNewSeriesInStudy(seg.study), path, "start the report's series"));
  SEGREL_RETURN_IF_ERROR(Check(document.setTreeFromRootTemplate(report, OFTrue), path, "build the report's tree"));
  SEGREL_RETURN_IF_ERROR(DescribeDocument(document, content, seg, options, path));
  DcmFileFormat file;
  SEGREL_RETURN_IF_ERROR(Check(document.write(*file.getDataset()), path, "encode the report"));
  SEGREL_RETURN_IF_ERROR(CopyPatientAndStudy(seg_dataset, *file.getDataset(), path));
  return Check(file.saveFile(path.c_str(), EXS_LittleEndianExplicit), path, "write the report");
}

}  // namespace segrel::io
