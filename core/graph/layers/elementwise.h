// Elementwise layers: nonlinear activations (ReLU, LeakyReLU, PReLU, ELU, sigmoid, tanh, ...) and affine scaling by
// constants (x * a + b for multiplication, division and addition of constants).
#ifndef SEGREL_CORE_GRAPH_LAYERS_ELEMENTWISE_H_
#define SEGREL_CORE_GRAPH_LAYERS_ELEMENTWISE_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "core/graph/layer.h"
#include "core/graph/op_call.h"

namespace segrel::graph {

// y = f(x) elementwise, f being the network's own operator. The Jacobian is diag(f'(x)), by autograd.
class ActivationLayer final : public Layer {
 public:
  ActivationLayer(std::string kind, OpCall function);

  absl::string_view Kind() const override { return kind_; }
  LayerRole Role() const override { return LayerRole::kActivation; }
  at::Tensor Forward(const std::vector<at::Tensor>& inputs) const override;
  LinearMapPtr Jacobian(const std::vector<at::Tensor>& inputs, const at::Tensor& output) const override;
  void ConvertTo(const at::TensorOptions& options) override;

 private:
  std::string kind_;
  OpCall function_;
};

// y = x * factor + offset with constant tensors that broadcast against x without enlarging it. An undefined factor
// means 1, an undefined offset 0.
class ScaleLayer final : public Layer {
 public:
  ScaleLayer(std::string kind, at::Tensor factor, at::Tensor offset);

  absl::string_view Kind() const override { return kind_; }
  LayerRole Role() const override { return LayerRole::kScaling; }
  at::Tensor Forward(const std::vector<at::Tensor>& inputs) const override;
  LinearMapPtr Jacobian(const std::vector<at::Tensor>& inputs, const at::Tensor& output) const override;
  void ConvertTo(const at::TensorOptions& options) override;

 private:
  std::string kind_;
  at::Tensor factor_;
  at::Tensor offset_;
};

}  // namespace segrel::graph

#endif  // SEGREL_CORE_GRAPH_LAYERS_ELEMENTWISE_H_
