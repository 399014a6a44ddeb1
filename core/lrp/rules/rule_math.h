// Shared pieces of the LRP rules: the stabiliser s(z), sign parts of inputs and weights, and access to a layer's
// affine form (docs/rules.md).
#ifndef SEGREL_CORE_LRP_RULES_RULE_MATH_H_
#define SEGREL_CORE_LRP_RULES_RULE_MATH_H_

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/graph/layer.h"
#include "core/lrp/rule.h"

namespace segrel::lrp {

// 1 / s(z), s(z) = z + eps * (sign(z) + [z == 0]): z shifted away from zero by eps, as Zennit's stabilize().
at::Tensor StabilizedReciprocal(const at::Tensor& z, double eps);

// x+ = max(x, 0) and x- = min(x, 0), each undefined when identically zero, so that rules drop the terms that would
// only add zeros (after a ReLU, every x- term). A part equal to x is x itself, not a copy.
struct SignParts {
  at::Tensor positive;
  at::Tensor negative;
};
SignParts SplitSigns(const at::Tensor& x);

// The layer's affine form, or InvalidArgument naming `rule` when the layer has no weights.
absl::StatusOr<const graph::ParametricLayer*> AsParametric(const LayerAtForward& at, absl::string_view rule);

// What the rules that treat positive and negative contributions apart (z+, alpha-beta, gamma, z-box) start from:
// the layer's weight and bias and their positive and negative parts, and the input's (SplitSigns).
struct SignedLayer {
  const graph::ParametricLayer* layer = nullptr;
  at::Tensor x;
  at::Tensor weight, w_plus, w_minus;
  at::Tensor bias, b_plus, b_minus;  // undefined without a bias
  SignParts x_parts;
};
absl::StatusOr<SignedLayer> SplitLayerBySign(const LayerAtForward& at, absl::string_view rule);

// A_weight v summed over the (v, weight) pairs whose v is defined, plus `bias` (may be undefined).
at::Tensor AffineSum(const graph::ParametricLayer& layer, const at::Tensor& x,
                     std::initializer_list<std::pair<at::Tensor, at::Tensor>> inputs_and_weights,
                     const at::Tensor& bias);

// Appends the term x_part (.) A_weight^T (g (.) R); a zero input part (undefined, see SplitSigns) adds none.
void AddTerm(std::vector<Term>& terms, const graph::ParametricLayer& layer, const at::Tensor& x,
             const at::Tensor& x_part, const at::Tensor& weight, const at::Tensor& output_factor);

// For the sign-split rules, after their AddTerm calls: a layer whose input is all zero (a zero-padded window, a
// blank region) contributes nothing and got no term; one term with a zero input factor keeps both passes' results
// zeros of the right shape (without it the transpose pass had no tensor to hand on).
void KeepOneTerm(std::vector<Term>& terms, const graph::ParametricLayer& layer, const at::Tensor& x,
                 const at::Tensor& weight);

}  // namespace segrel::lrp

#endif  // SEGREL_CORE_LRP_RULES_RULE_MATH_H_
