#include "core/report/relevance_report.h"

#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"

namespace segrel::report {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr char kFormat[] = "segrel.relevance/1";

ordered_json PerSequence(const std::vector<std::string>& sequences, const std::vector<double>& values) {
  ordered_json object = ordered_json::object();
  for (size_t s = 0; s < sequences.size() && s < values.size(); ++s) object[sequences[s]] = values[s];
  return object;
}

// "sequence_relevance" and "sequence_relevance_raw" of `relevance` into `entry`.
void AddRelevance(const std::vector<std::string>& sequences, const SequenceRelevance& relevance, ordered_json& entry) {
  entry["sequence_relevance"] = PerSequence(sequences, relevance.shares);
  entry["sequence_relevance_raw"] = PerSequence(sequences, relevance.raw);
}

ordered_json ClassEntry(const ClassSummary& summary, const std::vector<std::string>& sequences) {
  ordered_json entry;
  entry["index"] = summary.index;
  if (!summary.name.empty()) entry["name"] = summary.name;
  entry["output_channel"] = summary.output_channel;
  entry["region"] = summary.region;
  entry["predicted_voxels"] = summary.predicted_voxels;
  entry["region_voxels"] = summary.region_voxels;
  entry["excluded_voxels"] = summary.excluded_voxels;
  entry["mean_normaliser"] = summary.mean_normaliser;
  AddRelevance(sequences, summary.relevance, entry);
  return entry;
}

ordered_json RegionEntry(const RegionSummary& region, const std::vector<std::string>& sequences) {
  ordered_json entry;
  if (region.kind == "lesion") {
    entry["label"] = region.label;
  } else {
    entry["kind"] = region.kind;
  }
  entry["class"] = region.class_index;
  entry["voxels"] = region.voxels;
  entry["region_voxels"] = region.region_voxels;
  if (!region.centroid.empty()) entry["centroid_ijk"] = region.centroid;
  AddRelevance(sequences, region.relevance, entry);
  return entry;
}

ordered_json AblationEntry(const AblationSummary& summary) {
  ordered_json ablation;
  ablation["foreground_voxels"] = summary.foreground_voxels;
  ordered_json sequences = ordered_json::array();
  for (const AblationSummary::Sequence& entry : summary.sequences) {
    ordered_json item;
    item["sequence"] = entry.name;
    item["foreground_voxels"] = entry.foreground_voxels;
    item["dice_with_prediction"] = entry.dice_with_prediction;
    if (entry.dice_with_reference.has_value()) item["dice_with_reference"] = *entry.dice_with_reference;
    sequences.push_back(std::move(item));
  }
  ablation["sequences"] = std::move(sequences);
  ablation["ranking"] = summary.ranking;
  ablation["rank_correlation_with_relevance"] = summary.rank_correlation_with_relevance;
  return ablation;
}

// The study and how it was explained: everything before the relevance itself.
void AddHeader(const AnalysisSummary& summary, ordered_json& report) {
  report["format"] = kFormat;
  report["model"] = summary.model;
  if (!summary.model_version.empty()) report["model_version"] = summary.model_version;
  if (!summary.model_license.empty()) report["model_license"] = summary.model_license;
  report["output_activation"] = summary.output_activation;
  report["sequences"] = summary.sequences;
  report["grid"] = summary.grid;
  report["composite"] = summary.composite;
  report["seed"] = summary.seed;
  report["tau"] = summary.tau;
  report["regions"] = summary.regions;
  if (!summary.patch.empty()) report["sliding_window"] = {{"patch", summary.patch}, {"windows", summary.windows}};
}

// Typed access to relevance.json's fields; every error names the source and the field.
class ReportFields {
 public:
  ReportFields(std::string source, const json& document) : source_(std::move(source)), document_(document) {}

