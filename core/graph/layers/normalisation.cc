#include "core/graph/layers/normalisation.h"

#include <memory>
#include <utility>
#include <vector>

namespace segrel::graph {
namespace {

// Shapes per-channel values ([C], or [N, C]) to broadcast against a tensor of `ndim` dimensions.
at::Tensor AlongChannels(const at::Tensor& values, int64_t ndim) {
  std::vector<int64_t> shape(ndim, 1);
  if (values.dim() == 2) shape[0] = values.size(0);
  shape[1] = values.size(-1);
  return values.reshape(shape);
}

}  // namespace

std::unique_ptr<ChannelAffineLayer> MakeRunningStatisticsAffine(std::string kind, const at::Tensor& gamma,
                                                                const at::Tensor& beta, const at::Tensor& mean,
                                                                const at::Tensor& var, double eps) {
  at::Tensor scale = at::rsqrt(var + eps);
  if (gamma.defined()) scale = scale * gamma;
  at::Tensor shift = -mean * scale;
  if (beta.defined()) shift = shift + beta;
  return std::make_unique<ChannelAffineLayer>(std::move(kind), scale, shift);
}

ChannelAffineLayer::ChannelAffineLayer(std::string kind, at::Tensor scale, at::Tensor shift)
    : kind_(std::move(kind)), scale_(std::move(scale)), shift_(std::move(shift)) {}

at::Tensor ChannelAffineLayer::Forward(const std::vector<at::Tensor>& inputs) const {
  const at::Tensor& x = inputs[0];
  return at::addcmul(AlongChannels(shift_, x.dim()), x, AlongChannels(scale_, x.dim()));
}

void ChannelAffineLayer::ConvertTo(const at::TensorOptions& options) {
  scale_ = ConvertParameter(scale_, options);
  shift_ = ConvertParameter(shift_, options);
}

LinearMapPtr ChannelAffineLayer::WithWeight(const at::Tensor& weight, const at::Tensor& x) const {
  return std::make_shared<ElementwiseScaleMap>(AlongChannels(weight, x.dim()), x.sizes().vec());
}

at::Tensor ChannelAffineLayer::BiasAsOutput(const at::Tensor& bias, const at::Tensor& x) const {
  return AlongChannels(bias, x.dim());
}

GroupNormLayer::GroupNormLayer(std::string kind, int64_t groups, at::Tensor gamma, at::Tensor beta, double eps)
    : kind_(std::move(kind)), groups_(groups), gamma_(std::move(gamma)), beta_(std::move(beta)), eps_(eps) {}

at::Tensor GroupNormLayer::Forward(const std::vector<at::Tensor>& inputs) const {
  return at::group_norm(inputs[0], groups_, gamma_, beta_, eps_);
}

void GroupNormLayer::ConvertTo(const at::TensorOptions& options) {
  gamma_ = ConvertParameter(gamma_, options);
  beta_ = ConvertParameter(beta_, options);
}

AffineParameters GroupNormLayer::ParametersAt(const at::Tensor& x) const {
  const int64_t batch = x.size(0);
  const int64_t channels = x.size(1);
  const at::Tensor grouped = x.reshape({batch, groups_, -1});
  // Biased variance, as group_norm normalises with it.
  const at::Tensor mean = grouped.mean(-1);
  const at::Tensor inv_std = at::rsqrt(grouped.var(-1, /*unbiased=*/false) + eps_);
  const int64_t per_group = channels / groups_;
  at::Tensor scale = inv_std.repeat_interleave(per_group, 1);          // [N, C]
  at::Tensor shift = -(mean.repeat_interleave(per_group, 1) * scale);  // [N, C]
  if (gamma_.defined()) {
    scale = scale * gamma_;
    shift = shift * gamma_;
  }
  if (beta_.defined()) shift = shift + beta_;
  return {scale, shift};
}

LinearMapPtr GroupNormLayer::WithWeight(const at::Tensor& weight, const at::Tensor& x) const {
  return std::make_shared<ElementwiseScaleMap>(AlongChannels(weight, x.dim()), x.sizes().vec());
}

at::Tensor GroupNormLayer::BiasAsOutput(const at::Tensor& bias, const at::Tensor& x) const {
  return AlongChannels(bias, x.dim());
}

LayerNormLayer::LayerNormLayer(std::vector<int64_t> normalized_shape, at::Tensor gamma, at::Tensor beta, double eps)
    : normalized_shape_(std::move(normalized_shape)), gamma_(std::move(gamma)), beta_(std::move(beta)), eps_(eps) {}

at::Tensor LayerNormLayer::Forward(const std::vector<at::Tensor>& inputs) const {
  return at::layer_norm(inputs[0], normalized_shape_, gamma_, beta_, eps_);
}

void LayerNormLayer::ConvertTo(const at::TensorOptions& options) {
  gamma_ = ConvertParameter(gamma_, options);
  beta_ = ConvertParameter(beta_, options);
}

AffineParameters LayerNormLayer::ParametersAt(const at::Tensor& x) const {
  std::vector<int64_t> dims;
  for (size_t d = 0; d < normalized_shape_.size(); ++d) dims.push_back(x.dim() - 1 - static_cast<int64_t>(d));
  // Biased variance, as layer_norm normalises with it.
  const at::Tensor mean = x.mean(dims, /*keepdim=*/true);
  const at::Tensor inv_std = at::rsqrt(x.var(dims, /*unbiased=*/false, /*keepdim=*/true) + eps_);
  at::Tensor scale = inv_std.expand(x.sizes());
  at::Tensor shift = -(mean * inv_std).expand(x.sizes());
  if (gamma_.defined()) {
    scale = scale * gamma_;
    shift = shift * gamma_;
  }
  if (beta_.defined()) shift = shift + beta_;
  return {scale.contiguous(), shift.contiguous()};
}

LinearMapPtr LayerNormLayer::WithWeight(const at::Tensor& weight, const at::Tensor& x) const {
  return std::make_shared<ElementwiseScaleMap>(weight, x.sizes().vec());
}

}  // namespace segrel::graph
