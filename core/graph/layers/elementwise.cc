#include "core/graph/layers/elementwise.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <memory>
#include <utility>

namespace segrel::graph {

ActivationLayer::ActivationLayer(std::string kind, OpCall function)
    : kind_(std::move(kind)), function_(std::move(function)) {}

at::Tensor ActivationLayer::Forward(const std::vector<at::Tensor>& inputs) const { return function_(inputs[0]); }

LinearMapPtr ActivationLayer::Jacobian(const std::vector<at::Tensor>& inputs, const at::Tensor& output) const {
  torch::autograd::AutoGradMode enable_grad(true);
  const at::Tensor x = inputs[0].detach().set_requires_grad(true);
  const at::Tensor y = function_(x);
  at::Tensor derivative = torch::autograd::grad({y}, {x}, {at::ones_like(y)})[0];
  return std::make_shared<ElementwiseScaleMap>(derivative.detach(), x.sizes().vec());
}

void ActivationLayer::ConvertTo(const at::TensorOptions& options) { function_.ConvertTo(options); }

ScaleLayer::ScaleLayer(std::string kind, at::Tensor factor, at::Tensor offset)
    : kind_(std::move(kind)), factor_(std::move(factor)), offset_(std::move(offset)) {}

at::Tensor ScaleLayer::Forward(const std::vector<at::Tensor>& inputs) const {
  at::Tensor y = factor_.defined() ? inputs[0] * factor_ : inputs[0];
  return offset_.defined() ? y + offset_ : y;
}

LinearMapPtr ScaleLayer::Jacobian(const std::vector<at::Tensor>& inputs, const at::Tensor& output) const {
  if (!factor_.defined()) return std::make_shared<IdentityMap>();
  return std::make_shared<ElementwiseScaleMap>(factor_, inputs[0].sizes().vec());
}

void ScaleLayer::ConvertTo(const at::TensorOptions& options) {
  factor_ = ConvertParameter(factor_, options);
  offset_ = ConvertParameter(offset_, options);
}

}  // namespace segrel::graph
