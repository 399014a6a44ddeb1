#include "core/graph/linear_map.h"

#include <ATen/ExpandUtils.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <utility>

namespace segrel::graph {

std::vector<int64_t> WithBatch(std::vector<int64_t> sizes, int64_t batch) {
  if (!sizes.empty()) sizes[0] = batch;
  return sizes;
}

ElementwiseScaleMap::ElementwiseScaleMap(at::Tensor factor, std::vector<int64_t> input_sizes)
    : factor_(std::move(factor)), input_sizes_(std::move(input_sizes)) {}

at::Tensor ElementwiseScaleMap::Apply(const std::vector<at::Tensor>& inputs) const { return inputs[0] * factor_; }

std::vector<at::Tensor> ElementwiseScaleMap::Adjoint(const at::Tensor& g) const {
  at::Tensor scaled = g * factor_;
  const std::vector<int64_t> sizes = WithBatch(input_sizes_, g.size(0));
  if (scaled.sizes() != at::IntArrayRef(sizes)) scaled = at::sum_to(scaled, sizes);
  return {scaled};
}

AutogradLinearMap::AutogradLinearMap(Function function, std::vector<int64_t> input_sizes)
    : function_(std::move(function)), input_sizes_(std::move(input_sizes)) {}

at::Tensor AutogradLinearMap::Apply(const std::vector<at::Tensor>& inputs) const { return function_(inputs[0]); }

std::vector<at::Tensor> AutogradLinearMap::Adjoint(const at::Tensor& g) const {
  torch::autograd::AutoGradMode enable_grad(true);
  at::Tensor at_zero = at::zeros(WithBatch(input_sizes_, g.size(0)), g.options()).set_requires_grad(true);
  at::Tensor value = function_(at_zero);
  return {torch::autograd::grad({value}, {at_zero}, {g})[0]};
}

}  // namespace segrel::graph
