// WriteAnalysis: the outputs of an analysis, and what happens when the pictures cannot be drawn.
#include "core/pipeline/pipeline.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/test_util.h"

namespace segrel::pipeline {
namespace {

using segrel::testing::FixturePath;
using segrel::testing::TestTempDir;

TEST(WriteAnalysis, WithoutGnuplotWritesEverythingButThePicturesAndSaysWhy) {
  AnalysisRequest request;
  request.model = FixturePath("bundle");
  request.study_dir = FixturePath("study");
  const absl::StatusOr<AnalysisResult> result = RunAnalysis(request);
  ASSERT_TRUE(result.ok()) << result.status();
  const std::string dir = TestTempDir();
  const std::string saved = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
  setenv("PATH", dir.c_str(), 1);  // an empty folder: no gnuplot
  const absl::StatusOr<std::vector<std::string>> written = WriteAnalysis(*result, dir + "/out", false, true);
  setenv("PATH", saved.c_str(), 1);

  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, (std::vector<std::string>{"relevance.json", "segmentation.nii.gz"}));
  EXPECT_FALSE(std::filesystem::exists(dir + "/out/relevance_bars.png"));
  std::stringstream text;
  text << std::ifstream(dir + "/out/relevance.json").rdbuf();
  const nlohmann::json report = nlohmann::json::parse(text.str());
  ASSERT_FALSE(report["notes"].empty());
  const std::string note = report["notes"].back();
  EXPECT_NE(note.find("no pictures"), std::string::npos) << note;
  EXPECT_NE(note.find("gnuplot is not installed"), std::string::npos) << note;
}

}  // namespace
}  // namespace segrel::pipeline
