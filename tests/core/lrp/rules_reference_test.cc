// Every LRP rule against an independent dense-matrix implementation of its formula (docs/rules.md), on tiny
// convolution, transposed convolution and linear layers with random weights, biases and inputs of both signs;
// both directions (relevance and transpose) and batched relevance. Computed in float64: the tolerance 1e-9 is
// far above the rounding of either side (~1e-14 relative) and far below any formula mistake.
#include <gtest/gtest.h>
#include <torch/csrc/jit/runtime/operator.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/graph/layers/convolution.h"
#include "core/graph/layers/elementwise.h"
#include "core/graph/layers/linear.h"
#include "core/graph/layers/structural.h"
#include "core/lrp/rule.h"
#include "core/lrp/rule_registry.h"
#include "tests/core/lrp/dense_reference.h"
#include "tests/test_util.h"

namespace segrel::lrp {
namespace {

using graph::ConvolutionGeometry;
using graph::ConvolutionLayer;
using graph::Layer;
using segrel::testing::DenseLayer;
using segrel::testing::RelativeError;

constexpr double kTolerance = 1e-9;
constexpr double kEps = 1e-6;

at::Tensor Random(std::vector<int64_t> sizes) { return at::randn(sizes, at::kDouble); }

// A layer under test with its dense twin.
struct LayerCase {
  std::string name;
  std::shared_ptr<graph::ParametricLayer> layer;
  at::Tensor x;       // [1, ...]
  at::Tensor output;  // [1, ...]
  DenseLayer dense;
  at::Tensor low_bound;  // per channel, broadcastable to x
  at::Tensor high_bound;
};

LayerCase MakeConvolutionCase(std::string name, std::vector<int64_t> weight_sizes, std::vector<int64_t> spatial,
                              std::vector<int64_t> stride, std::vector<int64_t> padding,
                              std::vector<int64_t> dilation) {
  at::manual_seed(7);
  LayerCase c;
  c.name = std::move(name);
  const at::Tensor weight = Random(weight_sizes);
  const at::Tensor bias = Random({weight_sizes[0]});
  ConvolutionGeometry geometry{stride, padding, dilation, {0, 0, 0}, 1, false};
  c.layer = std::make_shared<ConvolutionLayer>(weight, bias, geometry);
  std::vector<int64_t> x_sizes = {1, weight_sizes[1]};
  x_sizes.insert(x_sizes.end(), spatial.begin(), spatial.end());
  c.x = Random(x_sizes);
  c.output = c.layer->Forward({c.x});
  c.dense.d = segrel::testing::DenseConvolution3d(weight, spatial, stride, padding, dilation);
  c.dense.ones_d = segrel::testing::DenseConvolution3d(at::ones_like(weight), spatial, stride, padding, dilation);
  c.dense.b = segrel::testing::ExpandBias(bias, c.dense.d.size(0));
  c.dense.x = c.x.flatten();
  return c;
}

LayerCase MakeTransposedCase(std::string name, std::vector<int64_t> weight_sizes, std::vector<int64_t> spatial,
                             std::vector<int64_t> stride, std::vector<int64_t> padding,
                             std::vector<int64_t> output_padding) {
  at::manual_seed(11);
  LayerCase c;
  c.name = std::move(name);
  const at::Tensor weight = Random(weight_sizes);
  const at::Tensor bias = Random({weight_sizes[1]});
  ConvolutionGeometry geometry{stride, padding, {1, 1, 1}, output_padding, 1, true};
  c.layer = std::make_shared<ConvolutionLayer>(weight, bias, geometry);
  std::vector<int64_t> x_sizes = {1, weight_sizes[0]};
  x_sizes.insert(x_sizes.end(), spatial.begin(), spatial.end());
  c.x = Random(x_sizes);
  c.output = c.layer->Forward({c.x});
  std::vector<int64_t> out_spatial;
  c.dense.d =
      segrel::testing::DenseTransposedConvolution3d(weight, spatial, stride, padding, output_padding, &out_spatial);
  c.dense.ones_d = segrel::testing::DenseTransposedConvolution3d(at::ones_like(weight), spatial, stride, padding,
                                                                 output_padding, &out_spatial);
  c.dense.b = segrel::testing::ExpandBias(bias, c.dense.d.size(0));
  c.dense.x = c.x.flatten();
  return c;
}

LayerCase MakeLinearCase() {
  at::manual_seed(13);
  LayerCase c;
  c.name = "linear";
  const at::Tensor weight = Random({5, 7});
  const at::Tensor bias = Random({5});
  c.layer = std::make_shared<graph::LinearLayer>(weight, bias);
  c.x = Random({1, 7});
  c.output = c.layer->Forward({c.x});
  c.dense.d = weight;
  c.dense.ones_d = at::ones_like(weight);
  c.dense.b = bias;
  c.dense.x = c.x.flatten();
  return c;
}

std::vector<LayerCase> AllLayerCases() {
  std::vector<LayerCase> cases;
  cases.push_back(MakeConvolutionCase("conv3d", {3, 2, 3, 3, 3}, {4, 5, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}));
  cases.push_back(
      MakeConvolutionCase("conv3d_strided_dilated", {3, 2, 2, 3, 2}, {5, 6, 4}, {2, 1, 2}, {0, 2, 1}, {1, 2, 1}));
  cases.push_back(MakeTransposedCase("conv_transpose3d", {3, 2, 2, 2, 2}, {2, 3, 2}, {2, 2, 2}, {0, 0, 0}, {0, 0, 0}));
  cases.push_back(
      MakeTransposedCase("conv_transpose3d_overlapping", {3, 2, 3, 3, 3}, {2, 3, 3}, {2, 2, 1}, {1, 1, 0}, {1, 0, 0}));
  cases.push_back(MakeLinearCase());
  return cases;
}

// Per-channel box bounds below/above every input value, and their per-element expansion for the dense side.
void SetBoxBounds(LayerCase& c) {
  std::vector<int64_t> shape(c.x.dim(), 1);
  shape[1] = c.x.size(1);
  std::vector<int64_t> other_dims;
  for (int64_t d = 0; d < c.x.dim(); ++d) {
    if (d != 1) other_dims.push_back(d);
  }
  c.low_bound = c.x.amin(other_dims, true) - 0.5;
  c.high_bound = c.x.amax(other_dims, true) + 0.25;
}

// Checks relevance (single and batched) and transpose of `relevance` against the dense matrix `lambda`
// (input elements x output elements).
void ExpectMatchesDense(const LayerRelevance& relevance, const at::Tensor& lambda, const at::Tensor& x,
                        const at::Tensor& output) {
  at::manual_seed(3);
  std::vector<int64_t> batched = output.sizes().vec();
  batched[0] = 2;
  const at::Tensor r = Random(batched);
  const at::Tensor r_in = relevance.Relevance(r, 1)[0];
  ASSERT_EQ(r_in.size(0), 2);
  for (int64_t b = 0; b < 2; ++b) {
    const at::Tensor expected = at::mv(lambda, r[b].flatten());
    EXPECT_LT(RelativeError(r_in[b].flatten(), expected), kTolerance) << "relevance, batch entry " << b;
  }
  std::vector<int64_t> input_batched = x.sizes().vec();
  input_batched[0] = 2;
  const at::Tensor u = Random(input_batched);
  const at::Tensor u_out = relevance.Transpose({u});
  for (int64_t b = 0; b < 2; ++b) {
    const at::Tensor expected = at::mv(lambda.t(), u[b].flatten());
    EXPECT_LT(RelativeError(u_out[b].flatten(), expected), kTolerance) << "transpose, batch entry " << b;
  }
  // The adjoint identity <u, Lambda r> = <Lambda^T u, r>, on segrel's two passes alone.
  const double left = (u * r_in).sum().item<double>();
  const double right = (u_out * r).sum().item<double>();
  EXPECT_NEAR(left, right, kTolerance * std::max(1.0, std::abs(left))) << "adjoint identity";
}

// One registered rule with one set of parameter values, from its dense reference (dense_reference.h).
struct RuleCase {
  const segrel::testing::DenseReference* reference;
  segrel::testing::DenseParameters parameters;
  std::string name;
};

std::vector<RuleCase> AffineRuleCases() {
  std::vector<RuleCase> cases;
  for (const segrel::testing::DenseReference& reference : segrel::testing::DenseReferences()) {
    if (reference.formula == nullptr) continue;
    for (size_t i = 0; i < reference.parameters.size(); ++i) {
      std::string name = absl::StrCat(reference.rule, "_", i);
      std::replace(name.begin(), name.end(), '-', '_');
      cases.push_back({&reference, reference.parameters[i], name});
    }
  }
  return cases;
}

// The rule's parameters for layer case `c` (z-box bounds from the case unless the input's own are asked for).
RuleParameters ParametersFor(const segrel::testing::DenseParameters& dense, const LayerCase& c) {
  RuleParameters parameters;
  parameters.epsilon = dense.epsilon;
  parameters.stabilizer = dense.stabilizer;
  parameters.gamma = dense.gamma;
  parameters.alpha = dense.alpha;
  parameters.beta = dense.beta;
  if (!dense.input_bounds) {
    parameters.box_low = c.low_bound;
    parameters.box_high = c.high_bound;
  }
  return parameters;
}

// The dense bounds per input element: the case's, or the input's own per-channel minimum and maximum.
std::pair<at::Tensor, at::Tensor> DenseBounds(const segrel::testing::DenseParameters& dense, const LayerCase& c) {
  at::Tensor low = c.low_bound, high = c.high_bound;
  if (dense.input_bounds) {
    low = c.low_bound + 0.5;
    high = c.high_bound - 0.25;
  }
  return {low.expand_as(c.x).flatten(), high.expand_as(c.x).flatten()};
}

class ParametricRuleTest : public ::testing::TestWithParam<RuleCase> {};

TEST_P(ParametricRuleTest, MatchesDenseFormulaOnEveryLayerKind) {
  const RuleCase& rule_case = GetParam();
  for (LayerCase& c : AllLayerCases()) {
    SCOPED_TRACE(c.name);
    if (rule_case.parameters.input_bounds && c.name == "linear") continue;  // degenerate bounds
    SetBoxBounds(c);
    absl::StatusOr<std::shared_ptr<const Rule>> rule =
        MakeRule(rule_case.reference->rule, ParametersFor(rule_case.parameters, c));
    ASSERT_TRUE(rule.ok()) << rule.status();
    absl::StatusOr<std::vector<Term>> terms = (*rule)->Terms({*c.layer, {c.x}, c.output});
    ASSERT_TRUE(terms.ok()) << terms.status();
    const auto [low, high] = DenseBounds(rule_case.parameters, c);
    const at::Tensor lambda = rule_case.reference->formula(c.dense, rule_case.parameters, low, high);
    ExpectMatchesDense(LayerRelevance(*std::move(terms)), lambda, c.x, c.output);
  }
}

INSTANTIATE_TEST_SUITE_P(Rules, ParametricRuleTest, ::testing::ValuesIn(AffineRuleCases()),
                         [](const ::testing::TestParamInfo<RuleCase>& info) { return info.param.name; });

// With zero biases and epsilon -> 0, every rule conserves relevance through a layer: sum R_in == sum R, for the
// relevance of every unit whose denominator does not vanish. (Units without any positive contribution lose their
// relevance under z+ and alpha-beta, e.g. transposed-convolution outputs fed by one input voxel; the dense
// reference tells which units those are: their column of Lambda sums to 0, or for alpha-beta to alpha or -beta,
// instead of 1.)
TEST_P(ParametricRuleTest, ConservesRelevanceWithZeroBias) {
  const RuleCase& rule_case = GetParam();
  for (LayerCase& c : AllLayerCases()) {
    SCOPED_TRACE(c.name);
    if (rule_case.parameters.input_bounds && c.name == "linear") continue;
    SetBoxBounds(c);
    const graph::AffineParameters p = c.layer->ParametersAt(c.x);
    // A bias-free twin of the layer.
    std::shared_ptr<graph::ParametricLayer> bias_free;
    if (const auto* conv = dynamic_cast<const ConvolutionLayer*>(c.layer.get())) {
      bias_free = std::make_shared<ConvolutionLayer>(p.weight, at::Tensor(), conv->geometry());
    } else {
      bias_free = std::make_shared<graph::LinearLayer>(p.weight, at::Tensor());
    }
    const at::Tensor output = bias_free->Forward({c.x});
    segrel::testing::DenseParameters dense_parameters = rule_case.parameters;
    dense_parameters.epsilon = 1e-12;
    dense_parameters.stabilizer = 1e-12;
    absl::StatusOr<std::shared_ptr<const Rule>> rule =
        MakeRule(rule_case.reference->rule, ParametersFor(dense_parameters, c));
    ASSERT_TRUE(rule.ok()) << rule.status();
    absl::StatusOr<std::vector<Term>> terms = (*rule)->Terms({*bias_free, {c.x}, output});
    ASSERT_TRUE(terms.ok()) << terms.status();

    DenseLayer dense = c.dense;
    dense.b = at::zeros_like(dense.b);
    const auto [low, high] = DenseBounds(dense_parameters, c);
    const at::Tensor lambda = rule_case.reference->formula(dense, dense_parameters, low, high);
    // Conserving units sum to 1 up to the stabiliser; the others to 0, alpha or -beta (with alpha = 1.5 the
    // distance from 1 is only 0.5, so the test tells them apart with a tolerance far below that).
    const at::Tensor kept = ((lambda.sum(0) - 1).abs() < 1e-3).view(output.sizes()).to(at::kDouble);
    EXPECT_GT(kept.mean().item<double>(), 0.5) << "too few units keep their relevance for a meaningful test";
    const at::Tensor r = Random(output.sizes().vec()) * kept;
    const at::Tensor r_in = LayerRelevance(*std::move(terms)).Relevance(r, 1)[0];
    EXPECT_NEAR(r_in.sum().item<double>(), r.sum().item<double>(), 1e-9 * r.abs().sum().item<double>());
  }
}

// The operator `qualified_name` (its default overload) as a callable on its first argument.
graph::OpCall MakeOpCall(const std::string& qualified_name, std::vector<c10::IValue> arguments) {
  for (const auto& op : torch::jit::getAllOperatorsFor(c10::Symbol::fromQualString(qualified_name))) {
    if (op->schema().overload_name().empty()) return graph::OpCall(op->getOperation(), std::move(arguments), 0);
  }
  ADD_FAILURE() << "no default overload of " << qualified_name;
  return graph::OpCall(nullptr, {}, 0);
}

absl::StatusOr<LayerRelevance> Prepare(const std::string& rule_name, const Layer& layer,
                                       const std::vector<at::Tensor>& inputs, const at::Tensor& output) {
  absl::StatusOr<std::shared_ptr<const Rule>> rule = MakeRule(rule_name, {});
  if (!rule.ok()) return rule.status();
  absl::StatusOr<std::vector<Term>> terms = (*rule)->Terms({layer, inputs, output});
  if (!terms.ok()) return terms.status();
  return LayerRelevance(*std::move(terms));
}

TEST(NormRule, MatchesDenseFormulaOnSumOfBranches) {
  at::manual_seed(5);
  const graph::SumLayer layer({1.0, -0.5});
  const at::Tensor x1 = Random({1, 2, 3, 3, 2}), x2 = Random({1, 2, 3, 3, 2});
  const at::Tensor z = layer.Forward({x1, x2});
  absl::StatusOr<LayerRelevance> relevance = Prepare("norm", layer, {x1, x2}, z);
  ASSERT_TRUE(relevance.ok()) << relevance.status();
  // R_k = x_k * coefficient_k * R / s(z).
  const at::Tensor r = Random({1, 2, 3, 3, 2});
  const std::vector<at::Tensor> parts = relevance->Relevance(r, 2);
  const at::Tensor g = r / segrel::testing::Stabilize(x1 - 0.5 * x2, kEps);
  EXPECT_LT(RelativeError(parts[0], x1 * g), kTolerance);
  EXPECT_LT(RelativeError(parts[1], -0.5 * x2 * g), kTolerance);
  // Transpose: u_out = (x1 u1 - 0.5 x2 u2) / s(z).
  const at::Tensor u1 = Random({1, 2, 3, 3, 2}), u2 = Random({1, 2, 3, 3, 2});
  EXPECT_LT(
      RelativeError(relevance->Transpose({u1, u2}), (x1 * u1 - 0.5 * x2 * u2) / segrel::testing::Stabilize(z, kEps)),
      kTolerance);
}

TEST(NormRule, MatchesDenseFormulaOnScalingByConstants) {
  at::manual_seed(6);
  const graph::ScaleLayer layer("mul", at::scalar_tensor(2.5, at::kDouble), at::scalar_tensor(0.3, at::kDouble));
  const at::Tensor x = Random({1, 3, 4});
  const at::Tensor z = layer.Forward({x});
  absl::StatusOr<LayerRelevance> relevance = Prepare("norm", layer, {x}, z);
  ASSERT_TRUE(relevance.ok()) << relevance.status();
  const at::Tensor lambda = at::diag(x.flatten() * 2.5 / segrel::testing::Stabilize(2.5 * x.flatten() + 0.3, kEps));
  ExpectMatchesDense(*relevance, lambda, x, z);
}

TEST(NormRule, MatchesDenseFormulaOnAveragePooling) {
  at::manual_seed(8);
  const graph::LinearFunctionLayer layer(
      "avg_pool3d", graph::LayerRole::kAveragePool,
      MakeOpCall("aten::avg_pool3d", {at::Tensor(), std::vector<int64_t>{2, 2, 2}, std::vector<int64_t>{2, 2, 2},
                                      std::vector<int64_t>{0, 0, 0}, false, true, c10::IValue()}));
  const at::Tensor x = Random({1, 2, 4, 2, 4});
  const at::Tensor z = layer.Forward({x});
  ASSERT_EQ(z.sizes(), at::IntArrayRef({1, 2, 2, 1, 2}));
  // J: each output is the mean of its 2x2x2 window.
  at::Tensor j = at::zeros({z.numel(), x.numel()}, at::kDouble);
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t p0 = 0; p0 < 2; ++p0)
      for (int64_t p2 = 0; p2 < 2; ++p2)
        for (int64_t k0 = 0; k0 < 2; ++k0)
          for (int64_t k1 = 0; k1 < 2; ++k1)
            for (int64_t k2 = 0; k2 < 2; ++k2) {
              const int64_t row = (c * 2 + p0) * 2 + p2;
              const int64_t column = ((c * 4 + 2 * p0 + k0) * 2 + k1) * 4 + 2 * p2 + k2;
              j[row][column] = 1.0 / 8.0;
            }
  absl::StatusOr<LayerRelevance> relevance = Prepare("norm", layer, {x}, z);
  ASSERT_TRUE(relevance.ok()) << relevance.status();
  const at::Tensor lambda =
      at::diag(x.flatten()).mm(j.t()).mm(at::diag(1 / segrel::testing::Stabilize(at::mv(j, x.flatten()), kEps)));
  ExpectMatchesDense(*relevance, lambda, x, z);
}

TEST(PassRule, PassesRelevanceThroughActivations) {
  const graph::ActivationLayer layer("relu", MakeOpCall("aten::relu", {at::Tensor()}));
  const at::Tensor x = Random({1, 2, 3, 3});
  const at::Tensor z = layer.Forward({x});
  absl::StatusOr<LayerRelevance> relevance = Prepare("pass", layer, {x}, z);
  ASSERT_TRUE(relevance.ok()) << relevance.status();
  ExpectMatchesDense(*relevance, at::eye(x.numel(), at::kDouble), x, z);
}

// Max pooling's Jacobian selects each window's largest element (random data: no ties); windows may overlap, so a
// winner of several windows collects relevance from each.
void ExpectMaxPoolingMatchesDense(int64_t kernel, int64_t stride, int64_t padding) {
  at::manual_seed(9);
  const graph::MaxPoolLayer layer(
      {{kernel, kernel, kernel}, {stride, stride, stride}, {padding, padding, padding}, {1, 1, 1}, false});
  const std::vector<int64_t> in = {5, 4, 3};
  const at::Tensor x = Random({1, 2, in[0], in[1], in[2]});
  const at::Tensor z = layer.Forward({x});
  at::Tensor j = at::zeros({z.numel(), x.numel()}, at::kDouble);
  const auto xa = x.accessor<double, 5>();
  const auto out = z.sizes();
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t p0 = 0; p0 < out[2]; ++p0)
      for (int64_t p1 = 0; p1 < out[3]; ++p1)
        for (int64_t p2 = 0; p2 < out[4]; ++p2) {
          int64_t best = -1;
          double best_value = -1e300;
          for (int64_t k0 = 0; k0 < kernel; ++k0)
            for (int64_t k1 = 0; k1 < kernel; ++k1)
              for (int64_t k2 = 0; k2 < kernel; ++k2) {
                const int64_t q0 = p0 * stride - padding + k0, q1 = p1 * stride - padding + k1,
                              q2 = p2 * stride - padding + k2;
                if (q0 < 0 || q1 < 0 || q2 < 0 || q0 >= in[0] || q1 >= in[1] || q2 >= in[2]) continue;
                if (xa[0][c][q0][q1][q2] > best_value) {
                  best_value = xa[0][c][q0][q1][q2];
                  best = ((c * in[0] + q0) * in[1] + q1) * in[2] + q2;
                }
              }
          j[((c * out[2] + p0) * out[3] + p1) * out[4] + p2][best] = 1.0;
        }
  absl::StatusOr<LayerRelevance> relevance = Prepare("gradient", layer, {x}, z);
  ASSERT_TRUE(relevance.ok()) << relevance.status();
  ExpectMatchesDense(*relevance, j.t(), x, z);
}

