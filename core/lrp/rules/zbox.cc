#include <vector>

#include "core/common/status_macros.h"
#include "core/lrp/rules/rule_math.h"
#include "core/lrp/rules/rules.h"

namespace segrel::lrp {
namespace {

// Per-channel extreme of x over every dimension but the channel dimension 1, shaped to broadcast against x.
at::Tensor ChannelExtreme(const at::Tensor& x, bool maximum) {
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d != 1) dims.push_back(d);
  }
  return maximum ? x.amax(dims, /*keepdim=*/true) : x.amin(dims, /*keepdim=*/true);
}

}  // namespace

absl::StatusOr<std::vector<Term>> ZBoxRule::Terms(const LayerAtForward& at) const {
  SEGREL_ASSIGN_OR_RETURN(const graph::ParametricLayer* layer, AsParametric(at, Name()));
  const at::Tensor& x = at.inputs[0];
  const graph::AffineParameters p = layer->ParametersAt(x);
  // Bounds stay per channel in the terms; the affine maps need them at full size.
  const at::Tensor low = low_.defined() ? low_.to(x.options()) : ChannelExtreme(x, /*maximum=*/false);
  const at::Tensor high = high_.defined() ? high_.to(x.options()) : ChannelExtreme(x, /*maximum=*/true);
  const at::Tensor w_plus = p.weight.clamp_min(0);
  const at::Tensor w_minus = p.weight.clamp_max(0);
  const at::Tensor b_plus = p.bias.defined() ? p.bias.clamp_min(0) : at::Tensor();
  const at::Tensor b_minus = p.bias.defined() ? p.bias.clamp_max(0) : at::Tensor();
  const at::Tensor z_box = at.output - layer->Affine(w_plus, b_plus, low.expand_as(x).contiguous(), x) -
                           layer->Affine(w_minus, b_minus, high.expand_as(x).contiguous(), x);
  const at::Tensor g = StabilizedReciprocal(z_box, stabilizer_);
  return std::vector<Term>{Term{{x}, layer->WithWeight(p.weight, x), g},
                           Term{{-low}, layer->WithWeight(w_plus, x), g},
                           Term{{-high}, layer->WithWeight(w_minus, x), g}};
}

}  // namespace segrel::lrp
