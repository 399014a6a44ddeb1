#include "core/io/series_rules.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"

namespace segrel::io {
namespace {

using nlohmann::json;

constexpr char kFormat[] = "segrel.series_rules/1";
constexpr char kCaseInsensitive[] = "(?i)";

// std::regex has no inline flags: a leading "(?i)" becomes the icase flag. Throws std::regex_error.
std::regex CompilePattern(const std::string& pattern) {
  if (absl::StartsWith(pattern, kCaseInsensitive)) {
    return std::regex(pattern.substr(sizeof(kCaseInsensitive) - 1), std::regex::ECMAScript | std::regex::icase);
  }
  return std::regex(pattern, std::regex::ECMAScript);
}

// Parses one rules document; every error names the source and the field.
class RulesParser {
 public:
  explicit RulesParser(std::string source) : source_(std::move(source)) {}

  absl::Status Error(const std::string& field, absl::string_view problem) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": field '", field, "' ", problem));
  }

  absl::StatusOr<SeriesRules> Parse(const json& document) const {
    if (!document.is_object()) return absl::InvalidArgumentError(absl::StrCat(source_, ": not a JSON object"));
    if (const auto format = document.find("format"); format != document.end()) {
      if (!format->is_string() || format->get<std::string>() != kFormat) {
        return Error("format", absl::StrCat("must be ", kFormat));
      }
    }
    const auto sequences = document.find("sequences");
    if (sequences == document.end() || !sequences->is_array() || sequences->empty()) {
      return Error("sequences", "must be a non-empty array");
    }
    SeriesRules rules;
    rules.source = source_;
    std::set<std::string> names;
    for (size_t i = 0; i < sequences->size(); ++i) {
      SEGREL_ASSIGN_OR_RETURN(SequenceRule rule, ParseRule((*sequences)[i], absl::StrCat("sequences[", i, "]")));
      if (!names.insert(rule.sequence).second) {
        return Error("sequences", absl::StrCat("names ", rule.sequence, " twice"));
      }
      rules.rules.push_back(std::move(rule));
    }
    return rules;
  }

 private:
  absl::StatusOr<SequenceRule> ParseRule(const json& entry, const std::string& field) const {
    if (!entry.is_object()) return Error(field, "must be an object");
    static const std::set<std::string> kKeys = {"name", "description", "conditions", "prefer", "index"};
    for (const auto& item : entry.items()) {
      if (kKeys.count(item.key()) == 0) return Error(absl::StrCat(field, ".", item.key()), "is not a rule field");
    }
    SequenceRule rule;
    const auto name = entry.find("name");
    if (name == entry.end() || !name->is_string() || name->get<std::string>().empty()) {
      return Error(field + ".name", "must be a non-empty string");
    }
    rule.sequence = name->get<std::string>();
    const auto conditions = entry.find("conditions");
    if (conditions == entry.end()) return Error(field + ".conditions", "is missing");
    if (conditions->is_array()) {
      if (conditions->empty()) return Error(field + ".conditions", "must not be empty");
      for (size_t i = 0; i < conditions->size(); ++i) {
        SEGREL_ASSIGN_OR_RETURN(SeriesConditions parsed,
                                ParseConditions((*conditions)[i], absl::StrCat(field, ".conditions[", i, "]")));
        rule.alternatives.push_back(std::move(parsed));
      }
    } else {
      SEGREL_ASSIGN_OR_RETURN(SeriesConditions parsed, ParseConditions(*conditions, field + ".conditions"));
      rule.alternatives.push_back(std::move(parsed));
    }
    if (const auto prefer = entry.find("prefer"); prefer != entry.end()) {
      const std::string value = prefer->is_string() ? prefer->get<std::string>() : "";
      if (value == "first") {
        rule.prefer = Preference::kFirst;
      } else if (value == "last") {
        rule.prefer = Preference::kLast;
      } else {
        return Error(field + ".prefer", "must be \"first\" or \"last\"");
      }
    }
    if (const auto index = entry.find("index"); index != entry.end()) {
      if (!index->is_number_integer() || index->get<int64_t>() < 0) {
        return Error(field + ".index", "must be a non-negative integer");
      }
      if (rule.prefer != Preference::kNone) return Error(field, "gives both prefer and index");
      rule.index = index->get<int64_t>();
    }
    return rule;
  }

  absl::StatusOr<SeriesConditions> ParseConditions(const json& object, const std::string& field) const {
    if (!object.is_object() || object.empty()) return Error(field, "must be a non-empty object of conditions");
    SeriesConditions conditions;
    const std::map<std::string, std::optional<std::string>*> patterns = {
        {"SeriesDescription", &conditions.series_description},
        {"ProtocolName", &conditions.protocol_name},
        {"Modality", &conditions.modality}};
    const std::map<std::string, std::optional<NumericRange>*> ranges = {{"EchoTime", &conditions.echo_time},
                                                                        {"RepetitionTime", &conditions.repetition_time},
                                                                        {"TriggerTime", &conditions.trigger_time},
                                                                        {"FlipAngle", &conditions.flip_angle},
                                                                        {"SeriesNumber", &conditions.series_number}};
    for (const auto& [key, value] : object.items()) {
      const std::string where = absl::StrCat(field, ".", key);
      if (const auto pattern = patterns.find(key); pattern != patterns.end()) {
        SEGREL_ASSIGN_OR_RETURN(*pattern->second, ParsePattern(value, where));
      } else if (const auto range = ranges.find(key); range != ranges.end()) {
        SEGREL_ASSIGN_OR_RETURN(*range->second, ParseRange(value, where));
      } else if (key == "ImageType") {
        SEGREL_ASSIGN_OR_RETURN(conditions.image_type, ParseImageType(value, where));
      } else {
        return Error(where,
                     "is not a known condition (SeriesDescription, ProtocolName, Modality, ImageType, "
                     "EchoTime, RepetitionTime, TriggerTime, FlipAngle, SeriesNumber)");
      }
    }
    return conditions;
  }

  absl::StatusOr<std::string> ParsePattern(const json& value, const std::string& field) const {
    if (!value.is_string()) return Error(field, "must be a regular expression (string)");
    const std::string pattern = value.get<std::string>();
    try {
      CompilePattern(pattern);
    } catch (const std::regex_error& error) {
      return Error(field, absl::StrCat("is not a valid regular expression: ", error.what()));
    }
    return pattern;
  }

  absl::StatusOr<NumericRange> ParseRange(const json& value, const std::string& field) const {
    NumericRange range;
    if (value.is_number()) {
      range.min = range.max = value.get<double>();
      return range;
    }
    const auto bound = [](const json& end) -> std::optional<double> {
      return end.is_number() ? std::optional<double>(end.get<double>()) : std::nullopt;
    };
    if (!value.is_array() || value.size() != 2 || !(value[0].is_number() || value[0].is_null()) ||
        !(value[1].is_number() || value[1].is_null())) {
      return Error(field, "must be a number or [min, max] (null for an open end)");
    }
    range.min = bound(value[0]);
    range.max = bound(value[1]);
    if (range.min && range.max && *range.min > *range.max) return Error(field, "has min > max");
    return range;
  }

  absl::StatusOr<std::vector<std::string>> ParseImageType(const json& value, const std::string& field) const {
    std::vector<std::string> values;
    if (value.is_string()) {
      values.push_back(value.get<std::string>());
    } else if (value.is_array() && !value.empty()) {
      for (const json& item : value) {
        if (!item.is_string()) return Error(field, "must be a string or a list of strings");
        values.push_back(item.get<std::string>());
      }
    } else {
      return Error(field, "must be a string or a non-empty list of strings");
    }
    return values;
  }

  std::string source_;
};

