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
  SEGREL_ASSIGN_OR_RETURN(const SignedLayer s, SplitLayerBySign(at, Name()));
  const at::Tensor& x = s.x;
  // Bounds stay per channel in the terms; the affine maps need them at full size.
  const at::Tensor low = low_.defined() ? low_.to(x.options()) : ChannelExtreme(x, /*maximum=*/false);
  const at::Tensor high = high_.defined() ? high_.to(x.options()) : ChannelExtreme(x, /*maximum=*/true);
  const at::Tensor z_box = at.output - s.layer->Affine(s.w_plus, s.b_plus, low.expand_as(x).contiguous(), x) -
                           s.layer->Affine(s.w_minus, s.b_minus, high.expand_as(x).contiguous(), x);
  const at::Tensor g = StabilizedReciprocal(z_box, stabilizer_);
  return std::vector<Term>{Term{{x}, s.layer->WithWeight(s.weight, x), g},
                           Term{{-low}, s.layer->WithWeight(s.w_plus, x), g},
                           Term{{-high}, s.layer->WithWeight(s.w_minus, x), g}};
}

}  // namespace segrel::lrp
