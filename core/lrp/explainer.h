// The LRP engine: a forward pass that prepares every layer's rule, then relevance passes (Lambda r) and transpose
// passes (Lambda^T u) over the layer graph (docs/method.md, LRP as a linear map).
//
// For a fixed forward pass LRP is one linear map Lambda from output-shaped to input-shaped tensors. Explainer runs
// the forward pass and returns an ExplainedForward, which holds what the rules need and applies Lambda and its
// transpose as often as wanted. Relevance and transpose passes may carry a batch of B independent tensors (e.g. one
// relevance per class), computed together.
//
// Usage:
//   SEGREL_ASSIGN_OR_RETURN(Composite composite, Composite::Create("epsilon-plus"));
//   const Explainer explainer(graph, composite);  // graph: std::shared_ptr<const graph::LayerGraph>
//   SEGREL_ASSIGN_OR_RETURN(ExplainedForward forward, explainer.Forward(input));
//   SEGREL_ASSIGN_OR_RETURN(at::Tensor map, forward.Relevance(output_relevance));
#ifndef SEGREL_CORE_LRP_EXPLAINER_H_
#define SEGREL_CORE_LRP_EXPLAINER_H_

#include <ATen/ATen.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/graph/layer_graph.h"
#include "core/lrp/composite.h"
#include "core/lrp/relevance_operator.h"
#include "core/lrp/rule.h"

namespace segrel::lrp {

// The result of an explained forward pass. Immutable; thread-safe. Keeps the graph and the forward pass's
// intermediate tensors that the rules need alive.
class ExplainedForward final : public RelevanceOperator {
 public:
  // The network's logits for the input (before any output softmax or sigmoid).
  const at::Tensor& output() const override { return output_; }
  const at::Tensor& input() const { return input_; }
  std::vector<int64_t> input_sizes() const override { return input_.sizes().vec(); }
  at::TensorOptions input_options() const override { return input_.options(); }

  // Returns Lambda r: the input relevance for output relevance `r` (sizes of output(), any batch size B; the result
  // has the input's sizes with batch B). Errors: InvalidArgument for other sizes.
  absl::StatusOr<at::Tensor> Relevance(const at::Tensor& r) const override;

  // Returns Lambda^T u for an input-shaped `u` (any batch size B); Transpose(ones) gives the normalisers c of
  // Eq. 2 in two passes (docs/method.md). Errors: InvalidArgument for other sizes.
  absl::StatusOr<at::Tensor> Transpose(const at::Tensor& u) const override;

  // Bytes of the tensors kept for the passes (each storage counted once; not the network's weights).
  int64_t RetainedBytes() const;

 private:
  friend class Explainer;
  ExplainedForward(std::shared_ptr<const graph::LayerGraph> graph, at::Tensor input, at::Tensor output,
                   std::vector<LayerRelevance> layers);

  std::shared_ptr<const graph::LayerGraph> graph_;
  at::Tensor input_;
  at::Tensor output_;
  std::vector<LayerRelevance> layers_;  // one per graph node
};

// Applies a composite to a layer graph. Thread-safe.
class Explainer {
 public:
  // REQUIRES: `graph` is non-null.
  Explainer(std::shared_ptr<const graph::LayerGraph> graph, Composite composite);

  // Runs the forward pass on `input` and prepares each layer's rule. Errors: InvalidArgument when `input` does not
  // match the graph's input sizes or a rule does not fit a layer; LibTorch failures as CatchTorch maps them.
  absl::StatusOr<ExplainedForward> Forward(const at::Tensor& input) const;

  const graph::LayerGraph& graph() const { return *graph_; }
  const Composite& composite() const { return composite_; }

 private:
  std::shared_ptr<const graph::LayerGraph> graph_;
  Composite composite_;
  std::vector<bool> first_;  // per node: the first convolution/linear layer
};

}  // namespace segrel::lrp

#endif  // SEGREL_CORE_LRP_EXPLAINER_H_
