// What an analysis found, as one typed value: computed once from the explanation (by the pipeline) and formatted
// wherever it is shown: relevance.json (relevance_report.h), the summary `segrel analyze` prints, the server's
// metrics, and the cohort report, which reads it back from relevance.json (ParseRelevanceReport). Shares,
// rankings, ablation effects and their rank correlation are computed here and nowhere else.
#ifndef SEGREL_CORE_REPORT_SUMMARY_H_
#define SEGREL_CORE_REPORT_SUMMARY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/analysis/explanation.h"
#include "core/analysis/stages.h"

namespace segrel::report {

// What the summary says besides the explanation itself. Nothing here may identify a patient: models and sequences
// are named, input files are not.
struct ReportContext {
  std::string model;                     // the bundle's name, or the model's file name without directories
  std::string model_version;             // bundles only
  std::string license;                   // of the data the model was trained on (bundles only)
  std::vector<std::string> class_names;  // by class index (empty: unnamed)
  std::vector<int64_t> patch;            // sliding-window patch (empty: whole volume)
  std::vector<std::string> sequences;    // input sequence names, in channel order
  std::vector<int64_t> grid;             // the study's sizes (i, j, k)
  std::string composite;
  uint64_t seed = 0;
  double tau = 1e-6;
  std::string device;
  int threads = 0;
  analysis::StageTimes seconds;  // stages outside analysis::ExplainSegmentation (read, load_model, normalise, write)
};

// Relevance per sequence, in channel order: the raw channel sums of M and their shares, which sum to 1 (all zero
// when the sum is zero).
struct SequenceRelevance {
  std::vector<double> raw;
  std::vector<double> shares;
};
SequenceRelevance RelevanceOf(std::vector<double> raw);

struct ClassSummary {
  int64_t index = 0;
  std::string name;  // empty: the bundle names no classes
  int64_t output_channel = 0;
  std::string region;  // "balanced" or "mask"
  int64_t predicted_voxels = 0;
  int64_t region_voxels = 0;    // explained
  int64_t excluded_voxels = 0;  // left out for |c_a| <= tau
  double mean_normaliser = 0;   // the share of the region's relevance that reaches the input
  SequenceRelevance relevance;
};

// A lesion (kind "lesion", numbered by `label`) or a region against the reference ("true_positive",
// "false_positive", "false_negative").
struct RegionSummary {
  std::string kind;
  int64_t label = 0;
  int64_t class_index = 0;
  int64_t voxels = 0;
  int64_t region_voxels = 0;
  std::vector<double> centroid;  // lesions: mean voxel index (i, j, k)
  SequenceRelevance relevance;
};

struct AblationSummary {
  struct Sequence {
    std::string name;
    int64_t foreground_voxels = 0;
    double foreground_change = 0;  // relative to the unablated prediction's foreground (0 when that is empty)
    double dice_with_prediction = 0;
    std::optional<double> dice_with_reference;
    double effect = 0;  // 1 - dice_with_prediction: how much the prediction needs the sequence
  };
  int64_t foreground_voxels = 0;  // of the unablated prediction
  std::vector<Sequence> sequences;
  std::vector<std::string> ranking;            // by effect, largest first
  double rank_correlation_with_relevance = 0;  // Spearman, effect against the relevance shares
};

struct AnalysisSummary {
  std::string model;
  std::string model_version;
  std::string model_license;
  std::string output_activation;
  std::vector<std::string> sequences;
  std::vector<int64_t> grid;
  std::string composite;
  uint64_t seed = 0;
  double tau = 1e-6;
  std::string regions;         // the classes' region kind ("balanced", "mask"), or "none"
  std::vector<int64_t> patch;  // sliding windows (empty: whole volume)
  int64_t windows = 0;
  SequenceRelevance relevance;       // of the combined map M
  std::vector<std::string> ranking;  // sequences by share, largest first
  std::vector<ClassSummary> classes;
  std::optional<double> dice;  // with a reference
  std::vector<RegionSummary> error_regions;
  std::vector<RegionSummary> lesions;
  std::optional<AblationSummary> ablation;
  analysis::StageTimes seconds;  // every stage that ran
  std::string device;
  int threads = 0;
  std::vector<std::string> notes;
};

// The summary of `explanation` with `context`.
AnalysisSummary Summarize(const analysis::Explanation& explanation, const ReportContext& context);

// Spearman's rank correlation of two equally long series (0 when either is constant).
double SpearmanCorrelation(const std::vector<double>& a, const std::vector<double>& b);

// Returns the sequence names ordered by decreasing value (ties in channel order).
std::vector<std::string> RankSequences(const std::vector<std::string>& sequences, const std::vector<double>& values);

}  // namespace segrel::report

#endif  // SEGREL_CORE_REPORT_SUMMARY_H_
