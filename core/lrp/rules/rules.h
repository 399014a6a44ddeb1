// The LRP rules of docs/rules.md, defined as in Zennit 0.5 (src/zennit/rules.py) so that results compare with
// the reference library. Notation: layer z = W x + b, s(z) the stabiliser (rule_math.h), x+/x- and W+/W- the
// positive and negative parts. Each class only builds its terms (see rule.h); the registry (rule_registry.h)
// makes them by name.
#ifndef SEGREL_CORE_LRP_RULES_RULES_H_
#define SEGREL_CORE_LRP_RULES_RULES_H_

#include <ATen/ATen.h>

#include "core/lrp/rule.h"

namespace segrel::lrp {

// epsilon: R_in = x (.) W^T (R / s(z)). With eps = 0: LRP-0. Bach et al. 2015, PLoS ONE 10(7) e0130140.
class EpsilonRule final : public Rule {
 public:
  explicit EpsilonRule(double epsilon) : epsilon_(epsilon) {}
  absl::string_view Name() const override { return "epsilon"; }
  absl::StatusOr<std::vector<Term>> Terms(const LayerAtForward& at) const override;

 private:
  double epsilon_;
};

// zplus: z+ = W+ x+ + W- x- + b+, g = R / s(z+); R_in = x+ (.) W+^T g + x- (.) W-^T g. Montavon et al. 2017,
// "Explaining nonlinear classification decisions with deep Taylor decomposition", Pattern Recognition 65.
class ZPlusRule final : public Rule {
 public:
  explicit ZPlusRule(double stabilizer) : stabilizer_(stabilizer) {}
  absl::string_view Name() const override { return "zplus"; }
  absl::StatusOr<std::vector<Term>> Terms(const LayerAtForward& at) const override;

 private:
  double stabilizer_;
};

// alpha-beta (alpha - beta = 1): g+ = R / s(W+ x+ + W- x- + b+), g- = R / s(W- x+ + W+ x- + b-);
// R_in = alpha [x+ W+^T g+ + x- W-^T g+] - beta [x+ W-^T g- + x- W+^T g-]. Bach et al. 2015.
class AlphaBetaRule final : public Rule {
 public:
  AlphaBetaRule(double alpha, double beta, double stabilizer) : alpha_(alpha), beta_(beta), stabilizer_(stabilizer) {}
  absl::string_view Name() const override { return "alpha-beta"; }
  absl::StatusOr<std::vector<Term>> Terms(const LayerAtForward& at) const override;

 private:
  double alpha_;
  double beta_;
  double stabilizer_;
};

// gamma: V+- = W + gamma W+-, c+- = b + gamma b+-; P = [z > 0] R / s(V+ x+ + V- x- + c+),
// N = [z < 0] R / s(V- x+ + V+ x- + c-); R_in = x+ V+^T P + x- V-^T P + x+ V-^T N + x- V+^T N.
// Montavon et al. 2019, "Layer-wise relevance propagation: an overview" (LNCS 11700); signs as Zennit 0.5.
class GammaRule final : public Rule {
 public:
  GammaRule(double gamma, double stabilizer) : gamma_(gamma), stabilizer_(stabilizer) {}
  absl::string_view Name() const override { return "gamma"; }
  absl::StatusOr<std::vector<Term>> Terms(const LayerAtForward& at) const override;

 private:
  double gamma_;
  double stabilizer_;
};

// flat: with W1 = all-ones weights and no bias, R_in = W1^T (R / s(W1 1)). Lapuschkin et al. 2019, "Unmasking
// Clever Hans predictors", Nature Communications 10; Kohlbrenner et al. 2020 (IJCNN) use it on the first layer.
class FlatRule final : public Rule {
 public:
  explicit FlatRule(double stabilizer) : stabilizer_(stabilizer) {}
  absl::string_view Name() const override { return "flat"; }
  absl::StatusOr<std::vector<Term>> Terms(const LayerAtForward& at) const override;

 private:
  double stabilizer_;
};

// wsquare: R_in = (W^2)^T (R / s(W^2 1 + b^2)). Montavon et al. 2017 (the w^2-rule of deep Taylor decomposition).
class WSquareRule final : public Rule {
 public:
  explicit WSquareRule(double stabilizer) : stabilizer_(stabilizer) {}
  absl::string_view Name() const override { return "wsquare"; }
  absl::StatusOr<std::vector<Term>> Terms(const LayerAtForward& at) const override;

 private:
  double stabilizer_;
};

// zbox(l, h): z_b = z - (W+ l + b+) - (W- h + b-), g = R / s(z_b); R_in = x W^T g - l W+^T g - h W-^T g.
// Montavon et al. 2017 (the z^B-rule for bounded inputs).
// `low` and `high` broadcast against the layer input (e.g. [1, C, 1, 1, 1]); when undefined, the per-channel
// minimum and maximum of the layer's input are used (for the first layer: the study's).
class ZBoxRule final : public Rule {
 public:
  ZBoxRule(at::Tensor low, at::Tensor high, double stabilizer)
      : low_(std::move(low)), high_(std::move(high)), stabilizer_(stabilizer) {}
  absl::string_view Name() const override { return "zbox"; }
  absl::StatusOr<std::vector<Term>> Terms(const LayerAtForward& at) const override;

 private:
  at::Tensor low_;
  at::Tensor high_;
  double stabilizer_;
};

// norm, for parameter-free linear layers f (sums of branches, average pooling, scaling by constants):
// R_in = x (.) J^T (R / s(f(x))), each branch getting relevance in proportion to its contribution. As Zennit's
// Norm rule (Anders et al. 2021, "Software for dataset-wide XAI: from local explanations to global insights").
class NormRule final : public Rule {
 public:
  explicit NormRule(double stabilizer) : stabilizer_(stabilizer) {}
  absl::string_view Name() const override { return "norm"; }
  absl::StatusOr<std::vector<Term>> Terms(const LayerAtForward& at) const override;
  bool UsesJacobian() const override { return true; }

 private:
  double stabilizer_;
};

// pass: R_in = R (elementwise activations; Zennit's Pass).
class PassRule final : public Rule {
 public:
  absl::string_view Name() const override { return "pass"; }
  absl::StatusOr<std::vector<Term>> Terms(const LayerAtForward& at) const override;
};

// gradient: R_in = J^T R (layers that only move values: max pooling, concatenation, upsampling, padding, ...;
// max pooling as winner-takes-all, Bach et al. 2015).
class GradientRule final : public Rule {
 public:
  absl::string_view Name() const override { return "gradient"; }
  absl::StatusOr<std::vector<Term>> Terms(const LayerAtForward& at) const override;
  bool UsesJacobian() const override { return true; }
};

}  // namespace segrel::lrp

#endif  // SEGREL_CORE_LRP_RULES_RULES_H_
