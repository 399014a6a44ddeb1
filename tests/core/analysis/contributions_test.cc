// Per-voxel sequence contributions against the relevance maps they stand for, and connected components.
#include "core/analysis/contributions.h"

#include <gtest/gtest.h>

#include <memory>

#include "core/analysis/components.h"
#include "core/analysis/region_relevance.h"
#include "core/graph/torchscript_importer.h"
#include "core/lrp/composite.h"
#include "core/lrp/explainer.h"
#include "tests/test_util.h"

namespace segrel::analysis {
namespace {

using segrel::testing::RelativeError;

// For any region, the contributions' per-sequence sums equal the channel sums of Eq. 2's map for that region,
// and their sum over sequences is c (float64: agreement to 1e-10).
TEST(SequenceContributions, EqualTheChannelSumsOfEveryRegionsMap) {
  const auto fixture = segrel::testing::LoadModelFixture("unet_variant");
  absl::StatusOr<graph::TorchScriptModel> model = graph::TorchScriptModel::Load(fixture.model_path);
  ASSERT_TRUE(model.ok());
  absl::StatusOr<graph::LayerGraph> graph = model->ImportGraph(fixture.input.sizes().vec());
  ASSERT_TRUE(graph.ok() && graph->ConvertTo(at::TensorOptions().dtype(at::kDouble)).ok());
  const lrp::Explainer explainer(std::make_shared<graph::LayerGraph>(*std::move(graph)),
                                 *lrp::Composite::Create("epsilon-plus"));
  absl::StatusOr<lrp::ExplainedForward> forward = explainer.Forward(fixture.input.to(at::kDouble));
  ASSERT_TRUE(forward.ok());

  absl::StatusOr<SequenceContributions> contributions = ComputeSequenceContributions(*forward);
  ASSERT_TRUE(contributions.ok()) << contributions.status();
  EXPECT_EQ(contributions->per_sequence.sizes(), at::IntArrayRef({3, 2, 8, 8, 8}));
  EXPECT_LT(RelativeError(contributions->normalisers, *RelevanceNormalisers(*forward)), 1e-10);

  at::manual_seed(2);
  const std::vector<ClassRegion> regions = {{0, 0, at::rand({8, 8, 8}) < 0.3}, {1, 1, at::rand({8, 8, 8}) < 0.1}};
  absl::StatusOr<RegionRelevance> maps = TwoPassRegionRelevance(*forward, contributions->normalisers, regions);
  ASSERT_TRUE(maps.ok());
  for (size_t k = 0; k < regions.size(); ++k) {
    int64_t used = 0;
    const std::vector<double> raw =
        RegionSequenceRelevance(*contributions, regions[k].channel, regions[k].mask, 1e-6, &used);
    EXPECT_EQ(used, maps->region_voxels[k]);
    for (int64_t s = 0; s < 3; ++s) {
      const double expected = maps->per_region[k][0][s].sum().item<double>();
      EXPECT_NEAR(raw[s], expected, 1e-10 * std::max(1.0, std::abs(expected))) << "class " << k << " sequence " << s;
    }
  }
}

TEST(ConnectedComponents, JoinsFaceEdgeAndCornerNeighbours) {
  at::Tensor mask = at::zeros({5, 5, 5}, at::kByte);
  mask[0][0][0] = 1;
  mask[1][1][1] = 1;  // corner neighbour of (0,0,0): same component
  mask[3][3][3] = 1;
  mask[3][3][4] = 1;  // face neighbours: another component
  mask[0][4][4] = 1;  // alone
  const Components components = ConnectedComponents(mask);
  EXPECT_EQ(components.count, 3);
  EXPECT_EQ(components.labels[0][0][0].item<int>(), components.labels[1][1][1].item<int>());
  EXPECT_EQ(components.labels[3][3][3].item<int>(), components.labels[3][3][4].item<int>());
  EXPECT_NE(components.labels[0][0][0].item<int>(), components.labels[3][3][3].item<int>());
  EXPECT_EQ(components.labels[2][2][2].item<int>(), 0);
  EXPECT_EQ((components.labels > 0).sum().item<int64_t>(), 5);
}

}  // namespace
}  // namespace segrel::analysis
