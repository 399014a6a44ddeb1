#include "tests/test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace segrel::testing {

std::string FixturePath(const std::string& name) { return std::string(SEGREL_FIXTURE_DIR) + "/" + name; }

at::Tensor ReadFloat32(const std::string& name, const std::vector<int64_t>& sizes) {
  std::ifstream file(FixturePath(name), std::ios::binary);
  EXPECT_TRUE(file.good()) << "missing fixture " << name;
  const std::vector<char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  at::Tensor tensor = at::empty(sizes, at::kFloat);
  EXPECT_EQ(bytes.size(), static_cast<size_t>(tensor.numel()) * sizeof(float)) << name;
  if (bytes.size() != static_cast<size_t>(tensor.numel()) * sizeof(float)) return at::Tensor();
  std::memcpy(tensor.data_ptr<float>(), bytes.data(), bytes.size());
  return tensor;
}

nlohmann::json ReadJson(const std::string& name) {
  std::ifstream file(FixturePath(name));
  EXPECT_TRUE(file.good()) << "missing fixture " << name;
  return nlohmann::json::parse(file);
}

ModelFixture LoadModelFixture(const std::string& name, const std::string& data_name) {
  const std::string data = data_name.empty() ? name : data_name;
  const nlohmann::json meta = ReadJson(data + ".json");
  ModelFixture fixture;
  fixture.model_path = FixturePath(name + ".pt");
  fixture.input = ReadFloat32(data + ".input.f32", meta["input_shape"].get<std::vector<int64_t>>());
  fixture.output = ReadFloat32(data + ".output.f32", meta["output_shape"].get<std::vector<int64_t>>());
  fixture.output_activation = meta["output_activation"].get<std::string>();
  return fixture;
}

std::vector<std::string> LayerSignature(const graph::LayerGraph& graph) {
  std::vector<std::string> kinds;
  for (const graph::GraphNode& node : graph.nodes()) {
    const graph::LayerRole role = node.layer->Role();
    const bool by_role = role == graph::LayerRole::kStructural || role == graph::LayerRole::kAveragePool;
    const std::string kind = by_role ? "by-role" : std::string(node.layer->Kind());
    kinds.push_back(absl::StrCat(kind, "/", static_cast<int>(role), " <- ", node.inputs.size()));
  }
  return kinds;
}

at::Tensor ApplyOutputActivation(const at::Tensor& logits, graph::OutputActivation activation) {
  switch (activation) {
    case graph::OutputActivation::kSoftmax:
      return at::softmax(logits, 1);
    case graph::OutputActivation::kLogSoftmax:
      return at::log_softmax(logits, 1);
    case graph::OutputActivation::kSigmoid:
      return at::sigmoid(logits);
    case graph::OutputActivation::kNone:
      break;
  }
  return logits;
}

double RelativeError(const at::Tensor& a, const at::Tensor& b, double floor) {
  const double scale = std::max(b.abs().max().item<double>(), floor);
  return (a - b).abs().max().item<double>() / scale;
}

std::string TestTempDir() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "." + info->name();
  std::replace(name.begin(), name.end(), '/', '_');  // parameterised tests
  std::filesystem::path dir = std::filesystem::temp_directory_path() / "segrel_tests" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string ShellQuote(const std::string& text) {
  return absl::StrCat("'", absl::StrReplaceAll(text, {{"'", "'\\''"}}), "'");
}

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

}  // namespace segrel::testing
