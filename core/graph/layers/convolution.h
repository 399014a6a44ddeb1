// Convolution and transposed convolution, 1-D to 3-D, with groups, stride, padding and dilation.
//
// Speed on the CPU. LibTorch 1.13 picks oneDNN (mkldnn) only for inputs with N*C*D*H > 20480 and otherwise runs
// a reference kernel up to 50x slower (e.g. a 32->64-channel 3x3x3 convolution at 24x24x16: 196 ms instead of
// 4 ms), and its transposed 3-D convolution is always that slow kernel. So, for float32 on the CPU, segrel
//   - calls oneDNN's convolution directly;
//   - computes the adjoint of a stride-1 convolution (relevance passes) as a forward convolution with the flipped,
//     transposed kernel, and every other transposed convolution as at::convolution_backward's input gradient.
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

// Returns the cross-correlation of `v` with `weight` (PyTorch's convolution) plus `bias` (may be undefined).
at::Tensor Correlate(const at::Tensor& v, const at::Tensor& weight, const at::Tensor& bias,
                     const ConvolutionGeometry& geometry);

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
