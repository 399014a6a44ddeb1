#include "tests/core/lrp/dense_reference.h"

#include <stdexcept>

namespace segrel::testing {
namespace {

int64_t Numel(const std::vector<int64_t>& sizes) {
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  return n;
}

at::Tensor Diag(const at::Tensor& v) { return at::diag(v); }
at::Tensor Pos(const at::Tensor& t) { return t.clamp_min(0); }
at::Tensor Neg(const at::Tensor& t) { return t.clamp_max(0); }

}  // namespace

std::vector<int64_t> Convolution3dOutputSizes(const std::vector<int64_t>& input_spatial, const at::Tensor& weight,
                                              const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                                              const std::vector<int64_t>& dilation) {
  std::vector<int64_t> out;
  for (int d = 0; d < 3; ++d) {
    out.push_back((input_spatial[d] + 2 * padding[d] - dilation[d] * (weight.size(d + 2) - 1) - 1) / stride[d] + 1);
  }
  return out;
}

at::Tensor DenseConvolution3d(const at::Tensor& weight, const std::vector<int64_t>& in,
                              const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                              const std::vector<int64_t>& dilation) {
  const int64_t out_channels = weight.size(0), in_channels = weight.size(1);
  const std::vector<int64_t> out = Convolution3dOutputSizes(in, weight, stride, padding, dilation);
  const auto w = weight.accessor<double, 5>();
  at::Tensor dense = at::zeros({out_channels * Numel(out), in_channels * Numel(in)}, at::kDouble);
  auto d = dense.accessor<double, 2>();
  for (int64_t o = 0; o < out_channels; ++o)
    for (int64_t p0 = 0; p0 < out[0]; ++p0)
      for (int64_t p1 = 0; p1 < out[1]; ++p1)
        for (int64_t p2 = 0; p2 < out[2]; ++p2) {
          const int64_t row = ((o * out[0] + p0) * out[1] + p1) * out[2] + p2;
          for (int64_t i = 0; i < in_channels; ++i)
            for (int64_t k0 = 0; k0 < weight.size(2); ++k0)
              for (int64_t k1 = 0; k1 < weight.size(3); ++k1)
                for (int64_t k2 = 0; k2 < weight.size(4); ++k2) {
                  const int64_t q0 = p0 * stride[0] - padding[0] + k0 * dilation[0];
                  const int64_t q1 = p1 * stride[1] - padding[1] + k1 * dilation[1];
                  const int64_t q2 = p2 * stride[2] - padding[2] + k2 * dilation[2];
                  if (q0 < 0 || q1 < 0 || q2 < 0 || q0 >= in[0] || q1 >= in[1] || q2 >= in[2]) continue;
                  const int64_t column = ((i * in[0] + q0) * in[1] + q1) * in[2] + q2;
                  d[row][column] += w[o][i][k0][k1][k2];
                }
        }
  return dense;
}

at::Tensor DenseTransposedConvolution3d(const at::Tensor& weight, const std::vector<int64_t>& in,
                                        const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                                        const std::vector<int64_t>& output_padding,
                                        std::vector<int64_t>* output_spatial) {
  const int64_t in_channels = weight.size(0), out_channels = weight.size(1);
  std::vector<int64_t> out;
  for (int d = 0; d < 3; ++d) {
    out.push_back((in[d] - 1) * stride[d] - 2 * padding[d] + weight.size(d + 2) + output_padding[d]);
  }
  *output_spatial = out;
  const auto w = weight.accessor<double, 5>();
  at::Tensor dense = at::zeros({out_channels * Numel(out), in_channels * Numel(in)}, at::kDouble);
  auto d = dense.accessor<double, 2>();
  for (int64_t i = 0; i < in_channels; ++i)
    for (int64_t p0 = 0; p0 < in[0]; ++p0)
      for (int64_t p1 = 0; p1 < in[1]; ++p1)
        for (int64_t p2 = 0; p2 < in[2]; ++p2) {
          const int64_t column = ((i * in[0] + p0) * in[1] + p1) * in[2] + p2;
          for (int64_t o = 0; o < out_channels; ++o)
            for (int64_t k0 = 0; k0 < weight.size(2); ++k0)
              for (int64_t k1 = 0; k1 < weight.size(3); ++k1)
                for (int64_t k2 = 0; k2 < weight.size(4); ++k2) {
                  const int64_t q0 = p0 * stride[0] - padding[0] + k0;
                  const int64_t q1 = p1 * stride[1] - padding[1] + k1;
                  const int64_t q2 = p2 * stride[2] - padding[2] + k2;
                  if (q0 < 0 || q1 < 0 || q2 < 0 || q0 >= out[0] || q1 >= out[1] || q2 >= out[2]) continue;
                  const int64_t row = ((o * out[0] + q0) * out[1] + q1) * out[2] + q2;
                  d[row][column] += w[i][o][k0][k1][k2];
                }
        }
  return dense;
}

at::Tensor ExpandBias(const at::Tensor& bias, int64_t output_elements) {
  return bias.repeat_interleave(output_elements / bias.numel());
}

at::Tensor Stabilize(const at::Tensor& z, double eps) {
  return z + eps * ((z == 0).to(z.scalar_type()) + z.sign());
}

at::Tensor DenseRule(const std::string& rule, const DenseLayer& layer, double eps, double gamma, double alpha,
                     double beta, const at::Tensor& low, const at::Tensor& high) {
  const at::Tensor& d = layer.d;
  const at::Tensor& b = layer.b;
  const at::Tensor& x = layer.x;
  const at::Tensor xp = Pos(x), xn = Neg(x), dp = Pos(d), dn = Neg(d);
  const at::Tensor z = at::mv(d, x) + b;
  if (rule == "epsilon") return Diag(x).mm(d.t()).mm(Diag(1 / Stabilize(z, eps)));
  if (rule == "zplus") {
    const at::Tensor g = 1 / Stabilize(at::mv(dp, xp) + at::mv(dn, xn) + Pos(b), eps);
    return (Diag(xp).mm(dp.t()) + Diag(xn).mm(dn.t())).mm(Diag(g));
  }
  if (rule == "alpha-beta") {
    const at::Tensor gp = 1 / Stabilize(at::mv(dp, xp) + at::mv(dn, xn) + Pos(b), eps);
    const at::Tensor gn = 1 / Stabilize(at::mv(dn, xp) + at::mv(dp, xn) + Neg(b), eps);
    return alpha * (Diag(xp).mm(dp.t()) + Diag(xn).mm(dn.t())).mm(Diag(gp)) -
           beta * (Diag(xp).mm(dn.t()) + Diag(xn).mm(dp.t())).mm(Diag(gn));
  }
  if (rule == "gamma") {
    const at::Tensor vp = d + gamma * dp, vn = d + gamma * dn;
    const at::Tensor cp = b + gamma * Pos(b), cn = b + gamma * Neg(b);
    const at::Tensor p = (z > 0).to(at::kDouble) / Stabilize(at::mv(vp, xp) + at::mv(vn, xn) + cp, eps);
    const at::Tensor n = (z < 0).to(at::kDouble) / Stabilize(at::mv(vn, xp) + at::mv(vp, xn) + cn, eps);
    return (Diag(xp).mm(vp.t()) + Diag(xn).mm(vn.t())).mm(Diag(p)) +
           (Diag(xp).mm(vn.t()) + Diag(xn).mm(vp.t())).mm(Diag(n));
  }
  if (rule == "flat") {
    const at::Tensor ones = at::ones_like(x);
    return layer.ones_d.t().mm(Diag(1 / Stabilize(at::mv(layer.ones_d, ones), eps)));
  }
  if (rule == "wsquare") {
    const at::Tensor d2 = d * d;
    return d2.t().mm(Diag(1 / Stabilize(at::mv(d2, at::ones_like(x)) + b * b, eps)));
  }
  if (rule == "zbox") {
    const at::Tensor g = 1 / Stabilize(z - at::mv(dp, low) - Pos(b) - at::mv(dn, high) - Neg(b), eps);
    return (Diag(x).mm(d.t()) - Diag(low).mm(dp.t()) - Diag(high).mm(dn.t())).mm(Diag(g));
  }
  throw std::invalid_argument("no dense reference for rule " + rule);
}

}  // namespace segrel::testing
