#include "core/common/status_macros.h"
#include "core/lrp/rules/rule_math.h"
#include "core/lrp/rules/rules.h"

namespace segrel::lrp {

absl::StatusOr<std::vector<Term>> WSquareRule::Terms(const LayerAtForward& at) const {
  SEGREL_ASSIGN_OR_RETURN(const graph::ParametricLayer* layer, AsParametric(at, Name()));
  const at::Tensor& x = at.inputs[0];
  const graph::AffineParameters p = layer->ParametersAt(x);
  const at::Tensor squared = p.weight * p.weight;
  const at::Tensor bias_squared = p.bias.defined() ? p.bias * p.bias : at::Tensor();
  const at::Tensor g = StabilizedReciprocal(layer->Affine(squared, bias_squared, at::ones_like(x), x), stabilizer_);
  return std::vector<Term>{Term{{at::Tensor()}, layer->WithWeight(squared, x), g}};
}

}  // namespace segrel::lrp
