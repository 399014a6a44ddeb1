// Convolution and transposed convolution, 1-D to 3-D, with groups, stride, padding and dilation.
//
// LibTorch 1.13's CPU transposed 3-D convolution runs a slow reference kernel (about 30x slower than the forward
// convolution on the same data), while the input-gradient of a forward convolution uses oneDNN. A transposed
// convolution *is* that input-gradient, so segrel computes every transposed convolution (the forward pass of
// ConvTranspose layers, and the adjoint of ordinary convolutions in relevance passes) as
// at::convolution_backward's input gradient.
#ifndef SEGREL_CORE_GRAPH_LAYERS_CONVOLUTION_H_
#define SEGREL_CORE_GRAPH_LAYERS_CONVOLUTION_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "core/graph/layer.h"

namespace segrel::graph {

struct ConvolutionGeometry {
  std::vector<int64_t> stride;
  std::vector<int64_t> padding;
  std::vector<int64_t> dilation;
  std::vector<int64_t> output_padding;  // transposed convolutions only
  int64_t groups = 1;
  bool transposed = false;
};

// Returns the cross-correlation of `v` with `weight` (PyTorch's convolution), without bias.
at::Tensor Correlate(const at::Tensor& v, const at::Tensor& weight, const ConvolutionGeometry& geometry);

// Returns the adjoint of Correlate() for an input of `input_sizes`, i.e. the transposed convolution of `g`.
at::Tensor CorrelateAdjoint(const at::Tensor& g, const at::Tensor& weight, const ConvolutionGeometry& geometry,
                            at::IntArrayRef input_sizes);

// A convolution layer. `weight` has PyTorch's layout ([out, in/groups, k...] for convolutions,
// [in, out/groups, k...] for transposed ones); `bias` may be undefined.
class ConvolutionLayer final : public ParametricLayer {
 public:
  ConvolutionLayer(at::Tensor weight, at::Tensor bias, ConvolutionGeometry geometry);

  absl::string_view Kind() const override { return kind_; }
  LayerRole Role() const override { return LayerRole::kConvolution; }
  at::Tensor Forward(const std::vector<at::Tensor>& inputs) const override;
  void ConvertTo(const at::TensorOptions& options) override;

  AffineParameters ParametersAt(const at::Tensor& x) const override { return {weight_, bias_}; }
  LinearMapPtr WithWeight(const at::Tensor& weight, const at::Tensor& x) const override;
  at::Tensor Affine(const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& v,
                    const at::Tensor& x) const override;
  at::Tensor BiasAsOutput(const at::Tensor& bias, const at::Tensor& x) const override;

  const ConvolutionGeometry& geometry() const { return geometry_; }

 private:
  at::Tensor weight_;
  at::Tensor bias_;
  ConvolutionGeometry geometry_;
  std::string kind_;
};

}  // namespace segrel::graph

#endif  // SEGREL_CORE_GRAPH_LAYERS_CONVOLUTION_H_
