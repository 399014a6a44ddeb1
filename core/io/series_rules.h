// Series rules: which DICOM series is which sequence a model expects (T2, ADC, a contrast phase, ...).
//
// The rules are a small JSON document, shaped like MONAI Deploy's series selection rules:
//   {"format": "segrel.series_rules/1",                      (optional)
//    "sequences": [
//      {"name": "T2", "conditions": {"SeriesDescription": "(?i)t2.*tra", "ImageType": ["ORIGINAL", "M"]}},
//      {"name": "ADC", "conditions": [{"SeriesDescription": "(?i)_ADC$"}, {"ImageType": "ADC"}]},
//      {"name": "DCE1", "conditions": {"SeriesDescription": "(?i)dynamic"}, "index": 0},
//      {"name": "PD", "conditions": {"FlipAngle": [null, 3]}, "prefer": "last"}]}
// A series matches a set of conditions when all of them hold:
// - SeriesDescription, ProtocolName, Modality: a regular expression (ECMAScript) found anywhere in the value;
//   a leading "(?i)" ignores letter case (as in Python, which MONAI's rules use).
// - ImageType: a value, or a list of values, each of which the series' ImageType must hold (letter case ignored).
// - EchoTime, RepetitionTime, TriggerTime (ms), FlipAngle (degrees), SeriesNumber: [min, max] (inclusive, null
//   for an open end) or one number; a series without the value does not match.
// `conditions` may be a list: alternatives in priority order, the first one that any series matches is used.
// When several series match, the rule must say which to take, else the sequence is ambiguous: "prefer": "first"
// or "last" (lowest or highest SeriesNumber), or "index": n (the n-th match, from 0, in SeriesNumber order, e.g.
// the n-th dynamic phase).
// A bundle's segrel.json may hold the same object as its "series_rules" field (core/model/bundle.h).
#ifndef SEGREL_CORE_IO_SERIES_RULES_H_
#define SEGREL_CORE_IO_SERIES_RULES_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/io/dicom_series.h"

namespace segrel::io {

// [min, max], inclusive; an absent end is open.
struct NumericRange {
  std::optional<double> min;
  std::optional<double> max;
};

// One set of conditions; absent fields do not constrain.
struct SeriesConditions {
  std::optional<std::string> series_description;  // regular expressions, as written (with any "(?i)")
  std::optional<std::string> protocol_name;
  std::optional<std::string> modality;
  std::vector<std::string> image_type;  // values the series' ImageType must all hold
  std::optional<NumericRange> echo_time;
  std::optional<NumericRange> repetition_time;
  std::optional<NumericRange> trigger_time;
  std::optional<NumericRange> flip_angle;
  std::optional<NumericRange> series_number;
};

enum class Preference {
  kNone,   // several matches are ambiguous
  kFirst,  // lowest SeriesNumber
  kLast,   // highest SeriesNumber
};

struct SequenceRule {
  std::string sequence;                        // the model's name for it
  std::vector<SeriesConditions> alternatives;  // in priority order; at least one
  Preference prefer = Preference::kNone;
  std::optional<int64_t> index;  // the index-th match in SeriesNumber order
};

struct SeriesRules {
  std::string source;               // where the rules came from, for messages
  std::vector<SequenceRule> rules;  // one per sequence, names unique

  // The sequence names in rule order.
  std::vector<std::string> SequenceNames() const;
};

// Parses rules from JSON text. Errors: InvalidArgument naming `source` and the field for malformed JSON, unknown
// condition names, bad regular expressions, ranges that are not [min, max] with min <= max, a negative index,
// an unknown preference, duplicate or empty sequence names.
absl::StatusOr<SeriesRules> ParseSeriesRules(absl::string_view json_text, const std::string& source);

// Reads and parses a rules file. Errors: NotFound when it cannot be read; those of ParseSeriesRules.
absl::StatusOr<SeriesRules> ReadSeriesRules(const std::string& path);

// Whether `series` meets all `conditions`. REQUIRES: the conditions came from ParseSeriesRules (valid regexes).
bool Matches(const SeriesConditions& conditions, const DicomSeriesInfo& series);

// What the rules found for one sequence.
struct SequenceMatch {
  std::string sequence;
  std::vector<size_t> candidates;  // indices into the series given, SeriesNumber order, of the alternative used
  std::optional<size_t> chosen;    // the series used: set unless missing or ambiguous
  std::string how;                 // how it was chosen when there were several, e.g. "last of 2"
};

// The mapping of a study's series to sequences: what matched, what is missing, what is ambiguous.
struct SequenceMapping {
  std::vector<SequenceMatch> matches;  // in rule order
  std::vector<std::string> missing;    // sequences no series matches (or fewer than index + 1)
  std::vector<std::string> ambiguous;  // sequences several series match, with no rule to choose

  bool Complete() const { return missing.empty() && ambiguous.empty(); }
  // The match of `sequence`, or nullptr.
  const SequenceMatch* Find(const std::string& sequence) const;
};

// Applies every rule to `series`. Never fails: missing and ambiguous sequences are reported in the result.
SequenceMapping MapSeries(const SeriesRules& rules, const std::vector<DicomSeriesInfo>& series);

// OK when `mapping` is complete; otherwise InvalidArgument saying what is missing and what is ambiguous (with the
// series that match), what the rules expect, and which series were found.
absl::Status CheckMapping(const SequenceMapping& mapping, const SeriesRules& rules,
                          const std::vector<DicomSeriesInfo>& series);

}  // namespace segrel::io

#endif  // SEGREL_CORE_IO_SERIES_RULES_H_
