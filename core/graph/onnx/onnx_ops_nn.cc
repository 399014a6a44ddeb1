// ONNX operators of neural networks: convolutions, pooling, normalisation, activations, softmax, resizing.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
#include "core/graph/layers/convolution.h"
#include "core/graph/layers/elementwise.h"
#include "core/graph/layers/normalisation.h"
#include "core/graph/layers/structural.h"
#include "core/graph/onnx/onnx_ops.h"

namespace segrel::graph::onnx_import {
namespace {

using Factory = OnnxOpFactory;

// ---- padding and windows -----------------------------------------------------------------------------------------

// Padding at the start and the end of each spatial dimension.
struct Padding {
  std::vector<int64_t> begin;
  std::vector<int64_t> end;
  bool Symmetric() const { return begin == end; }
  bool Any() const {
    for (size_t i = 0; i < begin.size(); ++i) {
      if (begin[i] != 0 || end[i] != 0) return true;
    }
    return false;
  }
};

// The "pads" attribute of `dims` spatial dimensions (begins, then ends; default none).
absl::StatusOr<Padding> ExplicitPadding(const OnnxNode& node, size_t dims) {
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> pads, node.Ints("pads", std::vector<int64_t>(2 * dims, 0)));
  if (pads.size() != 2 * dims) return node.Invalid(absl::StrCat("pads has ", pads.size(), " entries, not ", 2 * dims));
  Padding padding{std::vector<int64_t>(pads.begin(), pads.begin() + dims),
                  std::vector<int64_t>(pads.begin() + dims, pads.end())};
  for (size_t d = 0; d < dims; ++d) {
    if (padding.begin[d] < 0 || padding.end[d] < 0) return node.Unsupported("negative pads");
  }
  return padding;
}

// Padding from "pads" or "auto_pad" for windows of `extent` ((kernel - 1) * dilation + 1) moved by `stride` over
// `input` (spatial sizes).
absl::StatusOr<Padding> WindowPadding(const OnnxNode& node, const std::vector<int64_t>& input,
                                      const std::vector<int64_t>& extent, const std::vector<int64_t>& stride) {
  const size_t dims = input.size();
  SEGREL_ASSIGN_OR_RETURN(const std::string auto_pad, node.String("auto_pad", "NOTSET"));
  Padding padding{std::vector<int64_t>(dims, 0), std::vector<int64_t>(dims, 0)};
  if (auto_pad == "NOTSET") {
    SEGREL_ASSIGN_OR_RETURN(padding, ExplicitPadding(node, dims));
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    for (size_t d = 0; d < dims; ++d) {
      const int64_t output = (input[d] + stride[d] - 1) / stride[d];
      const int64_t total = std::max<int64_t>(0, (output - 1) * stride[d] + extent[d] - input[d]);
      padding.begin[d] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      padding.end[d] = total - padding.begin[d];
    }
  } else if (auto_pad != "VALID") {
    return node.Unsupported(absl::StrCat("auto_pad ", auto_pad));
  }
  return padding;
}

// at::constant_pad_nd's list for `padding` of the last dimensions: last dimension first.
std::vector<int64_t> TorchPadList(const Padding& padding) {
  std::vector<int64_t> list;
  for (size_t d = padding.begin.size(); d-- > 0;) {
    list.push_back(padding.begin[d]);
    list.push_back(padding.end[d]);
  }
  return list;
}

// A layer padding the spatial dimensions with `value` (its linear part pads with zeros).
absl::StatusOr<OnnxValue> AddPadding(OnnxNode& node, int data, const Padding& padding, double value) {
  const std::vector<int64_t> list = TorchPadList(padding);
  auto pad_with = [list](double fill) {
    return [list, fill](const at::Tensor& x, const std::vector<at::Tensor>&) {
      return at::constant_pad_nd(x, list, fill);
    };
  };
  std::optional<OpCall> linear;
  if (value != 0.0) linear = OpCall::OfFunction(pad_with(0.0));
  return node.Add(std::make_unique<LinearFunctionLayer>("pad", LayerRole::kStructural,
                                                        OpCall::OfFunction(pad_with(value)), std::move(linear)),
                  {data});
}

absl::StatusOr<std::vector<int64_t>> SpatialInts(const OnnxNode& node, absl::string_view name, size_t dims,
                                                 int64_t fallback) {
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> values, node.Ints(name, std::vector<int64_t>(dims, fallback)));
  if (values.size() != dims) return node.Invalid(absl::StrCat(name, " has ", values.size(), " entries, not ", dims));
  for (int64_t value : values) {
    if (value < fallback)
      return node.Invalid(absl::StrCat(name, " holds ", value, "; the least it may be is ", fallback));
  }
  return values;
}

