// ONNX's Resize, every mode but tf_crop_and_resize. Where PyTorch's upsampling kernels compute exactly what ONNX
// defines, segrel runs them (they are fast, and the layer is the one the TorchScript importer makes):
//   nearest, asymmetric, floor                   -> upsample_nearest (PyTorch's F.interpolate(mode="nearest"))
//   nearest, half_pixel, round_prefer_ceil       -> _upsample_nearest_exact ("nearest-exact")
//   linear, half_pixel (pytorch_half_pixel)      -> upsample_{linear1d,bilinear2d,trilinear3d}, align_corners=False
//   linear, align_corners (integral output size) -> the same with align_corners=True
// Every other mode is a separable linear map: one [out, in] interpolation matrix per resized dimension, built at
// import from ONNX's formulas (coordinate transformation, nearest rounding, linear or cubic weights with edge
// padding and exclude_outside), applied dimension by dimension.
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/graph/onnx/onnx_ops.h"

namespace segrel::graph::onnx_import {
namespace {

struct ResizeAttributes {
  std::string mode;
  std::string transform;
  std::string nearest_mode;
  double cubic_a = -0.75;
  bool exclude_outside = false;
};

// The input coordinate of output index `x` along a dimension of `in` values resized by `scale` to `length`
// (in * scale, not rounded, as ONNX defines it).
double SourceCoordinate(const ResizeAttributes& resize, int64_t x, int64_t in, double scale, double length) {
  const std::string& t = resize.transform;
  if (t == "half_pixel") return (x + 0.5) / scale - 0.5;
  if (t == "pytorch_half_pixel") return length > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
  if (t == "align_corners") return length == 1 ? 0.0 : x * (in - 1) / (length - 1);
  if (t == "tf_half_pixel_for_nn") return (x + 0.5) / scale;
  return x / scale;  // asymmetric
}

int64_t NearestIndex(const std::string& mode, double coordinate) {
  const double floor = std::floor(coordinate);
  const double fraction = coordinate - floor;
  if (mode == "floor") return static_cast<int64_t>(floor);
  if (mode == "ceil") return static_cast<int64_t>(std::ceil(coordinate));
  if (fraction == 0.5) return static_cast<int64_t>(mode == "round_prefer_ceil" ? floor + 1 : floor);
  return static_cast<int64_t>(std::round(coordinate));
}

// Keys' cubic convolution kernel with parameter a, at distance d.
double CubicWeight(double a, double d) {
  d = std::abs(d);
  if (d <= 1) return ((a + 2) * d - (a + 3)) * d * d + 1;
  if (d < 2) return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a;
  return 0.0;
}

// The [out, in] matrix of one resized dimension (float64).
at::Tensor InterpolationMatrix(const ResizeAttributes& resize, int64_t in, int64_t out, double scale, double length) {
  at::Tensor matrix = at::zeros({out, in}, at::kDouble);
  auto weights = matrix.accessor<double, 2>();
  auto clamp = [in](int64_t i) { return std::min<int64_t>(std::max<int64_t>(i, 0), in - 1); };
  for (int64_t x = 0; x < out; ++x) {
    const double coordinate = SourceCoordinate(resize, x, in, scale, length);
    if (resize.mode == "nearest") {
      weights[x][clamp(NearestIndex(resize.nearest_mode, coordinate))] = 1.0;
      continue;
    }
    const int64_t base = static_cast<int64_t>(std::floor(coordinate));
    const double fraction = coordinate - base;
    if (resize.mode == "linear") {
      weights[x][clamp(base)] += 1 - fraction;
      weights[x][clamp(base + 1)] += fraction;
      continue;
    }
    double total = 0.0;  // cubic: taps base-1 .. base+2, edge-padded, or dropped and renormalised
    for (int64_t tap = base - 1; tap <= base + 2; ++tap) {
      const bool outside = tap < 0 || tap >= in;
      if (outside && resize.exclude_outside) continue;
      const double weight = CubicWeight(resize.cubic_a, coordinate - tap);
      weights[x][clamp(tap)] += weight;
      total += weight;
    }
    if (resize.exclude_outside && total != 0.0) {
      for (int64_t i = 0; i < in; ++i) weights[x][i] /= total;
    }
  }
  return matrix;
}

// y = x resized by the matrices of the spatial dimensions 2, 3, ...
at::Tensor ApplyMatrices(const at::Tensor& x, const std::vector<at::Tensor>& matrices) {
  at::Tensor y = x;
  for (size_t d = 0; d < matrices.size(); ++d) {
    const int64_t dim = static_cast<int64_t>(d) + 2;
    y = at::matmul(y.movedim(dim, -1), matrices[d].to(y.dtype()).t()).movedim(-1, dim);
  }
  return y;
}

// PyTorch's kernel for the resize, when it computes ONNX's definition exactly; else none.
std::optional<std::pair<std::string, OpCall::TensorFunction>> TorchKernel(
    const ResizeAttributes& resize, const std::vector<int64_t>& spatial,
    const std::vector<c10::optional<double>>& scales, bool integral_lengths) {
  const size_t dims = spatial.size();
  if (dims > 3) return std::nullopt;
  const bool half_pixel = resize.transform == "half_pixel" || resize.transform == "pytorch_half_pixel";
  if (resize.transform == "pytorch_half_pixel") {
    for (int64_t size : spatial) {
      if (size == 1) return std::nullopt;
    }
  }
  if (resize.mode == "nearest" && resize.transform == "asymmetric" && resize.nearest_mode == "floor") {
    return std::make_pair(
        absl::StrCat("upsample_nearest", dims, "d"),
        OpCall::TensorFunction([spatial, scales](const at::Tensor& x, const std::vector<at::Tensor>&) {
          switch (spatial.size()) {
            case 1:
              return at::upsample_nearest1d(x, spatial, scales[0]);
            case 2:
              return at::upsample_nearest2d(x, spatial, scales[0], scales[1]);
            default:
              return at::upsample_nearest3d(x, spatial, scales[0], scales[1], scales[2]);
          }
        }));
  }
  if (resize.mode == "nearest" && half_pixel && resize.nearest_mode == "round_prefer_ceil") {
    return std::make_pair(
        absl::StrCat("upsample_nearest_exact", dims, "d"),
        OpCall::TensorFunction([spatial, scales](const at::Tensor& x, const std::vector<at::Tensor>&) {
          switch (spatial.size()) {
            case 1:
              return at::_upsample_nearest_exact1d(x, spatial, scales[0]);
            case 2:
              return at::_upsample_nearest_exact2d(x, spatial, scales[0], scales[1]);
            default:
              return at::_upsample_nearest_exact3d(x, spatial, scales[0], scales[1], scales[2]);
          }
        }));
  }
  const bool align = resize.transform == "align_corners";
  if (resize.mode == "linear" && (half_pixel || (align && integral_lengths))) {
    return std::make_pair(
        std::string(dims == 1   ? "upsample_linear1d"
                    : dims == 2 ? "upsample_bilinear2d"
                                : "upsample_trilinear3d"),
        OpCall::TensorFunction([spatial, scales, align](const at::Tensor& x, const std::vector<at::Tensor>&) {
          switch (spatial.size()) {
            case 1:
              return at::upsample_linear1d(x, spatial, align, scales[0]);
            case 2:
              return at::upsample_bilinear2d(x, spatial, align, scales[0], scales[1]);
            default:
              return at::upsample_trilinear3d(x, spatial, align, scales[0], scales[1], scales[2]);
          }
        }));
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<std::vector<OnnxValue>> Resize(OnnxNode& node) {
  ResizeAttributes resize;
  SEGREL_ASSIGN_OR_RETURN(resize.mode, node.String("mode", "nearest"));
  SEGREL_ASSIGN_OR_RETURN(resize.transform, node.String("coordinate_transformation_mode", "half_pixel"));
  SEGREL_ASSIGN_OR_RETURN(resize.nearest_mode, node.String("nearest_mode", "round_prefer_floor"));
  SEGREL_ASSIGN_OR_RETURN(resize.cubic_a, node.Float("cubic_coeff_a", -0.75));
  SEGREL_ASSIGN_OR_RETURN(const int64_t exclude_outside, node.Int("exclude_outside", 0));
  resize.exclude_outside = exclude_outside != 0;
  const std::vector<std::string> transforms = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                               "tf_half_pixel_for_nn"};
  const std::vector<std::string> nearest_modes = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  if ((resize.mode != "nearest" && resize.mode != "linear" && resize.mode != "cubic") ||
      std::find(transforms.begin(), transforms.end(), resize.transform) == transforms.end() ||
      std::find(nearest_modes.begin(), nearest_modes.end(), resize.nearest_mode) == nearest_modes.end()) {
    return node.Unsupported(absl::StrCat("Resize with mode ", resize.mode, ", coordinate_transformation_mode ",
                                         resize.transform, " and nearest_mode ", resize.nearest_mode));
  }
  const std::vector<int64_t> sizes = InputSizes(node, 0);
  const size_t rank = sizes.size();
  if (rank < 3) return node.Unsupported(absl::StrCat("resizing a tensor of ", rank, " dimensions"));
  // Output sizes and, per dimension, the scale and the unrounded length in * scale.
  std::vector<int64_t> output;
  std::vector<double> scale(rank);
  std::vector<double> length(rank);
  std::vector<c10::optional<double>> torch_scales(rank - 2);
  bool integral_lengths = true;
  const OnnxValue& scales_input = node.Input(2);
  if (node.Input(3).kind != OnnxValue::Kind::kAbsent) {
    SEGREL_ASSIGN_OR_RETURN(output, node.IntsInput(3, "sizes"));
    if (output.size() != rank) return node.Invalid("sizes has the wrong length");
    for (size_t d = 0; d < rank; ++d) {
      scale[d] = static_cast<double>(output[d]) / sizes[d];
      length[d] = static_cast<double>(output[d]);
    }
  } else if (scales_input.IsConstant() && scales_input.constant.numel() > 0) {
    const at::Tensor factors = scales_input.constant.to(at::kDouble).reshape({-1});
    if (factors.numel() != static_cast<int64_t>(rank)) return node.Invalid("scales has the wrong length");
    for (size_t d = 0; d < rank; ++d) {
      scale[d] = factors[d].item<double>();
      if (!std::isfinite(scale[d]) || scale[d] <= 0 || scale[d] > (int64_t{1} << 24)) {
        return node.Invalid(absl::StrCat("scale ", scale[d], " is not a positive number up to 2^24"));
      }
      length[d] = sizes[d] * scale[d];
      output.push_back(static_cast<int64_t>(std::floor(length[d])));
      integral_lengths &= length[d] == std::floor(length[d]);
      if (d >= 2) torch_scales[d - 2] = scale[d];
    }
  } else {
    SEGREL_RETURN_IF_ERROR(node.ConstantInput(2, "scales").status());
    return node.Invalid("it has neither scales nor sizes");
  }
  if (output[0] != sizes[0] || output[1] != sizes[1]) {
    return node.Unsupported("resizing the batch or channel dimension");
  }
  SEGREL_RETURN_IF_ERROR(node.ElementCount(output, "the output").status());
  for (size_t d = 2; d < rank; ++d) {
    SEGREL_RETURN_IF_ERROR(node.ElementCount({output[d], sizes[d]}, "an interpolation matrix").status());
  }

  const std::vector<int64_t> spatial(output.begin() + 2, output.end());
  if (auto kernel = TorchKernel(resize, spatial, torch_scales, integral_lengths); kernel.has_value()) {
    return LinearOfInput(node, kernel->first, LayerRole::kStructural, std::move(kernel->second));
  }
  std::vector<at::Tensor> matrices;
  for (size_t d = 2; d < rank; ++d) {
    matrices.push_back(InterpolationMatrix(resize, sizes[d], output[d], scale[d], length[d]).to(at::kFloat));
  }
  return LinearOfInput(
      node, absl::StrCat("resize_", resize.mode), LayerRole::kStructural,
      [](const at::Tensor& x, const std::vector<at::Tensor>& constants) { return ApplyMatrices(x, constants); },
      matrices);
}

}  // namespace segrel::graph::onnx_import
