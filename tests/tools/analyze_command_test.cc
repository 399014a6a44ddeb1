// `segrel analyze` end to end: the real binary on the study fixture, its outputs against an independent float64
// LRP implementation (tests/fixtures/reference_lrp.py), and its refusals of bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/io/nifti.h"
#include "core/lrp/composite.h"
#include "tests/test_util.h"
#include "tests/tools/run_segrel.h"

namespace segrel {
namespace {

using nlohmann::json;
using segrel::testing::FixturePath;

using segrel::testing::ReadFile;
using segrel::testing::RunResult;

// Runs `segrel analyze ARGUMENTS`.
RunResult RunAnalyze(const std::string& arguments) { return segrel::testing::RunSegrel("analyze " + arguments); }

std::string StudyInputs(const std::string& model = "unet_bn.pt") {
  const std::string s = FixturePath("study/");
  return "--model " + FixturePath(model) + " --input T1=" + s + "T1.nii.gz --input T2=" + s +
         "T2.nii.gz --input FLAIR=" + s + "FLAIR.nii.gz";
}

std::string MaskRegions() {
  const std::string s = FixturePath("study/");
  return " --region 0=" + s + "region_bg.nii.gz --region 1=" + s + "region_fg.nii.gz";
}

const std::vector<std::string> kSequences = {"T1", "T2", "FLAIR"};

// Relevance shares and sums, float32 (segrel) against float64 (reference): relative 1e-4 of the largest value.
void ExpectPerSequenceNear(const json& actual, const json& expected, double scale, const std::string& what) {
  for (const std::string& name : kSequences) {
    EXPECT_NEAR(actual.at(name).get<double>(), expected.at(name).get<double>(), 1e-4 * scale) << what << " " << name;
  }
}

// The composite, and the network file: the TorchScript fixture or the same network exported to ONNX.
class AnalyzeAgainstReferenceTest : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(AnalyzeAgainstReferenceTest, MatchesIndependentLrpImplementation) {
  const auto& [composite, model] = GetParam();
  const std::string out = segrel::testing::TestTempDir();
  const RunResult run =
      RunAnalyze(StudyInputs(model) + MaskRegions() + " --composite " + composite + " --maps --out " + out);
  ASSERT_EQ(run.exit_code, 0) << run.err;

  const json report = json::parse(ReadFile(out + "/relevance.json"));
  const json expected = segrel::testing::ReadJson("study/expected_relevance.json")["composites"][composite];
  EXPECT_EQ(report["composite"], composite);
  ExpectPerSequenceNear(report["sequence_relevance"], expected["sequence_relevance"], 1.0, "combined share");
  ExpectPerSequenceNear(report["sequence_relevance_raw"], expected["sequence_relevance_raw"], 30.0, "combined raw");
  ASSERT_EQ(report["classes"].size(), 2u);
  for (int k = 0; k < 2; ++k) {
    const json& actual_class = report["classes"][k];
    const json& expected_class = expected["classes"][k];
    EXPECT_EQ(actual_class["index"], expected_class["index"]);
    EXPECT_EQ(actual_class["region_voxels"], expected_class["region_voxels"]) << "class " << k;
    EXPECT_EQ(actual_class["excluded_voxels"], expected_class["excluded_voxels"]) << "class " << k;
    ExpectPerSequenceNear(actual_class["sequence_relevance"], expected_class["sequence_relevance"], 1.0, "class share");
  }

