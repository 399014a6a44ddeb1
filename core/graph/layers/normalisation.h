// Normalisation layers as per-channel affine maps (docs/rules.md, layers without a standard rule).
//
// Batch norm in evaluation mode (and instance norm with running statistics) is a fixed per-channel affine map;
// freezing usually folds it into the preceding convolution, and ChannelAffineLayer keeps the cases it cannot fold.
// Instance and group norm normalise with the statistics of their own input. There is no standard LRP rule for
// them: segrel treats them as the per-channel affine map they are for the forward pass at hand (statistics
// frozen), y = (gamma / sigma) x + (beta - gamma mu / sigma), and explains that map with the epsilon rule.
#ifndef SEGREL_CORE_GRAPH_LAYERS_NORMALISATION_H_
#define SEGREL_CORE_GRAPH_LAYERS_NORMALISATION_H_

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "core/graph/layer.h"

namespace segrel::graph {

// y = scale[c] x + shift[c] along dimension 1.
class ChannelAffineLayer final : public ParametricLayer {
 public:
  ChannelAffineLayer(std::string kind, at::Tensor scale, at::Tensor shift);

  absl::string_view Kind() const override { return kind_; }
  LayerRole Role() const override { return LayerRole::kNormalisation; }
  at::Tensor Forward(const std::vector<at::Tensor>& inputs) const override;
  void ConvertTo(const at::TensorOptions& options) override;

  AffineParameters ParametersAt(const at::Tensor& x) const override { return {scale_, shift_}; }
  LinearMapPtr WithWeight(const at::Tensor& weight, const at::Tensor& x) const override;
  at::Tensor BiasAsOutput(const at::Tensor& bias, const at::Tensor& x) const override;

 private:
  std::string kind_;
  at::Tensor scale_;  // [C]
  at::Tensor shift_;  // [C]
};

// Batch norm (or instance norm with running statistics) in evaluation mode as a per-channel affine map:
// scale = gamma / sqrt(var + eps), shift = beta - mean * scale. `gamma` and `beta` may be undefined (1 and 0).
std::unique_ptr<ChannelAffineLayer> MakeRunningStatisticsAffine(std::string kind, const at::Tensor& gamma,
                                                                const at::Tensor& beta, const at::Tensor& mean,
                                                                const at::Tensor& var, double eps);

// Group normalisation with `groups` groups (instance norm: one group per channel) and an optional per-channel
// affine (gamma, beta). ParametersAt(x) returns weight and bias of shape [N, C].
class GroupNormLayer final : public ParametricLayer {
 public:
  GroupNormLayer(std::string kind, int64_t groups, at::Tensor gamma, at::Tensor beta, double eps);

  absl::string_view Kind() const override { return kind_; }
  LayerRole Role() const override { return LayerRole::kNormalisation; }
  at::Tensor Forward(const std::vector<at::Tensor>& inputs) const override;
  void ConvertTo(const at::TensorOptions& options) override;

  AffineParameters ParametersAt(const at::Tensor& x) const override;
  LinearMapPtr WithWeight(const at::Tensor& weight, const at::Tensor& x) const override;
  at::Tensor BiasAsOutput(const at::Tensor& bias, const at::Tensor& x) const override;

 private:
  std::string kind_;
  int64_t groups_;
  at::Tensor gamma_;  // [C] or undefined
  at::Tensor beta_;   // [C] or undefined
  double eps_;
};

// Layer normalisation over the last normalized_shape.size() dimensions with an optional elementwise affine (gamma,
// beta of normalized_shape), as the per-element affine map it is for the forward pass at hand (statistics frozen):
// y = (gamma / sigma) x + (beta - gamma mu / sigma), mu and sigma per position of the leading dimensions.
// ParametersAt(x) returns weight and bias of x's sizes.
class LayerNormLayer final : public ParametricLayer {
 public:
  LayerNormLayer(std::vector<int64_t> normalized_shape, at::Tensor gamma, at::Tensor beta, double eps);

  absl::string_view Kind() const override { return "layer_norm"; }
  LayerRole Role() const override { return LayerRole::kNormalisation; }
  at::Tensor Forward(const std::vector<at::Tensor>& inputs) const override;
  void ConvertTo(const at::TensorOptions& options) override;

  AffineParameters ParametersAt(const at::Tensor& x) const override;
  LinearMapPtr WithWeight(const at::Tensor& weight, const at::Tensor& x) const override;
  at::Tensor BiasAsOutput(const at::Tensor& bias, const at::Tensor& x) const override { return bias; }

 private:
  std::vector<int64_t> normalized_shape_;
  at::Tensor gamma_;  // normalized_shape, or undefined
  at::Tensor beta_;   // normalized_shape, or undefined
  double eps_;
};

}  // namespace segrel::graph

#endif  // SEGREL_CORE_GRAPH_LAYERS_NORMALISATION_H_
