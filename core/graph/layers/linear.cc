#include "core/graph/layers/linear.h"

#include <memory>
#include <utility>

namespace segrel::graph {
namespace {

class MatrixMap final : public LinearMap {
 public:
  explicit MatrixMap(at::Tensor weight) : weight_(std::move(weight)) {}
  at::Tensor Apply(const std::vector<at::Tensor>& inputs) const override { return at::linear(inputs[0], weight_); }
  std::vector<at::Tensor> Adjoint(const at::Tensor& g) const override { return {at::matmul(g, weight_)}; }
  bool ResultsAreFresh() const override { return true; }

 private:
  at::Tensor weight_;
};

}  // namespace

LinearLayer::LinearLayer(at::Tensor weight, at::Tensor bias) : weight_(std::move(weight)), bias_(std::move(bias)) {}

at::Tensor LinearLayer::Forward(const std::vector<at::Tensor>& inputs) const {
  return at::linear(inputs[0], weight_, bias_);
}

void LinearLayer::ConvertTo(const at::TensorOptions& options) {
  weight_ = ConvertParameter(weight_, options);
  bias_ = ConvertParameter(bias_, options);
}

LinearMapPtr LinearLayer::WithWeight(const at::Tensor& weight, const at::Tensor& x) const {
  return std::make_shared<MatrixMap>(weight);
}

at::Tensor LinearLayer::Affine(const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& v,
                               const at::Tensor& x) const {
  return at::linear(v, weight, bias);
}

}  // namespace segrel::graph
