#include "core/lrp/rules/rules.h"

namespace segrel::lrp {

absl::StatusOr<std::vector<Term>> GradientRule::Terms(const LayerAtForward& at) const {
  return std::vector<Term>{Term{{}, at.layer.Jacobian(at.inputs, at.output), at::Tensor()}};
}

}  // namespace segrel::lrp