TEST(GradientRule, MaxPoolingSendsRelevanceToEachWindowsWinner) { ExpectMaxPoolingMatchesDense(2, 2, 0); }
TEST(GradientRule, OverlappingMaxPoolingAddsUpEachWinnersRelevance) { ExpectMaxPoolingMatchesDense(3, 1, 1); }

TEST(GradientRule, ConcatenationSplitsRelevance) {
  const graph::CatLayer layer(1);
  const at::Tensor x1 = Random({1, 2, 3}), x2 = Random({1, 1, 3});
  const at::Tensor z = layer.Forward({x1, x2});
  absl::StatusOr<LayerRelevance> relevance = Prepare("gradient", layer, {x1, x2}, z);
  ASSERT_TRUE(relevance.ok()) << relevance.status();
  const at::Tensor r = Random({2, 3, 3});
  const std::vector<at::Tensor> parts = relevance->Relevance(r, 2);
  EXPECT_TRUE(at::equal(parts[0], r.slice(1, 0, 2)));
  EXPECT_TRUE(at::equal(parts[1], r.slice(1, 2, 3)));
  const at::Tensor u1 = Random({2, 2, 3}), u2 = Random({2, 1, 3});
  EXPECT_TRUE(at::equal(relevance->Transpose({u1, u2}), at::cat({u1, u2}, 1)));
}

