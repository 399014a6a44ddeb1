#include "core/graph/layers/structural.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"

namespace segrel::graph {
namespace {

class SumMap final : public LinearMap {
 public:
  explicit SumMap(std::vector<double> coefficients) : coefficients_(std::move(coefficients)) {}

  at::Tensor Apply(const std::vector<at::Tensor>& inputs) const override {
    at::Tensor sum = inputs[0] * coefficients_[0];
    for (size_t i = 1; i < inputs.size(); ++i) sum.add_(inputs[i], coefficients_[i]);
    return sum;
  }

  std::vector<at::Tensor> Adjoint(const at::Tensor& g) const override {
    std::vector<at::Tensor> result;
    for (double coefficient : coefficients_) result.push_back(coefficient == 1.0 ? g : g * coefficient);
    return result;
  }

 private:
  std::vector<double> coefficients_;
};

class CatMap final : public LinearMap {
 public:
  CatMap(int64_t dim, std::vector<int64_t> sizes) : dim_(dim), sizes_(std::move(sizes)) {}

  at::Tensor Apply(const std::vector<at::Tensor>& inputs) const override { return at::cat(inputs, dim_); }
  std::vector<at::Tensor> Adjoint(const at::Tensor& g) const override { return g.split_with_sizes(sizes_, dim_); }

 private:
  int64_t dim_;
  std::vector<int64_t> sizes_;
};

// Selection of each pooling window's winner: Apply gathers, Adjoint scatters (adding where windows overlap).
class MaxPoolMap final : public LinearMap {
 public:
  MaxPoolMap(at::Tensor indices, std::vector<int64_t> input_sizes)
      : indices_(std::move(indices)), input_sizes_(std::move(input_sizes)) {}

  at::Tensor Apply(const std::vector<at::Tensor>& inputs) const override {
    const at::Tensor& u = inputs[0];
    const at::Tensor flat_indices = FlatIndices(u.size(0));
    std::vector<int64_t> output_sizes = WithBatch(indices_.sizes().vec(), u.size(0));
    return u.flatten(2).gather(2, flat_indices).view(output_sizes);
  }

  std::vector<at::Tensor> Adjoint(const at::Tensor& g) const override {
    const std::vector<int64_t> sizes = WithBatch(input_sizes_, g.size(0));
    at::Tensor result = at::zeros({sizes[0], sizes[1], SpatialNumel()}, g.options());
    result.scatter_add_(2, FlatIndices(g.size(0)), g.flatten(2));
    return {result.view(sizes)};
  }

  bool ResultsAreFresh() const override { return true; }
  void CollectForwardTensors(std::vector<at::Tensor>* tensors) const override { tensors->push_back(indices_); }

 private:
  at::Tensor FlatIndices(int64_t batch) const {
    at::Tensor flat = indices_.flatten(2);
    return batch == flat.size(0) ? flat : flat.expand({batch, flat.size(1), flat.size(2)});
  }
  int64_t SpatialNumel() const {
    int64_t n = 1;
    for (size_t d = 2; d < input_sizes_.size(); ++d) n *= input_sizes_[d];
    return n;
  }

  at::Tensor indices_;
  std::vector<int64_t> input_sizes_;
};

class ReshapeMap final : public LinearMap {
 public:
  ReshapeMap(std::vector<int64_t> input_sizes, std::vector<int64_t> output_sizes)
      : input_sizes_(std::move(input_sizes)), output_sizes_(std::move(output_sizes)) {}

  at::Tensor Apply(const std::vector<at::Tensor>& inputs) const override {
    return inputs[0].reshape(WithBatch(output_sizes_, inputs[0].size(0)));
  }
  std::vector<at::Tensor> Adjoint(const at::Tensor& g) const override {
    return {g.reshape(WithBatch(input_sizes_, g.size(0)))};
  }