// The spatial sizes of data input 0, which must have `dims` spatial dimensions.
absl::StatusOr<std::vector<int64_t>> SpatialSizes(const OnnxNode& node, int data, size_t dims) {
  const std::vector<int64_t> sizes = node.Sizes(data);
  if (sizes.size() != dims + 2) {
    return node.Invalid(absl::StrCat("its input has sizes [", absl::StrJoin(sizes, ", "), "]; the operator needs ",
                                     dims, " spatial dimensions after the batch and channel dimensions"));
  }
  return std::vector<int64_t>(sizes.begin() + 2, sizes.end());
}

// ---- convolutions --------------------------------------------------------------------------------------------

// When the convolution's output is read only by a BatchNormalization in inference mode whose parameters are known,
// folds it into the weights, as torch.jit.freeze does: W' = W s, b' = (b - mean) s + beta, s = gamma / sqrt(var+eps).
absl::Status FoldBatchNorm(OnnxNode& node, int64_t channel_dim, at::Tensor& weight, at::Tensor& bias) {
  int reader_index = -1;
  const onnx::NodeProto* reader = node.SoleReader(0, &reader_index);
  if (reader == nullptr || reader->op_type() != "BatchNormalization" || reader->input_size() != 5) {
    return absl::OkStatus();
  }
  const OnnxNode batch_norm = node.Other(reader_index);
  SEGREL_ASSIGN_OR_RETURN(const int64_t training, batch_norm.Int("training_mode", 0));
  if (training != 0) return absl::OkStatus();
  for (int k = 1; k < reader->output_size(); ++k) {
    if (!reader->output(k).empty()) return absl::OkStatus();
  }
  std::vector<at::Tensor> parameters;  // scale, B, mean, var
  for (int k = 1; k < 5; ++k) {
    const OnnxValue* value = node.Lookup(reader->input(k));
    if (value == nullptr || !value->IsConstant()) return absl::OkStatus();
    parameters.push_back(AsParameter(value->constant).reshape({-1}));
  }
  SEGREL_ASSIGN_OR_RETURN(const double eps, batch_norm.Float("epsilon", 1e-5));
  // In torch.jit.freeze's order of operations (its conv-bn folding), so that both importers round alike.
  const at::Tensor inverse_deviation = at::rsqrt(parameters[3] + eps);
  std::vector<int64_t> shape(weight.dim(), 1);
  shape[channel_dim] = -1;
  weight = (weight * (parameters[0] * inverse_deviation).reshape(shape)).contiguous();
  const at::Tensor old_bias = bias.defined() ? bias : at::zeros_like(parameters[2]);
  bias = ((old_bias - parameters[2]) * inverse_deviation * parameters[0] + parameters[1]).contiguous();
  node.Absorb(reader_index);
  return absl::OkStatus();
}

// The weights (input 1) and optional bias (input 2) of Conv and ConvTranspose, as layer parameters.
absl::StatusOr<AffineParameters> ConvolutionParameters(const OnnxNode& node) {
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor weight, node.ConstantInput(1, "weights"));
  if (weight.dim() < 3) return node.Invalid("its weights have fewer than 3 dimensions");
  AffineParameters parameters{AsParameter(weight), at::Tensor()};
  if (node.Input(2).kind != OnnxValue::Kind::kAbsent) {
    SEGREL_ASSIGN_OR_RETURN(const at::Tensor bias, node.ConstantInput(2, "bias"));
    parameters.bias = AsParameter(bias);
  }
  return parameters;
}

absl::StatusOr<std::vector<OnnxValue>> Conv(OnnxNode& node) {
  SEGREL_ASSIGN_OR_RETURN(const int data, node.DataInput(0, "input"));
  SEGREL_ASSIGN_OR_RETURN(AffineParameters parameters, ConvolutionParameters(node));
  at::Tensor& weight = parameters.weight;
  at::Tensor& bias = parameters.bias;
  const size_t dims = weight.dim() - 2;
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> input, SpatialSizes(node, data, dims));
  ConvolutionGeometry geometry;
  SEGREL_ASSIGN_OR_RETURN(geometry.stride, SpatialInts(node, "strides", dims, 1));
  SEGREL_ASSIGN_OR_RETURN(geometry.dilation, SpatialInts(node, "dilations", dims, 1));
  SEGREL_ASSIGN_OR_RETURN(geometry.groups, node.Int("group", 1));
  std::vector<int64_t> extent;
  for (size_t d = 0; d < dims; ++d) extent.push_back((weight.size(d + 2) - 1) * geometry.dilation[d] + 1);
  SEGREL_ASSIGN_OR_RETURN(const Padding padding, WindowPadding(node, input, extent, geometry.stride));
  SEGREL_RETURN_IF_ERROR(FoldBatchNorm(node, /*channel_dim=*/0, weight, bias));
  int conv_input = data;
  if (padding.Symmetric()) {
    geometry.padding = padding.begin;
  } else {  // asymmetric: pad first, convolve without padding
    SEGREL_ASSIGN_OR_RETURN(const OnnxValue padded, AddPadding(node, data, padding, 0.0));
    conv_input = padded.data;
    geometry.padding.assign(dims, 0);
  }
  SEGREL_ASSIGN_OR_RETURN(
      OnnxValue output, node.Add(std::make_unique<ConvolutionLayer>(weight, bias, std::move(geometry)), {conv_input}));
  return Outputs(std::move(output));
}

