#include "core/graph/op_call.h"

#include "core/graph/layer.h"

#include <utility>

namespace segrel::graph {

OpCall::OpCall(torch::jit::Operation operation, std::vector<c10::IValue> arguments, size_t data_index,
               bool copies_input)
    : operation_(std::move(operation)),
      arguments_(std::move(arguments)),
      data_index_(data_index),
      copies_input_(copies_input) {}

at::Tensor OpCall::operator()(const at::Tensor& x) const {
  torch::jit::Stack stack = arguments_;
  stack[data_index_] = copies_input_ ? x.clone() : x;
  operation_(stack);
  // The operator leaves its outputs on the stack in order; the first is the tensor the graph uses.
  return stack.front().toTensor();
}

OpCall OpCall::WithArgument(size_t index, c10::IValue value) const {
  OpCall copy = *this;
  copy.arguments_[index] = std::move(value);
  return copy;
}

void OpCall::ConvertTo(const at::TensorOptions& options) {
  for (c10::IValue& argument : arguments_) {
    if (argument.isTensor()) argument = ConvertParameter(argument.toTensor(), options);
  }
}

}  // namespace segrel::graph
