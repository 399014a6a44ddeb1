#include "core/lrp/rules/rule_math.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace segrel::lrp {

at::Tensor StabilizedReciprocal(const at::Tensor& z, double eps) {
  if (!z.device().is_cpu() || !z.is_contiguous() || !z.is_floating_point()) {
    return at::reciprocal(at::where(z >= 0, z + eps, z - eps));
  }
  // One pass instead of five (compare, add, subtract, select, divide): this runs once per layer and explanation.
  at::Tensor result = at::empty_like(z);
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "StabilizedReciprocal", [&] {
    const scalar_t* in = z.data_ptr<scalar_t>();
    scalar_t* out = result.data_ptr<scalar_t>();
    const scalar_t shift = static_cast<scalar_t>(eps);
    at::parallel_for(0, z.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const scalar_t v = in[i];
        out[i] = scalar_t(1) / (v >= 0 ? v + shift : v - shift);
      }
    });
  });
  return result;
}

SignParts SplitSigns(const at::Tensor& x) {
  const auto [minimum, maximum] = at::aminmax(x);
  const double low = minimum.item<double>();
  const double high = maximum.item<double>();
  SignParts parts;
  if (high > 0) parts.positive = low >= 0 ? x : x.clamp_min(0);
  if (low < 0) parts.negative = high <= 0 ? x : x.clamp_max(0);
  return parts;
}

absl::StatusOr<const graph::ParametricLayer*> AsParametric(const LayerAtForward& at, absl::string_view rule) {
  const auto* layer = dynamic_cast<const graph::ParametricLayer*>(&at.layer);
  if (layer == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("rule ", rule, " needs a layer with weights, not ", at.layer.Kind()));
  }
  return layer;
}

absl::StatusOr<SignedLayer> SplitLayerBySign(const LayerAtForward& at, absl::string_view rule) {
  SignedLayer s;
  absl::StatusOr<const graph::ParametricLayer*> layer = AsParametric(at, rule);
  if (!layer.ok()) return layer.status();
  s.layer = *layer;
  s.x = at.inputs[0];
  const graph::AffineParameters p = s.layer->ParametersAt(s.x);
  s.weight = p.weight;
  s.w_plus = p.weight.clamp_min(0);
  s.w_minus = p.weight.clamp_max(0);
  s.bias = p.bias;
  if (p.bias.defined()) {
    s.b_plus = p.bias.clamp_min(0);
    s.b_minus = p.bias.clamp_max(0);
  }
  s.x_parts = SplitSigns(s.x);
  return s;
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

void KeepOneTerm(std::vector<Term>& terms, const graph::ParametricLayer& layer, const at::Tensor& x,
                 const at::Tensor& weight) {
  if (!terms.empty()) return;
  terms.push_back(Term{{at::zeros_like(x)}, layer.WithWeight(weight, x), at::Tensor()});
}

}  // namespace segrel::lrp
