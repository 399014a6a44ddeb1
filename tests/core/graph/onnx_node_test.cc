// segrel's forward pass against the official ONNX backend node tests (Debian's libonnx-testdata: each
// data/node/test_*/ has a one-operator model.onnx and input/output tensors). Every test whose operators segrel
// claims (onnx_ops.h: OnnxDataOperators, plus the operators it folds on constants) is imported with input 0 as the
// data, the other inputs fixed to their values and output 0 as the result, run, and compared with the expected
// output 0 (|a - b| <= 1e-5 +
// 1e-5 |b|). The tests segrel skips are listed below with their reasons; a new skip, or a listed test that runs,
// fails the test, so that the list stays exact.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/graph/onnx/onnx_model.h"
#include "core/graph/onnx/onnx_ops.h"
#include "core/graph/onnx/onnx_tensor.h"
#include "onnx/onnx_pb.h"
#include "tests/test_util.h"

namespace segrel::graph {
namespace {

namespace fs = std::filesystem;

// The node tests of claimed operators that segrel does not run, each with a phrase its refusal must contain. The
// reasons: the model's opset is below 11; input 0 is an integer, string or bfloat16 tensor (stored as UINT16), an
// optional or a sequence, or has one dimension (segrel's inputs are [N, C, ...]); a softmax over an axis other than
// the classes (segrel explains the logits of a class softmax); batch norm or dropout in training mode; a batched
// MatMul by a constant of more than two
// dimensions; Resize's tf_crop_and_resize (an extrapolation value outside the region of interest).
const std::map<std::string, std::string>& ExpectedSkips() {
  static const auto* const skips = new std::map<std::string, std::string>({
      {"test_add_uint8", "input 0 is not floating point"},
      {"test_batchnorm_epsilon_training_mode", "training mode"},
      {"test_batchnorm_example_training_mode", "training mode"},
      {"test_cast_BFLOAT16_to_FLOAT", "UINT16"},
      {"test_cast_FLOAT_to_BFLOAT16", "UINT16"},
      {"test_cast_FLOAT_to_STRING", "STRING"},
      {"test_cast_STRING_to_FLOAT", "STRING"},
      {"test_castlike_BFLOAT16_to_FLOAT_expanded", "UINT16"},
      {"test_castlike_FLOAT_to_BFLOAT16_expanded", "UINT16"},
      {"test_castlike_FLOAT_to_STRING_expanded", "STRING"},
      {"test_castlike_STRING_to_FLOAT_expanded", "STRING"},
      {"test_concat_1d_axis_0", "fewer than 2 dimensions"},
      {"test_concat_1d_axis_negative_1", "fewer than 2 dimensions"},
      {"test_convtranspose_with_kernel", "opset"},
      {"test_div_example", "fewer than 2 dimensions"},
      {"test_div_uint8", "input 0 is not floating point"},
      {"test_dropout_default_old", "fewer than 2 dimensions"},
      {"test_edge_pad", "input 0 is not floating point"},
      {"test_elu", "opset"},
      {"test_elu_default", "opset"},
      {"test_elu_example", "fewer than 2 dimensions"},
      {"test_globalaveragepool", "opset"},
      {"test_globalaveragepool_precomputed", "opset"},
      {"test_identity_opt", "optional or a sequence"},
      {"test_identity_sequence", "optional or a sequence"},
      {"test_instancenorm_epsilon", "opset"},
      {"test_instancenorm_example", "opset"},
      {"test_leakyrelu_example", "fewer than 2 dimensions"},
      {"test_logsoftmax_axis_0", "only the class axis 1"},
      {"test_logsoftmax_axis_2", "only the class axis 1"},
      {"test_logsoftmax_default_axis", "only the class axis 1"},
      {"test_logsoftmax_negative_axis", "only the class axis 1"},
      {"test_matmul_3d", "not a matrix"},
      {"test_matmul_4d", "not a matrix"},
      {"test_maxpool_2d_uint8", "input 0 is not floating point"},
      {"test_mul_example", "fewer than 2 dimensions"},
      {"test_mul_uint8", "input 0 is not floating point"},
      {"test_reflect_pad", "input 0 is not floating point"},
      {"test_resize_tf_crop_and_resize", "tf_crop_and_resize"},
      {"test_sigmoid_example", "fewer than 2 dimensions"},
      {"test_softmax_axis_0", "only the class axis 1"},
      {"test_softmax_axis_2", "only the class axis 1"},
      {"test_softmax_default_axis", "only the class axis 1"},
      {"test_softmax_negative_axis", "only the class axis 1"},
      {"test_sub_example", "fewer than 2 dimensions"},
      {"test_sub_uint8", "input 0 is not floating point"},
      {"test_tanh_example", "fewer than 2 dimensions"},
      {"test_training_dropout", "training mode"},
      {"test_training_dropout_default", "training mode"},
      {"test_training_dropout_default_mask", "training mode"},
      {"test_training_dropout_mask", "training mode"},
      {"test_training_dropout_zero_ratio", "training mode"},
      {"test_training_dropout_zero_ratio_mask", "training mode"},
  });
  return *skips;
}

std::string NodeTestDir() {
  const char* dir = std::getenv("SEGREL_ONNX_NODE_TESTS");
  return dir != nullptr ? dir : "/usr/share/libonnx-testdata/data/node";
}

bool ReadProto(const fs::path& path, google::protobuf::Message& message) {
  std::ifstream file(path, std::ios::binary);
  return file && message.ParseFromIstream(&file);
}

// Why segrel does not run a test, or "" when it runs it and the output matched; failures of the comparison are
// test failures (ADD_FAILURE), not skips.
std::string RunNodeTest(const fs::path& dir, const onnx::ModelProto& model) {
  std::vector<std::string> input_names;
  std::set<std::string> initializers;
  for (const onnx::TensorProto& initializer : model.graph().initializer()) initializers.insert(initializer.name());
  for (const onnx::ValueInfoProto& input : model.graph().input()) {
    if (initializers.count(input.name()) == 0) input_names.push_back(input.name());
  }
  if (input_names.empty()) return "the model has no input";
  for (const onnx::ValueInfoProto& input : model.graph().input()) {
    if (!input.type().has_tensor_type()) return "an input is an optional or a sequence, not a tensor";
  }
  int data_sets = 0;
  for (const fs::directory_entry& set : fs::directory_iterator(dir)) {
    if (!set.is_directory() || !absl::StartsWith(set.path().filename().string(), "test_data_set_")) continue;
    ++data_sets;
    std::vector<at::Tensor> inputs;
    for (size_t k = 0; k < input_names.size(); ++k) {
      onnx::TensorProto proto;
      if (!ReadProto(set.path() / absl::StrCat("input_", k, ".pb"), proto)) return "an input is not a tensor";
      absl::StatusOr<at::Tensor> tensor = onnx_import::ReadTensor(proto, set.path(), "input");
      if (!tensor.ok()) return std::string(tensor.status().message());
      inputs.push_back(*tensor);
    }
    onnx::TensorProto expected_proto;
    if (!ReadProto(set.path() / "output_0.pb", expected_proto)) return "output 0 is not a tensor";
    absl::StatusOr<at::Tensor> expected = onnx_import::ReadTensor(expected_proto, set.path(), "output");
    if (!expected.ok()) return std::string(expected.status().message());
    if (!at::isFloatingType(inputs[0].scalar_type())) return "input 0 is not floating point";
    if (inputs[0].dim() < 2) return "input 0 has fewer than 2 dimensions (segrel's inputs are [N, C, ...])";

    OnnxLoadOptions options;
    for (size_t k = 1; k < input_names.size(); ++k) options.fixed_inputs[input_names[k]] = inputs[k];
    absl::StatusOr<OnnxModel> loaded = OnnxModel::Load((dir / "model.onnx").string(), options);
    if (!loaded.ok()) return std::string(loaded.status().message());
    ImportOptions import;
    import.output = 0;  // some operators' tests also output their statistics
    absl::StatusOr<LayerGraph> graph = loaded->ImportGraph(inputs[0].sizes().vec(), import);
    if (!graph.ok()) return std::string(graph.status().message());
    absl::StatusOr<at::Tensor> logits = graph->Forward(inputs[0].to(at::kFloat));
    if (!logits.ok()) {
      ADD_FAILURE() << dir.filename() << ": " << logits.status();
      return "";
    }
    const at::Tensor output = segrel::testing::ApplyOutputActivation(*logits, graph->output_activation());
    const at::Tensor reference = expected->to(at::kFloat);
    if (output.sizes() != reference.sizes()) {
      ADD_FAILURE() << dir.filename() << " " << set.path().filename() << ": sizes " << output.sizes() << ", expected "
                    << reference.sizes();
      return "";
    }
    const at::Tensor excess = (output - reference).abs() - (1e-5 + 1e-5 * reference.abs());
    if (excess.numel() > 0 && excess.max().item<double>() > 0) {
      ADD_FAILURE() << dir.filename() << " " << set.path().filename() << ": max |difference| "
                    << (output - reference).abs().max().item<double>();
    }
  }
  return data_sets == 0 ? "no test data set" : "";
}

TEST(OnnxNodeTests, SegrelsForwardPassGivesTheSuitesOutputsForEveryClaimedOperator) {
  const fs::path root = NodeTestDir();
  if (!fs::is_directory(root)) GTEST_SKIP() << root << " is missing (Debian package libonnx-testdata)";
  const std::vector<std::string> claimed = onnx_import::OnnxDataOperators();
  std::map<std::string, int> runs_per_op;
  std::map<std::string, std::string> skipped;
  int considered = 0;
  int passed = 0;
  std::vector<fs::path> dirs;
  for (const fs::directory_entry& entry : fs::directory_iterator(root)) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());
  for (const fs::path& dir : dirs) {
    onnx::ModelProto model;
    if (!ReadProto(dir / "model.onnx", model)) continue;
    bool claims = false;
    bool importable = true;
    for (const onnx::NodeProto& node : model.graph().node()) {
      claims |= std::find(claimed.begin(), claimed.end(), node.op_type()) != claimed.end();
      importable &= onnx_import::FindOnnxOp(node.op_type()) != nullptr && node.domain().empty();
    }
    if (!claims || !importable) continue;
    ++considered;
    const int failures_before = ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
    const std::string reason = RunNodeTest(dir, model);
    const std::string name = dir.filename().string();
    if (!reason.empty()) {
      skipped[name] = reason;
    } else if (::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count() ==
               failures_before) {
      ++passed;
      for (const onnx::NodeProto& node : model.graph().node()) ++runs_per_op[node.op_type()];
    }
  }
  std::cout << "ONNX node tests for claimed operators: " << considered << " considered, " << passed << " passed, "
            << skipped.size() << " skipped\n";
  for (const auto& [op, runs] : runs_per_op) std::cout << "  " << op << ": " << runs << " passed\n";
  for (const auto& [name, reason] : skipped) std::cout << "  skipped " << name << ": " << reason << "\n";
  for (const auto& [name, reason] : skipped) {
    const auto expected = ExpectedSkips().find(name);
    EXPECT_TRUE(expected != ExpectedSkips().end()) << "unexpected skip of " << name << ": " << reason;
    if (expected != ExpectedSkips().end()) {
      EXPECT_THAT(reason, ::testing::HasSubstr(expected->second)) << name << " is skipped for another reason";
    }
  }
  for (const auto& [name, reason] : ExpectedSkips()) {
    EXPECT_TRUE(skipped.count(name) != 0) << name << " is listed as skipped (" << reason << ") but ran";
  }
  EXPECT_EQ(passed + static_cast<int>(ExpectedSkips().size()), considered);
}

}  // namespace
}  // namespace segrel::graph
