// Model bundles: segrel.json read as documented, and every malformed bundle refused with the file and field named.
#include "core/model/bundle.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/test_util.h"

namespace segrel::model {
namespace {

using nlohmann::json;

json ValidBundle() { return segrel::testing::ReadJson("bundle/segrel.json"); }

// Writes `document` as segrel.json into a fresh folder next to a copy of the fixture model; returns the folder.
std::string WriteBundle(const json& document) {
  const std::string dir = segrel::testing::TestTempDir();
  std::filesystem::copy_file(segrel::testing::FixturePath("unet_bn.pt"), dir + "/model.pt");
  json copy = document;
  copy["model"] = "model.pt";
  std::ofstream(dir + "/segrel.json") << copy.dump(2);
  return dir;
}

TEST(Bundle, ReadsTheFixtureBundle) {
  absl::StatusOr<Bundle> bundle = ReadBundle(segrel::testing::FixturePath("bundle"));
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  EXPECT_EQ(bundle->name, "unet-bn-test");
  EXPECT_EQ(bundle->SequenceNames(), (std::vector<std::string>{"T1", "T2", "FLAIR"}));
  EXPECT_EQ(bundle->reference_sequence, "FLAIR");
  EXPECT_EQ(bundle->classes, (std::vector<std::string>{"background", "lesion"}));
  EXPECT_EQ(bundle->patch_size, (std::vector<int64_t>{8, 8, 8}));
  EXPECT_DOUBLE_EQ(bundle->overlap, 0.5);
  EXPECT_EQ(bundle->composite, "epsilon-plus");
  EXPECT_EQ(bundle->output, -1);  // not given: the network's first output
  EXPECT_EQ(bundle->model_format, "torchscript");
  EXPECT_EQ(bundle->license, "synthetic test fixture, no data");
  EXPECT_TRUE(std::filesystem::exists(bundle->model_path));
  // The segrel.json path names the same bundle.
  EXPECT_TRUE(ReadBundle(segrel::testing::FixturePath("bundle/segrel.json")).ok());
}

TEST(Bundle, ReadsTheOutputToExplainAndTheModelFormat) {
  json document = ValidBundle();
  document["output"] = 1;
  const std::string dir = WriteBundle(document);
  document["model"] = "model.onnx";
  std::filesystem::copy_file(segrel::testing::FixturePath("onnx/unet_bn.onnx"), dir + "/model.onnx");
  std::ofstream(dir + "/segrel.json") << document.dump(2);
  absl::StatusOr<Bundle> bundle = ReadBundle(dir);
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  EXPECT_EQ(bundle->output, 1);
  EXPECT_EQ(bundle->model_format, "onnx");
}

TEST(Bundle, ReadsRangesAndNormalisation) {
  json document = ValidBundle();
  document["sequences"][1]["normalisation"] = "zscore-nonzero";
  document["sequences"][1]["range"] = {-2.5, 7.0};
  absl::StatusOr<Bundle> bundle = ReadBundle(WriteBundle(document));
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  EXPECT_EQ(bundle->sequences[1].normalisation, volume::Normalisation::kZScoreNonzero);
  ASSERT_TRUE(bundle->sequences[1].range.has_value());
  EXPECT_DOUBLE_EQ(bundle->sequences[1].range->first, -2.5);
  EXPECT_FALSE(bundle->sequences[0].range.has_value());
}

struct BadBundle {
  std::string what;
  std::function<void(json&)> spoil;
  std::string field;  // must appear in the message
};

class BadBundleTest : public ::testing::TestWithParam<BadBundle> {};

TEST_P(BadBundleTest, IsRefusedNamingTheField) {
  json document = ValidBundle();
  GetParam().spoil(document);
  const std::string dir = WriteBundle(document);
  absl::StatusOr<Bundle> bundle = ReadBundle(dir);
  ASSERT_FALSE(bundle.ok());
  EXPECT_EQ(bundle.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(bundle.status().message());
  EXPECT_NE(message.find("segrel.json"), std::string::npos) << message;
  EXPECT_NE(message.find(GetParam().field), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(
    Fields, BadBundleTest,
    ::testing::Values(BadBundle{"format", [](json& d) { d["format"] = "segrel.bundle/9"; }, "'format'"},
                      BadBundle{"no_name", [](json& d) { d.erase("name"); }, "'name' is missing"},
                      BadBundle{"sequences_empty", [](json& d) { d["sequences"] = json::array(); }, "'sequences'"},
                      BadBundle{"normalisation", [](json& d) { d["sequences"][0]["normalisation"] = "minmax"; },
                                "sequences[0].normalisation"},
                      BadBundle{"range",
                                [](json& d) {
                                  d["sequences"][2]["range"] = {3, 1};
                                },
                                "sequences[2].range"},
                      BadBundle{"duplicate", [](json& d) { d["sequences"][1]["name"] = "T1"; }, "T1 twice"},
                      BadBundle{"reference", [](json& d) { d["reference_sequence"] = "DWI"; }, "reference_sequence"},
                      BadBundle{"patch",
                                [](json& d) {
                                  d["patch_size"] = {8, 0, 8};
                                },
                                "patch_size[1]"},
                      BadBundle{"overlap", [](json& d) { d["overlap"] = 1.0; }, "'overlap'"},
                      BadBundle{"composite", [](json& d) { d["composite"] = "lrp-zero"; }, "'composite'"},
                      BadBundle{"output", [](json& d) { d["output"] = -1; }, "'output'"},
                      BadBundle{"classes",
                                [](json& d) {
                                  d["classes"] = {"background", 1};
                                },
                                "classes[1]"}),
    [](const ::testing::TestParamInfo<BadBundle>& info) { return info.param.what; });

TEST(Bundle, MissingFilesAreNotFound) {
  EXPECT_EQ(ReadBundle("/nonexistent/bundle").status().code(), absl::StatusCode::kNotFound);
  json document = ValidBundle();
  const std::string dir = WriteBundle(document);
  std::filesystem::remove(dir + "/model.pt");
  absl::StatusOr<Bundle> bundle = ReadBundle(dir);
  ASSERT_FALSE(bundle.ok());
  EXPECT_EQ(bundle.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(bundle.status().message()).find("model.pt"), std::string::npos);
}

TEST(Bundle, MalformedJsonIsInvalidArgument) {
  const std::string dir = segrel::testing::TestTempDir();
  std::ofstream(dir + "/segrel.json") << "{\"format\": \"segrel.bundle/1\", ";
  absl::StatusOr<Bundle> bundle = ReadBundle(dir);
  ASSERT_FALSE(bundle.ok());
  EXPECT_EQ(bundle.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace segrel::model
