#include "core/report/summary.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

namespace segrel::report {
namespace {

// Ranks (1 = smallest; ties share their mean rank).
std::vector<double> Ranks(const std::vector<double>& values) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(values.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && values[order[j + 1]] == values[order[i]]) ++j;
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = (static_cast<double>(i + j) / 2.0) + 1.0;
    i = j + 1;
  }
  return ranks;
}

RegionSummary SummarizeRegion(const analysis::RegionExplanation& region) {
  RegionSummary summary;
  summary.kind = region.kind;
  summary.label = region.label;
  summary.class_index = region.class_index;
  summary.voxels = region.voxels;
  summary.region_voxels = region.region_voxels;
  summary.centroid = region.centroid;
  summary.relevance = RelevanceOf(region.raw);
  return summary;
}

ClassSummary SummarizeClass(const analysis::ClassExplanation& explained, const ReportContext& context) {
  ClassSummary summary;
  summary.index = explained.class_index;
  if (explained.class_index < static_cast<int64_t>(context.class_names.size())) {
    summary.name = context.class_names[explained.class_index];
  }
  summary.output_channel = explained.channel;
  summary.region = explained.region_kind;
  summary.predicted_voxels = explained.predicted_voxels;
  summary.region_voxels = explained.region_voxels;
  summary.excluded_voxels = explained.excluded_voxels;
  summary.mean_normaliser = explained.mean_normaliser;
  summary.relevance = RelevanceOf(explained.raw);
  return summary;
}

AblationSummary SummarizeAblation(const analysis::Explanation& explanation, const ReportContext& context,
                                  const std::vector<double>& shares) {
  AblationSummary summary;
  summary.foreground_voxels = explanation.foreground_voxels;
  std::vector<double> effects;
  for (const analysis::SequenceAblation& entry : explanation.ablation) {
    AblationSummary::Sequence sequence;
    sequence.name = context.sequences.at(entry.sequence);
    sequence.foreground_voxels = entry.foreground_voxels;
    if (explanation.foreground_voxels > 0) {
      sequence.foreground_change =
          static_cast<double>(entry.foreground_voxels - explanation.foreground_voxels) / explanation.foreground_voxels;
    }
    sequence.dice_with_prediction = entry.dice_with_prediction;
    sequence.dice_with_reference = entry.dice_with_reference;
    sequence.effect = 1.0 - entry.dice_with_prediction;
    effects.push_back(sequence.effect);
    summary.sequences.push_back(std::move(sequence));
  }
  summary.ranking = RankSequences(context.sequences, effects);
  summary.rank_correlation_with_relevance = SpearmanCorrelation(shares, effects);
  return summary;
}

}  // namespace

SequenceRelevance RelevanceOf(std::vector<double> raw) {
  SequenceRelevance relevance;
  relevance.shares = analysis::Shares(raw);
  relevance.raw = std::move(raw);
  return relevance;
}

double SpearmanCorrelation(const std::vector<double>& a, const std::vector<double>& b) {
  const std::vector<double> ra = Ranks(a), rb = Ranks(b);
  const double n = static_cast<double>(ra.size());
  double mean = (n + 1.0) / 2.0, covariance = 0, va = 0, vb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    covariance += (ra[i] - mean) * (rb[i] - mean);
    va += (ra[i] - mean) * (ra[i] - mean);
    vb += (rb[i] - mean) * (rb[i] - mean);
  }
  return va == 0 || vb == 0 ? 0.0 : covariance / std::sqrt(va * vb);
}

std::vector<std::string> RankSequences(const std::vector<std::string>& sequences, const std::vector<double>& values) {
  std::vector<size_t> order(sequences.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] > values[b]; });
  std::vector<std::string> ranked;
  for (size_t s : order) ranked.push_back(sequences[s]);
  return ranked;
}

AnalysisSummary Summarize(const analysis::Explanation& explanation, const ReportContext& context) {
  AnalysisSummary summary;
  summary.model = context.model;
  summary.model_version = context.model_version;
  summary.model_license = context.license;
  summary.output_activation = std::string(graph::OutputActivationName(explanation.output_activation));
  summary.sequences = context.sequences;
  summary.grid = context.grid;
  summary.composite = context.composite;
  summary.seed = context.seed;
  summary.tau = context.tau;
  summary.regions = explanation.classes.empty() ? "none" : explanation.classes.front().region_kind;
  summary.patch = context.patch;
  summary.windows = explanation.windows;
  summary.relevance = RelevanceOf(explanation.raw);
  summary.ranking = RankSequences(context.sequences, summary.relevance.shares);
  for (const analysis::ClassExplanation& explained : explanation.classes) {
    summary.classes.push_back(SummarizeClass(explained, context));
  }
  summary.dice = explanation.dice;
  for (const analysis::RegionExplanation& region : explanation.error_regions) {
    summary.error_regions.push_back(SummarizeRegion(region));
  }
  for (const analysis::RegionExplanation& lesion : explanation.lesions) {
    summary.lesions.push_back(SummarizeRegion(lesion));
  }
  if (!explanation.ablation.empty())
    summary.ablation = SummarizeAblation(explanation, context, summary.relevance.shares);
  summary.seconds = context.seconds;
  summary.seconds.insert(explanation.seconds.begin(), explanation.seconds.end());
  summary.device = context.device;
  summary.threads = context.threads;
  summary.notes = explanation.notes;
  return summary;
}

}  // namespace segrel::report
