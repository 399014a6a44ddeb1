#include "core/graph/layer.h"

namespace segrel::graph {

at::Tensor ConvertParameter(const at::Tensor& tensor, const at::TensorOptions& options) {
  if (!tensor.defined()) return tensor;
  at::TensorOptions target = at::TensorOptions().device(options.device());
  if (tensor.is_floating_point() && options.has_dtype()) target = target.dtype(options.dtype());
  return tensor.to(target);
}

Layer::Linearisation Layer::Linearise(const std::vector<at::Tensor>& inputs) const {
  Linearisation result;
  result.output = Forward(inputs);
  result.jacobian = Jacobian(inputs, result.output);
  return result;
}

at::Tensor ParametricLayer::Affine(const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& v,
                                   const at::Tensor& x) const {
  at::Tensor result = WithWeight(weight, x)->Apply({v});
  if (bias.defined()) result = result + BiasAsOutput(bias, x);
  return result;
}

LinearMapPtr ParametricLayer::Jacobian(const std::vector<at::Tensor>& inputs, const at::Tensor& output) const {
  return WithWeight(ParametersAt(inputs[0]).weight, inputs[0]);
}

}  // namespace segrel::graph
