// Series rules: parsing (and its refusals), matching of each condition kind, choosing among several matches,
// the report of missing and ambiguous sequences, and series rules carried by a bundle. Expected mappings are
// written out by hand from the series' tags.
#include "core/io/series_rules.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/model/bundle.h"
#include "tests/test_util.h"

namespace segrel::io {
namespace {

DicomSeriesInfo Series(int64_t number, const std::string& description, std::vector<std::string> image_type,
                       std::optional<double> flip_angle = std::nullopt,
                       std::optional<double> echo_time = std::nullopt) {
  DicomSeriesInfo info;
  info.series_number = number;
  info.series_description = description;
  info.protocol_name = description;
  info.modality = "MR";
  info.image_type = std::move(image_type);
  info.flip_angle = flip_angle;
  info.echo_time = echo_time;
  return info;
}

// A prostate study like ProstateX-0218, listed out of SeriesNumber order.
std::vector<DicomSeriesInfo> ProstateStudy() {
  return {
      Series(30, "Twist_dynamic_Wip576_TT=20.6s", {"ORIGINAL", "PRIMARY", "M", "ND"}, 12, 1.42),
      Series(5, "t2_tse_tra_320_p2", {"ORIGINAL", "PRIMARY", "M", "ND"}, 150, 101),
      Series(9, "ep2d-advdiff-3Scan-4bval_spair_511b_ADC", {"DERIVED", "PRIMARY", "DIFFUSION", "ADC", "ND"}, 90, 60),
      Series(27, "Twist_dynamic_Wip576_TT=8.0s", {"ORIGINAL", "PRIMARY", "M", "ND"}, 12, 1.42),
      Series(25, "fl3d_vibe_pre_flip_10deg_Wip403d", {"ORIGINAL", "PRIMARY", "M", "ND"}, 10, 1.42),
      Series(40, "Twist_dynamic_Wip576_TT=62.8s", {"ORIGINAL", "PRIMARY", "M", "ND"}, 12, 1.42)};
}

SeriesRules Parse(const std::string& text) {
  absl::StatusOr<SeriesRules> rules = ParseSeriesRules(text, "rules.json");
  EXPECT_TRUE(rules.ok()) << rules.status();
  return rules.ok() ? *std::move(rules) : SeriesRules{};
}

std::optional<int64_t> ChosenNumber(const SequenceMapping& mapping, const std::vector<DicomSeriesInfo>& series,
                                    const std::string& sequence) {
  const SequenceMatch* match = mapping.Find(sequence);
  if (match == nullptr || !match->chosen.has_value()) return std::nullopt;
  return series[*match->chosen].series_number;
}

TEST(SeriesRules, MapsEachConditionKind) {
  const std::vector<DicomSeriesInfo> study = ProstateStudy();
  const SeriesRules rules = Parse(R"({"format": "segrel.series_rules/1", "sequences": [
      {"name": "T2", "conditions": {"SeriesDescription": "(?i)T2.*TRA", "ImageType": ["original", "M"]}},
      {"name": "ADC", "conditions": {"ImageType": "ADC", "Modality": "^MR$"}},
      {"name": "VIBE10", "conditions": {"FlipAngle": 10, "EchoTime": [1, 2]}},
      {"name": "LONG_TE", "conditions": {"EchoTime": [100, null], "ProtocolName": "t2"}},
      {"name": "LATE", "conditions": {"SeriesNumber": [35, null]}}]})");
  const SequenceMapping mapping = MapSeries(rules, study);
  EXPECT_TRUE(mapping.Complete());
  EXPECT_EQ(ChosenNumber(mapping, study, "T2"), 5);
  EXPECT_EQ(ChosenNumber(mapping, study, "ADC"), 9);
  EXPECT_EQ(ChosenNumber(mapping, study, "VIBE10"), 25);
  EXPECT_EQ(ChosenNumber(mapping, study, "LONG_TE"), 5);
  EXPECT_EQ(ChosenNumber(mapping, study, "LATE"), 40);
  EXPECT_TRUE(CheckMapping(mapping, rules, study).ok());
}

TEST(SeriesRules, RegexWithoutCaseFlagIsCaseSensitive) {
  const std::vector<DicomSeriesInfo> study = ProstateStudy();
  const SeriesRules rules = Parse(R"({"sequences": [{"name": "T2", "conditions": {"SeriesDescription": "T2_TSE"}}]})");
  const SequenceMapping mapping = MapSeries(rules, study);
  EXPECT_EQ(mapping.missing, std::vector<std::string>{"T2"});
}

