// The cohort report: reading relevance.json, mean, median and ranking against hand-computed numbers, the CSV and
// JSON it writes, the chart's existence, and the refusals of runs that cannot be compared or read.
#include "core/report/cohort.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/core/report/png_reader.h"
#include "tests/test_util.h"

namespace segrel::report {
namespace {

using nlohmann::json;
using segrel::testing::ReadFile;
using segrel::testing::TestTempDir;

// Sums of three decimal fractions: exact to a few ulps.
constexpr double kTolerance = 1e-12;

void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

// A relevance.json as `segrel analyze` writes it (the fields the cohort reads, and a few others).
json RelevanceJson(double t1, double t2, double flair) {
  return {{"format", "segrel.relevance/1"},
          {"model", "brats-unet"},
          {"composite", "epsilon-plus"},
          {"sequences", {"T1", "T2", "FLAIR"}},
          {"grid", {8, 8, 8}},
          {"sequence_relevance", {{"T1", t1}, {"T2", t2}, {"FLAIR", flair}}},
          {"sequence_relevance_raw", {{"T1", 2 * t1}, {"T2", 2 * t2}, {"FLAIR", 2 * flair}}},
          {"sequence_ranking", {"FLAIR", "T2", "T1"}}};
}

CohortStudy Study(const std::string& id, double t1, double t2, double flair) {
  CohortStudy study;
  study.id = id;
  study.shares = {{"T1", t1}, {"T2", t2}, {"FLAIR", flair}};
  study.raw = {{"T1", 2 * t1}, {"T2", 2 * t2}, {"FLAIR", 2 * flair}};
  study.model = "brats-unet";
  study.composite = "epsilon-plus";
  study.sequences = {"T1", "T2", "FLAIR"};
  return study;
}

// Three studies whose mean and median differ: mean T1 0.7/3, T2 1.0/3, FLAIR 1.3/3; median 0.2, 0.3, 0.4.
std::vector<CohortStudy> ThreeStudies() {
  return {Study("a", 0.2, 0.3, 0.5), Study("b", 0.1, 0.5, 0.4), Study("c", 0.4, 0.2, 0.4)};
}

TEST(ReadStudyReport, ReadsSharesRawModelAndComposite) {
  const std::string run = TestTempDir() + "/patient-007";
  WriteFile(run + "/relevance.json", RelevanceJson(0.25, 0.25, 0.5).dump());
  const absl::StatusOr<CohortStudy> study = ReadStudyReport(run + "/");
  ASSERT_TRUE(study.ok()) << study.status();
  EXPECT_EQ(study->id, "patient-007");
  EXPECT_EQ(study->model, "brats-unet");
  EXPECT_EQ(study->composite, "epsilon-plus");
  EXPECT_EQ(study->sequences, (std::vector<std::string>{"T1", "T2", "FLAIR"}));
  EXPECT_EQ(study->shares, (std::map<std::string, double>{{"T1", 0.25}, {"T2", 0.25}, {"FLAIR", 0.5}}));
  EXPECT_EQ(study->raw, (std::map<std::string, double>{{"T1", 0.5}, {"T2", 0.5}, {"FLAIR", 1.0}}));
}

TEST(ReadStudyReport, MissingFileIsNotFound) {
  const std::string run = TestTempDir() + "/empty-run";
  std::filesystem::create_directories(run);
  const absl::StatusOr<CohortStudy> study = ReadStudyReport(run);
  EXPECT_EQ(study.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(study.status().message().find(run + "/relevance.json"), absl::string_view::npos) << study.status();
}

TEST(ReadStudyReport, MalformedJsonIsInvalidArgument) {
  const std::string run = TestTempDir() + "/broken";
  WriteFile(run + "/relevance.json", "{\"format\": \"segrel.relevance/1\", ");
  const absl::StatusOr<CohortStudy> study = ReadStudyReport(run);
  EXPECT_EQ(study.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(study.status().message().find("relevance.json"), absl::string_view::npos) << study.status();
}

TEST(ReadStudyReport, WrongFormatNamesTheField) {
  const std::string run = TestTempDir() + "/other";
  json document = RelevanceJson(0.2, 0.3, 0.5);
  document["format"] = "segrel.bundle/1";
  WriteFile(run + "/relevance.json", document.dump());
  const absl::StatusOr<CohortStudy> study = ReadStudyReport(run);
  EXPECT_EQ(study.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(study.status().message().find("'format'"), absl::string_view::npos) << study.status();
}

TEST(ReadStudyReport, MissingShareNamesTheFieldAndSequence) {
  const std::string run = TestTempDir() + "/partial";
  json document = RelevanceJson(0.2, 0.3, 0.5);
  document["sequence_relevance"].erase("T2");
  WriteFile(run + "/relevance.json", document.dump());
  const absl::StatusOr<CohortStudy> study = ReadStudyReport(run);
  EXPECT_EQ(study.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(study.status().message().find("sequence_relevance.T2"), absl::string_view::npos) << study.status();
}

TEST(ReadStudyReport, NonNumericShareIsInvalidArgument) {
  const std::string run = TestTempDir() + "/text";
  json document = RelevanceJson(0.2, 0.3, 0.5);
  document["sequence_relevance_raw"]["FLAIR"] = "high";
  WriteFile(run + "/relevance.json", document.dump());
  const absl::StatusOr<CohortStudy> study = ReadStudyReport(run);
  EXPECT_EQ(study.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(study.status().message().find("sequence_relevance_raw.FLAIR"), absl::string_view::npos) << study.status();
}

TEST(Summarise, MeanMedianAndRankingMatchHandComputedValues) {
  const absl::StatusOr<CohortSummary> summary = Summarise(ThreeStudies());
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->sequences, (std::vector<std::string>{"T1", "T2", "FLAIR"}));
  EXPECT_EQ(summary->studies.size(), 3u);
  EXPECT_NEAR(summary->mean.at("T1"), 0.7 / 3, kTolerance);
  EXPECT_NEAR(summary->mean.at("T2"), 1.0 / 3, kTolerance);
  EXPECT_NEAR(summary->mean.at("FLAIR"), 1.3 / 3, kTolerance);
  EXPECT_NEAR(summary->median.at("T1"), 0.2, kTolerance);
  EXPECT_NEAR(summary->median.at("T2"), 0.3, kTolerance);
  EXPECT_NEAR(summary->median.at("FLAIR"), 0.4, kTolerance);
  EXPECT_EQ(summary->ranking, (std::vector<std::string>{"FLAIR", "T2", "T1"}));
}

TEST(Summarise, MedianOfAnEvenCountIsTheMiddlePairsMean) {
  const absl::StatusOr<CohortSummary> summary = Summarise({Study("a", 0.2, 0.3, 0.5), Study("b", 0.1, 0.6, 0.3)});
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_NEAR(summary->median.at("T1"), 0.15, kTolerance);
  EXPECT_NEAR(summary->median.at("T2"), 0.45, kTolerance);
  EXPECT_NEAR(summary->median.at("FLAIR"), 0.4, kTolerance);
  EXPECT_EQ(summary->ranking, (std::vector<std::string>{"T2", "FLAIR", "T1"}));
}

TEST(Summarise, TiesRankInChannelOrder) {
  const absl::StatusOr<CohortSummary> summary = Summarise({Study("a", 0.25, 0.25, 0.5)});
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->ranking, (std::vector<std::string>{"FLAIR", "T1", "T2"}));
}

TEST(Summarise, RejectsStudiesWithDifferentSequences) {
  std::vector<CohortStudy> studies = ThreeStudies();
  studies[2].shares.erase("T2");
  studies[2].sequences = {"T1", "FLAIR"};
  const absl::StatusOr<CohortSummary> summary = Summarise(studies);
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(summary.status().message().find("c has FLAIR, T1"), absl::string_view::npos) << summary.status();
  EXPECT_NE(summary.status().message().find("a has FLAIR, T1, T2"), absl::string_view::npos) << summary.status();
}

TEST(Summarise, RejectsMixedModels) {
  std::vector<CohortStudy> studies = ThreeStudies();
  studies[1].model = "other-unet";
  const absl::StatusOr<CohortSummary> summary = Summarise(studies);
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(summary.status().message().find("b used other-unet"), absl::string_view::npos) << summary.status();
  EXPECT_NE(summary.status().message().find("a used brats-unet"), absl::string_view::npos) << summary.status();
}

TEST(Summarise, RejectsMixedComposites) {
  std::vector<CohortStudy> studies = ThreeStudies();
  studies[2].composite = "alpha1-beta0";
  const absl::StatusOr<CohortSummary> summary = Summarise(studies);
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(summary.status().message().find("composites"), absl::string_view::npos) << summary.status();
  EXPECT_NE(summary.status().message().find("alpha1-beta0"), absl::string_view::npos) << summary.status();
}

TEST(Summarise, RejectsNoStudiesAndRepeatedIds) {
  EXPECT_EQ(Summarise({}).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<CohortStudy> studies = ThreeStudies();
  studies[2].id = "a";
  EXPECT_EQ(Summarise(studies).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WriteCohortReport, WritesCsvJsonAndChart) {
  const std::string dir = TestTempDir() + "/cohort";
  const absl::StatusOr<CohortSummary> summary = Summarise(ThreeStudies());
  ASSERT_TRUE(summary.ok()) << summary.status();
  const absl::StatusOr<std::vector<std::string>> written = WriteCohortReport(*summary, dir);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, (std::vector<std::string>{"cohort.csv", "cohort.json", "cohort.png"}));

  EXPECT_EQ(ReadFile(dir + "/cohort.csv"),
            "id,T1,T2,FLAIR\n"
            "a,0.2,0.3,0.5\n"
            "b,0.1,0.5,0.4\n"
            "c,0.4,0.2,0.4\n"
            "mean,0.233333,0.333333,0.433333\n"
            "median,0.2,0.3,0.4\n");

  const json document = json::parse(ReadFile(dir + "/cohort.json"));
  EXPECT_EQ(document["format"], "segrel.cohort/1");
  EXPECT_EQ(document["model"], "brats-unet");
  EXPECT_EQ(document["ranking"], json({"FLAIR", "T2", "T1"}));
  ASSERT_EQ(document["studies"].size(), 3u);
  EXPECT_EQ(document["studies"][1]["id"], "b");
  EXPECT_NEAR(document["studies"][1]["shares"]["T2"].get<double>(), 0.5, kTolerance);
  EXPECT_NEAR(document["studies"][1]["raw"]["T2"].get<double>(), 1.0, kTolerance);
  EXPECT_NEAR(document["mean"]["FLAIR"].get<double>(), 1.3 / 3, kTolerance);
  EXPECT_NEAR(document["median"]["T1"].get<double>(), 0.2, kTolerance);

  const testing::PngHeader chart = testing::ReadPngHeader(dir + "/cohort.png");
  EXPECT_TRUE(chart.signature_ok);
  EXPECT_GT(chart.width, 0u);
  EXPECT_GT(chart.height, 0u);
}

TEST(WriteCohortReport, QuotesIdsWithCommas) {
  const std::string dir = TestTempDir();
  const absl::StatusOr<CohortSummary> summary = Summarise({Study("site 1, \"x\"", 0.25, 0.25, 0.5)});
  ASSERT_TRUE(summary.ok()) << summary.status();
  ASSERT_TRUE(WriteCohortReport(*summary, dir).ok());
  EXPECT_NE(ReadFile(dir + "/cohort.csv").find("\n\"site 1, \"\"x\"\"\",0.25,0.25,0.5\n"), std::string::npos);
}

TEST(WriteCohortReport, RejectsASummaryWithoutAMean) {
  absl::StatusOr<CohortSummary> summary = Summarise(ThreeStudies());
  ASSERT_TRUE(summary.ok()) << summary.status();
  summary->mean.erase("T2");
  EXPECT_EQ(WriteCohortReport(*summary, TestTempDir()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Cohort, ReadsRunFoldersEndToEnd) {
  const std::string root = TestTempDir();
  WriteFile(root + "/runs/p1/relevance.json", RelevanceJson(0.2, 0.3, 0.5).dump(2));
  WriteFile(root + "/runs/p2/relevance.json", RelevanceJson(0.3, 0.4, 0.3).dump(2));
  std::vector<CohortStudy> studies;
  for (const std::string run : {"p1", "p2"}) {
    absl::StatusOr<CohortStudy> study = ReadStudyReport(root + "/runs/" + run);
    ASSERT_TRUE(study.ok()) << study.status();
    studies.push_back(*std::move(study));
  }
  const absl::StatusOr<CohortSummary> summary = Summarise(studies);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_NEAR(summary->mean.at("T1"), 0.25, kTolerance);
  EXPECT_NEAR(summary->mean.at("T2"), 0.35, kTolerance);
  EXPECT_NEAR(summary->mean.at("FLAIR"), 0.4, kTolerance);
  EXPECT_EQ(summary->ranking, (std::vector<std::string>{"FLAIR", "T2", "T1"}));
  ASSERT_TRUE(WriteCohortReport(*summary, root + "/report").ok());
  EXPECT_NE(ReadFile(root + "/report/cohort.csv").find("\np1,0.2,0.3,0.5\np2,0.3,0.4,0.3\n"), std::string::npos);
}

}  // namespace
}  // namespace segrel::report
