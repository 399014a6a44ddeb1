#include "core/graph/op_table.h"

#include <torch/csrc/jit/ir/ir.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "core/common/status_macros.h"
#include "core/graph/layers/convolution.h"
#include "core/graph/layers/elementwise.h"
#include "core/graph/layers/linear.h"
#include "core/graph/layers/normalisation.h"
#include "core/graph/layers/structural.h"

namespace segrel::graph {
namespace {

std::string OpName(const NodeArgs& args) { return args.node()->kind().toUnqualString(); }

ImportedLayer Make(std::unique_ptr<Layer> layer, std::vector<int> data_inputs) {
  ImportedLayer imported;
  imported.layer = std::move(layer);
  imported.data_inputs = std::move(data_inputs);
  return imported;
}

// A node that passes its data input "input" (or "self") through unchanged.
absl::StatusOr<ImportedLayer> PassThrough(const NodeArgs& args) {
  SEGREL_ASSIGN_OR_RETURN(const int data, args.Data(args.Has("input") ? "input" : "self"));
  return Make(nullptr, {data});
}

// Repeats a one-element list (e.g. stride=[2]) to `dims` entries.
absl::StatusOr<std::vector<int64_t>> Expand(const NodeArgs& args, std::vector<int64_t> values, size_t dims,
                                            absl::string_view name) {
  if (values.size() == dims) return values;
  if (values.size() == 1) return std::vector<int64_t>(dims, values[0]);
  return args.Invalid(absl::StrCat("argument '", name, "' has ", values.size(), " entries, expected ", dims));
}

absl::StatusOr<std::vector<int64_t>> ExpandedInts(const NodeArgs& args, absl::string_view name, size_t dims) {
  SEGREL_ASSIGN_OR_RETURN(std::vector<int64_t> values, args.Ints(name));
  return Expand(args, std::move(values), dims, name);
}

// ---- convolutions -------------------------------------------------------------------------------------------

absl::StatusOr<ImportedLayer> MakeConvolution(const NodeArgs& args, ConvolutionGeometry geometry) {
  SEGREL_ASSIGN_OR_RETURN(const int data, args.Data("input"));
  SEGREL_ASSIGN_OR_RETURN(at::Tensor weight, args.Tensor("weight"));
  SEGREL_ASSIGN_OR_RETURN(at::Tensor bias, args.OptionalTensor("bias"));
  return Make(std::make_unique<ConvolutionLayer>(weight, bias, std::move(geometry)), {data});
}

// aten::_convolution and aten::convolution: every parameter explicit.
absl::StatusOr<ImportedLayer> GeneralConvolution(const NodeArgs& args) {
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor weight, args.Tensor("weight"));
  const size_t dims = weight.dim() - 2;
  ConvolutionGeometry geometry;
  SEGREL_ASSIGN_OR_RETURN(geometry.stride, ExpandedInts(args, "stride", dims));
  SEGREL_ASSIGN_OR_RETURN(geometry.padding, ExpandedInts(args, "padding", dims));
  SEGREL_ASSIGN_OR_RETURN(geometry.dilation, ExpandedInts(args, "dilation", dims));
  SEGREL_ASSIGN_OR_RETURN(geometry.transposed, args.Bool("transposed"));
  SEGREL_ASSIGN_OR_RETURN(geometry.output_padding, ExpandedInts(args, "output_padding", dims));
  SEGREL_ASSIGN_OR_RETURN(geometry.groups, args.Int("groups"));
  return MakeConvolution(args, std::move(geometry));
}

// aten::conv1d/2d/3d, whose padding may be the string "same" or "valid".
absl::StatusOr<ImportedLayer> ForwardConvolution(const NodeArgs& args) {
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor weight, args.Tensor("weight"));
  const size_t dims = weight.dim() - 2;
  ConvolutionGeometry geometry;
  SEGREL_ASSIGN_OR_RETURN(geometry.stride, ExpandedInts(args, "stride", dims));
  SEGREL_ASSIGN_OR_RETURN(geometry.dilation, ExpandedInts(args, "dilation", dims));
  SEGREL_ASSIGN_OR_RETURN(geometry.groups, args.Int("groups"));
  SEGREL_ASSIGN_OR_RETURN(const c10::IValue padding, args.Constant("padding"));
  if (padding.isString()) {
    const std::string mode = padding.toStringRef();
    for (size_t d = 0; d < dims; ++d) {
      const int64_t total = mode == "same" ? geometry.dilation[d] * (weight.size(d + 2) - 1) : 0;
      if (total % 2 != 0) return args.Unsupported("padding='same' that would need asymmetric padding");
      geometry.padding.push_back(total / 2);
    }
  } else {
    SEGREL_ASSIGN_OR_RETURN(geometry.padding, ExpandedInts(args, "padding", dims));
  }
  return MakeConvolution(args, std::move(geometry));
}