  absl::Status Error(const std::string& field, absl::string_view problem) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": field '", field, "' ", problem));
  }

  const json* Find(const std::string& field) const {
    const auto it = document_.find(field);
    return it == document_.end() ? nullptr : &*it;
  }

  absl::StatusOr<std::string> String(const std::string& field) const {
    const json* value = Find(field);
    if (value == nullptr) return Error(field, "is missing");
    if (!value->is_string()) return Error(field, "must be a string");
    return value->get<std::string>();
  }

  absl::StatusOr<std::vector<std::string>> Names(const std::string& field) const {
    const json* value = Find(field);
    if (value == nullptr) return Error(field, "is missing");
    if (!value->is_array() || value->empty()) return Error(field, "must be a non-empty array of names");
    std::vector<std::string> names;
    for (const json& name : *value) {
      if (!name.is_string()) return Error(field, "must be a non-empty array of names");
      names.push_back(name.get<std::string>());
    }
    if (std::set<std::string>(names.begin(), names.end()).size() != names.size()) {
      return Error(field, "names a sequence twice");
    }
    return names;
  }

  // An object with a number for each of `names`, in their order.
  absl::StatusOr<std::vector<double>> PerSequence(const std::string& field,
                                                  const std::vector<std::string>& names) const {
    const json* object = Find(field);
    if (object == nullptr) return Error(field, "is missing");
    if (!object->is_object()) return Error(field, "must be an object with a number per sequence");
    std::vector<double> values;
    for (const std::string& name : names) {
      const auto value = object->find(name);
      if (value == object->end()) return Error(absl::StrCat(field, ".", name), "is missing");
      if (!value->is_number()) return Error(absl::StrCat(field, ".", name), "must be a number");
      values.push_back(value->get<double>());
    }
    return values;
  }

  // An optional number: `fallback` when absent.
  absl::StatusOr<double> Number(const std::string& field, double fallback) const {
    const json* value = Find(field);
    if (value == nullptr) return fallback;
    if (!value->is_number()) return Error(field, "must be a number");
    return value->get<double>();
  }

 private:
  std::string source_;
  const json& document_;
};

}  // namespace

std::string RelevanceReportJson(const AnalysisSummary& summary) {
  ordered_json report;
  AddHeader(summary, report);
  AddRelevance(summary.sequences, summary.relevance, report);
  report["sequence_ranking"] = summary.ranking;
  ordered_json classes = ordered_json::array();
  for (const ClassSummary& entry : summary.classes) classes.push_back(ClassEntry(entry, summary.sequences));
  report["classes"] = std::move(classes);
  if (summary.dice.has_value()) {
    ordered_json reference;
    reference["dice"] = *summary.dice;
    reference["regions"] = ordered_json::array();
    for (const RegionSummary& region : summary.error_regions) {
      reference["regions"].push_back(RegionEntry(region, summary.sequences));
    }
    report["reference"] = std::move(reference);
  }
  if (!summary.lesions.empty()) {
    ordered_json lesions = ordered_json::array();
    for (const RegionSummary& lesion : summary.lesions) lesions.push_back(RegionEntry(lesion, summary.sequences));
    report["lesions"] = std::move(lesions);
  }
  if (summary.ablation.has_value()) report["ablation"] = AblationEntry(*summary.ablation);
  ordered_json seconds;  // in run order, then their total
  for (const auto& [stage, value] : summary.seconds) seconds[std::string(analysis::StageName(stage))] = value;
  seconds["total"] = analysis::TotalSeconds(summary.seconds);
  report["seconds"] = std::move(seconds);
  report["device"] = summary.device;
  report["threads"] = summary.threads;
  report["notes"] = summary.notes;
  return report.dump(2) + "\n";
}

absl::StatusOr<AnalysisSummary> ParseRelevanceReport(const std::string& text, const std::string& source) {
  const json document = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded() || !document.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  const ReportFields fields(source, document);
  SEGREL_ASSIGN_OR_RETURN(const std::string format, fields.String("format"));
  if (format != kFormat) return fields.Error("format", absl::StrCat("is '", format, "', not ", kFormat));
  AnalysisSummary summary;
  SEGREL_ASSIGN_OR_RETURN(summary.model, fields.String("model"));
  if (fields.Find("model_version") != nullptr) {
    SEGREL_ASSIGN_OR_RETURN(summary.model_version, fields.String("model_version"));
  }
  SEGREL_ASSIGN_OR_RETURN(summary.composite, fields.String("composite"));
  SEGREL_ASSIGN_OR_RETURN(const double seed, fields.Number("seed", 0));
  summary.seed = static_cast<uint64_t>(seed);
  SEGREL_ASSIGN_OR_RETURN(summary.tau, fields.Number("tau", summary.tau));
  SEGREL_ASSIGN_OR_RETURN(summary.sequences, fields.Names("sequences"));
  SEGREL_ASSIGN_OR_RETURN(summary.relevance.shares, fields.PerSequence("sequence_relevance", summary.sequences));
  SEGREL_ASSIGN_OR_RETURN(summary.relevance.raw, fields.PerSequence("sequence_relevance_raw", summary.sequences));
  summary.ranking = RankSequences(summary.sequences, summary.relevance.shares);
  return summary;
}

}  // namespace segrel::report
