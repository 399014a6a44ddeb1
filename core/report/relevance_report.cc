#include "core/analysis/relevance_report.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <nlohmann/json.hpp>

namespace segrel::analysis {
namespace {

using nlohmann::ordered_json;

ordered_json PerSequence(const std::vector<std::string>& sequences, const std::vector<double>& values) {
  ordered_json object = ordered_json::object();
  for (size_t s = 0; s < sequences.size() && s < values.size(); ++s) object[sequences[s]] = values[s];
  return object;
}

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

}  // namespace

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

std::vector<std::string> RankSequences(const std::vector<std::string>& sequences, const std::vector<double>& shares) {
  std::vector<size_t> order(sequences.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return shares[a] > shares[b]; });
  std::vector<std::string> ranked;
  for (size_t s : order) ranked.push_back(sequences[s]);
  return ranked;
}

std::string RelevanceReportJson(const Explanation& explanation, const ReportContext& context) {
  ordered_json report;
  report["format"] = "segrel.relevance/1";
  report["model"] = context.model;
  if (!context.model_version.empty()) report["model_version"] = context.model_version;
  if (!context.license.empty()) report["model_license"] = context.license;
  report["output_activation"] = std::string(graph::OutputActivationName(explanation.output_activation));
  report["sequences"] = context.sequences;
  report["grid"] = context.grid;
  report["composite"] = context.composite;
  report["seed"] = context.seed;
  report["tau"] = context.tau;
  report["regions"] = explanation.classes.empty() ? "none" : explanation.classes.front().region_kind;
  if (!context.patch.empty()) {
    report["sliding_window"] = {{"patch", context.patch}, {"windows", explanation.windows}};
  }

  const std::vector<double> shares = Shares(explanation.raw);
  report["sequence_relevance"] = PerSequence(context.sequences, shares);
  report["sequence_relevance_raw"] = PerSequence(context.sequences, explanation.raw);
  report["sequence_ranking"] = RankSequences(context.sequences, shares);

  ordered_json classes = ordered_json::array();
  for (const ClassExplanation& explained : explanation.classes) {
    ordered_json entry;
    entry["index"] = explained.class_index;
    if (explained.class_index < static_cast<int64_t>(context.class_names.size())) {
      entry["name"] = context.class_names[explained.class_index];
    }
    entry["output_channel"] = explained.channel;
    entry["region"] = explained.region_kind;
    entry["predicted_voxels"] = explained.predicted_voxels;
    entry["region_voxels"] = explained.region_voxels;
    entry["excluded_voxels"] = explained.excluded_voxels;
    entry["mean_normaliser"] = explained.mean_normaliser;
    entry["sequence_relevance"] = PerSequence(context.sequences, Shares(explained.raw));
    entry["sequence_relevance_raw"] = PerSequence(context.sequences, explained.raw);
    classes.push_back(std::move(entry));
  }
  report["classes"] = std::move(classes);

  const auto region_entry = [&](const RegionExplanation& region) {
    ordered_json entry;
    if (region.kind == "lesion") entry["label"] = region.label;
    else entry["kind"] = region.kind;
    entry["class"] = region.class_index;
    entry["voxels"] = region.voxels;
    entry["region_voxels"] = region.region_voxels;
    if (!region.centroid.empty()) entry["centroid_ijk"] = region.centroid;
    entry["sequence_relevance"] = PerSequence(context.sequences, Shares(region.raw));
    entry["sequence_relevance_raw"] = PerSequence(context.sequences, region.raw);
    return entry;
  };
  if (explanation.dice.has_value()) {
    ordered_json reference;
    reference["dice"] = *explanation.dice;
    reference["regions"] = ordered_json::array();
    for (const RegionExplanation& region : explanation.error_regions) reference["regions"].push_back(region_entry(region));
    report["reference"] = std::move(reference);
  }
  if (!explanation.lesions.empty()) {
    ordered_json lesions = ordered_json::array();
    for (const RegionExplanation& lesion : explanation.lesions) lesions.push_back(region_entry(lesion));
    report["lesions"] = std::move(lesions);
  }
  if (!explanation.ablation.empty()) {
    ordered_json ablation;
    ablation["foreground_voxels"] = explanation.foreground_voxels;
    ordered_json sequences = ordered_json::array();
    std::vector<double> effect;
    for (const SequenceAblation& entry : explanation.ablation) {
      ordered_json item;
      item["sequence"] = context.sequences.at(entry.sequence);
      item["foreground_voxels"] = entry.foreground_voxels;
      item["dice_with_prediction"] = entry.dice_with_prediction;
      if (entry.dice_with_reference.has_value()) item["dice_with_reference"] = *entry.dice_with_reference;
      sequences.push_back(std::move(item));
      effect.push_back(1.0 - entry.dice_with_prediction);
    }
    ablation["sequences"] = std::move(sequences);
    ablation["ranking"] = RankSequences(context.sequences, effect);
    ablation["rank_correlation_with_relevance"] = SpearmanCorrelation(shares, effect);
    report["ablation"] = std::move(ablation);
  }

  ordered_json seconds;
  for (const char* stage : {"read", "load_model", "normalise"}) {
    if (const auto it = context.seconds.find(stage); it != context.seconds.end()) seconds[stage] = it->second;
  }
  seconds["import"] = explanation.seconds.import_graph;
  seconds["inference"] = explanation.seconds.inference;
  seconds["transpose"] = explanation.seconds.transpose;
  seconds["relevance"] = explanation.seconds.relevance;
  if (!explanation.ablation.empty()) seconds["ablation"] = explanation.ablation_seconds;
  for (const auto& [stage, value] : context.seconds) {
    if (!seconds.contains(stage)) seconds[stage] = value;
  }
  double total = 0;
  for (const auto& [stage, value] : seconds.items()) total += value.get<double>();
  seconds["total"] = total;
  report["seconds"] = std::move(seconds);
  report["device"] = context.device;
  report["threads"] = context.threads;
  report["notes"] = explanation.notes;
  return report.dump(2) + "\n";
}

}  // namespace segrel::analysis
