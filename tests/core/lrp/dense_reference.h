// Independent dense-matrix versions of layers and LRP rules, written from their definitions with explicit loops
// and matrix algebra (no convolution kernels), for the rule reference tests.
#ifndef SEGREL_TESTS_CORE_LRP_DENSE_REFERENCE_H_
#define SEGREL_TESTS_CORE_LRP_DENSE_REFERENCE_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace segrel::testing {

// The matrix D (output elements x input elements, row-major C order of [C, spatial...] without batch) of a 3-D
// convolution y = conv3d(x, weight) (no bias), built tap by tap from the definition
//   y[o, p] = sum_{i, k} weight[o, i, k] x[i, p * stride - padding + k * dilation].
at::Tensor DenseConvolution3d(const at::Tensor& weight, const std::vector<int64_t>& input_spatial,
                              const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                              const std::vector<int64_t>& dilation);

// Output spatial sizes of that convolution.
std::vector<int64_t> Convolution3dOutputSizes(const std::vector<int64_t>& input_spatial, const at::Tensor& weight,
                                              const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                                              const std::vector<int64_t>& dilation);

// The matrix of a transposed 3-D convolution (weight [in, out, k...]), from its scatter definition
//   y[o, p * stride - padding + k] += weight[i, o, k] x[i, p],
// with `output_padding` extra rows at the high end.
at::Tensor DenseTransposedConvolution3d(const at::Tensor& weight, const std::vector<int64_t>& input_spatial,
                                        const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                                        const std::vector<int64_t>& output_padding,
                                        std::vector<int64_t>* output_spatial);

// A per-output-element bias vector from a per-channel bias.
at::Tensor ExpandBias(const at::Tensor& bias, int64_t output_elements);

// s(z) = z + eps * (sign(z) + [z == 0]).
at::Tensor Stabilize(const at::Tensor& z, double eps);

// A layer y = D x + b (D dense, b expanded per output element) for the dense rule formulas.
struct DenseLayer {
  at::Tensor d;       // [out, in]
  at::Tensor b;       // [out]
  at::Tensor ones_d;  // [out, in]: same layer with all-ones weights (flat rule)
  at::Tensor x;       // [in]
};

// The scalar parameters of the rules (lrp::RuleParameters without the z-box bounds, which come per layer).
struct DenseParameters {
  double epsilon = 1e-6;     // epsilon's epsilon
  double stabilizer = 1e-6;  // the other rules' stabiliser
  double gamma = 0.25;
  double alpha = 2.0;
  double beta = 1.0;
  bool input_bounds = false;  // zbox: no bounds given, the input's per-channel minimum and maximum are used
};

// One registered rule's independent reference.
//   Affine rules (layers with weights): `formula` gives the rule's linear map as a dense matrix Lambda (input
//   elements x output elements, R_in = Lambda R), written from the formulas of docs/rules.md; `low`/`high` are
//   the z-box bounds per input element. `parameters`: the values the reference tests run (each one a test).
//   Rules for layers without weights (norm, pass, gradient): no formula; `layer_tests` names the tests in
//   rules_reference_test.cc that compare them with the Jacobian of each kind of layer they explain.
using DenseFormula = at::Tensor (*)(const DenseLayer& layer, const DenseParameters& parameters, const at::Tensor& low,
                                    const at::Tensor& high);
struct DenseReference {
  std::string rule;  // the registry's name
  DenseFormula formula = nullptr;
  std::vector<DenseParameters> parameters;
  std::vector<std::string> layer_tests;
};

// Every rule reference, one entry per rule. Adding a rule to the registry needs one entry here
// (RuleRegistry.EveryRegisteredRuleHasADenseReference fails without it).
const std::vector<DenseReference>& DenseReferences();

}  // namespace segrel::testing

#endif  // SEGREL_TESTS_CORE_LRP_DENSE_REFERENCE_H_
