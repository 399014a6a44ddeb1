#include <memory>

#include "absl/strings/str_cat.h"
#include "core/lrp/rules/rules.h"

namespace segrel::lrp {

absl::StatusOr<std::vector<Term>> PassRule::Terms(const LayerAtForward& at) const {
  if (at.inputs.size() != 1 || at.inputs[0].sizes() != at.output.sizes()) {
    return absl::InvalidArgumentError(absl::StrCat("rule pass needs an elementwise layer, not ", at.layer.Kind()));
  }
  return std::vector<Term>{Term{{}, std::make_shared<graph::IdentityMap>(), at::Tensor()}};
}

}  // namespace segrel::lrp