  // The maps are the reference's combined map, channel by channel.
  const at::Tensor expected_map =
      segrel::testing::ReadFloat32("study/expected_map." + composite + ".f32", {3, 8, 8, 8});
  for (size_t s = 0; s < kSequences.size(); ++s) {
    absl::StatusOr<volume::Volume> map = io::ReadNifti(out + "/relevance_" + kSequences[s] + ".nii.gz");
    ASSERT_TRUE(map.ok()) << map.status();
    EXPECT_LT(segrel::testing::RelativeError(map->data, expected_map[s]), 1e-4) << kSequences[s];
  }
}

INSTANTIATE_TEST_SUITE_P(Composites, AnalyzeAgainstReferenceTest,
                         ::testing::Combine(::testing::ValuesIn(lrp::Composite::Names()),
                                            ::testing::Values("unet_bn.pt", "onnx/unet_bn.onnx")),
                         [](const ::testing::TestParamInfo<std::tuple<std::string, std::string>>& info) {
                           std::string name =
                               std::get<0>(info.param) + (std::get<1>(info.param) == "unet_bn.pt" ? "" : "_onnx");
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

TEST(Analyze, BalancedRegionsAreReproducibleAndFollowTheSeed) {
  const std::string out = segrel::testing::TestTempDir();
  const RunResult first = RunAnalyze(StudyInputs() + " --seed 7 --out " + out + "/a");
  const RunResult second = RunAnalyze(StudyInputs() + " --seed 7 --out " + out + "/b");
  const RunResult other = RunAnalyze(StudyInputs() + " --seed 8 --out " + out + "/c");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_EQ(second.exit_code, 0) << second.err;
  ASSERT_EQ(other.exit_code, 0) << other.err;
  const json a = json::parse(ReadFile(out + "/a/relevance.json"));
  const json b = json::parse(ReadFile(out + "/b/relevance.json"));
  const json c = json::parse(ReadFile(out + "/c/relevance.json"));
  EXPECT_EQ(a["seed"], 7);
  EXPECT_EQ(a["regions"], "balanced");
  EXPECT_EQ(a["sequence_relevance_raw"], b["sequence_relevance_raw"]);  // bit for bit
  EXPECT_NE(a["classes"][0]["sequence_relevance_raw"], c["classes"][0]["sequence_relevance_raw"]);
  // Balanced: as many background voxels as foreground ones; shares sum to 1; raw sums add up to the voxels.
  const int64_t foreground = a["classes"][1]["region_voxels"];
  EXPECT_EQ(a["classes"][0]["region_voxels"], foreground);
  EXPECT_EQ(a["classes"][1]["predicted_voxels"], 148);
  EXPECT_EQ(a["classes"][0]["predicted_voxels"], 364);
  double shares = 0, raw = 0;
  for (const std::string& name : kSequences) {
    shares += a["sequence_relevance"][name].get<double>();
    raw += a["sequence_relevance_raw"][name].get<double>();
  }
  EXPECT_NEAR(shares, 1.0, 1e-9);
  EXPECT_NEAR(raw, 2.0 * static_cast<double>(foreground), 1e-3 * static_cast<double>(foreground));
  EXPECT_NE(first.out.find("outputs in"), std::string::npos);
}

TEST(Analyze, SegmentationKeepsTheInputGrid) {
  const std::string out = segrel::testing::TestTempDir();
  const RunResult run = RunAnalyze(StudyInputs() + " --out " + out);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  absl::StatusOr<volume::Volume> segmentation = io::ReadNifti(out + "/segmentation.nii.gz");
  absl::StatusOr<volume::Volume> t1 = io::ReadNifti(FixturePath("study/T1.nii.gz"));
  ASSERT_TRUE(segmentation.ok() && t1.ok());
  EXPECT_TRUE(volume::SameGrid(*segmentation, *t1, 1e-6));
  EXPECT_EQ(segmentation->data.eq(1).sum().item<int64_t>(), 148);
  EXPECT_EQ(segmentation->data.eq(0).sum().item<int64_t>(), 364);
  EXPECT_FALSE(std::filesystem::exists(out + "/relevance_T1.nii.gz"));  // only with --maps
}

// A bundle names the sequences and takes the study as a folder; its 8x8x8 window covers the study fixture, so the
// windowed explanation equals the reference (up to the blending layer's stabiliser, far below 1e-4).
TEST(Analyze, BundleWithStudyFolderMatchesTheReference) {
  const std::string out = segrel::testing::TestTempDir();
  const RunResult run = RunAnalyze("--model " + FixturePath("bundle") + " --study " + FixturePath("study") +
                                   MaskRegions() + " --out " + out);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json report = json::parse(ReadFile(out + "/relevance.json"));
  const json expected = segrel::testing::ReadJson("study/expected_relevance.json")["composites"]["epsilon-plus"];
  ExpectPerSequenceNear(report["sequence_relevance"], expected["sequence_relevance"], 1.0, "combined share");
  EXPECT_EQ(report["model"], "unet-bn-test");
  EXPECT_EQ(report["model_version"], "0.0.1");
  EXPECT_EQ(report["model_license"], "synthetic test fixture, no data");
  EXPECT_EQ(report["classes"][1]["name"], "lesion");
  EXPECT_EQ(report["sliding_window"]["windows"], 1);
  EXPECT_EQ(report["sequences"], json({"T1", "T2", "FLAIR"}));
}

TEST(Analyze, BundleTakesInputsInAnyOrder) {
  const std::string s = FixturePath("study/");
  const std::string out = segrel::testing::TestTempDir();
  const RunResult run =
      RunAnalyze("--model " + FixturePath("bundle") + " --input FLAIR=" + s + "FLAIR.nii.gz --input T1=" + s +
                 "T1.nii.gz --input T2=" + s + "T2.nii.gz" + MaskRegions() + " --out " + out);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json report = json::parse(ReadFile(out + "/relevance.json"));
  const json expected = segrel::testing::ReadJson("study/expected_relevance.json")["composites"]["epsilon-plus"];
  ExpectPerSequenceNear(report["sequence_relevance"], expected["sequence_relevance"], 1.0, "combined share");
}

// Bad input: a non-zero exit and one line on stderr that names the problem.
void ExpectFailure(const std::string& arguments, const std::string& expected_text) {
  const RunResult run = RunAnalyze(arguments);
  EXPECT_NE(run.exit_code, 0);
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_NE(run.err.find(expected_text), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("error:"), std::string::npos) << run.err;
}

TEST(AnalyzeErrors, MissingInputFile) {
  ExpectFailure(StudyInputs() + " --input T3=/nonexistent/T3.nii.gz --out /tmp/segrel_unused",
                "/nonexistent/T3.nii.gz");
}

TEST(AnalyzeErrors, ShapesDiffer) {
  ExpectFailure(StudyInputs() + " --input BAD=" + FixturePath("study/bad_shape.nii.gz") + " --out /tmp/segrel_unused",
                "shapes differ");
}

TEST(AnalyzeErrors, MaskOnAnotherGrid) {
  ExpectFailure(
      StudyInputs() + " --region 1=" + FixturePath("study/other_grid_mask.nii.gz") + " --out /tmp/segrel_unused",
      "other_grid_mask.nii.gz lies on another grid");
}

TEST(AnalyzeErrors, UnknownComposite) {
  ExpectFailure(StudyInputs() + " --composite epsilon-minus --out /tmp/segrel_unused",
                "unknown composite 'epsilon-minus'");
}

TEST(AnalyzeErrors, ModelWhoseOutputIsNotASegmentation) {
  const std::string s = FixturePath("study/");
  ExpectFailure("--model " + FixturePath("classifier.pt") + " --input A=" + s + "T1.nii.gz --input B=" + s +
                    "T2.nii.gz --out /tmp/segrel_unused",
                "[1, K, 8, 8, 8]");
}

TEST(AnalyzeErrors, UnsupportedOperation) {
  const std::string s = FixturePath("study/");
  ExpectFailure("--model " + FixturePath("unsupported_op.pt") + " --input A=" + s + "T1.nii.gz --input B=" + s +
                    "T2.nii.gz --out /tmp/segrel_unused",
                "aten::cumsum");
}

// A network with two outputs: output 0 is explained and relevance.json's notes say so; --output chooses another
// (here the auxiliary head at half resolution, which is no segmentation of the study's grid) or one that is missing.
TEST(Analyze, ANetworkWithSeveralOutputsExplainsTheFirstAndSaysSo) {
  const std::string s = FixturePath("study/");
  const std::string inputs = " --input A=" + s + "T1.nii.gz --input B=" + s + "T2.nii.gz";
  for (const std::string model : {"deep_supervision.pt", "onnx/deep_supervision.onnx"}) {
    const std::string out = segrel::testing::TestTempDir();
    const RunResult run = RunAnalyze("--model " + FixturePath(model) + inputs + " --no-pictures --out " + out);
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const json report = json::parse(ReadFile(out + "/relevance.json"));
    EXPECT_THAT(report["notes"].dump(), ::testing::HasSubstr("the network has 2 outputs; segrel explains output 0"))
        << model;
    ExpectFailure("--model " + FixturePath(model) + inputs + " --output 1 --out /tmp/segrel_unused", "[1, K, 8, 8, 8]");
    ExpectFailure("--model " + FixturePath(model) + inputs + " --output 5 --out /tmp/segrel_unused",
                  "the network has 2 outputs; there is no output 5");
  }
}

TEST(AnalyzeErrors, UnsupportedOnnxOperation) {
  const std::string s = FixturePath("study/");
  ExpectFailure("--model " + FixturePath("onnx/unsupported_op.onnx") + " --input A=" + s + "T1.nii.gz --input B=" + s +
                    "T2.nii.gz --out /tmp/segrel_unused",
                "ONNX operator CumSum at node 3");
}

TEST(AnalyzeErrors, NotAnOnnxFile) {
  const std::string s = FixturePath("study/");
  ExpectFailure("--model " + FixturePath("onnx/bad.truncated.onnx") + " --input T1=" + s + "T1.nii.gz --input T2=" + s +
                    "T2.nii.gz --input FLAIR=" + s + "FLAIR.nii.gz --out /tmp/segrel_unused",
                "is not an ONNX model");
}

TEST(AnalyzeErrors, WrongNumberOfSequences) {
  const std::string s = FixturePath("study/");
  ExpectFailure("--model " + FixturePath("unet_bn.pt") + " --input T1=" + s + "T1.nii.gz --out /tmp/segrel_unused",
                "channels");
}

TEST(AnalyzeErrors, RegionForAClassTheNetworkDoesNotHave) {
  ExpectFailure(StudyInputs() + " --region 5=" + FixturePath("study/region_fg.nii.gz") + " --out /tmp/segrel_unused",
                "class 5");
}

TEST(AnalyzeErrors, MissingRequiredOptions) {
  ExpectFailure("--input T1=" + FixturePath("study/T1.nii.gz") + " --out /tmp/segrel_unused", "--model is required");
  ExpectFailure("--model " + FixturePath("unet_bn.pt") + " --input T1=" + FixturePath("study/T1.nii.gz"),
                "--out DIR is required");
  ExpectFailure(StudyInputs() + " --input broken --out /tmp/segrel_unused", "NAME=FILE");
}

// With a reference, the true positives are the reference's lesion voxels the network found: region_fg, all
// predicted lesion, explained through the lesion class: the independent reference's class-1 numbers.
TEST(Analyze, ReferenceLesionsAndAblation) {
  const std::string out = segrel::testing::TestTempDir();
  const RunResult run =
      RunAnalyze("--model " + FixturePath("bundle") + " --study " + FixturePath("study") + " --reference " +
                 FixturePath("study/region_fg.nii.gz") + " --lesions --ablation --out " + out);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json report = json::parse(ReadFile(out + "/relevance.json"));
  const json expected = segrel::testing::ReadJson("study/expected_relevance.json")["composites"]["epsilon-plus"];
  const json& regions = report["reference"]["regions"];
  ASSERT_EQ(regions.size(), 3u);
  EXPECT_EQ(regions[0]["kind"], "true_positive");
  EXPECT_EQ(regions[0]["voxels"], 15);
  ExpectPerSequenceNear(regions[0]["sequence_relevance"], expected["classes"][1]["sequence_relevance"], 1.0,
                        "true positives");
  EXPECT_EQ(regions[1]["kind"], "false_positive");
  EXPECT_EQ(regions[1]["voxels"], 148 - 15);
  EXPECT_EQ(regions[2]["kind"], "false_negative");
  EXPECT_NEAR(report["reference"]["dice"].get<double>(), 2.0 * 15 / (148 + 15), 1e-9);
  // Lesions: the predicted lesion voxels, split into connected components.
  int64_t lesion_voxels = 0;
  for (const json& lesion : report["lesions"]) lesion_voxels += lesion["voxels"].get<int64_t>();
  EXPECT_EQ(lesion_voxels, 148);
  // Ablation: one entry per sequence, Dice in [0, 1].
  ASSERT_EQ(report["ablation"]["sequences"].size(), 3u);
  for (const json& entry : report["ablation"]["sequences"]) {
    EXPECT_GE(entry["dice_with_prediction"].get<double>(), 0.0);
    EXPECT_LE(entry["dice_with_prediction"].get<double>(), 1.0);
  }
  EXPECT_NE(run.out.find("ranking by ablation"), std::string::npos);
}

TEST(AnalyzeErrors, BundleSequencesMissingOrUnexpected) {
  const std::string s = FixturePath("study/");
  ExpectFailure("--model " + FixturePath("bundle") + " --input T1=" + s + "T1.nii.gz --input DWI=" + s +
                    "T2.nii.gz --out /tmp/segrel_unused",
                "missing sequence T2, FLAIR; unexpected sequence DWI; the bundle unet-bn-test expects T1, T2, FLAIR");
  ExpectFailure("--model " + FixturePath("bundle") + " --study " + FixturePath("nifti") + " --out /tmp/segrel_unused",
                "has no T1, T2, FLAIR");
}

}  // namespace
}  // namespace segrel