// ONNX's transposed convolution: output = stride (in - 1) + output_padding + extent - pad_begin - pad_end. PyTorch's
// takes one padding per dimension; asymmetric padding becomes the smaller one and a crop of the rest.
absl::StatusOr<std::vector<OnnxValue>> ConvTranspose(OnnxNode& node) {
  SEGREL_ASSIGN_OR_RETURN(const int data, node.DataInput(0, "input"));
  SEGREL_ASSIGN_OR_RETURN(AffineParameters parameters, ConvolutionParameters(node));
  at::Tensor& weight = parameters.weight;
  at::Tensor& bias = parameters.bias;
  const size_t dims = weight.dim() - 2;
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> input, SpatialSizes(node, data, dims));
  ConvolutionGeometry geometry;
  geometry.transposed = true;
  SEGREL_ASSIGN_OR_RETURN(geometry.stride, SpatialInts(node, "strides", dims, 1));
  SEGREL_ASSIGN_OR_RETURN(geometry.dilation, SpatialInts(node, "dilations", dims, 1));
  SEGREL_ASSIGN_OR_RETURN(geometry.output_padding, SpatialInts(node, "output_padding", dims, 0));
  SEGREL_ASSIGN_OR_RETURN(geometry.groups, node.Int("group", 1));
  SEGREL_ASSIGN_OR_RETURN(const std::string auto_pad, node.String("auto_pad", "NOTSET"));
  SEGREL_ASSIGN_OR_RETURN(std::vector<int64_t> output_shape, node.Ints("output_shape"));
  if (output_shape.size() == dims + 2) output_shape.erase(output_shape.begin(), output_shape.begin() + 2);
  if (!output_shape.empty() && output_shape.size() != dims) return node.Invalid("output_shape has the wrong length");
  if (output_shape.empty() && (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER")) {
    for (size_t d = 0; d < dims; ++d) output_shape.push_back(input[d] * geometry.stride[d]);
  }
  Padding padding{std::vector<int64_t>(dims, 0), std::vector<int64_t>(dims, 0)};
  for (size_t d = 0; d < dims; ++d) {
    const int64_t full = geometry.stride[d] * (input[d] - 1) + geometry.output_padding[d] +
                         (weight.size(d + 2) - 1) * geometry.dilation[d] + 1;
    if (output_shape.empty()) continue;
    // A negative total extends the output with zeros; ONNX's reference halves it rounding down.
    const int64_t total = full - output_shape[d];
    const int64_t half = total >= 0 ? total / 2 : -((1 - total) / 2);
    padding.begin[d] = auto_pad == "SAME_UPPER" ? half : total - half;
    padding.end[d] = total - padding.begin[d];
  }
  if (output_shape.empty() && auto_pad == "NOTSET") {
    SEGREL_ASSIGN_OR_RETURN(padding, ExplicitPadding(node, dims));
  } else if (output_shape.empty() && auto_pad != "VALID") {
    return node.Unsupported(absl::StrCat("auto_pad ", auto_pad));
  }
  if (geometry.groups == 1) SEGREL_RETURN_IF_ERROR(FoldBatchNorm(node, /*channel_dim=*/1, weight, bias));
  bool extends = false;
  for (size_t d = 0; d < dims; ++d) {
    geometry.padding.push_back(std::max<int64_t>(0, std::min(padding.begin[d], padding.end[d])));
    extends |= padding.begin[d] < 0 || padding.end[d] < 0;
  }
  if (extends && bias.defined()) return node.Unsupported("an output_shape beyond the full output, with a bias");
  Padding rest = padding;  // what the symmetric padding leaves: cropped, or (negative padding) zeros added
  for (size_t d = 0; d < dims; ++d) {
    rest.begin[d] = geometry.padding[d] - padding.begin[d];
    rest.end[d] = geometry.padding[d] - padding.end[d];
  }
  SEGREL_ASSIGN_OR_RETURN(OnnxValue output,
                          node.Add(std::make_unique<ConvolutionLayer>(weight, bias, std::move(geometry)), {data}));
  if (!rest.Any()) return Outputs(std::move(output));
  SEGREL_ASSIGN_OR_RETURN(OnnxValue cropped, AddPadding(node, output.data, rest, 0.0));
  return Outputs(std::move(cropped));
}