// aten::conv_transpose1d/2d/3d.
absl::StatusOr<ImportedLayer> TransposedConvolution(const NodeArgs& args) {
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor weight, args.Tensor("weight"));
  const size_t dims = weight.dim() - 2;
  ConvolutionGeometry geometry;
  geometry.transposed = true;
  SEGREL_ASSIGN_OR_RETURN(geometry.stride, ExpandedInts(args, "stride", dims));
  SEGREL_ASSIGN_OR_RETURN(geometry.padding, ExpandedInts(args, "padding", dims));
  SEGREL_ASSIGN_OR_RETURN(geometry.output_padding, ExpandedInts(args, "output_padding", dims));
  SEGREL_ASSIGN_OR_RETURN(geometry.dilation, ExpandedInts(args, "dilation", dims));
  SEGREL_ASSIGN_OR_RETURN(geometry.groups, args.Int("groups"));
  return MakeConvolution(args, std::move(geometry));
}

// ---- fully connected ----------------------------------------------------------------------------------------

absl::StatusOr<ImportedLayer> Linear(const NodeArgs& args) {
  SEGREL_ASSIGN_OR_RETURN(const int data, args.Data("input"));
  SEGREL_ASSIGN_OR_RETURN(at::Tensor weight, args.Tensor("weight"));
  SEGREL_ASSIGN_OR_RETURN(at::Tensor bias, args.OptionalTensor("bias"));
  return Make(std::make_unique<LinearLayer>(weight, bias), {data});
}

// aten::addmm(self=bias, mat1=x, mat2=W^T, beta, alpha): beta * bias + alpha * x W^T.
absl::StatusOr<ImportedLayer> Addmm(const NodeArgs& args) {
  SEGREL_ASSIGN_OR_RETURN(const int data, args.Data("mat1"));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor bias, args.Tensor("self"));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor transposed_weight, args.Tensor("mat2"));
  SEGREL_ASSIGN_OR_RETURN(const double beta, args.Double("beta"));
  SEGREL_ASSIGN_OR_RETURN(const double alpha, args.Double("alpha"));
  at::Tensor weight = (transposed_weight.t() * alpha).contiguous();
  return Make(std::make_unique<LinearLayer>(weight, (bias * beta).reshape({-1}).expand({weight.size(0)}).clone()),
              {data});
}

// aten::matmul and aten::mm of data by a constant matrix.
absl::StatusOr<ImportedLayer> MatrixProduct(const NodeArgs& args) {
  SEGREL_ASSIGN_OR_RETURN(const int data, args.Data("self"));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor matrix, args.Tensor(args.Has("other") ? "other" : "mat2"));
  if (matrix.dim() != 2) return args.Unsupported("multiplication by a constant that is not a matrix");
  return Make(std::make_unique<LinearLayer>(matrix.t().contiguous(), at::Tensor()), {data});
}

// ---- elementwise ---------------------------------------------------------------------------------------------

