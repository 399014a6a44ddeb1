// An analysis tells its caller every stage and every window as it goes, and stops where the caller says so.
#include "core/analysis/stages.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/pipeline/pipeline.h"
#include "tests/test_util.h"

namespace segrel::pipeline {
namespace {

using segrel::testing::FixturePath;

struct Report {
  std::string stage;
  int64_t done = 0;
  int64_t total = 0;
};

// The study fixture (8^3) with the bare unet_bn network in 8x4x4 windows: 1 x 3 x 3 = 9 windows.
AnalysisRequest WindowedRequest() {
  AnalysisRequest request;
  request.model = FixturePath("unet_bn.pt");
  for (const char* name : {"T1", "T2", "FLAIR"}) {
    request.inputs.push_back({name, FixturePath(absl::StrCat("study/", name, ".nii.gz"))});
  }
  request.patch = {8, 4, 4};
  request.ablation = true;
  return request;
}

TEST(Progress, ReportsEveryStageInOrderAndEveryWindow) {
  std::vector<Report> reports;
  AnalysisRequest request = WindowedRequest();
  request.progress = [&reports](analysis::Stage stage, int64_t done, int64_t total) {
    reports.push_back({std::string(analysis::StageName(stage)), done, total});
    return absl::OkStatus();
  };
  const absl::StatusOr<AnalysisResult> result = RunAnalysis(request);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->explanation.windows, 9);

  const std::vector<std::string> order = {"read", "import", "inference", "transpose", "relevance", "ablation"};
  size_t stage = 0;
  std::map<std::string, int64_t> windows_done;  // reports with done > 0, per stage
  for (const Report& report : reports) {
    while (stage < order.size() && order[stage] != report.stage) ++stage;
    ASSERT_LT(stage, order.size()) << "stage " << report.stage << " out of order or unknown";
    EXPECT_GE(report.done, 0);
    EXPECT_LE(report.done, report.total) << report.stage;
    if (report.done > 0) ++windows_done[report.stage];
  }
  EXPECT_EQ(reports.front().stage, "read");
  EXPECT_EQ(windows_done["inference"], 9);  // batch 1: one report per window
  // Each pass over the windows reports all of them (the transpose stage may pass more than once).
  EXPECT_GT(windows_done["transpose"], 0);
  EXPECT_EQ(windows_done["transpose"] % 9, 0);
  EXPECT_GT(windows_done["relevance"], 0);
  EXPECT_EQ(windows_done["relevance"] % 9, 0);
  EXPECT_EQ(windows_done["ablation"], 3);  // one per sequence
  EXPECT_EQ(reports.back().stage, "ablation");
  EXPECT_EQ(reports.back().done, 3);
}

TEST(Progress, AnErrorFromTheCallerStopsTheAnalysisWithIt) {
  for (const std::string stop_in : {"read", "inference", "transpose", "relevance", "ablation"}) {
    std::vector<Report> reports;
    AnalysisRequest request = WindowedRequest();
    request.progress = [&](analysis::Stage stage_type, int64_t done, int64_t total) {
      const std::string stage(analysis::StageName(stage_type));
      reports.push_back({stage, done, total});
      // Stop in the middle of windowed stages, at the start of the others.
      const bool stop = stage == stop_in && (stop_in == "read" || done == total / 2);
      return stop ? absl::CancelledError(absl::StrCat("stopped in ", stage)) : absl::OkStatus();
    };
    const absl::StatusOr<AnalysisResult> result = RunAnalysis(request);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled) << stop_in;
    EXPECT_EQ(result.status().message(), "stopped in " + stop_in);
    ASSERT_FALSE(reports.empty());
    EXPECT_EQ(reports.back().stage, stop_in) << "the analysis went on after the caller said stop";
  }
}

TEST(Progress, WithoutWindowsEachStageReportsOneUnit) {
  std::vector<Report> reports;
  AnalysisRequest request;
  request.model = FixturePath("bundle");
  request.study_dir = FixturePath("study");
  request.progress = [&reports](analysis::Stage stage, int64_t done, int64_t total) {
    reports.push_back({std::string(analysis::StageName(stage)), done, total});
    return absl::OkStatus();
  };
  ASSERT_TRUE(RunAnalysis(request).ok());
  std::vector<std::string> stages;
  for (const Report& report : reports) {
    if (stages.empty() || stages.back() != report.stage) stages.push_back(report.stage);
  }
  EXPECT_EQ(stages, (std::vector<std::string>{"read", "import", "inference", "transpose", "relevance"}));
}

}  // namespace
}  // namespace segrel::pipeline
