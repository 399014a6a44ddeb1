// Layer: one operation of segrel's layer graph, as the LRP engine sees it.
//
// A layer computes its forward pass and exposes the linear structure LRP needs: its Jacobian at a forward point
// (structural and parameter-free layers), or, for layers with weights, the affine form x -> A_W x + b together with
// A_W' for modified weights W' (what rules such as z+ or gamma need). Layers hold their parameters and are
// otherwise stateless: everything that depends on a particular input is computed from that input.
//
// Thread-safety: const methods are safe to call concurrently; ConvertTo() needs exclusive access.
#ifndef SEGREL_CORE_GRAPH_LAYER_H_
#define SEGREL_CORE_GRAPH_LAYER_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "core/graph/linear_map.h"

namespace segrel::graph {

// What a layer is, as far as the choice of an LRP rule is concerned (docs/rules.md, composites).
enum class LayerRole {
  kConvolution,    // convolution and transposed convolution, 1-D to 3-D
  kLinear,         // fully connected (linear, addmm, matmul by a constant)
  kNormalisation,  // batch/instance/group norm as a per-channel affine map, statistics frozen at the forward pass
  kActivation,     // elementwise nonlinearity: ReLU, LeakyReLU, PReLU, ELU, sigmoid, tanh, ...
  kSum,            // sum of data branches (residual additions)
  kAveragePool,    // average and adaptive average pooling
  kScaling,        // multiplication or division by a constant, addition of a constant
  kStructural,     // moves values: max pooling, concatenation, upsampling, padding, reshaping, slicing
};

class Layer {
 public:
  Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;
  virtual ~Layer() = default;

  // The operation's name for messages, e.g. "conv3d", "max_pool3d".
  virtual absl::string_view Kind() const = 0;
  virtual LayerRole Role() const = 0;

  // Returns f(inputs). REQUIRES: one tensor per data input, shapes as at import (batch may differ).
  virtual at::Tensor Forward(const std::vector<at::Tensor>& inputs) const = 0;

  // Returns the Jacobian of f at `inputs` (for an affine f: its linear part). `output` is Forward(inputs).
  virtual LinearMapPtr Jacobian(const std::vector<at::Tensor>& inputs, const at::Tensor& output) const = 0;

  // Returns Forward(inputs) and the Jacobian there. Layers that get both for the price of one (max pooling's
  // indices) override it.
  struct Linearisation {
    at::Tensor output;
    LinearMapPtr jacobian;
  };
  virtual Linearisation Linearise(const std::vector<at::Tensor>& inputs) const;

  // Moves the layer's parameters to `options` (device and floating-point type).
  virtual void ConvertTo(const at::TensorOptions& options) {}
};

// Returns `tensor` on `options`' device, with `options`' dtype if it is floating point (integer tensors keep
// their type). Undefined tensors stay undefined.
at::Tensor ConvertParameter(const at::Tensor& tensor, const at::TensorOptions& options);

// The affine form x -> A_weight x + bias of a layer with weights. `bias` may be undefined (no bias).
struct AffineParameters {
  at::Tensor weight;
  at::Tensor bias;
};

// A layer whose forward pass is affine in its one input once its parameters (and, for normalisation layers, the
// statistics of the forward input) are fixed: convolutions, linear and normalisation layers.
class ParametricLayer : public Layer {
 public:
  // Returns the layer's weight and bias at the forward input `x` (normalisation layers: scale and shift with the
  // statistics of `x` frozen; the weight then has one entry per channel).
  virtual AffineParameters ParametersAt(const at::Tensor& x) const = 0;

  // Returns the linear map A_weight for a weight shaped like ParametersAt(x).weight.
  virtual LinearMapPtr WithWeight(const at::Tensor& weight, const at::Tensor& x) const = 0;

  // Returns A_weight v + bias (no bias when `bias` is undefined).
  virtual at::Tensor Affine(const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& v,
                            const at::Tensor& x) const;

  // Returns `bias` shaped to broadcast against the layer's output.
  virtual at::Tensor BiasAsOutput(const at::Tensor& bias, const at::Tensor& x) const = 0;

  LinearMapPtr Jacobian(const std::vector<at::Tensor>& inputs, const at::Tensor& output) const override;
};

}  // namespace segrel::graph

#endif  // SEGREL_CORE_GRAPH_LAYER_H_