TEST(SeriesRules, SeveralMatchesAreAmbiguousUnlessTheRuleChooses) {
  const std::vector<DicomSeriesInfo> study = ProstateStudy();
  const SeriesRules rules = Parse(R"({"sequences": [
      {"name": "DCE", "conditions": {"SeriesDescription": "dynamic"}},
      {"name": "FIRST", "conditions": {"SeriesDescription": "dynamic"}, "prefer": "first"},
      {"name": "LAST", "conditions": {"SeriesDescription": "dynamic"}, "prefer": "last"},
      {"name": "SECOND", "conditions": {"SeriesDescription": "dynamic"}, "index": 1},
      {"name": "TENTH", "conditions": {"SeriesDescription": "dynamic"}, "index": 9},
      {"name": "NONE", "conditions": {"SeriesDescription": "flair"}}]})");
  const SequenceMapping mapping = MapSeries(rules, study);
  EXPECT_FALSE(mapping.Complete());
  EXPECT_EQ(mapping.ambiguous, std::vector<std::string>{"DCE"});
  EXPECT_EQ(mapping.missing, (std::vector<std::string>{"TENTH", "NONE"}));
  // Candidates in SeriesNumber order, whatever the order of the series given.
  std::vector<int64_t> candidates;
  for (size_t index : mapping.Find("DCE")->candidates) candidates.push_back(*study[index].series_number);
  EXPECT_EQ(candidates, (std::vector<int64_t>{27, 30, 40}));
  EXPECT_EQ(ChosenNumber(mapping, study, "FIRST"), 27);
  EXPECT_EQ(ChosenNumber(mapping, study, "LAST"), 40);
  EXPECT_EQ(ChosenNumber(mapping, study, "SECOND"), 30);
  EXPECT_FALSE(ChosenNumber(mapping, study, "DCE").has_value());

  const absl::Status status = CheckMapping(mapping, rules, study);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  const std::string message(status.message());
  EXPECT_NE(message.find("no series for TENTH (wants match 9 (from 0) but only 3 match)"), std::string::npos)
      << message;
  EXPECT_NE(message.find("no series for NONE"), std::string::npos) << message;
  EXPECT_NE(message.find("DCE is ambiguous: 3 series match (27 Twist_dynamic_Wip576_TT=8.0s; "
                         "30 Twist_dynamic_Wip576_TT=20.6s; 40 Twist_dynamic_Wip576_TT=62.8s)"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("expect DCE, FIRST, LAST, SECOND, TENTH, NONE"), std::string::npos) << message;
  EXPECT_NE(message.find("found 6 series: 5 t2_tse_tra_320_p2; 9 ep2d-advdiff-3Scan-4bval_spair_511b_ADC; "
                         "25 fl3d_vibe_pre_flip_10deg_Wip403d; 27 "),
            std::string::npos)
      << message;
}

TEST(SeriesRules, AlternativesAreTriedInPriorityOrder) {
  const std::vector<DicomSeriesInfo> study = ProstateStudy();
  // The first alternative matches nothing, the second matches the ADC map, the third would match several.
  const SeriesRules rules = Parse(R"({"sequences": [{"name": "ADC", "conditions": [
      {"SeriesDescription": "(?i)apparent"}, {"SeriesDescription": "_ADC$"}, {"Modality": "MR"}]}]})");
  const SequenceMapping mapping = MapSeries(rules, study);
  EXPECT_TRUE(mapping.Complete());
  EXPECT_EQ(ChosenNumber(mapping, study, "ADC"), 9);
  EXPECT_EQ(mapping.Find("ADC")->candidates.size(), 1u);
}

TEST(SeriesRules, SeriesWithoutANumericTagDoNotMatchItsRange) {
  std::vector<DicomSeriesInfo> study = ProstateStudy();
  const SeriesRules rules = Parse(R"({"sequences": [{"name": "P", "conditions": {"TriggerTime": [0, null]}}]})");
  EXPECT_EQ(MapSeries(rules, study).missing, std::vector<std::string>{"P"});
  study[3].trigger_time = 8000;
  EXPECT_EQ(ChosenNumber(MapSeries(rules, study), study, "P"), 27);
}

