#include "core/graph/layer_graph.h"

#include <ATen/Context.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "core/common/torch_status.h"

namespace segrel::graph {
namespace {

bool IsParametric(const Layer& layer) {
  return layer.Role() == LayerRole::kConvolution || layer.Role() == LayerRole::kLinear;
}

}  // namespace

absl::string_view OutputActivationName(OutputActivation activation) {
  switch (activation) {
    case OutputActivation::kNone:
      return "none";
    case OutputActivation::kSoftmax:
      return "softmax";
    case OutputActivation::kLogSoftmax:
      return "log_softmax";
    case OutputActivation::kSigmoid:
      return "sigmoid";
  }
  return "unknown";
}

LayerGraph::LayerGraph(std::vector<int64_t> input_sizes) : input_sizes_(std::move(input_sizes)) {}

int LayerGraph::AddNode(std::unique_ptr<Layer> layer, std::vector<int> inputs, std::string origin) {
  GraphNode node;
  node.layer = std::move(layer);
  node.inputs = std::move(inputs);
  node.output = num_values_++;
  node.origin = std::move(origin);
  nodes_.push_back(std::move(node));
  return nodes_.back().output;
}

std::pair<int, OutputActivation> LayerGraph::LogitsBeforeSigmoid(int value) const {
  for (const GraphNode& node : nodes_) {
    if (node.output == value && node.layer->Kind() == "sigmoid") {
      return {node.inputs[0], OutputActivation::kSigmoid};
    }
  }
  return {value, OutputActivation::kNone};
}

void LayerGraph::SetOutput(int value, std::vector<int64_t> output_sizes, OutputActivation activation) {
  output_ = value;
  output_sizes_ = std::move(output_sizes);
  output_activation_ = activation;
  // Keep only the nodes the output depends on.
  std::vector<bool> needed(num_values_, false);
  needed[value] = true;
  std::vector<bool> keep(nodes_.size(), false);
  for (size_t i = nodes_.size(); i-- > 0;) {
    if (!needed[nodes_[i].output]) continue;
    keep[i] = true;
    for (int input : nodes_[i].inputs) needed[input] = true;
  }
  std::vector<GraphNode> kept;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (keep[i]) kept.push_back(std::move(nodes_[i]));
  }
  nodes_ = std::move(kept);
}

std::vector<int> LayerGraph::ReaderCounts() const {
  std::vector<int> readers(num_values_, 0);
  for (const GraphNode& node : nodes_) {
    for (int input : node.inputs) ++readers[input];
  }
  ++readers[output_];
  return readers;
}

std::vector<bool> LayerGraph::FirstParametricNodes() const {
  // after_parametric[v]: some path from the input to value v passes through a convolution or linear layer.
  std::vector<bool> after_parametric(num_values_, false);
  std::vector<bool> first(nodes_.size(), false);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const GraphNode& node = nodes_[i];
    bool reads_parametric_output = false;
    for (int input : node.inputs) reads_parametric_output = reads_parametric_output || after_parametric[input];
    const bool parametric = IsParametric(*node.layer);
    first[i] = parametric && !reads_parametric_output;
    after_parametric[node.output] = parametric || reads_parametric_output;
  }
  return first;
}

absl::Status LayerGraph::CheckInput(const at::Tensor& input) const {
  const std::vector<int64_t> sizes = input.sizes().vec();
  if (sizes.size() != input_sizes_.size() || !std::equal(sizes.begin() + 1, sizes.end(), input_sizes_.begin() + 1)) {
    return absl::InvalidArgumentError(absl::StrCat("network input has shape [", absl::StrJoin(sizes, ", "),
                                                   "], but the graph was imported for [",
                                                   absl::StrJoin(input_sizes_, ", "), "]"));
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> LayerGraph::Forward(const at::Tensor& input) const {
  if (absl::Status status = CheckInput(input); !status.ok()) return status;
  std::vector<at::Tensor> values(num_values_);
  std::vector<int> unread = ReaderCounts();
  values[kInputValue] = input;
  for (const GraphNode& node : nodes_) {
    std::vector<at::Tensor> inputs;
    for (int id : node.inputs) inputs.push_back(values[id]);
    for (int id : node.inputs) {
      if (--unread[id] == 0) values[id].reset();
    }
    absl::StatusOr<at::Tensor> output =
        CatchTorch(absl::StrCat("forward pass, ", node.origin),
                   [&]() -> absl::StatusOr<at::Tensor> { return node.layer->Forward(inputs); });
    if (!output.ok()) return output.status();
    values[node.output] = *std::move(output);
  }
  return values[output_];
}

absl::Status LayerGraph::ConvertTo(const at::TensorOptions& options) {
  return CatchTorch("converting the layer graph", [&]() -> absl::Status {
    if (options.device().is_cuda()) {
      // LibTorch lets cuDNN and cuBLAS compute float32 in TF32 (10-bit mantissa) on Ampere and later GPUs by
      // default; the relevance divides by pre-activations, where that error grows. Explanations must agree with
      // the CPU's float32: full float32 it is.
      at::globalContext().setAllowTF32CuDNN(false);
      at::globalContext().setAllowTF32CuBLAS(false);
    }
    for (GraphNode& node : nodes_) node.layer->ConvertTo(options);
    return absl::OkStatus();
  });
}

std::string LayerGraph::DebugString() const {
  std::string text;
  for (const GraphNode& node : nodes_) {
    absl::StrAppend(&text, "%", node.output, " = ", node.layer->Kind(), "(%", absl::StrJoin(node.inputs, ", %"),
                    ")  # ", node.origin, "\n");
  }
  absl::StrAppend(&text, "return %", output_, "  # output activation: ", OutputActivationName(output_activation_),
                  "\n");
  return text;
}

}  // namespace segrel::graph
