#include "core/io/dicom_study.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
#include "core/volume/geometry.h"

namespace segrel::io {
namespace {

std::vector<DicomSeriesInfo> Infos(const DicomFolder& folder) {
  std::vector<DicomSeriesInfo> infos;
  for (const DicomSeries& series : folder.series) infos.push_back(series.info);
  return infos;
}

// CheckMapping's error, plus the series that could not be read: one of them may be the one missing.
absl::Status MappingError(const absl::Status& status, const DicomFolder& folder) {
  if (folder.failed.empty()) return status;
  std::vector<std::string> failed;
  for (const FailedDicomSeries& series : folder.failed) {
    failed.push_back(
        absl::StrCat(SeriesLabel(series.series_number, series.series_description), " (", series.status.message(), ")"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(status.message(), "; series that could not be read: ", absl::StrJoin(failed, "; ")));
}

}  // namespace

absl::StatusOr<AssembledStudy> AssembleStudy(const DicomFolder& folder, const SeriesRules& rules,
                                             const SequenceMapping& mapping, const std::vector<std::string>& names,
                                             const std::string& reference) {
  const std::vector<DicomSeriesInfo> infos = Infos(folder);
  if (const absl::Status complete = CheckMapping(mapping, rules, infos); !complete.ok()) {
    return MappingError(complete, folder);
  }
  if (std::find(names.begin(), names.end(), reference) == names.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the reference sequence ", reference, " is not one of ", absl::StrJoin(names, ", ")));
  }
  std::vector<const DicomSeries*> chosen;
  for (const std::string& name : names) {
    const SequenceMatch* match = mapping.Find(name);
    if (match == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("the rules of ", rules.source, " have no rule for ", name,
                                                     "; they map ", absl::StrJoin(rules.SequenceNames(), ", ")));
    }
    const DicomSeries& series = folder.series[*match->chosen];
    if (series.volume.data.dim() != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat(series.volume.source, " is mapped to ", name, " but holds ", series.info.volumes,
                       " volumes; a sequence must be one 3-D volume (make the rule exclude this series)"));
    }
    chosen.push_back(&series);
  }
  const size_t reference_index = std::find(names.begin(), names.end(), reference) - names.begin();
  const volume::Volume& grid = chosen[reference_index]->volume;

  AssembledStudy assembled;
  assembled.reference = reference;
  assembled.reference_series = chosen[reference_index]->info;
  for (size_t s = 0; s < names.size(); ++s) {
    const DicomSeries& series = *chosen[s];
    AssembledSequence report;
    report.sequence = names[s];
    report.series = SeriesLabel(series.info.series_number, series.info.series_description);
    report.how = mapping.Find(names[s])->how;
    report.displacement_mm = volume::MaxCornerDisplacement(series.volume, grid);
    volume::Volume on_grid = series.volume;
    if (!volume::SameGrid(series.volume, grid)) {
      volume::ResampleStats stats;
      SEGREL_ASSIGN_OR_RETURN(on_grid, volume::Resample(series.volume, grid, volume::Interpolation::kLinear, &stats));
      report.resampled = true;
      report.inside_fraction = stats.inside_fraction;
    }
    // The reference series' affine for every sequence: SameGrid allows 1e-3 mm, outputs need one affine.
    on_grid.affine = grid.affine;
    assembled.study.names.push_back(names[s]);
    assembled.study.volumes.push_back(std::move(on_grid));
    assembled.sequences.push_back(std::move(report));
    assembled.series.push_back(series.info);
  }
  return assembled;
}

absl::StatusOr<AssembledStudy> ReadDicomStudy(const std::string& dir, const SeriesRules& rules,
                                              const std::vector<std::string>& names, const std::string& reference,
                                              const DicomReadOptions& options) {
  SEGREL_ASSIGN_OR_RETURN(const DicomFolder folder, ReadDicomFolder(dir, options));
  const SequenceMapping mapping = MapSeries(rules, Infos(folder));
  absl::StatusOr<AssembledStudy> study = AssembleStudy(folder, rules, mapping, names, reference);
  if (!study.ok()) {
    return absl::Status(study.status().code(), absl::StrCat(dir, ": ", study.status().message()));
  }
  return study;
}

std::vector<std::string> DescribeAssembly(const AssembledStudy& study) {
  std::vector<std::string> lines;
  for (const AssembledSequence& sequence : study.sequences) {
    std::string line = absl::StrCat(sequence.sequence, " <- series ", sequence.series);
    if (!sequence.how.empty()) absl::StrAppend(&line, " (", sequence.how, ")");
    if (sequence.sequence == study.reference) {
      absl::StrAppend(&line, ": reference grid");
    } else if (!sequence.resampled) {
      absl::StrAppend(&line, ": on the reference grid");
    } else {
      absl::StrAppend(&line, absl::StrFormat(": resampled onto the reference grid (fields of view differ by up to "
                                             "%.1f mm, %.1f %% of the reference grid inside)",
                                             sequence.displacement_mm, 100 * sequence.inside_fraction));
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace segrel::io
