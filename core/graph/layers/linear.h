// Fully connected layer y = x W^T + b (aten::linear, aten::addmm and aten::matmul by a constant matrix).
#ifndef SEGREL_CORE_GRAPH_LAYERS_LINEAR_H_
#define SEGREL_CORE_GRAPH_LAYERS_LINEAR_H_

#include <ATen/ATen.h>

#include "core/graph/layer.h"

namespace segrel::graph {

// `weight` is [out, in]; `bias` is [out] or undefined.
class LinearLayer final : public ParametricLayer {
 public:
  LinearLayer(at::Tensor weight, at::Tensor bias);

  absl::string_view Kind() const override { return "linear"; }
  LayerRole Role() const override { return LayerRole::kLinear; }
  at::Tensor Forward(const std::vector<at::Tensor>& inputs) const override;
  void ConvertTo(const at::TensorOptions& options) override;

  AffineParameters ParametersAt(const at::Tensor& x) const override { return {weight_, bias_}; }
  LinearMapPtr WithWeight(const at::Tensor& weight, const at::Tensor& x) const override;
  at::Tensor Affine(const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& v,
                    const at::Tensor& x) const override;
  at::Tensor BiasAsOutput(const at::Tensor& bias, const at::Tensor& x) const override { return bias; }

 private:
  at::Tensor weight_;
  at::Tensor bias_;
};

}  // namespace segrel::graph

#endif  // SEGREL_CORE_GRAPH_LAYERS_LINEAR_H_