// ---- pooling ---------------------------------------------------------------------------------------------------

struct PoolAttributes {
  std::vector<int64_t> kernel;
  std::vector<int64_t> stride;
  std::vector<int64_t> dilation;
  Padding padding;
  bool ceil_mode = false;
};

absl::StatusOr<PoolAttributes> ReadPool(const OnnxNode& node, int data) {
  PoolAttributes pool;
  SEGREL_ASSIGN_OR_RETURN(pool.kernel, node.Ints("kernel_shape"));
  if (pool.kernel.empty()) return node.Invalid("kernel_shape is missing");
  for (int64_t size : pool.kernel) {
    if (size < 1) return node.Invalid("kernel_shape holds a size below 1");
  }
  const size_t dims = pool.kernel.size();
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> input, SpatialSizes(node, data, dims));
  SEGREL_ASSIGN_OR_RETURN(pool.stride, SpatialInts(node, "strides", dims, 1));
  SEGREL_ASSIGN_OR_RETURN(pool.dilation, SpatialInts(node, "dilations", dims, 1));
  SEGREL_ASSIGN_OR_RETURN(const int64_t ceil_mode, node.Int("ceil_mode", 0));
  pool.ceil_mode = ceil_mode != 0;
  std::vector<int64_t> extent;
  for (size_t d = 0; d < dims; ++d) extent.push_back((pool.kernel[d] - 1) * pool.dilation[d] + 1);
  SEGREL_ASSIGN_OR_RETURN(pool.padding, WindowPadding(node, input, extent, pool.stride));
  return pool;
}

// PyTorch pools pad at most half a kernel, the same on both sides.
bool TorchCanPad(const PoolAttributes& pool) {
  if (!pool.padding.Symmetric()) return false;
  for (size_t d = 0; d < pool.kernel.size(); ++d) {
    if (2 * pool.padding.begin[d] > pool.kernel[d]) return false;
  }
  return true;
}

absl::StatusOr<std::vector<OnnxValue>> MaxPool(OnnxNode& node) {
  SEGREL_ASSIGN_OR_RETURN(int data, node.DataInput(0, "input"));
  SEGREL_ASSIGN_OR_RETURN(PoolAttributes pool, ReadPool(node, data));
  PoolingGeometry geometry{pool.kernel, pool.stride, pool.padding.begin, pool.dilation, pool.ceil_mode};
  if (!TorchCanPad(pool)) {  // pad with -inf first: a padded value never wins, so the Jacobian pads with zeros
    SEGREL_ASSIGN_OR_RETURN(const OnnxValue padded,
                            AddPadding(node, data, pool.padding, -std::numeric_limits<double>::infinity()));
    data = padded.data;
    geometry.padding.assign(pool.kernel.size(), 0);
  }
  SEGREL_ASSIGN_OR_RETURN(OnnxValue output, node.Add(std::make_unique<MaxPoolLayer>(std::move(geometry)), {data}));
  return Outputs(std::move(output));
}

at::Tensor TorchAveragePool(const at::Tensor& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                            const std::vector<int64_t>& padding, bool ceil_mode, bool count_include_pad) {
  switch (kernel.size()) {
    case 1:
      return at::avg_pool1d(x, kernel, stride, padding, ceil_mode, count_include_pad);
    case 2:
      return at::avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad);
    default:
      return at::avg_pool3d(x, kernel, stride, padding, ceil_mode, count_include_pad);
  }
}

