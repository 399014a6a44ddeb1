#include "core/analysis/relevance_report.h"

#include <algorithm>
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

}  // namespace

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

  ordered_json seconds;
  for (const auto& [stage, value] : context.seconds) {
    if (stage == "read") seconds[stage] = value;
  }
  seconds["import"] = explanation.seconds.import_graph;
  seconds["inference"] = explanation.seconds.inference;
  seconds["transpose"] = explanation.seconds.transpose;
  seconds["relevance"] = explanation.seconds.relevance;
  for (const auto& [stage, value] : context.seconds) {
    if (stage != "read") seconds[stage] = value;
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
