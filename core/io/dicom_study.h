// A multi-sequence study from a DICOM folder: series mapped to the model's sequences by series rules
// (series_rules.h), then every sequence resampled (trilinear) onto the reference sequence's grid, so that the
// network sees one grid and outputs lie on the reference series' grid. The report says which series became which
// sequence and, per sequence, whether it was resampled and by how much its grid differed from the reference's.
#ifndef SEGREL_CORE_IO_DICOM_STUDY_H_
#define SEGREL_CORE_IO_DICOM_STUDY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/io/dicom_series.h"
#include "core/io/series_rules.h"
#include "core/io/study.h"

namespace segrel::io {

// How one sequence came to be.
struct AssembledSequence {
  std::string sequence;
  std::string series;          // SeriesLabel of the series used
  std::string how;             // how it was chosen among several matches ("" when it was the only one)
  bool resampled = false;      // false: already on the reference grid (SameGrid, 1e-3 mm)
  double displacement_mm = 0;  // MaxCornerDisplacement to the reference grid
  double inside_fraction = 1;  // share of reference voxels inside the series' field of view
};

struct AssembledStudy {
  Study study;                               // sequences in the order asked for, all on the reference grid
  std::string reference;                     // the reference sequence
  DicomSeriesInfo reference_series;          // the series it came from: what a DICOM SEG of the result references
  std::vector<DicomSeriesInfo> series;       // the series of each sequence, in the same order
  std::vector<AssembledSequence> sequences;  // in the same order
};

// Assembles `names` (channel order) from the series of `folder` as `mapping` says; `reference` is one of `names`.
// Errors: InvalidArgument when the mapping is incomplete (CheckMapping's message, also naming series that could
// not be read), when a mapped series is 4-D (several volumes: a sequence is one 3-D volume), or when a name has no
// rule; those of Resample.
absl::StatusOr<AssembledStudy> AssembleStudy(const DicomFolder& folder, const SeriesRules& rules,
                                             const SequenceMapping& mapping, const std::vector<std::string>& names,
                                             const std::string& reference);

// Reads `dir` (ReadDicomFolder), maps its series with `rules` and assembles `names` onto `reference`'s grid.
// Errors: those of ReadDicomFolder and AssembleStudy.
absl::StatusOr<AssembledStudy> ReadDicomStudy(const std::string& dir, const SeriesRules& rules,
                                              const std::vector<std::string>& names, const std::string& reference,
                                              const DicomReadOptions& options = {});

// One line per sequence for people: "ADC <- series 9 ep2d..._ADC: resampled (grids differ by 12.3 mm, 98.1 %
// of the reference grid inside)".
std::vector<std::string> DescribeAssembly(const AssembledStudy& study);

}  // namespace segrel::io

#endif  // SEGREL_CORE_IO_DICOM_STUDY_H_
