#include "core/graph/layers/convolution.h"

#include <ATen/ops/mkldnn_convolution.h>

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"

namespace segrel::graph {
namespace {

std::vector<int64_t> Zeros(size_t n) { return std::vector<int64_t>(n, 0); }

// Sizes of a transposed convolution's output for an input of `input_sizes`.
std::vector<int64_t> TransposedOutputSizes(at::IntArrayRef input_sizes, const at::Tensor& weight,
                                           const ConvolutionGeometry& g) {
  std::vector<int64_t> sizes = {input_sizes[0], weight.size(1) * g.groups};
  for (size_t d = 0; d + 2 < input_sizes.size(); ++d) {
    const int64_t kernel = weight.size(static_cast<int64_t>(d) + 2);
    sizes.push_back((input_sizes[d + 2] - 1) * g.stride[d] - 2 * g.padding[d] + g.dilation[d] * (kernel - 1) +
                    g.output_padding[d] + 1);
  }
  return sizes;
}

// The linear part of a convolution layer for one weight: v -> W * v, and its adjoint.
class ConvolutionMap final : public LinearMap {
 public:
  ConvolutionMap(at::Tensor weight, const ConvolutionGeometry& geometry, std::vector<int64_t> input_sizes)
      : weight_(std::move(weight)), geometry_(geometry), input_sizes_(std::move(input_sizes)) {}

  at::Tensor Apply(const std::vector<at::Tensor>& inputs) const override {
    const at::Tensor& v = inputs[0];
    if (!geometry_.transposed) return Correlate(v, weight_, at::Tensor(), geometry_);
    return CorrelateAdjoint(v, weight_, geometry_, TransposedOutputSizes(v.sizes(), weight_, geometry_));
  }

  std::vector<at::Tensor> Adjoint(const at::Tensor& g) const override {
    if (geometry_.transposed) return {Correlate(g, weight_, at::Tensor(), geometry_)};
    return {CorrelateAdjoint(g, weight_, geometry_, WithBatch(input_sizes_, g.size(0)))};
  }

  bool ResultsAreFresh() const override { return true; }

 private:
  at::Tensor weight_;
  ConvolutionGeometry geometry_;
  std::vector<int64_t> input_sizes_;
};

}  // namespace

namespace {
bool UsesOneDnn(const at::Tensor& v) { return v.device().is_cpu() && v.scalar_type() == at::kFloat; }
}  // namespace

at::Tensor Correlate(const at::Tensor& v, const at::Tensor& weight, const at::Tensor& bias,
                     const ConvolutionGeometry& g) {
  if (UsesOneDnn(v)) {
    return at::mkldnn_convolution(v.contiguous(), weight, bias, g.padding, g.stride, g.dilation, g.groups);
  }
  return at::convolution(v, weight, bias, g.stride, g.padding, g.dilation, /*transposed=*/false, Zeros(g.stride.size()),
                         g.groups);
}

namespace {

// The kernel of the adjoint of a stride-1 convolution: input and output channels swapped (within each group),
// spatially flipped.
at::Tensor AdjointKernel(const at::Tensor& weight, int64_t groups) {
  const int64_t out = weight.size(0), in_per_group = weight.size(1);
  std::vector<int64_t> grouped = {groups, out / groups, in_per_group};
  std::vector<int64_t> flip_dims;
  for (int64_t d = 2; d < weight.dim(); ++d) {
    grouped.push_back(weight.size(d));
    flip_dims.push_back(d + 1);
  }
  at::Tensor kernel = weight.reshape(grouped).transpose(1, 2).flip(flip_dims);
  std::vector<int64_t> sizes = {groups * in_per_group, out / groups};
  for (int64_t d = 2; d < weight.dim(); ++d) sizes.push_back(weight.size(d));
  return kernel.reshape(sizes).contiguous();
}

}  // namespace

at::Tensor CorrelateAdjoint(const at::Tensor& g, const at::Tensor& weight, const ConvolutionGeometry& geometry,
                            at::IntArrayRef input_sizes) {
  // Stride 1: the adjoint is a correlation with the adjoint kernel and padding d (k - 1) - p.
  bool stride_one = UsesOneDnn(g);
  std::vector<int64_t> adjoint_padding;
  for (size_t d = 0; d < geometry.stride.size() && stride_one; ++d) {
    const int64_t reach = geometry.dilation[d] * (weight.size(static_cast<int64_t>(d) + 2) - 1);
    stride_one = geometry.stride[d] == 1 && geometry.padding[d] <= reach;
    adjoint_padding.push_back(reach - geometry.padding[d]);
  }
  if (stride_one) {
    ConvolutionGeometry adjoint = geometry;
    adjoint.padding = adjoint_padding;
    return Correlate(g, AdjointKernel(weight, geometry.groups), at::Tensor(), adjoint);
  }
  // Only the input gradient is requested, so `input` is read for its sizes and type alone.
  const at::Tensor input_shape = at::empty(input_sizes, g.options());
  return std::get<0>(at::convolution_backward(g, input_shape, weight, /*bias_sizes=*/at::OptionalIntArrayRef(),
                                              geometry.stride, geometry.padding, geometry.dilation,
                                              /*transposed=*/false, Zeros(geometry.stride.size()), geometry.groups,
                                              {true, false, false}));
}

ConvolutionLayer::ConvolutionLayer(at::Tensor weight, at::Tensor bias, ConvolutionGeometry geometry)
    : weight_(std::move(weight)), bias_(std::move(bias)), geometry_(std::move(geometry)) {
  if (geometry_.output_padding.empty()) geometry_.output_padding = Zeros(geometry_.stride.size());
  kind_ = absl::StrCat(geometry_.transposed ? "conv_transpose" : "conv", weight_.dim() - 2, "d");
}

at::Tensor ConvolutionLayer::Forward(const std::vector<at::Tensor>& inputs) const {
  return Affine(weight_, bias_, inputs[0], inputs[0]);
}

void ConvolutionLayer::ConvertTo(const at::TensorOptions& options) {
  weight_ = ConvertParameter(weight_, options);
  bias_ = ConvertParameter(bias_, options);
}

LinearMapPtr ConvolutionLayer::WithWeight(const at::Tensor& weight, const at::Tensor& x) const {
  return std::make_shared<ConvolutionMap>(weight, geometry_, x.sizes().vec());
}

at::Tensor ConvolutionLayer::Affine(const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& v,
                                    const at::Tensor& x) const {
  if (!geometry_.transposed) return Correlate(v, weight, bias, geometry_);
  at::Tensor result = WithWeight(weight, x)->Apply({v});
  if (bias.defined()) result.add_(BiasAsOutput(bias, x));
  return result;
}

at::Tensor ConvolutionLayer::BiasAsOutput(const at::Tensor& bias, const at::Tensor& x) const {
  std::vector<int64_t> shape(weight_.dim(), 1);
  shape[1] = bias.numel();
  return bias.view(shape);
}

}  // namespace segrel::graph