absl::StatusOr<ImportedLayer> Activation(const NodeArgs& args) {
  SEGREL_ASSIGN_OR_RETURN(const int data, args.Data("self"));
  SEGREL_ASSIGN_OR_RETURN(OpCall call, args.Call("self"));
  std::string kind = OpName(args);
  if (IsInPlace(args.node())) kind.pop_back();
  return Make(std::make_unique<ActivationLayer>(kind, std::move(call)), {data});
}

// x + alpha * other, x - alpha * other, other - alpha * x (rsub): a sum of branches when both are data, a shift by
// a constant otherwise.
absl::StatusOr<ImportedLayer> AddOrSubtract(const NodeArgs& args) {
  const std::string op = OpName(args);
  const bool subtract = op.rfind("sub", 0) == 0;
  const bool reverse = op == "rsub";
  double alpha = 1.0;
  if (args.Has("alpha")) {
    SEGREL_ASSIGN_OR_RETURN(alpha, args.Double("alpha"));
  }
  SEGREL_ASSIGN_OR_RETURN(const size_t self_index, args.Index("self"));
  SEGREL_ASSIGN_OR_RETURN(const size_t other_index, args.Index("other"));
  const ImportedValue& self = args.Value(self_index);
  const ImportedValue& other = args.Value(other_index);
  const double other_sign = subtract ? -1.0 : 1.0;
  if (reverse && !self.IsData()) return args.Unsupported("rsub of data from a constant");
  if (self.IsData() && other.IsData()) {
    if (reverse) return args.Unsupported("rsub of two data tensors");
    if (self.kind != ImportedValue::Kind::kData || other.kind != ImportedValue::Kind::kData ||
        self.proxy.sizes() != other.proxy.sizes()) {
      return args.Unsupported("addition of data tensors of different shapes");
    }
    return Make(std::make_unique<SumLayer>(std::vector<double>{1.0, other_sign * alpha}), {self.data, other.data});
  }
  // One side is a constant: x * factor + offset.
  SEGREL_ASSIGN_OR_RETURN(const int data, args.Data(self.IsData() ? "self" : "other"));
  const c10::IValue& constant = self.IsData() ? other.constant : self.constant;
  if (!constant.isTensor() && !constant.isScalar()) return args.Invalid("the constant operand is not a number");
  const at::Tensor value =
      constant.isTensor() ? constant.toTensor() : at::scalar_tensor(constant.toScalar(), at::kFloat);
  at::Tensor factor;
  at::Tensor offset;
  if (reverse) {  // other - alpha * self, self being data
    factor = at::scalar_tensor(-alpha, at::kFloat);
    offset = value;
  } else if (self.IsData()) {
    offset = value * (other_sign * alpha);
  } else {  // constant +/- alpha * data
    factor = at::scalar_tensor(other_sign * alpha, at::kFloat);
    offset = value;
  }
  return Make(std::make_unique<ScaleLayer>(op, factor, offset), {data});
}

// x * c, c * x, x / c for a constant c.
absl::StatusOr<ImportedLayer> MultiplyOrDivide(const NodeArgs& args) {
  const std::string op = OpName(args);
  if (args.Has("rounding_mode")) {
    SEGREL_ASSIGN_OR_RETURN(const c10::IValue mode, args.Constant("rounding_mode"));
    if (!mode.isNone()) return args.Unsupported("division with rounding");
  }
  SEGREL_ASSIGN_OR_RETURN(const size_t self_index, args.Index("self"));
  SEGREL_ASSIGN_OR_RETURN(const size_t other_index, args.Index("other"));
  const ImportedValue& self = args.Value(self_index);
  const ImportedValue& other = args.Value(other_index);
  if (self.IsData() && other.IsData()) {
    return args.Unsupported("multiplying or dividing two tensors that both depend on the input is not linear");
  }
  const bool divide = op.rfind("div", 0) == 0;
  if (divide && !self.IsData()) return args.Unsupported("division by a tensor that depends on the input");
  SEGREL_ASSIGN_OR_RETURN(const int data, args.Data(self.IsData() ? "self" : "other"));
  const c10::IValue& constant = self.IsData() ? other.constant : self.constant;
  if (!constant.isTensor() && !constant.isScalar()) return args.Invalid("the constant operand is not a number");
  at::Tensor factor = constant.isTensor() ? constant.toTensor() : at::scalar_tensor(constant.toScalar(), at::kFloat);
  if (divide) factor = at::reciprocal(factor.to(at::kFloat));
  return Make(std::make_unique<ScaleLayer>(op, factor, at::Tensor()), {data});
}