bool PatternFound(const std::optional<std::string>& pattern, const std::string& value) {
  return !pattern.has_value() || std::regex_search(value, CompilePattern(*pattern));
}

// DS values are decimal strings: a value equal to a bound up to rounding counts as inside.
bool InRange(const std::optional<NumericRange>& range, const std::optional<double>& value) {
  if (!range.has_value()) return true;
  if (!value.has_value()) return false;
  const double slack = 1e-9 * std::max(1.0, std::abs(*value));
  return (!range->min || *value >= *range->min - slack) && (!range->max || *value <= *range->max + slack);
}

bool HoldsImageTypes(const std::vector<std::string>& wanted, const std::vector<std::string>& image_type) {
  return std::all_of(wanted.begin(), wanted.end(), [&](const std::string& w) {
    return std::any_of(image_type.begin(), image_type.end(),
                       [&](const std::string& value) { return absl::EqualsIgnoreCase(value, w); });
  });
}

std::optional<double> SeriesNumberValue(const DicomSeriesInfo& series) {
  if (!series.series_number.has_value()) return std::nullopt;
  return static_cast<double>(*series.series_number);
}

std::string Label(const DicomSeriesInfo& series) {
  return SeriesLabel(series.series_number, series.series_description);
}

std::string Labels(const std::vector<size_t>& indices, const std::vector<DicomSeriesInfo>& series) {
  std::vector<std::string> labels;
  for (size_t index : indices) labels.push_back(Label(series[index]));
  return absl::StrJoin(labels, "; ");
}

// Indices of `series` in SeriesNumber order (unnumbered last), whatever order the series come in.
std::vector<size_t> SeriesNumberOrder(const std::vector<DicomSeriesInfo>& series) {
  std::vector<size_t> order(series.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return series[a].series_number.value_or(std::numeric_limits<int64_t>::max()) <
           series[b].series_number.value_or(std::numeric_limits<int64_t>::max());
  });
  return order;
}

