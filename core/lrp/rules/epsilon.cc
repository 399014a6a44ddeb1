#include "core/common/status_macros.h"
#include "core/lrp/rules/rule_math.h"
#include "core/lrp/rules/rules.h"

namespace segrel::lrp {

absl::StatusOr<std::vector<Term>> EpsilonRule::Terms(const LayerAtForward& at) const {
  SEGREL_ASSIGN_OR_RETURN(const graph::ParametricLayer* layer, AsParametric(at, Name()));
  const at::Tensor& x = at.inputs[0];
  // z is the layer's own output, W x + b.
  return std::vector<Term>{
      Term{{x}, layer->WithWeight(layer->ParametersAt(x).weight, x), StabilizedReciprocal(at.output, epsilon_)}};
}

}  // namespace segrel::lrp
