#include "tests/core/lrp/dense_reference.h"

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

at::Tensor Stabilize(const at::Tensor& z, double eps) { return z + eps * ((z == 0).to(z.scalar_type()) + z.sign()); }

namespace {

at::Tensor DenseEpsilon(const DenseLayer& l, const DenseParameters& p, const at::Tensor&, const at::Tensor&) {
  const at::Tensor z = at::mv(l.d, l.x) + l.b;
  return Diag(l.x).mm(l.d.t()).mm(Diag(1 / Stabilize(z, p.epsilon)));
}

at::Tensor DenseZPlus(const DenseLayer& l, const DenseParameters& p, const at::Tensor&, const at::Tensor&) {
  const at::Tensor xp = Pos(l.x), xn = Neg(l.x), dp = Pos(l.d), dn = Neg(l.d);
  const at::Tensor g = 1 / Stabilize(at::mv(dp, xp) + at::mv(dn, xn) + Pos(l.b), p.stabilizer);
  return (Diag(xp).mm(dp.t()) + Diag(xn).mm(dn.t())).mm(Diag(g));
}

at::Tensor DenseAlphaBeta(const DenseLayer& l, const DenseParameters& p, const at::Tensor&, const at::Tensor&) {
  const at::Tensor xp = Pos(l.x), xn = Neg(l.x), dp = Pos(l.d), dn = Neg(l.d);
  const at::Tensor gp = 1 / Stabilize(at::mv(dp, xp) + at::mv(dn, xn) + Pos(l.b), p.stabilizer);
  const at::Tensor gn = 1 / Stabilize(at::mv(dn, xp) + at::mv(dp, xn) + Neg(l.b), p.stabilizer);
  return p.alpha * (Diag(xp).mm(dp.t()) + Diag(xn).mm(dn.t())).mm(Diag(gp)) -
         p.beta * (Diag(xp).mm(dn.t()) + Diag(xn).mm(dp.t())).mm(Diag(gn));
}

at::Tensor DenseGamma(const DenseLayer& l, const DenseParameters& p, const at::Tensor&, const at::Tensor&) {
  const at::Tensor xp = Pos(l.x), xn = Neg(l.x), dp = Pos(l.d), dn = Neg(l.d);
  const at::Tensor z = at::mv(l.d, l.x) + l.b;
  const at::Tensor vp = l.d + p.gamma * dp, vn = l.d + p.gamma * dn;
  const at::Tensor cp = l.b + p.gamma * Pos(l.b), cn = l.b + p.gamma * Neg(l.b);
  const at::Tensor pos = (z > 0).to(at::kDouble) / Stabilize(at::mv(vp, xp) + at::mv(vn, xn) + cp, p.stabilizer);
  const at::Tensor neg = (z < 0).to(at::kDouble) / Stabilize(at::mv(vn, xp) + at::mv(vp, xn) + cn, p.stabilizer);
  return (Diag(xp).mm(vp.t()) + Diag(xn).mm(vn.t())).mm(Diag(pos)) +
         (Diag(xp).mm(vn.t()) + Diag(xn).mm(vp.t())).mm(Diag(neg));
}

at::Tensor DenseFlat(const DenseLayer& l, const DenseParameters& p, const at::Tensor&, const at::Tensor&) {
  return l.ones_d.t().mm(Diag(1 / Stabilize(at::mv(l.ones_d, at::ones_like(l.x)), p.stabilizer)));
}

at::Tensor DenseWSquare(const DenseLayer& l, const DenseParameters& p, const at::Tensor&, const at::Tensor&) {
  const at::Tensor d2 = l.d * l.d;
  return d2.t().mm(Diag(1 / Stabilize(at::mv(d2, at::ones_like(l.x)) + l.b * l.b, p.stabilizer)));
}

at::Tensor DenseZBox(const DenseLayer& l, const DenseParameters& p, const at::Tensor& low, const at::Tensor& high) {
  const at::Tensor dp = Pos(l.d), dn = Neg(l.d);
  const at::Tensor z = at::mv(l.d, l.x) + l.b;
  const at::Tensor g = 1 / Stabilize(z - at::mv(dp, low) - Pos(l.b) - at::mv(dn, high) - Neg(l.b), p.stabilizer);
  return (Diag(l.x).mm(l.d.t()) - Diag(low).mm(dp.t()) - Diag(high).mm(dn.t())).mm(Diag(g));
}

// Parameter sets: the defaults, and values far from them (a large epsilon, beta = 0, gamma = 0 and 1).
DenseParameters Epsilon(double epsilon) {
  DenseParameters p;
  p.epsilon = epsilon;
  return p;
}
DenseParameters AlphaBeta(double alpha, double beta) {
  DenseParameters p;
  p.alpha = alpha;
  p.beta = beta;
  return p;
}
DenseParameters Gamma(double gamma) {
  DenseParameters p;
  p.gamma = gamma;
  return p;
}
DenseParameters InputBounds() {
  DenseParameters p;
  p.input_bounds = true;
  return p;
}

}  // namespace

const std::vector<DenseReference>& DenseReferences() {
  static const auto* const references = new std::vector<DenseReference>{
      {"epsilon", DenseEpsilon, {Epsilon(1e-6), Epsilon(0.01), Epsilon(0.5)}, {}},
      {"zplus", DenseZPlus, {DenseParameters()}, {}},
      {"alpha-beta", DenseAlphaBeta, {AlphaBeta(2, 1), AlphaBeta(1, 0), AlphaBeta(1.5, 0.5)}, {}},
      {"gamma", DenseGamma, {Gamma(0.25), Gamma(0), Gamma(1)}, {}},
      {"flat", DenseFlat, {DenseParameters()}, {}},
      {"wsquare", DenseWSquare, {DenseParameters()}, {}},
      {"zbox", DenseZBox, {DenseParameters(), InputBounds()}, {}},
      {"norm",
       nullptr,
       {},
       {"NormRule.MatchesDenseFormulaOnSumOfBranches", "NormRule.MatchesDenseFormulaOnScalingByConstants",
        "NormRule.MatchesDenseFormulaOnAveragePooling"}},
      {"pass", nullptr, {}, {"PassRule.PassesRelevanceThroughActivations"}},
      {"gradient",
       nullptr,
       {},
       {"GradientRule.MaxPoolingSendsRelevanceToEachWindowsWinner",
        "GradientRule.OverlappingMaxPoolingAddsUpEachWinnersRelevance", "GradientRule.ConcatenationSplitsRelevance"}},
  };
  return *references;
}

}  // namespace segrel::testing
