// Layers that combine or move values without weights: sums of branches, concatenation, max pooling, and linear
// functions LibTorch already differentiates (average pooling, upsampling, padding, reshaping, slicing).
#ifndef SEGREL_CORE_GRAPH_LAYERS_STRUCTURAL_H_
#define SEGREL_CORE_GRAPH_LAYERS_STRUCTURAL_H_

#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "core/graph/layer.h"
#include "core/graph/op_call.h"

namespace segrel::graph {

// y = sum_i coefficients[i] * x_i over same-shaped data inputs (residual additions; aten::sub has -alpha).
class SumLayer final : public Layer {
 public:
  explicit SumLayer(std::vector<double> coefficients);

  absl::string_view Kind() const override { return "add"; }
  LayerRole Role() const override { return LayerRole::kSum; }
  at::Tensor Forward(const std::vector<at::Tensor>& inputs) const override;
  LinearMapPtr Jacobian(const std::vector<at::Tensor>& inputs, const at::Tensor& output) const override;

 private:
  std::vector<double> coefficients_;
};

// Concatenation of the data inputs along `dim`.
class CatLayer final : public Layer {
 public:
  explicit CatLayer(int64_t dim) : dim_(dim) {}

  absl::string_view Kind() const override { return "cat"; }
  LayerRole Role() const override { return LayerRole::kStructural; }
  at::Tensor Forward(const std::vector<at::Tensor>& inputs) const override;
  LinearMapPtr Jacobian(const std::vector<at::Tensor>& inputs, const at::Tensor& output) const override;

 private:
  int64_t dim_;
};

struct PoolingGeometry {
  std::vector<int64_t> kernel;
  std::vector<int64_t> stride;
  std::vector<int64_t> padding;
  std::vector<int64_t> dilation;
  bool ceil_mode = false;
};

// Max pooling, 1-D to 3-D. Its Jacobian selects each window's winner (ties as LibTorch breaks them).
class MaxPoolLayer final : public Layer {
 public:
  explicit MaxPoolLayer(PoolingGeometry geometry);

  absl::string_view Kind() const override { return kind_; }
  LayerRole Role() const override { return LayerRole::kStructural; }
  at::Tensor Forward(const std::vector<at::Tensor>& inputs) const override;
  LinearMapPtr Jacobian(const std::vector<at::Tensor>& inputs, const at::Tensor& output) const override;
  Linearisation Linearise(const std::vector<at::Tensor>& inputs) const override;

 private:
  // The pooled values and each window's winner (flat spatial index).
  std::tuple<at::Tensor, at::Tensor> PoolWithIndices(const at::Tensor& x) const;

  PoolingGeometry geometry_;
  std::string kind_;
};

// Reshaping that keeps the batch dimension (view, reshape, flatten).
class ReshapeLayer final : public Layer {
 public:
  // `output_sizes` for the import-time batch; later batches replace its first entry.
  explicit ReshapeLayer(std::vector<int64_t> output_sizes) : output_sizes_(std::move(output_sizes)) {}

  absl::string_view Kind() const override { return "reshape"; }
  LayerRole Role() const override { return LayerRole::kStructural; }
  at::Tensor Forward(const std::vector<at::Tensor>& inputs) const override;
  LinearMapPtr Jacobian(const std::vector<at::Tensor>& inputs, const at::Tensor& output) const override;

 private:
  std::vector<int64_t> output_sizes_;
};

// A layer y = forward(x), given by a network operator, whose Jacobian is the linear operator `linear` (the same as
// `forward` unless forward has an offset, e.g. padding with a non-zero value). The adjoint comes from autograd.
class LinearFunctionLayer final : public Layer {
 public:
  LinearFunctionLayer(std::string kind, LayerRole role, OpCall forward, std::optional<OpCall> linear = std::nullopt);

  absl::string_view Kind() const override { return kind_; }
  LayerRole Role() const override { return role_; }
  at::Tensor Forward(const std::vector<at::Tensor>& inputs) const override { return forward_(inputs[0]); }
  LinearMapPtr Jacobian(const std::vector<at::Tensor>& inputs, const at::Tensor& output) const override;
  void ConvertTo(const at::TensorOptions& options) override;

 private:
  std::string kind_;
  LayerRole role_;
  OpCall forward_;
  OpCall linear_;
};

}  // namespace segrel::graph

#endif  // SEGREL_CORE_GRAPH_LAYERS_STRUCTURAL_H_
