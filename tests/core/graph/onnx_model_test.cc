// The ONNX importer: each fixture network exported to ONNX (tests/fixtures/make_onnx_fixtures.py) gives the same
// layer graph as its TorchScript file (forward to 1e-5 of the saved module's output, the same layers, relevance and
// shares to 1e-6 for every composite), and bad files get clear errors.
#include "core/graph/onnx/onnx_model.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/graph/network_model.h"
#include "core/graph/torchscript_importer.h"
#include "core/lrp/composite.h"
#include "core/lrp/explainer.h"
#include "tests/test_util.h"

namespace segrel::graph {
namespace {

using segrel::testing::FixturePath;
using segrel::testing::LoadModelFixture;
using segrel::testing::RelativeError;
using segrel::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string OnnxPath(const std::string& name) { return FixturePath("onnx/" + name + ".onnx"); }

LayerGraph Import(const NetworkModel& model, const std::vector<int64_t>& sizes) {
  absl::StatusOr<LayerGraph> graph = model.ImportGraph(sizes);
  EXPECT_TRUE(graph.ok()) << graph.status();
  return graph.ok() ? *std::move(graph) : LayerGraph(sizes);
}

struct ForwardCase {
  std::string onnx;         // file under fixtures/data/onnx/
  std::string torchscript;  // the TorchScript fixture it was exported from
  std::string data = "";    // the input and output it must reproduce, when not the fixture's own
};

void PrintTo(const ForwardCase& c, std::ostream* os) { *os << c.onnx << " on " << c.torchscript << c.data; }

class OnnxForwardTest : public ::testing::TestWithParam<ForwardCase> {};

// The saved TorchScript module's output, 1e-5 relative to its largest magnitude (as the TorchScript importer's
// test), and the layer graph of the TorchScript file, layer for layer.
TEST_P(OnnxForwardTest, ForwardEqualsTheTorchScriptModuleAndTheLayersAreTheSame) {
  const auto fixture = LoadModelFixture(GetParam().torchscript, GetParam().data);
  absl::StatusOr<std::unique_ptr<NetworkModel>> onnx = LoadNetworkModel(OnnxPath(GetParam().onnx));
  ASSERT_TRUE(onnx.ok()) << onnx.status();
  EXPECT_EQ((*onnx)->format(), "onnx");
  const LayerGraph graph = Import(**onnx, fixture.input.sizes().vec());
  EXPECT_EQ(std::string(OutputActivationName(graph.output_activation())), fixture.output_activation);
  absl::StatusOr<at::Tensor> logits = graph.Forward(fixture.input);
  ASSERT_TRUE(logits.ok()) << logits.status();
  const at::Tensor output = segrel::testing::ApplyOutputActivation(*logits, graph.output_activation());
  ASSERT_EQ(output.sizes(), fixture.output.sizes());
  EXPECT_LT(RelativeError(output, fixture.output), 1e-5) << graph.DebugString();

  absl::StatusOr<std::unique_ptr<NetworkModel>> torchscript = LoadNetworkModel(fixture.model_path);
  ASSERT_TRUE(torchscript.ok()) << torchscript.status();
  EXPECT_EQ((*torchscript)->format(), "torchscript");
  const LayerGraph reference = Import(**torchscript, fixture.input.sizes().vec());
  EXPECT_EQ(segrel::testing::LayerSignature(graph), segrel::testing::LayerSignature(reference))
      << "ONNX:\n"
      << graph.DebugString() << "TorchScript:\n"
      << reference.DebugString();
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, OnnxForwardTest,
    ::testing::Values(ForwardCase{"unet_bn", "unet_bn"}, ForwardCase{"unet_variant", "unet_variant"},
                      ForwardCase{"unet_bias_free", "unet_bias_free"}, ForwardCase{"unet_padded", "unet_padded"},
                      ForwardCase{"unet_padded.dynamic", "unet_padded"},
                      ForwardCase{"unet_padded.dynamic", "unet_padded", "unet_padded.11"},
                      ForwardCase{"ops_zoo", "ops_zoo"}, ForwardCase{"ops_2d", "ops_2d"},
                      ForwardCase{"ops_1d", "ops_1d"}, ForwardCase{"classifier", "classifier"},
                      ForwardCase{"linear_ops", "linear_ops"}, ForwardCase{"unet_bn.external", "unet_bn"},
                      ForwardCase{"unet_bn.folded", "unet_bn"}, ForwardCase{"layer_norm", "layer_norm"}),
    [](const ::testing::TestParamInfo<ForwardCase>& info) {
      std::string name =
          info.param.onnx + "_on_" + (info.param.data.empty() ? info.param.torchscript : info.param.data);
      for (char& c : name) {
        if (c == '.') c = '_';
      }
      return name;
    });

struct ExplanationCase {
  std::string network;
  std::string composite;
};

void PrintTo(const ExplanationCase& c, std::ostream* os) { *os << c.network << " / " << c.composite; }

class OnnxExplanationTest : public ::testing::TestWithParam<ExplanationCase> {};

// Relevance of one random output relevance through both files' layer graphs, in float64: 1e-6 of the largest
// relevance, and each input channel's share of the total to 1e-6.
TEST_P(OnnxExplanationTest, RelevanceAndSharesEqualTheTorchScriptFiles) {
  const auto fixture = LoadModelFixture(GetParam().network);
  absl::StatusOr<lrp::Composite> composite = lrp::Composite::Create(GetParam().composite);
  ASSERT_TRUE(composite.ok()) << composite.status();
  std::vector<at::Tensor> relevance;
  for (const std::string& path : {OnnxPath(GetParam().network), fixture.model_path}) {
    absl::StatusOr<std::unique_ptr<NetworkModel>> model = LoadNetworkModel(path);
    ASSERT_TRUE(model.ok()) << model.status();
    auto graph = std::make_shared<LayerGraph>(Import(**model, fixture.input.sizes().vec()));
    ASSERT_TRUE(graph->ConvertTo(at::TensorOptions().dtype(at::kDouble)).ok());
    const lrp::Explainer explainer(graph, *composite);
    absl::StatusOr<lrp::ExplainedForward> forward = explainer.Forward(fixture.input.to(at::kDouble));
    ASSERT_TRUE(forward.ok()) << forward.status();
    at::manual_seed(5);
    absl::StatusOr<at::Tensor> r = forward->Relevance(at::rand_like(forward->output()));
    ASSERT_TRUE(r.ok()) << r.status();
    relevance.push_back(*r);
  }
  EXPECT_LT(RelativeError(relevance[0], relevance[1]), 1e-6);
  auto shares = [](const at::Tensor& r) {
    const at::Tensor per_channel = r.sum({0, 2, 3, 4});
    return per_channel / per_channel.sum();
  };
  EXPECT_LT((shares(relevance[0]) - shares(relevance[1])).abs().max().item<double>(), 1e-6);
}

std::vector<ExplanationCase> ExplanationCases() {
  std::vector<ExplanationCase> cases;
  for (const char* network : {"unet_bn", "unet_variant", "unet_padded", "ops_zoo", "layer_norm"}) {
    for (const std::string& composite : lrp::Composite::Names()) cases.push_back({network, composite});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Composites, OnnxExplanationTest, ::testing::ValuesIn(ExplanationCases()),
                         [](const ::testing::TestParamInfo<ExplanationCase>& info) {
                           std::string name = info.param.network + "_" + info.param.composite;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

// README command 1's network: one 128^3 window of the bundled ms-flair4 model, ONNX against TorchScript, with the
// bundle's composite, in float32 as the pipeline runs it.
TEST(OnnxModel, TheBundledModelExportedToOnnxExplainsAWindowAsTheTorchScriptFileDoes) {
  const std::vector<int64_t> sizes = {1, 4, 128, 128, 128};
  absl::StatusOr<lrp::Composite> composite = lrp::Composite::Create("epsilon-plus");
  ASSERT_TRUE(composite.ok());
  at::manual_seed(19);
  const at::Tensor input = at::randn(sizes);
  std::vector<at::Tensor> logits;
  std::vector<at::Tensor> relevance;
  for (const std::string& path :
       {OnnxPath("ms_flair4"), std::string(SEGREL_SOURCE_DIR) + "/models/ms-flair4/model.pt"}) {
    absl::StatusOr<std::unique_ptr<NetworkModel>> model = LoadNetworkModel(path);
    ASSERT_TRUE(model.ok()) << model.status();
    auto graph = std::make_shared<LayerGraph>(Import(**model, sizes));
    absl::StatusOr<lrp::ExplainedForward> forward = lrp::Explainer(graph, *composite).Forward(input);
    ASSERT_TRUE(forward.ok()) << forward.status();
    const at::Tensor lesion = forward->output().argmax(1, true).eq(1).to(at::kFloat);
    absl::StatusOr<at::Tensor> r = forward->Relevance(forward->output() * at::cat({1 - lesion, lesion}, 1));
    ASSERT_TRUE(r.ok()) << r.status();
    logits.push_back(forward->output());
    relevance.push_back(*r);
  }
  EXPECT_TRUE(at::equal(logits[0].argmax(1), logits[1].argmax(1)));
  EXPECT_LT(RelativeError(logits[0], logits[1]), 1e-5);
  EXPECT_LT(RelativeError(relevance[0], relevance[1]), 1e-5);
  const at::Tensor shares0 = relevance[0].sum({0, 2, 3, 4}) / relevance[0].sum();
  const at::Tensor shares1 = relevance[1].sum({0, 2, 3, 4}) / relevance[1].sum();
  EXPECT_LT((shares0 - shares1).abs().max().item<double>(), 1e-6);
}

class SeveralOutputsTest : public ::testing::TestWithParam<std::string> {};

// A network with two outputs (deep supervision), from either file: output 0 by default with a note naming the
// count, output 1 on request (each equal to the saved module's), and an output it does not have refused.
TEST_P(SeveralOutputsTest, OutputZeroByDefaultWithANoteAndAnyOutputOnRequest) {
  const auto fixture = LoadModelFixture("deep_supervision");
  const at::Tensor auxiliary = segrel::testing::ReadFloat32("deep_supervision.output1.f32", {1, 2, 4, 4, 4});
  absl::StatusOr<std::unique_ptr<NetworkModel>> model = LoadNetworkModel(GetParam());
  ASSERT_TRUE(model.ok()) << model.status();
  const LayerGraph first = Import(**model, fixture.input.sizes().vec());
  ASSERT_EQ(first.notes().size(), 1u);
  EXPECT_THAT(first.notes()[0], HasSubstr("the network has 2 outputs; segrel explains output 0 (choose another with "
                                          "--output N or the bundle's \"output\")"));
  absl::StatusOr<at::Tensor> main_output = first.Forward(fixture.input);
  ASSERT_TRUE(main_output.ok()) << main_output.status();
  EXPECT_LT(RelativeError(*main_output, fixture.output), 1e-5);

  ImportOptions options;
  options.output = 1;
  absl::StatusOr<LayerGraph> second = (*model)->ImportGraph(fixture.input.sizes().vec(), options);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->notes().empty());
  absl::StatusOr<at::Tensor> aux_output = second->Forward(fixture.input);
  ASSERT_TRUE(aux_output.ok()) << aux_output.status();
  EXPECT_LT(RelativeError(*aux_output, auxiliary), 1e-5);

  options.output = 2;
  EXPECT_THAT(
      (*model)->ImportGraph(fixture.input.sizes().vec(), options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("the network has 2 outputs; there is no output 2")));
}

INSTANTIATE_TEST_SUITE_P(Formats, SeveralOutputsTest,
                         ::testing::Values(FixturePath("deep_supervision.pt"), OnnxPath("deep_supervision")),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return std::string(IsOnnxPath(info.param) ? "onnx" : "torchscript");
                         });

TEST(OnnxModel, TheUnsupportedOperatorIsNamedWithItsNodeAndIndex) {
  absl::StatusOr<OnnxModel> model = OnnxModel::Load(OnnxPath("unsupported_op"));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_THAT(model->ImportGraph({1, 2, 8, 8, 8}),
              StatusIs(absl::StatusCode::kUnimplemented,
                       AllOf(HasSubstr("ONNX operator CumSum"), HasSubstr("node 3 (CumSum \"/CumSum\")"))));
}

TEST(OnnxModel, AnInputOfAnotherSizeThanExportedSaysWhatToDo) {
  absl::StatusOr<OnnxModel> model = OnnxModel::Load(OnnxPath("unet_bn"));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->declared_input_sizes(), (std::vector<int64_t>{1, 3, 8, 8, 8}));
  EXPECT_THAT(model->ImportGraph({1, 3, 16, 16, 16}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("exported for inputs of [1, 3, 8, 8, 8], not [1, 3, 16, 16, 16]"),
                             HasSubstr("patch size"))));
}

struct BadFileCase {
  std::string file;
  absl::StatusCode code;
  std::string message;
};

void PrintTo(const BadFileCase& c, std::ostream* os) { *os << c.file; }

class OnnxBadFileTest : public ::testing::TestWithParam<BadFileCase> {};

// Each bad file: the right code and a message that says what is wrong, at Load or at import, never a crash.
TEST_P(OnnxBadFileTest, IsRefusedWithAClearError) {
  const std::string path = FixturePath("onnx/" + GetParam().file);
  absl::StatusOr<OnnxModel> model = OnnxModel::Load(path);
  absl::Status status = model.status();
  if (model.ok()) {
    std::vector<int64_t> sizes = model->declared_input_sizes();
    for (int64_t& size : sizes) size = size < 0 ? 8 : size;
    status = model->ImportGraph(sizes).status();
  }
  EXPECT_THAT(status, StatusIs(GetParam().code, HasSubstr(GetParam().message)));
}

INSTANTIATE_TEST_SUITE_P(
    Files, OnnxBadFileTest,
    ::testing::Values(BadFileCase{"bad.text.onnx", absl::StatusCode::kInvalidArgument, "is not an ONNX model"},
                      BadFileCase{"bad.torchscript.onnx", absl::StatusCode::kInvalidArgument, "is not an ONNX model"},
                      BadFileCase{"bad.truncated.onnx", absl::StatusCode::kInvalidArgument, "is not an ONNX model"},
                      BadFileCase{"bad.opset10.onnx", absl::StatusCode::kInvalidArgument,
                                  "uses opset 10 of the ONNX operators; segrel reads opsets 11 to 17"},
                      BadFileCase{"bad.missing_external.onnx", absl::StatusCode::kNotFound,
                                  "external data file not found"},
                      BadFileCase{"bad.crop_and_resize.onnx", absl::StatusCode::kUnimplemented,
                                  "node 0 (Resize \"up\"): segrel cannot explain Resize with mode linear, "
                                  "coordinate_transformation_mode tf_crop_and_resize"},
                      BadFileCase{"bad.nonzero.onnx", absl::StatusCode::kUnimplemented, "ONNX operator NonZero"},
                      BadFileCase{"no_such_file.onnx", absl::StatusCode::kNotFound, "model file not found"}),
    [](const ::testing::TestParamInfo<BadFileCase>& info) {
      std::string name = info.param.file;
      for (char& c : name) {
        if (c == '.') c = '_';
      }
      return name;
    });

}  // namespace
}  // namespace segrel::graph
