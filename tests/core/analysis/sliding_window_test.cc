// Sliding windows: window placement, Gaussian blending, and the explanation of the blended network (adjoint
// identity, two-pass Eq. 2 = naive Eq. 2, one window = the whole volume).
#include "core/analysis/sliding_window.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "core/analysis/region_relevance.h"
#include "core/analysis/regions.h"
#include "core/graph/torchscript_importer.h"
#include "core/lrp/composite.h"
#include "tests/test_util.h"

namespace segrel::analysis {
namespace {

using segrel::testing::RelativeError;

TEST(WindowStarts, StepHalfAPatchLastFlushWithTheEnd) {
  EXPECT_EQ(WindowStarts(182, 128, 0.5), (std::vector<int64_t>{0, 54}));
  EXPECT_EQ(WindowStarts(218, 128, 0.5), (std::vector<int64_t>{0, 64, 90}));
  EXPECT_EQ(WindowStarts(128, 128, 0.5), (std::vector<int64_t>{0}));
  EXPECT_EQ(WindowStarts(100, 128, 0.5), (std::vector<int64_t>{0}));
  EXPECT_EQ(WindowStarts(10, 4, 0.5), (std::vector<int64_t>{0, 2, 4, 6}));
  EXPECT_EQ(WindowStarts(10, 4, 0.0), (std::vector<int64_t>{0, 4, 6}));
}

TEST(GaussianImportance, PeaksAtTheCentreWithSigmaAnEighthOfThePatch) {
  const at::Tensor map = GaussianImportance({8, 8, 16}, 0.125);
  EXPECT_FLOAT_EQ(map.max().item<float>(), 1.0f);
  EXPECT_TRUE(at::allclose(map, map.flip({0, 1, 2})));
  // Corner: d = 3.5 (sigma 1), 3.5 (sigma 1), 7.5 (sigma 2), relative to the maximum at d = 0.5, 0.5, 0.5.
  const double expected = std::exp(-(3.5 * 3.5 - 0.25) / 2 - (3.5 * 3.5 - 0.25) / 2 - (7.5 * 7.5 - 0.25) / 8);
  EXPECT_NEAR(map[0][0][0].item<double>(), expected, 1e-6);
}

TEST(WindowGrid, CoversTheVolumeAndPadsSmallDimensions) {
  WindowOptions options;
  options.patch = {8, 8, 8};
  absl::StatusOr<WindowGrid> grid = WindowGrid::Create({12, 6, 8}, options);
  ASSERT_TRUE(grid.ok()) << grid.status();
  EXPECT_EQ(grid->padded_sizes(), (std::vector<int64_t>{12, 8, 8}));
  EXPECT_EQ(grid->windows().size(), 2u);  // starts 0, 4 along i; 0 along j and k
  EXPECT_GT(grid->total_weight().min().item<float>(), 0.0f);
  const at::Tensor volume = at::randn({1, 2, 12, 6, 8});
  EXPECT_TRUE(at::equal(grid->Crop(grid->Pad(volume)), volume));
  options.overlap = 1.0;
  EXPECT_EQ(WindowGrid::Create({12, 6, 8}, options).status().code(), absl::StatusCode::kInvalidArgument);
}

// unet_bn (3 inputs, 2 classes) imported for 8^3 patches, in float64 for tight comparisons.
std::shared_ptr<const lrp::Explainer> PatchExplainer(const std::string& composite, at::ScalarType dtype) {
  absl::StatusOr<graph::TorchScriptModel> model =
      graph::TorchScriptModel::Load(segrel::testing::FixturePath("unet_bn.pt"));
  EXPECT_TRUE(model.ok()) << model.status();
  absl::StatusOr<graph::LayerGraph> graph = model->ImportGraph({1, 3, 8, 8, 8});
  EXPECT_TRUE(graph.ok()) << graph.status();
  EXPECT_TRUE(graph->ConvertTo(at::TensorOptions().dtype(dtype)).ok());
  return std::make_shared<const lrp::Explainer>(std::make_shared<graph::LayerGraph>(*std::move(graph)),
                                                *lrp::Composite::Create(composite));
}

WindowOptions EightCubed() {
  WindowOptions options;
  options.patch = {8, 8, 8};
  return options;
}

// On a volume of one patch, the windowed network is the network: the same logits, and the same Lambda and
// Lambda^T but for the blending layer's norm rule on top, which scales by y / s(y) (1 up to the stabiliser).
TEST(WindowedExplanation, OneWindowEqualsTheWholeVolume) {
  const auto explainer = PatchExplainer("epsilon-plus", at::kDouble);
  at::manual_seed(3);
  const at::Tensor input = at::randn({1, 3, 8, 8, 8}, at::kDouble);
  absl::StatusOr<std::unique_ptr<WindowedExplanation>> windowed =
      WindowedExplanation::Create(explainer, input, EightCubed());
  ASSERT_TRUE(windowed.ok()) << windowed.status();
  absl::StatusOr<lrp::ExplainedForward> whole = explainer->Forward(input);
  ASSERT_TRUE(whole.ok());
  EXPECT_LT(RelativeError((*windowed)->output(), whole->output()), 1e-12);
  const at::Tensor y = whole->output();
  const at::Tensor blending = y / (y + 1e-6 * (y.sign() + (y == 0).to(at::kDouble)));
  const at::Tensor r = at::randn_like(y);
  EXPECT_LT(RelativeError(*(*windowed)->Relevance(r), *whole->Relevance(r * blending)), 1e-12);
  const at::Tensor u = at::randn_like(input);
  EXPECT_LT(RelativeError(*(*windowed)->Transpose(u), *whole->Transpose(u) * blending), 1e-12);
}

class WindowedCompositeTest : public ::testing::TestWithParam<std::string> {};

// <u, Lambda r> = <Lambda^T u, r> over 12x12x6 (windows overlap along i and j; k is padded to the patch).
TEST_P(WindowedCompositeTest, AdjointIdentity) {
  const auto explainer = PatchExplainer(GetParam(), at::kDouble);
  at::manual_seed(5);
  const at::Tensor input = at::randn({1, 3, 12, 12, 6}, at::kDouble);
  absl::StatusOr<std::unique_ptr<WindowedExplanation>> windowed =
      WindowedExplanation::Create(explainer, input, EightCubed());
  ASSERT_TRUE(windowed.ok()) << windowed.status();
  const at::Tensor r = at::randn_like((*windowed)->output());
  const at::Tensor u = at::randn_like(input);
  absl::StatusOr<at::Tensor> relevance = (*windowed)->Relevance(r);
  absl::StatusOr<at::Tensor> transposed = (*windowed)->Transpose(u);
  ASSERT_TRUE(relevance.ok() && transposed.ok());
  const double left = (u * *relevance).sum().item<double>();
  const double right = (*transposed * r).sum().item<double>();
  EXPECT_NEAR(left, right, 1e-10 * (u.abs() * relevance->abs()).sum().item<double>());
}

// Eq. 2 through the windows by two passes equals Eq. 2 by one relevance pass per voxel (relative 1e-5).
TEST_P(WindowedCompositeTest, TwoPassRegionRelevanceEqualsNaive) {
  const auto explainer = PatchExplainer(GetParam(), at::kDouble);
  at::manual_seed(7);
  const at::Tensor input = at::randn({1, 3, 12, 12, 8}, at::kDouble);
  absl::StatusOr<std::unique_ptr<WindowedExplanation>> windowed =
      WindowedExplanation::Create(explainer, input, EightCubed());
  ASSERT_TRUE(windowed.ok()) << windowed.status();
  const WindowedExplanation& explanation = **windowed;
  absl::StatusOr<at::Tensor> normalisers = RelevanceNormalisers(explanation);
  ASSERT_TRUE(normalisers.ok());
  BalancedRegionsOptions balanced;
  balanced.seed = 11;
  const at::Tensor segmentation = Segment(explanation.output());
  std::vector<ClassRegion> regions;
  for (RegionChoice& choice :
       ChooseBalancedRegions(segmentation, *normalisers, LayoutOf(explanation.output()), balanced).choices) {
    // Keep a few voxels per class: the naive method costs a relevance pass through every window per voxel.
    const at::Tensor keep = choice.region.mask.flatten().nonzero().flatten().slice(0, 0, 6);
    at::Tensor mask = at::zeros({choice.region.mask.numel()}, at::kBool);
    mask.index_put_({keep}, true);
    choice.region.mask = mask.view(segmentation.sizes());
    regions.push_back(choice.region);
  }
  absl::StatusOr<RegionRelevance> fast = TwoPassRegionRelevance(explanation, *normalisers, regions);
  absl::StatusOr<RegionRelevance> naive = NaiveRegionRelevance(explanation, regions);
  ASSERT_TRUE(fast.ok() && naive.ok());
  EXPECT_EQ(fast->region_voxels, naive->region_voxels);
  EXPECT_GT(fast->region_voxels[0] + fast->region_voxels[1], 6);
  EXPECT_LT(RelativeError(fast->combined, naive->combined), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Composites, WindowedCompositeTest, ::testing::ValuesIn(lrp::Composite::Names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

// Keeping explained windows between calls changes the cost, not the result.
TEST(WindowedExplanation, CachedWindowsGiveTheSameResult) {
  const auto explainer = PatchExplainer("epsilon-gamma-box", at::kDouble);
  at::manual_seed(13);
  const at::Tensor input = at::randn({1, 3, 12, 12, 8}, at::kDouble);
  WindowOptions cached = EightCubed();
  cached.cache_bytes = int64_t{1} << 30;
  absl::StatusOr<std::unique_ptr<WindowedExplanation>> with = WindowedExplanation::Create(explainer, input, cached);
  absl::StatusOr<std::unique_ptr<WindowedExplanation>> without =
      WindowedExplanation::Create(explainer, input, EightCubed());
  ASSERT_TRUE(with.ok() && without.ok());
  const at::Tensor u = at::randn_like(input);
  const at::Tensor r = at::randn_like((*with)->output());
  for (int call = 0; call < 2; ++call) {  // the second call reads the windows kept by the first
    EXPECT_TRUE(at::equal(*(*with)->Transpose(u), *(*without)->Transpose(u)));
    EXPECT_TRUE(at::equal(*(*with)->Relevance(r), *(*without)->Relevance(r)));
  }
}

// The windowed prediction is the Gaussian-weighted average of the windows' logits, computed here directly.
TEST(PredictWindowed, IsTheWeightedAverageOfTheWindows) {
  const auto explainer = PatchExplainer("epsilon", at::kDouble);
  at::manual_seed(9);
  const at::Tensor input = at::randn({1, 3, 12, 8, 8}, at::kDouble);
  WindowOptions options = EightCubed();
  options.batch = 2;
  absl::StatusOr<at::Tensor> blended = PredictWindowed(explainer->graph(), input, options);
  ASSERT_TRUE(blended.ok()) << blended.status();
  const at::Tensor weight = GaussianImportance({8, 8, 8}, 0.125).to(at::kDouble);
  at::Tensor sum = at::zeros({1, 2, 12, 8, 8}, at::kDouble), total = at::zeros({12, 8, 8}, at::kDouble);
  for (int64_t start : {0, 4}) {
    const at::Tensor logits = *explainer->graph().Forward(input.narrow(2, start, 8).contiguous());
    sum.narrow(2, start, 8).add_(logits * weight);
    total.narrow(0, start, 8).add_(weight);
  }
  EXPECT_LT(RelativeError(*blended, sum / total), 1e-12);
}

}  // namespace
}  // namespace segrel::analysis