// Chooses among the candidates (in SeriesNumber order) as the rule says; records missing or ambiguous.
void Choose(const SequenceRule& rule, SequenceMatch& match, SequenceMapping& mapping) {
  const std::vector<size_t>& candidates = match.candidates;
  if (candidates.empty()) {
    mapping.missing.push_back(rule.sequence);
    return;
  }
  const size_t count = candidates.size();
  if (rule.index.has_value()) {
    if (*rule.index >= static_cast<int64_t>(count)) {
      mapping.missing.push_back(rule.sequence);
      match.how = absl::StrCat("wants match ", *rule.index, " (from 0) but only ", count, " match");
      return;
    }
    match.chosen = candidates[*rule.index];
    match.how = absl::StrCat("match ", *rule.index, " (from 0) of ", count);
    return;
  }
  if (count == 1) {
    match.chosen = candidates.front();
  } else if (rule.prefer == Preference::kFirst) {
    match.chosen = candidates.front();
    match.how = absl::StrCat("first of ", count);
  } else if (rule.prefer == Preference::kLast) {
    match.chosen = candidates.back();
    match.how = absl::StrCat("last of ", count);
  } else {
    mapping.ambiguous.push_back(rule.sequence);
  }
}

}  // namespace

std::vector<std::string> SeriesRules::SequenceNames() const {
  std::vector<std::string> names;
  for (const SequenceRule& rule : rules) names.push_back(rule.sequence);
  return names;
}

absl::StatusOr<SeriesRules> ParseSeriesRules(absl::string_view json_text, const std::string& source) {
  const json document = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON"));
  return RulesParser(source).Parse(document);
}

absl::StatusOr<SeriesRules> ReadSeriesRules(const std::string& path) {
  std::ifstream stream(path);
  if (!stream) return absl::NotFoundError(absl::StrCat(path, ": cannot read the series rules file"));
  std::stringstream text;
  text << stream.rdbuf();
  return ParseSeriesRules(text.str(), path);
}

bool Matches(const SeriesConditions& conditions, const DicomSeriesInfo& series) {
  return PatternFound(conditions.series_description, series.series_description) &&
         PatternFound(conditions.protocol_name, series.protocol_name) &&
         PatternFound(conditions.modality, series.modality) &&
         HoldsImageTypes(conditions.image_type, series.image_type) && InRange(conditions.echo_time, series.echo_time) &&
         InRange(conditions.repetition_time, series.repetition_time) &&
         InRange(conditions.trigger_time, series.trigger_time) && InRange(conditions.flip_angle, series.flip_angle) &&
         InRange(conditions.series_number, SeriesNumberValue(series));
}

const SequenceMatch* SequenceMapping::Find(const std::string& sequence) const {
  for (const SequenceMatch& match : matches) {
    if (match.sequence == sequence) return &match;
  }
  return nullptr;
}

SequenceMapping MapSeries(const SeriesRules& rules, const std::vector<DicomSeriesInfo>& series) {
  const std::vector<size_t> order = SeriesNumberOrder(series);
  SequenceMapping mapping;
  for (const SequenceRule& rule : rules.rules) {
    SequenceMatch match;
    match.sequence = rule.sequence;
    for (const SeriesConditions& alternative : rule.alternatives) {
      for (size_t index : order) {
        if (Matches(alternative, series[index])) match.candidates.push_back(index);
      }
      if (!match.candidates.empty()) break;
    }
    Choose(rule, match, mapping);
    mapping.matches.push_back(std::move(match));
  }
  return mapping;
}

absl::Status CheckMapping(const SequenceMapping& mapping, const SeriesRules& rules,
                          const std::vector<DicomSeriesInfo>& series) {
  if (mapping.Complete()) return absl::OkStatus();
  std::vector<std::string> problems;
  for (const std::string& name : mapping.missing) {
    const SequenceMatch* match = mapping.Find(name);
    const bool explained = match != nullptr && !match->how.empty();
    problems.push_back(absl::StrCat("no series for ", name, explained ? absl::StrCat(" (", match->how, ")") : ""));
  }
  for (const std::string& name : mapping.ambiguous) {
    const SequenceMatch* match = mapping.Find(name);
    problems.push_back(absl::StrCat(name, " is ambiguous: ", match->candidates.size(), " series match (",
                                    Labels(match->candidates, series),
                                    "); the rule needs \"prefer\" or \"index\" to choose"));
  }
  const std::vector<size_t> all = SeriesNumberOrder(series);
  return absl::InvalidArgumentError(absl::StrCat(absl::StrJoin(problems, "; "), "; the rules of ", rules.source,
                                                 " expect ", absl::StrJoin(rules.SequenceNames(), ", "), "; found ",
                                                 series.size(),
                                                 " series: ", series.empty() ? "none" : Labels(all, series)));
}

}  // namespace segrel::io
