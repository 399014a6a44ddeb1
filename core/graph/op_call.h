// OpCall: one TorchScript operator applied to a data tensor, with its other arguments fixed at import.
//
// Layers that are plain LibTorch functions of one input (activations, pooling, upsampling, padding, reshaping)
// run the very operator the network's TorchScript graph names, so segrel's forward pass computes what the
// network computes, for every overload and argument combination the operator accepts.
//
// Thread-safety: operator() is safe to call concurrently; ConvertTo() needs exclusive access.
#ifndef SEGREL_CORE_GRAPH_OP_CALL_H_
#define SEGREL_CORE_GRAPH_OP_CALL_H_

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>
#include <ATen/core/stack.h>

#include <functional>
#include <vector>

namespace segrel::graph {

class OpCall {
 public:
  // `arguments` are the operator's inputs in schema order; the one at `data_index` is replaced by the data tensor
  // (by a copy of it when `copies_input`, for in-place operators).
  OpCall(torch::jit::Operation operation, std::vector<c10::IValue> arguments, size_t data_index,
         bool copies_input = false);

  // A LibTorch function of the data tensor and constant tensors, for importers whose operators are not TorchScript's
  // (ONNX). ConvertTo() moves `constants`; `function` must not capture tensors of its own.
  using TensorFunction = std::function<at::Tensor(const at::Tensor& x, const std::vector<at::Tensor>& constants)>;
  static OpCall OfFunction(TensorFunction function, std::vector<at::Tensor> constants = {});

  // Returns the operator's (first) output for `x`.
  at::Tensor operator()(const at::Tensor& x) const;

  // Returns a copy whose argument `index` is `value` (e.g. padding with 0 instead of a fill value).
  OpCall WithArgument(size_t index, c10::IValue value) const;

  // Moves tensor arguments (e.g. PReLU slopes) to `options`.
  void ConvertTo(const at::TensorOptions& options);

 private:
  mutable torch::jit::Operation operation_;  // calling an Operation is const in effect, not in its signature
  std::vector<c10::IValue> arguments_;
  size_t data_index_;
  bool copies_input_;
};

}  // namespace segrel::graph

#endif  // SEGREL_CORE_GRAPH_OP_CALL_H_