absl::StatusOr<std::vector<OnnxValue>> AveragePool(OnnxNode& node) {
  SEGREL_ASSIGN_OR_RETURN(const int data, node.DataInput(0, "input"));
  SEGREL_ASSIGN_OR_RETURN(const PoolAttributes pool, ReadPool(node, data));
  SEGREL_ASSIGN_OR_RETURN(const int64_t count_include_pad, node.Int("count_include_pad", 0));
  for (int64_t dilation : pool.dilation) {
    if (dilation != 1) return node.Unsupported("average pooling with dilations");
  }
  const std::string kind = absl::StrCat("avg_pool", pool.kernel.size(), "d");
  if (TorchCanPad(pool)) {
    auto average = [pool, count_include_pad](const at::Tensor& x, const std::vector<at::Tensor>&) {
      return TorchAveragePool(x, pool.kernel, pool.stride, pool.padding.begin, pool.ceil_mode, count_include_pad != 0);
    };
    return LinearOfInput(node, kind, LayerRole::kAveragePool, average);
  }
  // Other padding: average the zero-padded input, then (without count_include_pad) divide by the share of each
  // window that lies inside the input, a constant of the shapes.
  const std::vector<int64_t> pads = TorchPadList(pool.padding);
  const std::vector<int64_t> zeros(pool.kernel.size(), 0);
  auto padded_average = [pool, pads, zeros](const at::Tensor& x) {
    return TorchAveragePool(at::constant_pad_nd(x, pads, 0.0), pool.kernel, pool.stride, zeros, pool.ceil_mode, true);
  };
  std::vector<int64_t> ones_sizes = node.Sizes(data);
  ones_sizes[0] = ones_sizes[1] = 1;
  const at::Tensor inside = count_include_pad != 0 ? at::ones({1}) : padded_average(at::ones(ones_sizes));
  auto average = [padded_average](const at::Tensor& x, const std::vector<at::Tensor>& constants) {
    return padded_average(x) / constants[0];
  };
  return LinearOfInput(node, kind, LayerRole::kAveragePool, average, {inside});
}

}  // namespace

absl::StatusOr<std::optional<OnnxValue>> FoldPaddingIntoAveragePool(OnnxNode& node, int data,
                                                                    const std::vector<int64_t>& begin,
                                                                    const std::vector<int64_t>& end) {
  int reader_index = -1;
  const onnx::NodeProto* reader = node.SoleReader(0, &reader_index);
  if (reader == nullptr || reader->op_type() != "AveragePool" || begin != end) return std::optional<OnnxValue>();
  OnnxNode pool_node = node.Other(reader_index);
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> kernel, pool_node.Ints("kernel_shape"));
  SEGREL_ASSIGN_OR_RETURN(const std::string auto_pad, pool_node.String("auto_pad", "NOTSET"));
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> pads, pool_node.Ints("pads"));
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> dilations, pool_node.Ints("dilations"));
  if (kernel.empty() || *std::min_element(kernel.begin(), kernel.end()) < 1) return std::optional<OnnxValue>();
  if (kernel.size() != begin.size() || auto_pad != "NOTSET" || !dilations.empty() ||
      std::any_of(pads.begin(), pads.end(), [](int64_t pad) { return pad != 0; })) {
    return std::optional<OnnxValue>();
  }
  PoolAttributes pool;
  pool.kernel = kernel;
  SEGREL_ASSIGN_OR_RETURN(pool.stride, SpatialInts(pool_node, "strides", kernel.size(), 1));
  SEGREL_ASSIGN_OR_RETURN(const int64_t ceil_mode, pool_node.Int("ceil_mode", 0));
  pool.ceil_mode = ceil_mode != 0;
  pool.padding = Padding{begin, end};
  pool.dilation.assign(kernel.size(), 1);
  if (!TorchCanPad(pool)) return std::optional<OnnxValue>();
  node.Absorb(reader_index);
  auto average = [pool](const at::Tensor& x, const std::vector<at::Tensor>&) {
    return TorchAveragePool(x, pool.kernel, pool.stride, pool.padding.begin, pool.ceil_mode,
                            /*count_include_pad=*/true);
  };
  SEGREL_ASSIGN_OR_RETURN(OnnxValue output, node.Add(std::make_unique<LinearFunctionLayer>(
                                                         absl::StrCat("avg_pool", kernel.size(), "d"),
                                                         LayerRole::kAveragePool, OpCall::OfFunction(average)),
                                                     {data}));
  return std::optional<OnnxValue>(std::move(output));
}

