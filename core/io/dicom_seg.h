// Writing segmentations as DICOM Segmentation objects (DICOM SEG, PS3.3 A.51) with DCMTK's dcmseg, so that a
// segmentation of a DICOM study goes back to the PACS beside the series it was computed on.
//
// One BINARY SEG per call: one segment per non-background class (label value 1, 2, ...), one frame per segment and
// slice of the reference series (empty frames included, so every segment covers the whole series). Each frame
// names its source image (DerivationImageSequence > SourceImageSequence: SOP class and instance) and carries that
// image's ImagePositionPatient; orientation and pixel measures are shared. The SEG joins the reference's study and
// frame of reference (StudyInstanceUID, FrameOfReferenceUID, ReferencedSeriesSequence) in a new series.
//
// Of the reference's patient and study modules only the attributes the SEG IOD requires are copied, verbatim,
// from its first file: PatientName, PatientID, PatientBirthDate, PatientSex, StudyDate, StudyTime,
// ReferringPhysicianName, StudyID, AccessionNumber (with SpecificCharacterSet, which says how they are encoded),
// and PositionReferenceIndicator. They are never logged or put in a message.
#ifndef SEGREL_CORE_IO_DICOM_SEG_H_
#define SEGREL_CORE_IO_DICOM_SEG_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/io/dicom_series.h"

namespace segrel::io {

struct DicomSegOptions {
  // SeriesDescription and SeriesNumber of the new SEG series. Defaults: "segrel segmentation", 9001.
  std::string series_description = "segrel segmentation";
  int64_t series_number = 9001;
  // SegmentAlgorithmName of every segment (the model that segmented), and the SoftwareVersions written in the
  // General Equipment module. Defaults: "segrel", segrel's version.
  std::string algorithm_name = "segrel";
  std::string software_version = "0.1.0";
};

// Writes `labels` as a binary DICOM SEG file at `path`.
// `labels`: [i, j, k] class indices (any integer or floating type holding whole numbers) on the grid of
// `reference`, in segrel's voxel order (core/io/dicom_layout.h: i = column, j = rows reversed, k = slice along
// the normal), i.e. sizes (columns, rows, slices). `class_names[c]` names class c; class 0 is the background and
// gets no segment. A 4-D reference is referenced through its first volume's images.
// Errors: InvalidArgument when the sizes differ from the reference's, a label is not one of the classes, fewer
// than two classes are named, or the reference lacks what a SEG must reference (SOP instance UIDs, positions,
// FrameOfReferenceUID); NotFound when the reference's first file cannot be read; Internal (naming `path`) when
// DCMTK cannot build or write the object.
absl::Status WriteDicomSeg(const std::string& path, const at::Tensor& labels,
                           const std::vector<std::string>& class_names, const DicomSeriesInfo& reference,
                           const DicomSegOptions& options = {});

}  // namespace segrel::io

#endif  // SEGREL_CORE_IO_DICOM_SEG_H_
