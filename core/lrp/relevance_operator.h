// RelevanceOperator: the linear map Lambda of LRP for one fixed forward pass, with its transpose.
//
// For a fixed forward pass every LRP rule maps relevance linearly, so a whole explanation is one linear map Lambda
// from output-shaped to input-shaped tensors (docs/method.md). Everything built on top of LRP (Eq. 2 by two
// passes or by definition, region choice) needs only the network's output, Lambda and Lambda^T: an explained
// forward pass over one graph (ExplainedForward) and a sliding-window explanation of a large volume
// (analysis::WindowedExplanation) both provide them.
#ifndef SEGREL_CORE_LRP_RELEVANCE_OPERATOR_H_
#define SEGREL_CORE_LRP_RELEVANCE_OPERATOR_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace segrel::lrp {

// Implementations are immutable after construction; their methods are safe to call concurrently.
class RelevanceOperator {
 public:
  virtual ~RelevanceOperator() = default;

  // The network's logits [1, K, ...] for the explained input.
  virtual const at::Tensor& output() const = 0;

  // The explained input's sizes ([1, C, ...]) and tensor options (device, type).
  virtual std::vector<int64_t> input_sizes() const = 0;
  virtual at::TensorOptions input_options() const = 0;

  // Returns Lambda r for output-shaped r (any batch size B; the result has the input's sizes with batch B).
  // Errors: InvalidArgument for other sizes.
  virtual absl::StatusOr<at::Tensor> Relevance(const at::Tensor& r) const = 0;

  // Returns Lambda^T u for input-shaped u (any batch size B). Errors: InvalidArgument for other sizes.
  virtual absl::StatusOr<at::Tensor> Transpose(const at::Tensor& u) const = 0;
};

}  // namespace segrel::lrp

#endif  // SEGREL_CORE_LRP_RELEVANCE_OPERATOR_H_