namespace {

absl::StatusOr<std::vector<OnnxValue>> GlobalAveragePool(OnnxNode& node) {
  auto mean = [](const at::Tensor& x, const std::vector<at::Tensor>&) {
    std::vector<int64_t> dims;
    for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
    return x.mean(dims, /*keepdim=*/true);
  };
  const size_t rank = InputSizes(node, 0).size();
  return LinearOfInput(node, absl::StrCat("adaptive_avg_pool", rank - 2, "d"), LayerRole::kAveragePool, mean);
}

// ---- normalisation -------------------------------------------------------------------------------------------

absl::StatusOr<std::vector<OnnxValue>> BatchNormalization(OnnxNode& node) {
  SEGREL_ASSIGN_OR_RETURN(const int64_t training, node.Int("training_mode", 0));
  if (training != 0) return node.Unsupported("batch normalisation in training mode (export in eval mode)");
  std::vector<at::Tensor> parameters;
  const char* const names[] = {"scale", "bias", "mean", "variance"};
  for (size_t k = 1; k < 5; ++k) {
    SEGREL_ASSIGN_OR_RETURN(const at::Tensor parameter, node.ConstantInput(k, names[k - 1]));
    parameters.push_back(AsParameter(parameter).reshape({-1}));
  }
  SEGREL_ASSIGN_OR_RETURN(const double eps, node.Float("epsilon", 1e-5));
  std::unique_ptr<ChannelAffineLayer> layer =
      MakeRunningStatisticsAffine("batch_norm", parameters[0], parameters[1], parameters[2], parameters[3], eps);
  if (node.Input(0).IsConstant())
    return Outputs(OnnxValue::Constant(layer->Forward({AsParameter(node.Input(0).constant)})));
  SEGREL_ASSIGN_OR_RETURN(const int data, node.DataInput(0, "input"));
  SEGREL_ASSIGN_OR_RETURN(OnnxValue output, node.Add(std::move(layer), {data}));
  return Outputs(std::move(output));
}

bool AllEqual(const at::Tensor& tensor, double value) { return at::all(tensor == value).item<bool>(); }

// The constant operand of a binary node whose other operand is `name`, or undefined.
at::Tensor OtherConstant(const OnnxNode& node, const onnx::NodeProto& binary, const std::string& name) {
  if (binary.input_size() != 2) return at::Tensor();
  const std::string& other = binary.input(0) == name ? binary.input(1) : binary.input(0);
  const OnnxValue* value = node.Lookup(other);
  return value != nullptr && value->IsConstant() ? value->constant : at::Tensor();
}

// Whether a Reshape of a tensor of `sizes` by the shape called `shape` gives `target`, the sizes of the data value
// `source`: a known constant shape, or (not yet computed, as PyTorch orders it) the Shape of `source` itself.
bool ReshapesTo(const OnnxNode& node, const std::string& shape, const std::vector<int64_t>& sizes, int source,
                const std::vector<int64_t>& target) {
  if (const OnnxValue* known = node.Lookup(shape); known != nullptr) {
    if (!known->IsConstant()) return false;
    const at::Tensor values = known->constant.to(at::kLong).contiguous().reshape({-1});
    std::vector<int64_t> resolved(values.data_ptr<int64_t>(), values.data_ptr<int64_t>() + values.numel());
    for (size_t d = 0; d < resolved.size() && d < sizes.size(); ++d) {
      if (resolved[d] == 0) resolved[d] = sizes[d];  // Reshape's 0 copies the dimension
    }
    return at::empty(sizes, at::kMeta).reshape(resolved).sizes().vec() == target;
  }
  const onnx::NodeProto* writer = node.Writer(shape);
  if (writer == nullptr || writer->op_type() != "Shape" || writer->attribute_size() != 0) return false;
  const OnnxValue* of = node.Lookup(writer->input(0));
  return of != nullptr && of->kind == OnnxValue::Kind::kData && of->data == source;
}

// PyTorch exports GroupNorm(G, C) as Reshape([N, G, -1]) -> InstanceNormalization(ones, zeros) -> Reshape(back) ->
// Mul(gamma) -> Add(beta). When this node is the middle of that chain, imports the chain as one group norm of the
// reshape's input (as the TorchScript importer sees aten::group_norm), absorbing the nodes after it.
absl::StatusOr<std::optional<OnnxValue>> FuseGroupNorm(OnnxNode& node, int data, const at::Tensor& scale,
                                                       const at::Tensor& shift, double eps) {
  const GraphNode* reshape = node.Producer(data);
  if (reshape == nullptr || reshape->layer->Kind() != "reshape" || !AllEqual(scale, 1.0) || !AllEqual(shift, 0.0)) {
    return std::optional<OnnxValue>();
  }
  const int source = reshape->inputs[0];
  const std::vector<int64_t> source_sizes = node.Sizes(source);
  const std::vector<int64_t> grouped = node.Sizes(data);
  if (source_sizes.size() < 3 || grouped.size() != 3 || source_sizes[0] != grouped[0] ||
      source_sizes[1] % grouped[1] != 0) {
    return std::optional<OnnxValue>();
  }
  int back_index = -1;
  const onnx::NodeProto* back = node.SoleReader(0, &back_index);
  if (back == nullptr || back->op_type() != "Reshape") return std::optional<OnnxValue>();
  if (back->input_size() < 2 || !ReshapesTo(node, back->input(1), grouped, source, source_sizes)) {
    return std::optional<OnnxValue>();
  }
  const int64_t channels = source_sizes[1];
  at::Tensor gamma;
  at::Tensor beta;
  std::vector<int> absorbed = {back_index};
  const OnnxNode back_node = node.Other(back_index);
  int next_index = -1;
  const onnx::NodeProto* next = back_node.SoleReader(0, &next_index);
  std::string current = back->output(0);
  for (const char* op : {"Mul", "Add"}) {
    if (next == nullptr || next->op_type() != op) continue;
    const at::Tensor constant = OtherConstant(node, *next, current);
    if (!constant.defined() || constant.numel() != channels || constant.size(0) != channels) break;
    (std::string(op) == "Mul" ? gamma : beta) = AsParameter(constant).reshape({channels});
    absorbed.push_back(next_index);
    current = next->output(0);
    const OnnxNode next_node = node.Other(next_index);
    next = next_node.SoleReader(0, &next_index);
  }
  for (int index : absorbed) node.Absorb(index);
  SEGREL_ASSIGN_OR_RETURN(
      OnnxValue output,
      node.Add(std::make_unique<GroupNormLayer>("group_norm", grouped[1], gamma, beta, eps), {source}));
  return std::optional<OnnxValue>(std::move(output));
}

absl::StatusOr<std::vector<OnnxValue>> InstanceNormalization(OnnxNode& node) {
  SEGREL_ASSIGN_OR_RETURN(const int data, node.DataInput(0, "input"));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor scale, node.ConstantInput(1, "scale"));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor shift, node.ConstantInput(2, "bias"));
  SEGREL_ASSIGN_OR_RETURN(const double eps, node.Float("epsilon", 1e-5));
  SEGREL_ASSIGN_OR_RETURN(std::optional<OnnxValue> group_norm, FuseGroupNorm(node, data, scale, shift, eps));
  if (group_norm.has_value()) return Outputs(*std::move(group_norm));
  const std::vector<int64_t> sizes = node.Sizes(data);
  if (sizes.size() < 3) return node.Invalid("instance normalisation needs at least one spatial dimension");
  SEGREL_ASSIGN_OR_RETURN(OnnxValue output, node.Add(std::make_unique<GroupNormLayer>(
                                                         "instance_norm", sizes[1], AsParameter(scale).reshape({-1}),
                                                         AsParameter(shift).reshape({-1}), eps),
                                                     {data}));
  return Outputs(std::move(output));
}