TEST(SeriesRules, RefusesMalformedRules) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json", "not valid JSON"},
      {R"([])", "not a JSON object"},
      {R"({"format": "other/1", "sequences": []})", "field 'format'"},
      {R"({"sequences": []})", "field 'sequences' must be a non-empty array"},
      {R"({"sequences": [{"conditions": {"Modality": "MR"}}]})", "field 'sequences[0].name'"},
      {R"({"sequences": [{"name": "A"}]})", "field 'sequences[0].conditions' is missing"},
      {R"({"sequences": [{"name": "A", "conditions": {"Colour": "red"}}]})",
       "field 'sequences[0].conditions.Colour' is not a known condition"},
      {R"({"sequences": [{"name": "A", "conditions": {"SeriesDescription": "t2("}}]})",
       "field 'sequences[0].conditions.SeriesDescription' is not a valid regular expression"},
      {R"({"sequences": [{"name": "A", "conditions": {"EchoTime": [5, 1]}}]})", "has min > max"},
      {R"({"sequences": [{"name": "A", "conditions": {"EchoTime": [1, 2, 3]}}]})", "must be a number or [min, max]"},
      {R"({"sequences": [{"name": "A", "conditions": {"ImageType": 3}}]})", "ImageType' must be a string"},
      {R"({"sequences": [{"name": "A", "conditions": {"Modality": "MR"}, "prefer": "newest"}]})",
       "prefer' must be \"first\" or \"last\""},
      {R"({"sequences": [{"name": "A", "conditions": {"Modality": "MR"}, "index": -1}]})", "non-negative"},
      {R"({"sequences": [{"name": "A", "conditions": {"Modality": "MR"}, "index": 1, "prefer": "last"}]})",
       "both prefer and index"},
      {R"({"sequences": [{"name": "A", "conditions": {"Modality": "MR"}, "pick": 1}]})",
       "'sequences[0].pick' is not a rule field"},
      {R"({"sequences": [{"name": "A", "conditions": {"Modality": "MR"}},
                         {"name": "A", "conditions": {"Modality": "CT"}}]})",
       "names A twice"},
  };
  for (const auto& [text, expected] : cases) {
    const absl::StatusOr<SeriesRules> rules = ParseSeriesRules(text, "rules.json");
    ASSERT_FALSE(rules.ok()) << text;
    EXPECT_EQ(rules.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(rules.status().message().find(expected), absl::string_view::npos) << rules.status();
    EXPECT_NE(rules.status().message().find("rules.json"), absl::string_view::npos) << rules.status();
  }
  EXPECT_EQ(ReadSeriesRules("/nonexistent/rules.json").status().code(), absl::StatusCode::kNotFound);
}

TEST(SeriesRules, TheProstateXRulesFileParses) {
  const absl::StatusOr<SeriesRules> rules =
      ReadSeriesRules(std::string(SEGREL_SOURCE_DIR) + "/tools/series_rules/prostatex.json");
  ASSERT_TRUE(rules.ok()) << rules.status();
  EXPECT_EQ(rules->SequenceNames(),
            (std::vector<std::string>{"T2", "ADC", "DCE1", "DCE2", "DCE3", "DCE4", "DCE5", "DCE6"}));
}

// A bundle folder holding segrel.json with `extra` fields added to the test bundle's.
std::string WriteBundle(const std::string& extra) {
  const std::string dir = segrel::testing::TestTempDir();
  std::ofstream(dir + "/segrel.json") << R"({"format": "segrel.bundle/1", "name": "b", "version": "1",
      "model": ")" << segrel::testing::FixturePath("unet_bn.pt")
                                      << R"(",
      "sequences": [{"name": "T1"}, {"name": "T2"}, {"name": "FLAIR"}], "reference_sequence": "FLAIR",
      "classes": ["background", "lesion"], "patch_size": [8, 8, 8])"
                                      << extra << "}";
  return dir;
}

TEST(BundleSeriesRules, OptionalAndReadWhenGiven) {
  const absl::StatusOr<model::Bundle> plain = model::ReadBundle(WriteBundle(""));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->series_rules.has_value());
  // The test bundle in the fixtures has no rules and stays valid.
  const absl::StatusOr<model::Bundle> fixture = model::ReadBundle(segrel::testing::FixturePath("bundle"));
  ASSERT_TRUE(fixture.ok()) << fixture.status();

  const absl::StatusOr<model::Bundle> with_rules = model::ReadBundle(WriteBundle(R"(, "series_rules": {"sequences": [
      {"name": "FLAIR", "conditions": {"SeriesDescription": "(?i)flair"}},
      {"name": "T1", "conditions": {"SeriesDescription": "(?i)t1"}, "prefer": "last"},
      {"name": "T2", "conditions": {"SeriesDescription": "(?i)t2"}}]})"));
  ASSERT_TRUE(with_rules.ok()) << with_rules.status();
  ASSERT_TRUE(with_rules->series_rules.has_value());
  EXPECT_EQ(with_rules->series_rules->SequenceNames(), (std::vector<std::string>{"FLAIR", "T1", "T2"}));
  EXPECT_EQ(with_rules->series_rules->rules[1].prefer, Preference::kLast);
}

TEST(BundleSeriesRules, RulesMustNameExactlyTheBundleSequences) {
  const absl::StatusOr<model::Bundle> missing = model::ReadBundle(WriteBundle(R"(, "series_rules": {"sequences": [
      {"name": "FLAIR", "conditions": {"SeriesDescription": "flair"}},
      {"name": "T1", "conditions": {"SeriesDescription": "t1"}}]})"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("field 'series_rules' names FLAIR, T1 but the sequences are T1, T2, FLAIR"),
            absl::string_view::npos)
      << missing.status();
  const absl::StatusOr<model::Bundle> bad = model::ReadBundle(
      WriteBundle(R"(, "series_rules": {"sequences": [{"name": "T1", "conditions": {"Bogus": 1}}]})"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("series_rules: field 'sequences[0].conditions.Bogus'"), absl::string_view::npos)
      << bad.status();
}

}  // namespace
}  // namespace segrel::io
