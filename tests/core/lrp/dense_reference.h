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

// The rule's linear map as a dense matrix (input elements x output elements), R_in = Lambda R, for a layer
// y = D x + b (D dense, b expanded), written from DESIGN section 2's formulas. `ones_d` is the matrix of the layer
// with all-ones weights (flat rule), `low`/`high` the zbox bounds per input element. Rule names as the registry's.
struct DenseLayer {
  at::Tensor d;       // [out, in]
  at::Tensor b;       // [out]
  at::Tensor ones_d;  // [out, in]: same layer with all-ones weights
  at::Tensor x;       // [in]
};
at::Tensor DenseRule(const std::string& rule, const DenseLayer& layer, double eps, double gamma, double alpha,
                     double beta, const at::Tensor& low, const at::Tensor& high);

}  // namespace segrel::testing

#endif  // SEGREL_TESTS_CORE_LRP_DENSE_REFERENCE_H_