// LayerNormalization (opset 17): over the dimensions from `axis` on, scale and bias of their sizes.
absl::StatusOr<std::vector<OnnxValue>> LayerNormalization(OnnxNode& node) {
  const std::vector<int64_t> sizes = InputSizes(node, 0);
  SEGREL_ASSIGN_OR_RETURN(int64_t axis, node.Int("axis", -1));
  if (axis < 0) axis += static_cast<int64_t>(sizes.size());
  if (axis < 0 || axis >= static_cast<int64_t>(sizes.size())) return node.Invalid("axis out of range");
  const std::vector<int64_t> normalized(sizes.begin() + axis, sizes.end());
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor scale, node.ConstantInput(1, "scale"));
  at::Tensor bias;
  if (node.Input(2).kind != OnnxValue::Kind::kAbsent) {
    SEGREL_ASSIGN_OR_RETURN(bias, node.ConstantInput(2, "bias"));
    bias = AsParameter(bias.expand(normalized));
  }
  SEGREL_ASSIGN_OR_RETURN(const double eps, node.Float("epsilon", 1e-5));
  auto layer = std::make_unique<LayerNormLayer>(normalized, AsParameter(scale.expand(normalized)), bias, eps);
  if (node.Input(0).IsConstant()) {
    return Outputs(OnnxValue::Constant(layer->Forward({AsParameter(node.Input(0).constant)})));
  }
  SEGREL_ASSIGN_OR_RETURN(const int data, node.DataInput(0, "input"));
  SEGREL_ASSIGN_OR_RETURN(OnnxValue output, node.Add(std::move(layer), {data}));
  return Outputs(std::move(output));
}

// ---- activations -------------------------------------------------------------------------------------------------

absl::StatusOr<std::vector<OnnxValue>> Activation(OnnxNode& node, std::string kind, OpCall::TensorFunction function,
                                                  std::vector<at::Tensor> constants = {}) {
  const OnnxValue& input = node.Input(0);
  if (input.IsConstant()) return Outputs(OnnxValue::Constant(function(input.constant, constants)));
  SEGREL_ASSIGN_OR_RETURN(const int data, node.DataInput(0, "input"));
  SEGREL_ASSIGN_OR_RETURN(OnnxValue output,
                          node.Add(std::make_unique<ActivationLayer>(
                                       std::move(kind), OpCall::OfFunction(std::move(function), std::move(constants))),
                                   {data}));
  return Outputs(std::move(output));
}