// ---- normalisation ---------------------------------------------------------------------------------------------

ImportedLayer RunningStatisticsAffine(std::string kind, int data, const at::Tensor& gamma, const at::Tensor& beta,
                                      const at::Tensor& mean, const at::Tensor& var, double eps) {
  return Make(MakeRunningStatisticsAffine(std::move(kind), gamma, beta, mean, var, eps), {data});
}

absl::StatusOr<ImportedLayer> BatchNorm(const NodeArgs& args) {
  SEGREL_ASSIGN_OR_RETURN(const int data, args.Data("input"));
  SEGREL_ASSIGN_OR_RETURN(const bool training, args.Bool("training"));
  if (training) return args.Unsupported("batch norm in training mode (export the network in eval mode)");
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor gamma, args.OptionalTensor("weight"));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor beta, args.OptionalTensor("bias"));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor mean, args.Tensor("running_mean"));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor var, args.Tensor("running_var"));
  SEGREL_ASSIGN_OR_RETURN(const double eps, args.Double("eps"));
  return RunningStatisticsAffine("batch_norm", data, gamma, beta, mean, var, eps);
}

absl::StatusOr<ImportedLayer> InstanceNorm(const NodeArgs& args) {
  SEGREL_ASSIGN_OR_RETURN(const int data, args.Data("input"));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor gamma, args.OptionalTensor("weight"));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor beta, args.OptionalTensor("bias"));
  SEGREL_ASSIGN_OR_RETURN(const bool use_input_stats, args.Bool("use_input_stats"));
  SEGREL_ASSIGN_OR_RETURN(const double eps, args.Double("eps"));
  if (!use_input_stats) {
    SEGREL_ASSIGN_OR_RETURN(const at::Tensor mean, args.Tensor("running_mean"));
    SEGREL_ASSIGN_OR_RETURN(const at::Tensor var, args.Tensor("running_var"));
    return RunningStatisticsAffine("instance_norm", data, gamma, beta, mean, var, eps);
  }
  const int64_t channels = args.Value(0).proxy.size(1);
  return Make(std::make_unique<GroupNormLayer>("instance_norm", channels, gamma, beta, eps), {data});
}

absl::StatusOr<ImportedLayer> LayerNorm(const NodeArgs& args) {
  SEGREL_ASSIGN_OR_RETURN(const int data, args.Data("input"));
  SEGREL_ASSIGN_OR_RETURN(std::vector<int64_t> normalized_shape, args.Ints("normalized_shape"));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor gamma, args.OptionalTensor("weight"));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor beta, args.OptionalTensor("bias"));
  SEGREL_ASSIGN_OR_RETURN(const double eps, args.Double("eps"));
  return Make(std::make_unique<LayerNormLayer>(std::move(normalized_shape), gamma, beta, eps), {data});
}

absl::StatusOr<ImportedLayer> GroupNorm(const NodeArgs& args) {
  SEGREL_ASSIGN_OR_RETURN(const int data, args.Data("input"));
  SEGREL_ASSIGN_OR_RETURN(const int64_t groups, args.Int("num_groups"));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor gamma, args.OptionalTensor("weight"));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor beta, args.OptionalTensor("bias"));
  SEGREL_ASSIGN_OR_RETURN(const double eps, args.Double("eps"));
  return Make(std::make_unique<GroupNormLayer>("group_norm", groups, gamma, beta, eps), {data});
}

