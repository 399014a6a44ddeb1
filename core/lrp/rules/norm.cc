#include "core/lrp/rules/rule_math.h"
#include "core/lrp/rules/rules.h"

namespace segrel::lrp {

absl::StatusOr<std::vector<Term>> NormRule::Terms(const LayerAtForward& at) const {
  // f(x) is the layer's own output: for a sum of branches, the sum; for scaling, a x + c.
  return std::vector<Term>{Term{at.inputs, at.Jacobian(), StabilizedReciprocal(at.output, stabilizer_)}};
}

}  // namespace segrel::lrp
