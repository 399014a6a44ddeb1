#include "core/common/status_macros.h"
#include "core/lrp/rules/rule_math.h"
#include "core/lrp/rules/rules.h"

namespace segrel::lrp {

absl::StatusOr<std::vector<Term>> AlphaBetaRule::Terms(const LayerAtForward& at) const {
  SEGREL_ASSIGN_OR_RETURN(const SignedLayer s, SplitLayerBySign(at, Name()));
  const auto& [x_plus, x_minus] = s.x_parts;
  // The positive contributions z+ and the negative ones z-, each with its own bias part.
  const at::Tensor g_plus =
      StabilizedReciprocal(AffineSum(*s.layer, s.x, {{x_plus, s.w_plus}, {x_minus, s.w_minus}}, s.b_plus), stabilizer_)
          .mul_(alpha_);
  std::vector<Term> terms;
  AddTerm(terms, *s.layer, s.x, x_plus, s.w_plus, g_plus);
  AddTerm(terms, *s.layer, s.x, x_minus, s.w_minus, g_plus);
  if (beta_ != 0.0) {
    const at::Tensor g_minus =
        StabilizedReciprocal(AffineSum(*s.layer, s.x, {{x_plus, s.w_minus}, {x_minus, s.w_plus}}, s.b_minus),
                             stabilizer_)
            .mul_(-beta_);
    AddTerm(terms, *s.layer, s.x, x_plus, s.w_minus, g_minus);
    AddTerm(terms, *s.layer, s.x, x_minus, s.w_plus, g_minus);
  }
  KeepOneTerm(terms, *s.layer, s.x, s.w_plus);
  return terms;
}

}  // namespace segrel::lrp
