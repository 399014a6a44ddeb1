// Model replicas: a network is imported once per input shape, and analyses that reuse a replica give exactly the
// results of analyses that load the model themselves.
#include "core/model/model_replica.h"

#include <gtest/gtest.h>

#include "core/pipeline/pipeline.h"
#include "tests/test_util.h"

namespace segrel::model {
namespace {

using segrel::testing::FixturePath;

TEST(ModelReplica, ImportsEachShapeOnce) {
  absl::StatusOr<std::unique_ptr<ModelReplica>> replica = ModelReplica::Load(FixturePath("unet_bn.pt"));
  ASSERT_TRUE(replica.ok()) << replica.status();
  const auto first = (*replica)->Graph({1, 3, 8, 8, 8}, at::kCPU);
  const auto again = (*replica)->Graph({1, 3, 8, 8, 8}, at::kCPU);
  const auto other = (*replica)->Graph({1, 3, 16, 8, 8}, at::kCPU);
  ASSERT_TRUE(first.ok() && again.ok() && other.ok()) << first.status() << again.status() << other.status();
  EXPECT_EQ(first->get(), again->get());
  EXPECT_NE(first->get(), other->get());
  EXPECT_EQ((*replica)->imports(), 2);
}

TEST(ModelReplicas, FailedLoadsAreErrorsAndNotKept) {
  ModelReplicas replicas;
  EXPECT_EQ(replicas.Get("/nonexistent/model.pt").status().code(), absl::StatusCode::kNotFound);
  const absl::StatusOr<ModelReplica*> a = replicas.Get(FixturePath("unet_bn.pt"));
  const absl::StatusOr<ModelReplica*> b = replicas.Get(FixturePath("unet_bn.pt"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
}

TEST(ModelReplicas, AnalysesReusingAReplicaEqualAnalysesThatLoadTheModel) {
  pipeline::AnalysisRequest request;
  request.model = FixturePath("bundle");
  request.study_dir = FixturePath("study");
  const absl::StatusOr<pipeline::AnalysisResult> loaded = pipeline::RunAnalysis(request);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ModelReplicas replicas;
  request.replicas = &replicas;
  for (int run = 0; run < 2; ++run) {  // the second run uses the graph the first imported
    const absl::StatusOr<pipeline::AnalysisResult> reused = pipeline::RunAnalysis(request);
    ASSERT_TRUE(reused.ok()) << reused.status();
    EXPECT_TRUE(at::equal(reused->explanation.segmentation, loaded->explanation.segmentation));
    EXPECT_TRUE(at::equal(reused->explanation.relevance_map, loaded->explanation.relevance_map));
    EXPECT_EQ(reused->explanation.raw, loaded->explanation.raw);
  }
  const absl::StatusOr<ModelReplica*> replica = replicas.Get(FixturePath("unet_bn.pt"));
  ASSERT_TRUE(replica.ok());
  EXPECT_EQ((*replica)->imports(), 1);
}

}  // namespace
}  // namespace segrel::model