// ---- pooling, resampling, moving values -----------------------------------------------------------------------

absl::StatusOr<ImportedLayer> MaxPool(const NodeArgs& args) {
  SEGREL_ASSIGN_OR_RETURN(const int data, args.Data("self"));
  const size_t dims = OpName(args)[8] - '0';  // max_poolNd
  PoolingGeometry geometry;
  SEGREL_ASSIGN_OR_RETURN(geometry.kernel, ExpandedInts(args, "kernel_size", dims));
  SEGREL_ASSIGN_OR_RETURN(std::vector<int64_t> stride, args.Ints("stride"));
  if (stride.empty()) stride = geometry.kernel;  // PyTorch's default
  SEGREL_ASSIGN_OR_RETURN(geometry.stride, Expand(args, stride, dims, "stride"));
  SEGREL_ASSIGN_OR_RETURN(geometry.padding, ExpandedInts(args, "padding", dims));
  SEGREL_ASSIGN_OR_RETURN(geometry.dilation, ExpandedInts(args, "dilation", dims));
  SEGREL_ASSIGN_OR_RETURN(geometry.ceil_mode, args.Bool("ceil_mode"));
  return Make(std::make_unique<MaxPoolLayer>(std::move(geometry)), {data});
}

// A linear operator of one data input "self"/"input" that the network's own operator computes.
absl::StatusOr<ImportedLayer> LinearOperator(const NodeArgs& args, LayerRole role) {
  const char* data_name = args.Has("self") ? "self" : "input";
  SEGREL_ASSIGN_OR_RETURN(const int data, args.Data(data_name));
  SEGREL_ASSIGN_OR_RETURN(OpCall call, args.Call(data_name));
  return Make(std::make_unique<LinearFunctionLayer>(OpName(args), role, std::move(call)), {data});
}

absl::StatusOr<ImportedLayer> AveragePool(const NodeArgs& args) {
  return LinearOperator(args, LayerRole::kAveragePool);
}
absl::StatusOr<ImportedLayer> Structural(const NodeArgs& args) { return LinearOperator(args, LayerRole::kStructural); }

// Padding is affine: its Jacobian pads with zeros whatever the fill value.
absl::StatusOr<ImportedLayer> Pad(const NodeArgs& args) {
  SEGREL_ASSIGN_OR_RETURN(const int data, args.Data("self"));
  SEGREL_ASSIGN_OR_RETURN(OpCall call, args.Call("self"));
  if (args.Has("mode")) {
    SEGREL_ASSIGN_OR_RETURN(const c10::IValue mode, args.Constant("mode"));
    if (!mode.isString() || mode.toStringRef() != "constant") {
      return Make(std::make_unique<LinearFunctionLayer>("pad", LayerRole::kStructural, std::move(call)), {data});
    }
  }
  SEGREL_ASSIGN_OR_RETURN(const size_t value_index, args.Index("value"));
  const bool optional_value =
      args.node()->schema().arguments()[value_index].type()->kind() == c10::TypeKind::OptionalType;
  OpCall linear = call.WithArgument(value_index, optional_value ? c10::IValue() : c10::IValue(0.0));
  return Make(std::make_unique<LinearFunctionLayer>("pad", LayerRole::kStructural, std::move(call), std::move(linear)),
              {data});
}

absl::StatusOr<ImportedLayer> Reshape(const NodeArgs& args) {
  SEGREL_ASSIGN_OR_RETURN(const int data, args.Data("self"));
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> shape, args.Ints(args.Has("shape") ? "shape" : "size"));
  const at::Tensor& input = args.Value(0).proxy;
  const std::vector<int64_t> output_sizes = input.reshape(shape).sizes().vec();
  if (output_sizes.empty() || output_sizes[0] != input.size(0)) {
    return args.Unsupported("reshaping across the batch dimension");
  }
  return Make(std::make_unique<ReshapeLayer>(output_sizes), {data});
}

