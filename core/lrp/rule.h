// Rule: how an LRP rule redistributes relevance through one layer, and its transpose, from one description.
//
// Every rule in docs/rules.md is, for a fixed forward pass, a sum of terms
//     R_in = sum_k  m_k (.) A_k^T ( g_k (.) R )
// with an input modifier m_k (x, x+, x-, a bound, or 1), a linear map A_k (the layer's own with a modified weight,
// e.g. W+, or its Jacobian) and an output scaling g_k (e.g. 1 / s(z+)) that depend only on the forward pass.
// A rule therefore only says how to build its terms (Rule::Terms); LayerRelevance applies them in both directions:
//     relevance:  R   -> sum_k m_k (.) A_k^T (g_k (.) R)
//     transpose:  u   -> sum_k g_k (.) A_k (m_k (.) u)
// which are exact transposes of each other, so the engine's transpose pass (c = Lambda^T 1, docs/method.md)
// needs nothing rule-specific.
#ifndef SEGREL_CORE_LRP_RULE_H_
#define SEGREL_CORE_LRP_RULE_H_

#include <ATen/ATen.h>

#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "core/graph/layer.h"
#include "core/graph/linear_map.h"

namespace segrel::lrp {

// One term m (.) A^T (g (.) R).
struct Term {
  std::vector<at::Tensor> input_factors;  // m: one per layer input (broadcastable); undefined means 1
  graph::LinearMapPtr map;                // A
  at::Tensor output_factor;               // g (broadcastable to the output); undefined means 1
};

// A layer at one forward point, as rules see it.
struct LayerAtForward {
  const graph::Layer& layer;
  const std::vector<at::Tensor>& inputs;
  const at::Tensor& output;
  graph::LinearMapPtr jacobian = nullptr;  // the layer's Jacobian there, when the rule UsesJacobian()

  // The Jacobian given, or else the layer's.
  graph::LinearMapPtr Jacobian() const { return jacobian ? jacobian : layer.Jacobian(inputs, output); }
};

// An LRP rule. Implementations are immutable and thread-safe.
class Rule {
 public:
  virtual ~Rule() = default;

  // The rule's name as in the registry, e.g. "zplus".
  virtual absl::string_view Name() const = 0;

  // Returns the rule's terms for `at`. Errors: InvalidArgument when the rule does not apply to the layer (e.g.
  // z+ on a layer without weights).
  virtual absl::StatusOr<std::vector<Term>> Terms(const LayerAtForward& at) const = 0;

  // Whether Terms() needs the layer's Jacobian (the engine then computes it with the forward pass).
  virtual bool UsesJacobian() const { return false; }
};

// A rule's terms for one layer and forward pass, applied in both directions. Relevance tensors may carry a batch
// of independent relevances (the forward pass has batch 1).
class LayerRelevance {
 public:
  LayerRelevance() = default;
  explicit LayerRelevance(std::vector<Term> terms) : terms_(std::move(terms)) {}

  // R_in for each layer input, given the relevance at the layer's output.
  std::vector<at::Tensor> Relevance(const at::Tensor& relevance, size_t num_inputs) const;

  // The transpose: the output-side tensor for input-side tensors `u` (one per layer input).
  at::Tensor Transpose(const std::vector<at::Tensor>& u) const;

  // For moving diagonal scalings between layers (see explainer.cc, FuseScalings):
  // the input factor that every term applies to the layer's only input, or nullptr;
  const at::Tensor* SharedInputFactor() const;
  // removes it from every term;
  void DropInputFactors();
  // multiplies every term's output factor by `factor` (terms sharing a factor keep sharing one);
  void ScaleOutputFactors(const at::Tensor& factor);
  // whether relevance passes unchanged (the pass rule).
  bool IsIdentity() const;

  // Appends the tensors the terms hold (factors, the maps' per-forward tensors), for memory accounting.
  void CollectTensors(std::vector<at::Tensor>* tensors) const;

 private:
  std::vector<Term> terms_;
};

}  // namespace segrel::lrp

#endif  // SEGREL_CORE_LRP_RULE_H_
