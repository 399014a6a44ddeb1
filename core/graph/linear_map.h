// LinearMap: a linear operator between tensors and its adjoint.
//
// Every layer exposes its Jacobian at a forward point as a LinearMap (for affine layers: the linear part, without
// the offset), and every LRP rule is a sum of terms built from (possibly modified) LinearMaps. The adjoint is the
// exact transpose with respect to the Euclidean inner product: <u, Apply(v)> == <Adjoint(u), v>.
//
// Maps are batch-agnostic where the layer allows it: the forward pass runs with batch 1, relevance and transpose
// passes may carry a batch of B independent tensors (e.g. one per class), and the leading dimension is free.
//
// Thread-safety: implementations are immutable after construction and safe to share between threads.
#ifndef SEGREL_CORE_GRAPH_LINEAR_MAP_H_
#define SEGREL_CORE_GRAPH_LINEAR_MAP_H_

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <vector>

namespace segrel::graph {

class LinearMap {
 public:
  virtual ~LinearMap() = default;

  // Returns A(v_1, ..., v_n). `inputs` has one tensor per layer input, in the layer's input order.
  virtual at::Tensor Apply(const std::vector<at::Tensor>& inputs) const = 0;

  // Returns A^T(g): one tensor per layer input.
  virtual std::vector<at::Tensor> Adjoint(const at::Tensor& g) const = 0;

  // Whether Apply and Adjoint always return tensors with storage of their own (never a view of their argument),
  // so that callers may scale them in place.
  virtual bool ResultsAreFresh() const { return false; }

  // Appends the tensors the map holds that belong to one forward pass (e.g. max pooling's indices; not the
  // network's weights), for memory accounting.
  virtual void CollectForwardTensors(std::vector<at::Tensor>* tensors) const {}
};

using LinearMapPtr = std::shared_ptr<const LinearMap>;

// The identity on one input.
class IdentityMap final : public LinearMap {
 public:
  at::Tensor Apply(const std::vector<at::Tensor>& inputs) const override { return inputs[0]; }
  std::vector<at::Tensor> Adjoint(const at::Tensor& g) const override { return {g}; }
};

// Elementwise multiplication by a fixed tensor that broadcasts against the input (e.g. per-channel [1, C, 1, 1, 1]).
// When the factor broadcasts the input to a larger shape, the adjoint sums over the broadcast dimensions.
class ElementwiseScaleMap final : public LinearMap {
 public:
  // `input_sizes` are the forward input's sizes; the batch dimension may differ later.
  ElementwiseScaleMap(at::Tensor factor, std::vector<int64_t> input_sizes);
  at::Tensor Apply(const std::vector<at::Tensor>& inputs) const override;
  std::vector<at::Tensor> Adjoint(const at::Tensor& g) const override;
  bool ResultsAreFresh() const override { return true; }
  void CollectForwardTensors(std::vector<at::Tensor>* tensors) const override { tensors->push_back(factor_); }

 private:
  at::Tensor factor_;
  std::vector<int64_t> input_sizes_;
};

// A linear function of one input given as a callable; the adjoint is the vector-Jacobian product by autograd,
// taken at zero (valid because the function is linear). Used for structural layers whose adjoint LibTorch
// already knows (pooling, upsampling, padding, reshaping, slicing).
class AutogradLinearMap final : public LinearMap {
 public:
  using Function = std::function<at::Tensor(const at::Tensor&)>;
  // `input_sizes` are the forward input's sizes; the batch dimension follows the cotangent's.
  AutogradLinearMap(Function function, std::vector<int64_t> input_sizes);
  at::Tensor Apply(const std::vector<at::Tensor>& inputs) const override;
  std::vector<at::Tensor> Adjoint(const at::Tensor& g) const override;

 private:
  Function function_;
  std::vector<int64_t> input_sizes_;
};

// Returns `sizes` with the leading (batch) dimension replaced by `batch`.
std::vector<int64_t> WithBatch(std::vector<int64_t> sizes, int64_t batch);

}  // namespace segrel::graph

#endif  // SEGREL_CORE_GRAPH_LINEAR_MAP_H_
