// Writing an explanation as a DICOM Structured Report (Enhanced SR, PS3.3 A.35.2) following TID 1500 "Measurement
// Report", with DCMTK's dcmsr/cmr, so that a PACS viewer shows which sequence the network relied on next to the
// DICOM SEG it explains.
//
// The report's content (docs/conventions.md, "The structured report", lists every code):
// - Observation context: segrel as the device observer; procedure reported: (MRI, unspecified body region).
// - One measurement group per explained region and input sequence: for a region of one segment of the SEG (a
//   class, or the combined map of a model with one foreground class) a Volumetric ROI group (TID 1411) that
//   references the segment and has the sequence's series as "Source series for segmentation"; for a region of
//   several segments (the combined map of a multi-class model) a Measurement Group (TID 1501), since TID 1411
//   references exactly one segment, whose measurements name the segments as their source images. The region's
//   tracking identifier and UID name it (one UID per region). The measurements are the sequence's
//   relevance share and raw relevance sum, each with the concept modifier "Input sequence" = the sequence, the
//   segments' volume (mm3, SCT 118565006) and voxel count, the explained region's voxel count, and, where known,
//   the number of lesions and the Dice coefficient with the reference. Every TID 1411 measurement carries the
//   algorithm (TID 4019: model name and version, segrel's version; parameters: composite, seed, tau, region kind).
// - Codes without a standard equivalent are private, coding scheme designator 99SEGREL (declared in the Coding
//   Scheme Identification Sequence).
//
// The SR joins the SEG's study, copies the SEG's patient and study attributes verbatim (never logged), references
// the SEG and every source image in the Current Requested Procedure Evidence, and is a new series.
#ifndef SEGREL_CORE_IO_DICOM_SR_H_
#define SEGREL_CORE_IO_DICOM_SR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/io/dicom_series.h"

namespace segrel::io {

// One explained region: a class of the segmentation, or all of them together.
struct ExplainedRegion {
  std::string name;                // e.g. "lesion", or "all classes"
  std::vector<uint16_t> segments;  // the SEG's segment numbers it stands for (class c is segment c)
  int64_t voxels = 0;              // of its segments (the segmentation's voxels of the class or classes)
  int64_t explained_voxels = 0;    // of the region whose relevance was propagated (balanced regions add others)
  std::optional<int64_t> lesions;  // connected components of its segments, where counted
  std::optional<double> dice;      // of its segments with the reference, when one was given
  std::vector<double> shares;      // relevance share per sequence (sum 1)
  std::vector<double> raw;         // relevance sum per sequence
};

struct RelevanceReportContent {
  std::string model;          // bundle name, or model file name
  std::string model_version;  // may be empty
  std::string software_version = "0.1.0";
  std::string composite;
  uint64_t seed = 0;
  double tau = 0;
  std::string region_kind;              // "balanced" or "mask"
  std::vector<std::string> sequences;   // channel order
  std::vector<DicomSeriesInfo> series;  // the series each sequence was read from, same order
  std::vector<ExplainedRegion> regions;
};

struct DicomSrOptions {
  std::string series_description = "segrel relevance report";
  int64_t series_number = 9002;
};

// Writes `content` as a TID 1500 measurement report at `path`, referencing the SEG at `seg_path` (written by
// WriteDicomSeg on the same study).
// Errors: InvalidArgument when the sequences and series differ in number, a region's values do not have one per
// sequence, a region names no segment, or there are no regions; NotFound when the SEG cannot be read; Internal
// (naming `path`) when DCMTK cannot build or write the report.
absl::Status WriteDicomRelevanceReport(const std::string& path, const RelevanceReportContent& content,
                                       const std::string& seg_path, const DicomSrOptions& options = {});

}  // namespace segrel::io

#endif  // SEGREL_CORE_IO_DICOM_SR_H_