absl::StatusOr<ImportedLayer> Cat(const NodeArgs& args) {
  SEGREL_ASSIGN_OR_RETURN(const size_t list_index, args.Index("tensors"));
  const ImportedValue& list = args.Value(list_index);
  if (list.kind != ImportedValue::Kind::kDataList) {
    return args.Unsupported("concatenation of constants with data (every tensor must depend on the input)");
  }
  SEGREL_ASSIGN_OR_RETURN(int64_t dim, args.Int("dim"));
  if (dim < 0) dim += list.list_proxies.front().dim();
  return Make(std::make_unique<CatLayer>(dim), list.list);
}

// Dropout in evaluation mode is the identity.
absl::StatusOr<ImportedLayer> Dropout(const NodeArgs& args) {
  SEGREL_ASSIGN_OR_RETURN(const bool train, args.Bool("train"));
  if (train) return args.Unsupported("dropout in training mode (export the network in eval mode)");
  return PassThrough(args);
}

// aten::to keeps a floating-point type for data: anything else would change what the network computes.
absl::StatusOr<ImportedLayer> Conversion(const NodeArgs& args) {
  if (args.Has("dtype")) {
    SEGREL_ASSIGN_OR_RETURN(const c10::IValue dtype, args.Constant("dtype"));
    if (!dtype.isNone() && !c10::isFloatingType(static_cast<c10::ScalarType>(dtype.toInt()))) {
      return args.Unsupported("conversion of data to a non-floating-point type");
    }
  }
  return PassThrough(args);
}

// softmax/log_softmax over the class dimension at the output: segrel explains the logits before it.
absl::StatusOr<ImportedLayer> ClassSoftmax(const NodeArgs& args) {
  const char* data_name = args.Has("self") ? "self" : "input";
  SEGREL_ASSIGN_OR_RETURN(const int data, args.Data(data_name));
  SEGREL_ASSIGN_OR_RETURN(int64_t dim, args.Int("dim"));
  SEGREL_ASSIGN_OR_RETURN(const size_t data_index, args.Index(data_name));
  if (dim < 0) dim += args.Value(data_index).proxy.dim();
  if (dim != 1) return args.Unsupported("softmax over a dimension other than the class dimension 1");
  ImportedLayer imported = Make(nullptr, {data});
  imported.output_activation =
      OpName(args).find("log") != std::string::npos ? OutputActivation::kLogSoftmax : OutputActivation::kSoftmax;
  return imported;
}

