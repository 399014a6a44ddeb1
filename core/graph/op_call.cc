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

OpCall OpCall::OfFunction(TensorFunction function, std::vector<at::Tensor> constants) {
  std::vector<c10::IValue> arguments{c10::IValue(at::Tensor())};
  for (at::Tensor& constant : constants) arguments.emplace_back(std::move(constant));
  const size_t count = arguments.size();
  torch::jit::Operation operation([function = std::move(function), count](torch::jit::Stack& stack) {
    std::vector<at::Tensor> constants;
    for (size_t i = stack.size() - count + 1; i < stack.size(); ++i) constants.push_back(stack[i].toTensor());
    const at::Tensor x = stack[stack.size() - count].toTensor();
    at::Tensor y = function(x, constants);
    stack.resize(stack.size() - count);
    stack.emplace_back(std::move(y));
  });
  return OpCall(std::move(operation), std::move(arguments), 0);
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
