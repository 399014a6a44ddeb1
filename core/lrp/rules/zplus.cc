#include "core/common/status_macros.h"
#include "core/lrp/rules/rule_math.h"
#include "core/lrp/rules/rules.h"

namespace segrel::lrp {

absl::StatusOr<std::vector<Term>> ZPlusRule::Terms(const LayerAtForward& at) const {
  SEGREL_ASSIGN_OR_RETURN(const SignedLayer s, SplitLayerBySign(at, Name()));
  const auto& [x_plus, x_minus] = s.x_parts;
  const at::Tensor g =
      StabilizedReciprocal(AffineSum(*s.layer, s.x, {{x_plus, s.w_plus}, {x_minus, s.w_minus}}, s.b_plus), stabilizer_);
  std::vector<Term> terms;
  AddTerm(terms, *s.layer, s.x, x_plus, s.w_plus, g);
  AddTerm(terms, *s.layer, s.x, x_minus, s.w_minus, g);
  KeepOneTerm(terms, *s.layer, s.x, s.w_plus);
  return terms;
}

}  // namespace segrel::lrp