// Every registered rule is checked against an independent reference: a dense formula run with at least one set of
// parameter values, or (rules for layers without weights) tests against each kind of layer's Jacobian that exist.
TEST(RuleRegistry, EveryRegisteredRuleHasADenseReference) {
  std::set<std::string> tests;
  const ::testing::UnitTest& unit = *::testing::UnitTest::GetInstance();
  for (int s = 0; s < unit.total_test_suite_count(); ++s) {
    const ::testing::TestSuite& suite = *unit.GetTestSuite(s);
    for (int t = 0; t < suite.total_test_count(); ++t) {
      tests.insert(absl::StrCat(suite.name(), ".", suite.GetTestInfo(t)->name()));
    }
  }
  std::set<std::string> referenced;
  for (const segrel::testing::DenseReference& reference : segrel::testing::DenseReferences()) {
    SCOPED_TRACE(reference.rule);
    EXPECT_TRUE(referenced.insert(reference.rule).second) << "two references";
    if (reference.formula != nullptr) {
      EXPECT_FALSE(reference.parameters.empty()) << "a dense formula that no test runs";
    } else {
      EXPECT_FALSE(reference.layer_tests.empty()) << "neither a dense formula nor layer tests";
    }
    for (const std::string& test : reference.layer_tests) EXPECT_TRUE(tests.count(test)) << "no test " << test;
  }
  for (const std::string& name : RuleNames()) {
    EXPECT_TRUE(referenced.count(name)) << "rule " << name
                                        << " has no dense reference (tests/core/lrp/dense_reference.cc)";
  }
  EXPECT_EQ(referenced.size(), RuleNames().size()) << "a reference for a rule the registry does not have";
}