 private:
  std::vector<int64_t> input_sizes_;
  std::vector<int64_t> output_sizes_;
};

}  // namespace

SumLayer::SumLayer(std::vector<double> coefficients) : coefficients_(std::move(coefficients)) {}

at::Tensor SumLayer::Forward(const std::vector<at::Tensor>& inputs) const {
  return SumMap(coefficients_).Apply(inputs);
}

LinearMapPtr SumLayer::Jacobian(const std::vector<at::Tensor>& inputs, const at::Tensor& output) const {
  return std::make_shared<SumMap>(coefficients_);
}

at::Tensor CatLayer::Forward(const std::vector<at::Tensor>& inputs) const { return at::cat(inputs, dim_); }

LinearMapPtr CatLayer::Jacobian(const std::vector<at::Tensor>& inputs, const at::Tensor& output) const {
  std::vector<int64_t> sizes;
  for (const at::Tensor& input : inputs) sizes.push_back(input.size(dim_));
  return std::make_shared<CatMap>(dim_, std::move(sizes));
}

MaxPoolLayer::MaxPoolLayer(PoolingGeometry geometry)
    : geometry_(std::move(geometry)), kind_(absl::StrCat("max_pool", geometry_.kernel.size(), "d")) {}

at::Tensor MaxPoolLayer::Forward(const std::vector<at::Tensor>& inputs) const {
  const PoolingGeometry& g = geometry_;
  switch (g.kernel.size()) {
    case 1:
      return at::max_pool1d(inputs[0], g.kernel, g.stride, g.padding, g.dilation, g.ceil_mode);
    case 2:
      return at::max_pool2d(inputs[0], g.kernel, g.stride, g.padding, g.dilation, g.ceil_mode);
    default:
      return at::max_pool3d(inputs[0], g.kernel, g.stride, g.padding, g.dilation, g.ceil_mode);
  }
}

std::tuple<at::Tensor, at::Tensor> MaxPoolLayer::PoolWithIndices(const at::Tensor& x) const {
  const PoolingGeometry& g = geometry_;
  switch (g.kernel.size()) {
    case 1:
      return at::max_pool1d_with_indices(x, g.kernel, g.stride, g.padding, g.dilation, g.ceil_mode);
    case 2:
      return at::max_pool2d_with_indices(x, g.kernel, g.stride, g.padding, g.dilation, g.ceil_mode);
    default:
      return at::max_pool3d_with_indices(x, g.kernel, g.stride, g.padding, g.dilation, g.ceil_mode);
  }
}

LinearMapPtr MaxPoolLayer::Jacobian(const std::vector<at::Tensor>& inputs, const at::Tensor& output) const {
  return std::make_shared<MaxPoolMap>(std::get<1>(PoolWithIndices(inputs[0])), inputs[0].sizes().vec());
}

Layer::Linearisation MaxPoolLayer::Linearise(const std::vector<at::Tensor>& inputs) const {
  auto [output, indices] = PoolWithIndices(inputs[0]);
  return {output, std::make_shared<MaxPoolMap>(indices, inputs[0].sizes().vec())};
}

at::Tensor ReshapeLayer::Forward(const std::vector<at::Tensor>& inputs) const {
  return inputs[0].reshape(WithBatch(output_sizes_, inputs[0].size(0)));
}

LinearMapPtr ReshapeLayer::Jacobian(const std::vector<at::Tensor>& inputs, const at::Tensor& output) const {
  return std::make_shared<ReshapeMap>(inputs[0].sizes().vec(), output_sizes_);
}

LinearFunctionLayer::LinearFunctionLayer(std::string kind, LayerRole role, OpCall forward, std::optional<OpCall> linear)
    : kind_(std::move(kind)), role_(role), forward_(forward), linear_(linear ? *std::move(linear) : forward) {}

LinearMapPtr LinearFunctionLayer::Jacobian(const std::vector<at::Tensor>& inputs, const at::Tensor& output) const {
  return std::make_shared<AutogradLinearMap>(linear_, inputs[0].sizes().vec());
}

void LinearFunctionLayer::ConvertTo(const at::TensorOptions& options) {
  forward_.ConvertTo(options);
  linear_.ConvertTo(options);
}

}  // namespace segrel::graph
