// The analysis pipeline behind `segrel analyze` and the server's jobs: read a study, prepare it as the model
// expects, explain the segmentation, write the outputs. It sits above every other core/ folder.
//
// A model is a bundle (folder with segrel.json, or the segrel.json itself: sequence names and order,
// normalisation, patch size, composite, z-box ranges) or a bare TorchScript file (inputs in the order given, no
// normalisation, whole volume unless a patch size is given).
#ifndef SEGREL_CORE_PIPELINE_PIPELINE_H_
#define SEGREL_CORE_PIPELINE_PIPELINE_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/analysis/explanation.h"
#include "core/analysis/stages.h"
#include "core/io/dicom_series.h"
#include "core/io/study.h"
#include "core/model/model_replica.h"
#include "core/report/summary.h"

namespace segrel::pipeline {

struct AnalysisRequest {
  std::string model;                                     // bundle folder, segrel.json, or TorchScript file
  std::vector<io::SequenceFile> inputs;                  // NAME=FILE; with a bundle in any order
  std::string study_dir;                                 // or: a folder with one NAME.nii[.gz] per bundle sequence,
                                                         // or a DICOM folder (the bundle's series_rules map it)
  std::optional<std::string> composite;                  // default: the bundle's, else epsilon-plus
  std::vector<std::pair<int64_t, std::string>> regions;  // class -> mask file
  uint64_t seed = 0;
  std::vector<int64_t> patch;  // bare models: window patch (empty: whole volume)
  std::optional<int> output;   // which of the network's outputs is the segmentation (default: the bundle's, else 0)
  bool per_lesion = false;     // explain each predicted lesion
  std::string reference;       // reference segmentation: Dice, TP/FP/FN explained
  bool ablation = false;       // sequence ablation cross-check
  // Explained windows kept between the transpose and the relevance pass. Default none: at a 128^3 patch each
  // keeps about 0.9 GB and saves 3 % of the time (bench/README.md).
  int64_t window_cache_bytes = 0;
  at::Device device = at::kCPU;
  // Models kept loaded and imported between analyses (a server worker's); null: load the model for this one.
  model::ModelReplicas* replicas = nullptr;
  // Told at each reported stage (analysis::Stage) and after each window; a non-OK return stops the analysis with
  // that status (how a server cancels a running job).
  analysis::ProgressCallback progress;
};

struct AnalysisResult {
  io::Study study;                    // as read (before normalisation): the grid outputs are written on
  std::vector<std::string> assembly;  // DICOM studies: which series became which sequence, what was resampled
  std::optional<io::DicomSeriesInfo> reference_series;  // DICOM studies: the reference sequence's series
  std::vector<io::DicomSeriesInfo> source_series;       // DICOM studies: each sequence's series, channel order
  at::Tensor input;                                     // the network input [1, C, i, j, k]: the study normalised
  analysis::Explanation explanation;
  report::AnalysisSummary summary;  // what the analysis found, as relevance.json reports it (computed once)
  std::vector<std::string> class_names;
};

// Runs the analysis. Errors name the file, sequence or option at fault: NotFound for missing files;
// InvalidArgument for sequences that do not match the bundle (listing what it expects), DICOM series the bundle's
// series_rules cannot map (listing what it expects and the series found), grids that differ,
// masks on another grid, unknown composites, networks whose output is not a segmentation; Unimplemented for
// networks segrel cannot explain.
absl::StatusOr<AnalysisResult> RunAnalysis(const AnalysisRequest& request);

// Writes relevance.json, segmentation.nii.gz, for DICOM studies segmentation.dcm (DICOM SEG) and
// relevance_report.dcm (TID 1500 structured report, core/io/dicom_sr.h), with `maps` relevance_<NAME>.nii.gz, and
// with `pictures` relevance_bars.png and relevance_overlay.png (core/report/pictures.h) into `out_dir` (created).
// Without gnuplot the pictures are skipped and relevance.json's notes say so. Returns the file names written, and in
// `written_summary` (if given) the summary as relevance.json has it: with the write time and those notes.
// Errors: Internal naming the path that cannot be written; the other errors of WriteStudyPictures.
absl::StatusOr<std::vector<std::string>> WriteAnalysis(const AnalysisResult& result, const std::string& out_dir,
                                                       bool maps, bool pictures = true,
                                                       report::AnalysisSummary* written_summary = nullptr);

}  // namespace segrel::pipeline

#endif  // SEGREL_CORE_PIPELINE_PIPELINE_H_
