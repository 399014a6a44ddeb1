#include "core/lrp/rules/rule_math.h"

#include "absl/strings/string_view.h"
#include "absl/strings/str_cat.h"

namespace segrel::lrp {

at::Tensor StabilizedReciprocal(const at::Tensor& z, double eps) {
  return at::reciprocal(at::where(z >= 0, z + eps, z - eps));
}

at::Tensor PositivePart(const at::Tensor& x) {
  if (!(x > 0).any().item<bool>()) return at::Tensor();
  if (!(x < 0).any().item<bool>()) return x;
  return x.clamp_min(0);
}

at::Tensor NegativePart(const at::Tensor& x) {
  if (!(x < 0).any().item<bool>()) return at::Tensor();
  if (!(x > 0).any().item<bool>()) return x;
  return x.clamp_max(0);
}

absl::StatusOr<const graph::ParametricLayer*> AsParametric(const LayerAtForward& at, absl::string_view rule) {
  const auto* layer = dynamic_cast<const graph::ParametricLayer*>(&at.layer);
  if (layer == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("rule ", rule, " needs a layer with weights, not ", at.layer.Kind()));
  }
  return layer;
}

at::Tensor AffineSum(const graph::ParametricLayer& layer, const at::Tensor& x,
                     std::initializer_list<std::pair<at::Tensor, at::Tensor>> inputs_and_weights,
                     const at::Tensor& bias) {
  at::Tensor sum;
  at::Tensor pending_bias = bias;
  for (const auto& [v, weight] : inputs_and_weights) {
    if (!v.defined()) continue;
    at::Tensor part = layer.Affine(weight, pending_bias, v, x);
    pending_bias = at::Tensor();
    sum = sum.defined() ? sum.add_(part) : part;
  }
  if (!sum.defined()) {
    // Every input part is zero: only the bias remains.
    sum = layer.Affine(inputs_and_weights.begin()->second, bias, at::zeros_like(x), x);
  }
  return sum;
}

void AddTerm(std::vector<Term>& terms, const graph::ParametricLayer& layer, const at::Tensor& x,
             const at::Tensor& x_part, const at::Tensor& weight, const at::Tensor& output_factor) {
  if (!x_part.defined()) return;
  terms.push_back(Term{{x_part}, layer.WithWeight(weight, x), output_factor});
}

}  // namespace segrel::lrp
