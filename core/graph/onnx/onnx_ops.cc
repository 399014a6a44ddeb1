#include "core/graph/onnx/onnx_ops.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "core/common/status_macros.h"
#include "core/graph/layers/structural.h"

namespace segrel::graph::onnx_import {

std::vector<OnnxValue> Outputs(OnnxValue value) {
  std::vector<OnnxValue> outputs;
  outputs.push_back(std::move(value));
  return outputs;
}

at::Tensor AsParameter(const at::Tensor& tensor) { return tensor.to(at::kFloat).contiguous(); }

std::vector<int64_t> InputSizes(const OnnxNode& node, size_t i) {
  const OnnxValue& value = node.Input(i);
  if (value.IsData()) return node.Sizes(value.data);
  return value.constant.defined() ? value.constant.sizes().vec() : std::vector<int64_t>();
}

absl::StatusOr<std::vector<OnnxValue>> LinearOfInput(OnnxNode& node, std::string kind, LayerRole role,
                                                     OpCall::TensorFunction function, std::vector<at::Tensor> constants,
                                                     std::optional<OpCall::TensorFunction> linear) {
  const OnnxValue& input = node.Input(0);
  if (input.IsConstant()) return Outputs(OnnxValue::Constant(function(input.constant, constants)));
  SEGREL_ASSIGN_OR_RETURN(const int data, node.DataInput(0, "input"));
  std::optional<OpCall> linear_call;
  if (linear.has_value()) linear_call = OpCall::OfFunction(*std::move(linear), constants);
  auto layer = std::make_unique<LinearFunctionLayer>(
      std::move(kind), role, OpCall::OfFunction(std::move(function), std::move(constants)), std::move(linear_call));
  SEGREL_ASSIGN_OR_RETURN(OnnxValue output, node.Add(std::move(layer), {data}));
  return Outputs(std::move(output));
}

OnnxOpFactory FindOnnxOp(absl::string_view op_type) {
  if (const OnnxOpFactory nn = FindNnOp(op_type); nn != nullptr) return nn;
  return FindTensorOp(op_type);
}

std::vector<std::string> OnnxDataOperators() {
  std::vector<std::string> ops = NnDataOperators();
  for (std::string& op : TensorDataOperators()) ops.push_back(std::move(op));
  std::sort(ops.begin(), ops.end());
  return ops;
}

}  // namespace segrel::graph::onnx_import
