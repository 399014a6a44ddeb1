#include "core/common/status_macros.h"
#include "core/lrp/rules/rule_math.h"
#include "core/lrp/rules/rules.h"

namespace segrel::lrp {

absl::StatusOr<std::vector<Term>> FlatRule::Terms(const LayerAtForward& at) const {
  SEGREL_ASSIGN_OR_RETURN(const graph::ParametricLayer* layer, AsParametric(at, Name()));
  const at::Tensor& x = at.inputs[0];
  const at::Tensor ones = at::ones_like(layer->ParametersAt(x).weight);
  const at::Tensor g = StabilizedReciprocal(layer->Affine(ones, at::Tensor(), at::ones_like(x), x), stabilizer_);
  // The input does not enter: every input position in a window gets an equal share.
  return std::vector<Term>{Term{{at::Tensor()}, layer->WithWeight(ones, x), g}};
}

}  // namespace segrel::lrp