absl::StatusOr<std::vector<OnnxValue>> Relu(OnnxNode& node) {
  return Activation(node, "relu", [](const at::Tensor& x, const std::vector<at::Tensor>&) { return at::relu(x); });
}

absl::StatusOr<std::vector<OnnxValue>> LeakyRelu(OnnxNode& node) {
  SEGREL_ASSIGN_OR_RETURN(const double alpha, node.Float("alpha", 0.01));
  return Activation(node, "leaky_relu",
                    [alpha](const at::Tensor& x, const std::vector<at::Tensor>&) { return at::leaky_relu(x, alpha); });
}

absl::StatusOr<std::vector<OnnxValue>> Elu(OnnxNode& node) {
  SEGREL_ASSIGN_OR_RETURN(const double alpha, node.Float("alpha", 1.0));
  return Activation(node, "elu",
                    [alpha](const at::Tensor& x, const std::vector<at::Tensor>&) { return at::elu(x, alpha); });
}

absl::StatusOr<std::vector<OnnxValue>> PRelu(OnnxNode& node) {
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor slope, node.ConstantInput(1, "slope"));
  return Activation(node, "prelu",
                    [](const at::Tensor& x, const std::vector<at::Tensor>& constants) {
                      return at::where(x >= 0, x, x * constants[0]);
                    },
                    {AsParameter(slope)});
}

absl::StatusOr<std::vector<OnnxValue>> Sigmoid(OnnxNode& node) {
  return Activation(node, "sigmoid",
                    [](const at::Tensor& x, const std::vector<at::Tensor>&) { return at::sigmoid(x); });
}

absl::StatusOr<std::vector<OnnxValue>> Tanh(OnnxNode& node) {
  return Activation(node, "tanh", [](const at::Tensor& x, const std::vector<at::Tensor>&) { return at::tanh(x); });
}

// Softmax and LogSoftmax over the class dimension at the output: segrel explains the logits before it. Before
// opset 13 the operator flattens the dimensions from `axis` on, which is a softmax over one dimension only when
// that is the last one.
absl::StatusOr<std::vector<OnnxValue>> ClassSoftmax(OnnxNode& node) {
  const bool log = node.op_type() == "LogSoftmax";
  const int64_t rank = InputSizes(node, 0).size();
  SEGREL_ASSIGN_OR_RETURN(int64_t axis, node.Int("axis", node.opset() >= 13 ? -1 : 1));
  if (axis < 0) axis += rank;
  if (node.opset() < 13 && axis != rank - 1) {
    return node.Unsupported(
        absl::StrCat("a softmax of opset ", node.opset(), " over the flattened dimensions ", axis, " to ", rank - 1));
  }
  const OnnxValue& input = node.Input(0);
  if (input.IsConstant()) {
    return Outputs(
        OnnxValue::Constant(log ? at::log_softmax(input.constant, axis) : at::softmax(input.constant, axis)));
  }
  SEGREL_ASSIGN_OR_RETURN(const int data, node.DataInput(0, "input"));
  if (axis != 1) return node.Unsupported(absl::StrCat("a softmax over axis ", axis, " (only the class axis 1)"));
  OnnxValue activated;
  activated.kind = OnnxValue::Kind::kActivatedOutput;
  activated.data = data;
  activated.activation = log ? OutputActivation::kLogSoftmax : OutputActivation::kSoftmax;
  return Outputs(std::move(activated));
}

const absl::flat_hash_map<std::string, Factory>& Table() {
  static const auto* const table = new absl::flat_hash_map<std::string, Factory>({
      {"Conv", Conv},
      {"ConvTranspose", ConvTranspose},
      {"MaxPool", MaxPool},
      {"AveragePool", AveragePool},
      {"GlobalAveragePool", GlobalAveragePool},
      {"BatchNormalization", BatchNormalization},
      {"InstanceNormalization", InstanceNormalization},
      {"LayerNormalization", LayerNormalization},
      {"Relu", Relu},
      {"LeakyRelu", LeakyRelu},
      {"PRelu", PRelu},
      {"Elu", Elu},
      {"Sigmoid", Sigmoid},
      {"Tanh", Tanh},
      {"Softmax", ClassSoftmax},
      {"LogSoftmax", ClassSoftmax},
      {"Resize", Resize},
  });
  return *table;
}

}  // namespace

OnnxOpFactory FindNnOp(absl::string_view op_type) {
  const auto found = Table().find(op_type);
  return found == Table().end() ? nullptr : found->second;
}

std::vector<std::string> NnDataOperators() {
  std::vector<std::string> ops;
  for (const auto& [op, factory] : Table()) ops.push_back(op);
  return ops;
}

}  // namespace segrel::graph::onnx_import
