#include "core/common/status_macros.h"
#include "core/lrp/rules/rule_math.h"
#include "core/lrp/rules/rules.h"

namespace segrel::lrp {

absl::StatusOr<std::vector<Term>> GammaRule::Terms(const LayerAtForward& at) const {
  SEGREL_ASSIGN_OR_RETURN(const SignedLayer s, SplitLayerBySign(at, Name()));
  const auto& [x_plus, x_minus] = s.x_parts;
  const at::Tensor v_plus = s.weight + gamma_ * s.w_plus;
  const at::Tensor v_minus = s.weight + gamma_ * s.w_minus;
  at::Tensor c_plus, c_minus;
  if (s.bias.defined()) {
    c_plus = s.bias + gamma_ * s.b_plus;
    c_minus = s.bias + gamma_ * s.b_minus;
  }
  // Positive outputs are explained by the gamma-favoured positive contributions, negative ones by the negative.
  const at::Tensor& z = at.output;
  const at::Tensor positive =
      StabilizedReciprocal(AffineSum(*s.layer, s.x, {{x_plus, v_plus}, {x_minus, v_minus}}, c_plus), stabilizer_)
          .mul_(z > 0);
  const at::Tensor negative =
      StabilizedReciprocal(AffineSum(*s.layer, s.x, {{x_plus, v_minus}, {x_minus, v_plus}}, c_minus), stabilizer_)
          .mul_(z < 0);
  std::vector<Term> terms;
  AddTerm(terms, *s.layer, s.x, x_plus, v_plus, positive);
  AddTerm(terms, *s.layer, s.x, x_minus, v_minus, positive);
  AddTerm(terms, *s.layer, s.x, x_plus, v_minus, negative);
  AddTerm(terms, *s.layer, s.x, x_minus, v_plus, negative);
  KeepOneTerm(terms, *s.layer, s.x, v_plus);
  return terms;
}

}  // namespace segrel::lrp