const absl::flat_hash_map<std::string, LayerFactory>& FactoryTable() {
  static const auto* const table = new absl::flat_hash_map<std::string, LayerFactory>([] {
    absl::flat_hash_map<std::string, LayerFactory> t;
    t["aten::_convolution"] = GeneralConvolution;
    t["aten::convolution"] = GeneralConvolution;
    for (const char* op : {"aten::conv1d", "aten::conv2d", "aten::conv3d"}) t[op] = ForwardConvolution;
    for (const char* op : {"aten::conv_transpose1d", "aten::conv_transpose2d", "aten::conv_transpose3d"}) {
      t[op] = TransposedConvolution;
    }
    t["aten::linear"] = Linear;
    t["aten::addmm"] = Addmm;
    t["aten::matmul"] = MatrixProduct;
    t["aten::mm"] = MatrixProduct;
    for (const char* op :
         {"aten::relu",        "aten::relu_",       "aten::leaky_relu", "aten::leaky_relu_", "aten::prelu",
          "aten::elu",         "aten::elu_",        "aten::selu",       "aten::selu_",       "aten::celu",
          "aten::celu_",       "aten::gelu",        "aten::silu",       "aten::silu_",       "aten::mish",
          "aten::sigmoid",     "aten::sigmoid_",    "aten::tanh",       "aten::tanh_",       "aten::hardtanh",
          "aten::hardtanh_",   "aten::relu6",       "aten::softplus",   "aten::hardswish",   "aten::hardswish_",
          "aten::hardsigmoid", "aten::hardsigmoid_"}) {
      t[op] = Activation;
    }
    for (const char* op : {"aten::add", "aten::add_", "aten::sub", "aten::sub_", "aten::rsub"}) t[op] = AddOrSubtract;
    for (const char* op : {"aten::mul", "aten::mul_", "aten::div", "aten::div_"}) t[op] = MultiplyOrDivide;
    t["aten::batch_norm"] = BatchNorm;
    t["aten::instance_norm"] = InstanceNorm;
    t["aten::group_norm"] = GroupNorm;
    t["aten::layer_norm"] = LayerNorm;
    for (const char* op : {"aten::max_pool1d", "aten::max_pool2d", "aten::max_pool3d"}) t[op] = MaxPool;
    for (const char* op : {"aten::avg_pool1d", "aten::avg_pool2d", "aten::avg_pool3d", "aten::adaptive_avg_pool1d",
                           "aten::adaptive_avg_pool2d", "aten::adaptive_avg_pool3d"}) {
      t[op] = AveragePool;
    }
    for (const char* op : {"aten::upsample_nearest1d",
                           "aten::upsample_nearest2d",
                           "aten::upsample_nearest3d",
                           "aten::upsample_linear1d",
                           "aten::upsample_bilinear2d",
                           "aten::upsample_trilinear3d",
                           "aten::upsample_bicubic2d",
                           "aten::flatten",
                           "aten::permute",
                           "aten::transpose",
                           "aten::slice",
                           "aten::narrow",
                           "aten::select",
                           "aten::squeeze",
                           "aten::unsqueeze",
                           "aten::expand",
                           "aten::repeat",
                           "aten::reflection_pad1d",
                           "aten::reflection_pad2d",
                           "aten::reflection_pad3d",
                           "aten::replication_pad1d",
                           "aten::replication_pad2d",
                           "aten::replication_pad3d",
                           "aten::pixel_shuffle"}) {
      t[op] = Structural;
    }
    t["aten::constant_pad_nd"] = Pad;
    t["aten::pad"] = Pad;
    t["aten::view"] = Reshape;
    t["aten::reshape"] = Reshape;
    t["aten::cat"] = Cat;
    t["aten::concat"] = Cat;
    for (const char* op : {"aten::dropout", "aten::dropout_", "aten::feature_dropout", "aten::feature_dropout_",
                           "aten::alpha_dropout", "aten::feature_alpha_dropout"}) {
      t[op] = Dropout;
    }
    for (const char* op : {"aten::contiguous", "aten::clone", "aten::detach", "aten::alias"}) t[op] = PassThrough;
    t["aten::to"] = Conversion;
    for (const char* op : {"aten::softmax", "aten::_softmax", "aten::log_softmax", "aten::_log_softmax"}) {
      t[op] = ClassSoftmax;
    }
    return t;
  }());
  return *table;
}

}  // namespace

LayerFactory FindLayerFactory(absl::string_view qualified_name) {
  const auto& table = FactoryTable();
  const auto it = table.find(qualified_name);
  return it == table.end() ? nullptr : it->second;
}

bool ReadsOnlyMetadata(absl::string_view qualified_name) {
  static const auto* const ops = new absl::flat_hash_set<std::string>(
      {"aten::size", "aten::dim", "aten::numel", "aten::len", "prim::shape", "prim::dtype", "prim::device",
       "prim::layout", "aten::is_floating_point", "prim::is_cuda"});
  return ops->contains(qualified_name);
}

}  // namespace segrel::graph
