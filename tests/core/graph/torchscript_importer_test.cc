// The importer: the layer graph's forward pass reproduces the TorchScript module, and what segrel cannot explain
// is refused with the operator's name and source location.
#include "core/graph/torchscript_importer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/test_util.h"

namespace segrel::graph {
namespace {

using segrel::testing::FixturePath;
using segrel::testing::LoadModelFixture;
using segrel::testing::RelativeError;

struct ForwardCase {
  std::string model;
  std::string data;  // fixture data name when it differs from the model's
};

void PrintTo(const ForwardCase& c, std::ostream* os) { *os << c.model << (c.data.empty() ? "" : "/" + c.data); }

class ImporterForwardTest : public ::testing::TestWithParam<ForwardCase> {};

// Tolerance 1e-5 relative to the output's largest magnitude: both sides run the same float32 kernels, except that
// segrel computes transposed convolutions as convolution gradients, which sums in another order.
TEST_P(ImporterForwardTest, ForwardEqualsTorchScriptModule) {
  const auto fixture = LoadModelFixture(GetParam().model, GetParam().data);
  absl::StatusOr<TorchScriptModel> model = TorchScriptModel::Load(fixture.model_path);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<LayerGraph> graph = model->ImportGraph(fixture.input.sizes().vec());
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(std::string(OutputActivationName(graph->output_activation())), fixture.output_activation);

  absl::StatusOr<at::Tensor> logits = graph->Forward(fixture.input);
  ASSERT_TRUE(logits.ok()) << logits.status();
  const at::Tensor output = segrel::testing::ApplyOutputActivation(*logits, graph->output_activation());
  ASSERT_EQ(output.sizes(), fixture.output.sizes());
  EXPECT_LT(RelativeError(output, fixture.output), 1e-5) << graph->DebugString();

  // The frozen module run from C++ agrees with the unfrozen one the Python generator ran (freezing folds batch
  // norm into the convolutions, which rounds differently: same 1e-5).
  absl::StatusOr<at::Tensor> reference = model->Run(fixture.input);
  ASSERT_TRUE(reference.ok()) << reference.status();
  EXPECT_LT(RelativeError(*reference, fixture.output), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ImporterForwardTest,
                         ::testing::Values(ForwardCase{"unet_bn", ""}, ForwardCase{"unet_variant", ""},
                                           ForwardCase{"unet_bias_free", ""}, ForwardCase{"unet_padded", ""},
                                           ForwardCase{"unet_padded", "unet_padded.11"}, ForwardCase{"ops_zoo", ""},
                                           ForwardCase{"ops_2d", ""}, ForwardCase{"ops_1d", ""},
                                           ForwardCase{"classifier", ""}, ForwardCase{"linear_ops", ""},
                                           ForwardCase{"layer_norm", ""}, ForwardCase{"unet_list", ""}),
                         [](const ::testing::TestParamInfo<ForwardCase>& info) {
                           std::string name = info.param.data.empty() ? info.param.model : info.param.data;
                           for (char& c : name) {
                             if (c == '.') c = '_';
                           }
                           return name;
                         });

TEST(TorchScriptImporter, UnsupportedOperationIsNamedWithItsSourceLine) {
  absl::StatusOr<TorchScriptModel> model = TorchScriptModel::Load(FixturePath("unsupported_op.pt"));
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<LayerGraph> graph = model->ImportGraph({1, 2, 8, 8, 8});
  ASSERT_FALSE(graph.ok());
  EXPECT_EQ(graph.status().code(), absl::StatusCode::kUnimplemented);
  const std::string message(graph.status().message());
  EXPECT_NE(message.find("aten::cumsum"), std::string::npos) << message;
  EXPECT_NE(message.find("cumsum(x"), std::string::npos) << "no source text in: " << message;
  EXPECT_NE(message.find(".py:"), std::string::npos) << "no source location in: " << message;
}

TEST(TorchScriptImporter, MissingFileIsNotFound) {
  absl::StatusOr<TorchScriptModel> model = TorchScriptModel::Load(FixturePath("no_such_model.pt"));
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(model.status().message()).find("no_such_model.pt"), std::string::npos);
}

TEST(TorchScriptImporter, FileThatIsNotTorchScriptIsInvalidArgument) {
  const std::string path = segrel::testing::TestTempDir() + "/not_a_model.pt";
  std::ofstream(path) << "this is not a zip archive";
  absl::StatusOr<TorchScriptModel> model = TorchScriptModel::Load(path);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(model.status().message()).find("not_a_model.pt"), std::string::npos);
}

TEST(TorchScriptImporter, ForwardRejectsInputOfAnotherShape) {
  absl::StatusOr<TorchScriptModel> model = TorchScriptModel::Load(FixturePath("unet_bn.pt"));
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<LayerGraph> graph = model->ImportGraph({1, 3, 8, 8, 8});
  ASSERT_TRUE(graph.ok()) << graph.status();
  absl::StatusOr<at::Tensor> output = graph->Forward(at::zeros({1, 3, 8, 8, 4}));
  ASSERT_FALSE(output.ok());
  EXPECT_EQ(output.status().code(), absl::StatusCode::kInvalidArgument);
}

// unet_bn pools twice: at 9^3 the decoder's upsampled 8^3 does not meet its 9^3 skip connection. The error says
// so in LibTorch's words and what to do in segrel's.
TEST(TorchScriptImporter, AnInputSizeTheNetworkCannotTakeSaysWhatToDo) {
  absl::StatusOr<TorchScriptModel> model = TorchScriptModel::Load(FixturePath("unet_bn.pt"));
  ASSERT_TRUE(model.ok()) << model.status();
  const absl::StatusOr<LayerGraph> graph = model->ImportGraph({1, 3, 9, 9, 9});
  EXPECT_THAT(graph, segrel::testing::StatusIs(
                         absl::StatusCode::kInvalidArgument,
                         ::testing::AllOf(::testing::HasSubstr("aten::cat"), ::testing::HasSubstr("Sizes of tensors"),
                                          ::testing::HasSubstr("for inputs of [1, 3, 9, 9, 9]"),
                                          ::testing::HasSubstr("patch_size or --patch"))));
}

// The same U-Net traced and scripted: scripted, its skip connections are a list the graph appends to, reverses,
// measures and indexes. Both give the same layers and the saved module's output.
TEST(TorchScriptImporter, AScriptedListOfSkipConnectionsImportsAsTheTracedNetwork) {
  const auto fixture = LoadModelFixture("unet_list");
  absl::StatusOr<TorchScriptModel> traced = TorchScriptModel::Load(fixture.model_path);
  absl::StatusOr<TorchScriptModel> scripted = TorchScriptModel::Load(FixturePath("unet_list.scripted.pt"));
  ASSERT_TRUE(traced.ok() && scripted.ok()) << traced.status() << scripted.status();
  absl::StatusOr<LayerGraph> traced_graph = traced->ImportGraph(fixture.input.sizes().vec());
  absl::StatusOr<LayerGraph> scripted_graph = scripted->ImportGraph(fixture.input.sizes().vec());
  ASSERT_TRUE(traced_graph.ok()) << traced_graph.status();
  ASSERT_TRUE(scripted_graph.ok()) << scripted_graph.status();
  EXPECT_EQ(segrel::testing::LayerSignature(*scripted_graph), segrel::testing::LayerSignature(*traced_graph))
      << scripted_graph->DebugString() << traced_graph->DebugString();
  absl::StatusOr<at::Tensor> output = scripted_graph->Forward(fixture.input);
  ASSERT_TRUE(output.ok()) << output.status();
  EXPECT_LT(RelativeError(*output, fixture.output), 1e-5);
}

TEST(TorchScriptImporter, BatchNormIsFoldedIntoConvolutions) {
  absl::StatusOr<TorchScriptModel> model = TorchScriptModel::Load(FixturePath("unet_bn.pt"));
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<LayerGraph> graph = model->ImportGraph({1, 3, 8, 8, 8});
  ASSERT_TRUE(graph.ok()) << graph.status();
  for (const GraphNode& node : graph->nodes()) EXPECT_NE(node.layer->Role(), LayerRole::kNormalisation);
}

}  // namespace
}  // namespace segrel::graph