TEST(RuleRegistry, UnknownRuleIsNotFoundAndListsTheKnownOnes) {
  absl::StatusOr<std::shared_ptr<const Rule>> rule = MakeRule("zminus", {});
  ASSERT_FALSE(rule.ok());
  EXPECT_EQ(rule.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(rule.status().message()).find("zplus"), std::string::npos);
}

TEST(RuleRegistry, AlphaBetaRequiresAlphaMinusBetaOne) {
  RuleParameters parameters;
  parameters.alpha = 2.0;
  parameters.beta = 0.5;
  absl::StatusOr<std::shared_ptr<const Rule>> rule = MakeRule("alpha-beta", parameters);
  ASSERT_FALSE(rule.ok());
  EXPECT_EQ(rule.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParametricRules, RefuseLayersWithoutWeights) {
  const graph::CatLayer layer(1);
  const at::Tensor x = Random({1, 2, 3});
  absl::StatusOr<std::shared_ptr<const Rule>> rule = MakeRule("zplus", {});
  ASSERT_TRUE(rule.ok());
  absl::StatusOr<std::vector<Term>> terms = (*rule)->Terms({layer, {x, x}, layer.Forward({x, x})});
  ASSERT_FALSE(terms.ok());
  EXPECT_EQ(terms.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace segrel::lrp
