#include "core/common/status_macros.h"
#include "core/lrp/rules/rule_math.h"
#include "core/lrp/rules/rules.h"

namespace segrel::lrp {

absl::StatusOr<std::vector<Term>> GammaRule::Terms(const LayerAtForward& at) const {
  SEGREL_ASSIGN_OR_RETURN(const graph::ParametricLayer* layer, AsParametric(at, Name()));
  const at::Tensor& x = at.inputs[0];
  const at::Tensor& z = at.output;
  const graph::AffineParameters p = layer->ParametersAt(x);
  const at::Tensor v_plus = p.weight + gamma_ * p.weight.clamp_min(0);
  const at::Tensor v_minus = p.weight + gamma_ * p.weight.clamp_max(0);
  at::Tensor c_plus, c_minus;
  if (p.bias.defined()) {
    c_plus = p.bias + gamma_ * p.bias.clamp_min(0);
    c_minus = p.bias + gamma_ * p.bias.clamp_max(0);
  }
  const auto [x_plus, x_minus] = SplitSigns(x);
  // Positive outputs are explained by the gamma-favoured positive contributions, negative ones by the negative.
  const at::Tensor positive = StabilizedReciprocal(
      AffineSum(*layer, x, {{x_plus, v_plus}, {x_minus, v_minus}}, c_plus), stabilizer_).mul_(z > 0);
  const at::Tensor negative = StabilizedReciprocal(
      AffineSum(*layer, x, {{x_plus, v_minus}, {x_minus, v_plus}}, c_minus), stabilizer_).mul_(z < 0);
  std::vector<Term> terms;
  AddTerm(terms, *layer, x, x_plus, v_plus, positive);
  AddTerm(terms, *layer, x, x_minus, v_minus, positive);
  AddTerm(terms, *layer, x, x_plus, v_minus, negative);
  AddTerm(terms, *layer, x, x_minus, v_plus, negative);
  return terms;
}

}  // namespace segrel::lrp
