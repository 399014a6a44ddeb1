#include "core/common/status_macros.h"
#include "core/lrp/rules/rule_math.h"
#include "core/lrp/rules/rules.h"

namespace segrel::lrp {

absl::StatusOr<std::vector<Term>> AlphaBetaRule::Terms(const LayerAtForward& at) const {
  SEGREL_ASSIGN_OR_RETURN(const graph::ParametricLayer* layer, AsParametric(at, Name()));
  const at::Tensor& x = at.inputs[0];
  const graph::AffineParameters p = layer->ParametersAt(x);
  const at::Tensor w_plus = p.weight.clamp_min(0);
  const at::Tensor w_minus = p.weight.clamp_max(0);
  const auto [x_plus, x_minus] = SplitSigns(x);
  const at::Tensor b_plus = p.bias.defined() ? p.bias.clamp_min(0) : at::Tensor();
  const at::Tensor b_minus = p.bias.defined() ? p.bias.clamp_max(0) : at::Tensor();
  // The positive contributions z+ and the negative ones z-, each with its own bias part.
  const at::Tensor g_plus =
      StabilizedReciprocal(AffineSum(*layer, x, {{x_plus, w_plus}, {x_minus, w_minus}}, b_plus), stabilizer_)
          .mul_(alpha_);
  const at::Tensor g_minus =
      StabilizedReciprocal(AffineSum(*layer, x, {{x_plus, w_minus}, {x_minus, w_plus}}, b_minus), stabilizer_)
          .mul_(-beta_);
  std::vector<Term> terms;
  AddTerm(terms, *layer, x, x_plus, w_plus, g_plus);
  AddTerm(terms, *layer, x, x_minus, w_minus, g_plus);
  if (beta_ != 0.0) {
    AddTerm(terms, *layer, x, x_plus, w_minus, g_minus);
    AddTerm(terms, *layer, x, x_minus, w_plus, g_minus);
  }
  return terms;
}

}  // namespace segrel::lrp
