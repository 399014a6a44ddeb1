// ONNX operators on tensors: arithmetic, fully connected layers, concatenation, padding, slicing, reshaping, and the
// shape computations (Shape, Gather, ConstantOfShape, ...) that are folded at import.
#include <algorithm>
#include <functional>
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
#include "core/graph/layers/elementwise.h"
#include "core/graph/layers/linear.h"
#include "core/graph/layers/structural.h"
#include "core/graph/onnx/onnx_ops.h"
#include "core/graph/onnx/onnx_tensor.h"

namespace segrel::graph::onnx_import {
namespace {

using Factory = OnnxOpFactory;
using Kind = OnnxValue::Kind;

int64_t NormaliseAxis(int64_t axis, int64_t rank) { return axis < 0 ? axis + rank : axis; }

absl::StatusOr<int64_t> Axis(const OnnxNode& node, int64_t axis, int64_t rank) {
  const int64_t normalised = NormaliseAxis(axis, rank);
  if (normalised < 0 || normalised >= rank) {
    return node.Invalid(absl::StrCat("axis ", axis, " is outside a tensor of ", rank, " dimensions"));
  }
  return normalised;
}

// ---- arithmetic ------------------------------------------------------------------------------------------------

// Add, Sub, Mul, Div. On constants: computed (integer division truncates, as in ONNX runtimes). Two data tensors:
// a sum of branches (Add, Sub). Data and a constant: x * factor + offset.
absl::StatusOr<std::vector<OnnxValue>> Arithmetic(OnnxNode& node) {
  const std::string& op = node.op_type();
  const OnnxValue& a = node.Input(0);
  const OnnxValue& b = node.Input(1);
  if (a.kind == Kind::kAbsent || b.kind == Kind::kAbsent) return node.Invalid("an operand is missing");
  if (a.IsConstant() && b.IsConstant()) {
    if (op == "Add") return Outputs(OnnxValue::Constant(a.constant + b.constant));
    if (op == "Sub") return Outputs(OnnxValue::Constant(a.constant - b.constant));
    if (op == "Mul") return Outputs(OnnxValue::Constant(a.constant * b.constant));
    const bool integers =
        !at::isFloatingType(a.constant.scalar_type()) && !at::isFloatingType(b.constant.scalar_type());
    return Outputs(OnnxValue::Constant(integers ? at::div(a.constant, b.constant, "trunc") : a.constant / b.constant));
  }
  if (a.IsData() && b.IsData()) {
    if (op == "Mul" || op == "Div") {
      return node.Unsupported("multiplying or dividing two tensors that both depend on the input (not linear)");
    }
    if (node.Sizes(a.data) != node.Sizes(b.data)) {
      return node.Unsupported("adding data tensors of different shapes");
    }
    SEGREL_ASSIGN_OR_RETURN(
        OnnxValue sum,
        node.Add(std::make_unique<SumLayer>(std::vector<double>{1.0, op == "Sub" ? -1.0 : 1.0}), {a.data, b.data}));
    return Outputs(std::move(sum));
  }
  const bool data_first = a.IsData();
  SEGREL_ASSIGN_OR_RETURN(const int data, node.DataInput(data_first ? 0 : 1, "operand"));
  const at::Tensor constant = AsParameter((data_first ? b : a).constant);
  at::Tensor factor;
  at::Tensor offset;
  std::string kind;
  if (op == "Add") {
    kind = "add";
    offset = constant;
  } else if (op == "Sub") {
    kind = "sub";
    if (data_first) {
      offset = -constant;
    } else {
      factor = at::scalar_tensor(-1.0, at::kFloat);
      offset = constant;
    }
  } else if (op == "Mul") {
    kind = "mul";
    factor = constant;
  } else {
    if (!data_first) return node.Unsupported("division by a tensor that depends on the input");
    kind = "div";
    factor = at::reciprocal(constant);
  }
  SEGREL_ASSIGN_OR_RETURN(OnnxValue output, node.Add(std::make_unique<ScaleLayer>(kind, factor, offset), {data}));
  return Outputs(std::move(output));
}

// ---- fully connected -------------------------------------------------------------------------------------------

// A bias [N] (or one value) added right after a product with a weight of N outputs, folded into the linear layer
// as PyTorch's Linear has it: the Add that alone reads the product, when its other operand is such a constant.
at::Tensor FoldBias(OnnxNode& node, int64_t outputs) {
  int reader_index = -1;
  const onnx::NodeProto* reader = node.SoleReader(0, &reader_index);
  if (reader == nullptr || reader->op_type() != "Add" || reader->input_size() != 2) return at::Tensor();
  const std::string& other = reader->input(0) == node.proto().output(0) ? reader->input(1) : reader->input(0);
  const OnnxValue* value = node.Lookup(other);
  if (value == nullptr || !value->IsConstant() || value->constant.dim() > 1 || value->constant.numel() != outputs) {
    return at::Tensor();
  }
  node.Absorb(reader_index);
  return AsParameter(value->constant).reshape({outputs});
}

absl::StatusOr<std::vector<OnnxValue>> AddLinear(OnnxNode& node, int data, at::Tensor weight, at::Tensor bias) {
  SEGREL_ASSIGN_OR_RETURN(OnnxValue output, node.Add(std::make_unique<LinearLayer>(weight, bias), {data}));
  return Outputs(std::move(output));
}

// Gemm: alpha A' B' + beta C, with A the data and B, C constants.
absl::StatusOr<std::vector<OnnxValue>> Gemm(OnnxNode& node) {
  SEGREL_ASSIGN_OR_RETURN(const double alpha, node.Float("alpha", 1.0));
  SEGREL_ASSIGN_OR_RETURN(const double beta, node.Float("beta", 1.0));
  SEGREL_ASSIGN_OR_RETURN(const int64_t trans_a, node.Int("transA", 0));
  SEGREL_ASSIGN_OR_RETURN(const int64_t trans_b, node.Int("transB", 0));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor b, node.ConstantInput(1, "B"));
  at::Tensor c;
  if (node.Input(2).kind != Kind::kAbsent) {
    SEGREL_ASSIGN_OR_RETURN(c, node.ConstantInput(2, "C"));
  }
  const at::Tensor b_matrix = trans_b != 0 ? b.t() : b;  // [K, N]
  if (node.Input(0).IsConstant()) {
    const at::Tensor a = trans_a != 0 ? node.Input(0).constant.t() : node.Input(0).constant;
    at::Tensor y = at::matmul(a, b_matrix) * alpha;
    if (c.defined()) y = y + c * beta;
    return Outputs(OnnxValue::Constant(y));
  }
  SEGREL_ASSIGN_OR_RETURN(int data, node.DataInput(0, "A"));
  if (trans_a != 0) {  // A' first: a transposition of the data
    auto transpose = [](const at::Tensor& x, const std::vector<at::Tensor>&) { return x.t(); };
    SEGREL_ASSIGN_OR_RETURN(const OnnxValue transposed,
                            node.Add(std::make_unique<LinearFunctionLayer>("permute", LayerRole::kStructural,
                                                                           OpCall::OfFunction(transpose)),
                                     {data}));
    data = transposed.data;
  }
  const at::Tensor weight = AsParameter(b_matrix.t() * alpha);  // [N, K]
  const int64_t outputs = weight.size(0);
  at::Tensor bias;
  at::Tensor row_bias;  // a C that differs between rows: an offset of the output, fixed to this batch
  if (c.defined()) {
    if (c.numel() == 1) {
      bias = AsParameter(c).reshape({1}).expand({outputs}).clone() * beta;
    } else if (c.numel() == outputs && c.size(-1) == outputs) {
      bias = AsParameter(c).reshape({outputs}) * beta;
    } else {
      row_bias = AsParameter(c) * beta;
    }
  } else {
    bias = FoldBias(node, outputs);
  }
  if (!row_bias.defined()) return AddLinear(node, data, weight, bias);
  SEGREL_ASSIGN_OR_RETURN(std::vector<OnnxValue> product, AddLinear(node, data, weight, at::Tensor()));
  SEGREL_ASSIGN_OR_RETURN(OnnxValue output,
                          node.Add(std::make_unique<ScaleLayer>("add", at::Tensor(), row_bias), {product[0].data}));
  return Outputs(std::move(output));
}

absl::StatusOr<std::vector<OnnxValue>> MatMul(OnnxNode& node) {
  const OnnxValue& a = node.Input(0);
  const OnnxValue& b = node.Input(1);
  if (a.IsConstant() && b.IsConstant()) return Outputs(OnnxValue::Constant(at::matmul(a.constant, b.constant)));
  if (!b.IsConstant()) return node.Unsupported("a matrix product whose second operand depends on the input");
  if (b.constant.dim() != 2) return node.Unsupported("a product of data with a constant that is not a matrix");
  SEGREL_ASSIGN_OR_RETURN(const int data, node.DataInput(0, "A"));
  const at::Tensor weight = AsParameter(b.constant.t());
  return AddLinear(node, data, weight, FoldBias(node, weight.size(0)));
}

// ---- combining and moving values -------------------------------------------------------------------------------

absl::StatusOr<std::vector<OnnxValue>> Concat(OnnxNode& node) {
  SEGREL_ASSIGN_OR_RETURN(const int64_t attribute, node.Int("axis", std::numeric_limits<int64_t>::min()));
  if (attribute == std::numeric_limits<int64_t>::min()) return node.Invalid("attribute axis is missing");
  SEGREL_ASSIGN_OR_RETURN(const int64_t axis, Axis(node, attribute, InputSizes(node, 0).size()));
  std::vector<at::Tensor> constants;
  std::vector<int> data;
  for (size_t i = 0; i < node.num_inputs(); ++i) {
    const OnnxValue& input = node.Input(i);
    if (input.IsConstant()) constants.push_back(input.constant);
    if (input.IsData()) data.push_back(input.data);
  }
  if (data.empty()) return Outputs(OnnxValue::Constant(at::cat(constants, axis)));
  if (!constants.empty()) {
    if (data.size() > 1) return node.Unsupported("concatenating constants with several data tensors");
    // One data tensor among constants (e.g. coordinate channels): an affine map whose constant blocks carry no
    // relevance, like a bias; its linear part has zeros in their place.
    std::vector<bool> is_data;
    for (size_t i = 0; i < node.num_inputs(); ++i) is_data.push_back(node.Input(i).IsData());
    auto concatenate = [axis, is_data](bool with_constants) {
      return [axis, is_data, with_constants](const at::Tensor& x, const std::vector<at::Tensor>& blocks) {
        std::vector<at::Tensor> parts;
        size_t next = 0;
        for (bool data_part : is_data) {
          if (data_part) {
            parts.push_back(x);
            continue;
          }
          const at::Tensor block = blocks[next++].to(x.options());
          parts.push_back(with_constants ? block : at::zeros_like(block));
        }
        return at::cat(parts, axis);
      };
    };
    SEGREL_ASSIGN_OR_RETURN(
        OnnxValue output, node.Add(std::make_unique<LinearFunctionLayer>(
                                       "cat", LayerRole::kStructural, OpCall::OfFunction(concatenate(true), constants),
                                       OpCall::OfFunction(concatenate(false), constants)),
                                   data));
    return Outputs(std::move(output));
  }
  SEGREL_ASSIGN_OR_RETURN(OnnxValue output, node.Add(std::make_unique<CatLayer>(axis), data));
  return Outputs(std::move(output));
}

// Pad (opset 11+: pads and the constant value are inputs). ONNX lists all begins, then all ends.
absl::StatusOr<std::vector<OnnxValue>> Pad(OnnxNode& node) {
  SEGREL_ASSIGN_OR_RETURN(const std::string mode, node.String("mode", "constant"));
  const int64_t rank = InputSizes(node, 0).size();
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> pads, node.IntsInput(1, "pads"));
  for (int64_t pad : pads) {
    if (pad > (int64_t{1} << 24) || pad < -(int64_t{1} << 24)) return node.Invalid("pads beyond +-2^24");
  }
  if (static_cast<int64_t>(pads.size()) != 2 * rank) {
    return node.Invalid(absl::StrCat("pads has ", pads.size(), " entries for a tensor of ", rank, " dimensions"));
  }
  double value = 0.0;
  if (node.Input(2).kind != Kind::kAbsent) {
    SEGREL_ASSIGN_OR_RETURN(const at::Tensor fill, node.ConstantInput(2, "constant_value"));
    if (fill.numel() != 1) return node.Invalid("constant_value is not one value");
    value = fill.to(at::kDouble).item<double>();
  }
  // at::pad's list: last dimension first, only as many dimensions as are padded.
  int64_t padded_dims = 0;
  for (int64_t d = 0; d < rank; ++d) {
    if (pads[d] != 0 || pads[d + rank] != 0) padded_dims = std::max(padded_dims, rank - d);
  }
  std::vector<int64_t> list;
  for (int64_t d = rank - 1; d >= rank - padded_dims; --d) {
    list.push_back(pads[d]);
    list.push_back(pads[d + rank]);
  }
  if (mode == "constant" && value == 0.0 && node.Input(0).IsData() && padded_dims <= rank - 2) {
    const std::vector<int64_t> begin(pads.begin() + 2, pads.begin() + rank);
    const std::vector<int64_t> end(pads.begin() + rank + 2, pads.end());
    SEGREL_ASSIGN_OR_RETURN(std::optional<OnnxValue> pooled,
                            FoldPaddingIntoAveragePool(node, node.Input(0).data, begin, end));
    if (pooled.has_value()) return Outputs(*std::move(pooled));
  }
  if (mode == "constant") {
    auto pad_with = [list](double fill) {
      return [list, fill](const at::Tensor& x, const std::vector<at::Tensor>&) {
        return at::constant_pad_nd(x, list, fill);
      };
    };
    std::optional<OpCall::TensorFunction> linear;
    if (value != 0.0) linear = pad_with(0.0);
    return LinearOfInput(node, "pad", LayerRole::kStructural, pad_with(value), {}, std::move(linear));
  }
  if (mode != "reflect" && mode != "edge") return node.Unsupported(absl::StrCat("Pad with mode ", mode));
  if (padded_dims > rank - 2 || padded_dims > 3) {
    return node.Unsupported(absl::StrCat(mode, " padding of the batch or channel dimension"));
  }
  const std::string torch_mode = mode == "reflect" ? "reflect" : "replicate";
  return LinearOfInput(
      node, "pad", LayerRole::kStructural,
      [list, torch_mode](const at::Tensor& x, const std::vector<at::Tensor>&) { return at::pad(x, list, torch_mode); });
}

// Slice (opset 10+: starts, ends, axes, steps as inputs), clamped as ONNX defines.
absl::StatusOr<std::vector<OnnxValue>> Slice(OnnxNode& node) {
  const std::vector<int64_t> sizes = InputSizes(node, 0);
  const int64_t rank = sizes.size();
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> starts, node.IntsInput(1, "starts"));
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> ends, node.IntsInput(2, "ends"));
  std::vector<int64_t> all_axes;
  for (int64_t d = 0; d < static_cast<int64_t>(starts.size()); ++d) all_axes.push_back(d);
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> axes, node.IntsInput(3, "axes", all_axes));
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> steps,
                          node.IntsInput(4, "steps", std::vector<int64_t>(starts.size(), 1)));
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size()) {
    return node.Invalid("starts, ends, axes and steps differ in length");
  }
  struct Cut {
    int64_t axis, start, end, step;
  };
  std::vector<Cut> cuts;
  for (size_t i = 0; i < starts.size(); ++i) {
    SEGREL_ASSIGN_OR_RETURN(const int64_t axis, Axis(node, axes[i], rank));
    const int64_t dim = sizes[axis];
    const int64_t step = steps[i];
    if (step == 0) return node.Invalid("a step of 0");
    int64_t start = starts[i] < 0 ? starts[i] + dim : starts[i];
    int64_t end = ends[i] < 0 ? ends[i] + dim : ends[i];
    if (step > 0) {
      start = std::clamp<int64_t>(start, 0, dim);
      end = std::clamp<int64_t>(end, 0, dim);
    } else {
      start = std::clamp<int64_t>(start, 0, dim - 1);
      end = std::clamp<int64_t>(end, -1, dim - 1);
    }
    cuts.push_back({axis, start, end, step});
  }
  return LinearOfInput(
      node, "slice", LayerRole::kStructural, [cuts](const at::Tensor& x, const std::vector<at::Tensor>&) {
        at::Tensor y = x;
        for (const Cut& cut : cuts) {
          if (cut.step > 0) {
            y = y.slice(cut.axis, cut.start, std::max(cut.start, cut.end), cut.step);
          } else {
            const at::Tensor index =
                at::arange(cut.start, cut.end, cut.step, at::TensorOptions().dtype(at::kLong).device(y.device()));
            y = y.index_select(cut.axis, index);
          }
        }
        return y;
      });
}

// A value reshaped to `sizes` (Reshape, Flatten, Squeeze, Unsqueeze). Data keeps the batch dimension when the
// reshape does (ReshapeLayer, batch-generic); other reshapes are fixed to the import's batch.
absl::StatusOr<std::vector<OnnxValue>> ReshapeTo(OnnxNode& node, std::vector<int64_t> sizes) {
  const std::vector<int64_t> input = InputSizes(node, 0);
  SEGREL_ASSIGN_OR_RETURN(const int64_t count, node.ElementCount(input, "the input"));
  SEGREL_ASSIGN_OR_RETURN(const int64_t new_count, node.ElementCount(sizes, "the new shape"));
  if (count != new_count) {
    return node.Invalid(
        absl::StrCat("cannot reshape [", absl::StrJoin(input, ", "), "] to [", absl::StrJoin(sizes, ", "), "]"));
  }
  const OnnxValue& value = node.Input(0);
  if (value.IsConstant()) return Outputs(OnnxValue::Constant(value.constant.reshape(sizes)));
  SEGREL_ASSIGN_OR_RETURN(const int data, node.DataInput(0, "input"));
  if (!sizes.empty() && !input.empty() && sizes[0] == input[0]) {
    SEGREL_ASSIGN_OR_RETURN(OnnxValue output, node.Add(std::make_unique<ReshapeLayer>(sizes), {data}));
    return Outputs(std::move(output));
  }
  return LinearOfInput(node, "reshape", LayerRole::kStructural,
                       [sizes](const at::Tensor& x, const std::vector<at::Tensor>&) { return x.reshape(sizes); });
}

absl::StatusOr<std::vector<OnnxValue>> Reshape(OnnxNode& node) {
  const std::vector<int64_t> input = InputSizes(node, 0);
  SEGREL_ASSIGN_OR_RETURN(std::vector<int64_t> shape, node.IntsInput(1, "shape"));
  SEGREL_ASSIGN_OR_RETURN(const int64_t allow_zero, node.Int("allowzero", 0));
  std::vector<int64_t> known_sizes;
  int inferred = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && allow_zero == 0) {
      if (i >= input.size()) return node.Invalid("shape copies a dimension the input does not have");
      shape[i] = input[i];
    }
    if (shape[i] == -1) {
      if (inferred >= 0) return node.Invalid("shape has more than one -1");
      inferred = static_cast<int>(i);
    } else {
      known_sizes.push_back(shape[i]);
    }
  }
  if (inferred >= 0) {
    SEGREL_ASSIGN_OR_RETURN(const int64_t known, node.ElementCount(known_sizes, "the shape"));
    SEGREL_ASSIGN_OR_RETURN(const int64_t count, node.ElementCount(input, "the input"));
    if (known == 0 || count % known != 0) return node.Invalid("shape's -1 cannot be inferred");
    shape[inferred] = count / known;
  }
  return ReshapeTo(node, std::move(shape));
}

absl::StatusOr<std::vector<OnnxValue>> Flatten(OnnxNode& node) {
  const std::vector<int64_t> input = InputSizes(node, 0);
  SEGREL_ASSIGN_OR_RETURN(int64_t axis, node.Int("axis", 1));
  axis = NormaliseAxis(axis, input.size());
  if (axis < 0 || axis > static_cast<int64_t>(input.size())) return node.Invalid("axis out of range");
  int64_t outer = 1;
  int64_t inner = 1;
  for (int64_t d = 0; d < static_cast<int64_t>(input.size()); ++d) (d < axis ? outer : inner) *= input[d];
  return ReshapeTo(node, {outer, inner});
}

// The axes of Squeeze/Unsqueeze: an attribute before opset 13, an input from 13 on.
absl::StatusOr<std::vector<int64_t>> SqueezeAxes(const OnnxNode& node) {
  if (node.opset() >= 13) return node.IntsInput(1, "axes");
  return node.Ints("axes");
}

absl::StatusOr<std::vector<OnnxValue>> Squeeze(OnnxNode& node) {
  const std::vector<int64_t> input = InputSizes(node, 0);
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> axes, SqueezeAxes(node));
  std::vector<bool> removed(input.size(), axes.empty());
  if (axes.empty()) {
    for (size_t d = 0; d < input.size(); ++d) removed[d] = input[d] == 1;
  }
  for (int64_t axis : axes) {
    SEGREL_ASSIGN_OR_RETURN(const int64_t d, Axis(node, axis, input.size()));
    if (input[d] != 1) return node.Invalid(absl::StrCat("cannot squeeze dimension ", d, " of size ", input[d]));
    removed[d] = true;
  }
  std::vector<int64_t> sizes;
  for (size_t d = 0; d < input.size(); ++d) {
    if (!removed[d]) sizes.push_back(input[d]);
  }
  return ReshapeTo(node, std::move(sizes));
}

absl::StatusOr<std::vector<OnnxValue>> Unsqueeze(OnnxNode& node) {
  const std::vector<int64_t> input = InputSizes(node, 0);
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> axes, SqueezeAxes(node));
  const int64_t rank = input.size() + axes.size();
  std::vector<bool> inserted(rank, false);
  for (int64_t axis : axes) {
    SEGREL_ASSIGN_OR_RETURN(const int64_t d, Axis(node, axis, rank));
    inserted[d] = true;
  }
  std::vector<int64_t> sizes;
  size_t next = 0;
  for (int64_t d = 0; d < rank; ++d) sizes.push_back(inserted[d] ? 1 : input[next++]);
  return ReshapeTo(node, std::move(sizes));
}

absl::StatusOr<std::vector<OnnxValue>> Transpose(OnnxNode& node) {
  const int64_t rank = InputSizes(node, 0).size();
  std::vector<int64_t> reversed;
  for (int64_t d = rank - 1; d >= 0; --d) reversed.push_back(d);
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> perm, node.Ints("perm", reversed));
  if (static_cast<int64_t>(perm.size()) != rank) return node.Invalid("perm has the wrong length");
  return LinearOfInput(node, "permute", LayerRole::kStructural,
                       [perm](const at::Tensor& x, const std::vector<at::Tensor>&) { return x.permute(perm); });
}

// Identity, and Dropout in inference mode: the input passes through.
absl::StatusOr<std::vector<OnnxValue>> PassThrough(OnnxNode& node) {
  if (node.op_type() == "Dropout" && node.Input(2).kind != Kind::kAbsent) {
    SEGREL_ASSIGN_OR_RETURN(const at::Tensor training, node.ConstantInput(2, "training_mode"));
    if (training.numel() == 1 && training.item<bool>()) {
      return node.Unsupported("dropout in training mode (export the network in eval mode)");
    }
  }
  if (node.Input(0).kind == Kind::kAbsent) return node.Invalid("its input is missing");
  return Outputs(node.Input(0));
}

// Cast: constants are converted; data stays floating point (segrel computes in its own precision).
absl::StatusOr<std::vector<OnnxValue>> Cast(OnnxNode& node) {
  SEGREL_ASSIGN_OR_RETURN(const int64_t to, node.Int("to", 0));
  SEGREL_ASSIGN_OR_RETURN(const at::ScalarType type, ScalarTypeOf(static_cast<int>(to)));
  const OnnxValue& input = node.Input(0);
  if (input.IsConstant()) return Outputs(OnnxValue::Constant(input.constant.to(type)));
  if (!at::isFloatingType(type)) return node.Unsupported("converting data to a type that is not floating point");
  if (type == at::kFloat || type == at::kDouble) return Outputs(input);
  // To 16 bits: the values are rounded as the network rounds them; the Jacobian is the identity.
  return LinearOfInput(
      node, "cast", LayerRole::kStructural,
      [type](const at::Tensor& x, const std::vector<at::Tensor>&) { return x.to(type).to(x.scalar_type()); });
}

// ---- constants and shapes (folded at import) ----------------------------------------------------------------

absl::StatusOr<std::vector<OnnxValue>> Constant(OnnxNode& node) {
  if (node.HasAttribute("value")) {
    SEGREL_ASSIGN_OR_RETURN(at::Tensor value, node.TensorAttribute("value"));
    return Outputs(OnnxValue::Constant(std::move(value)));
  }
  if (node.HasAttribute("value_float")) {
    SEGREL_ASSIGN_OR_RETURN(const double value, node.Float("value_float", 0.0));
    return Outputs(OnnxValue::Constant(at::scalar_tensor(value, at::kFloat)));
  }
  if (node.HasAttribute("value_int")) {
    SEGREL_ASSIGN_OR_RETURN(const int64_t value, node.Int("value_int", 0));
    return Outputs(OnnxValue::Constant(at::scalar_tensor(value, at::kLong)));
  }
  if (node.HasAttribute("value_ints")) {
    SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> values, node.Ints("value_ints"));
    return Outputs(OnnxValue::Constant(at::tensor(values, at::kLong)));
  }
  return node.Unsupported("a Constant that is not a dense tensor, float, int or ints");
}

absl::StatusOr<std::vector<OnnxValue>> Shape(OnnxNode& node) {
  if (node.Input(0).kind == Kind::kAbsent) return node.Invalid("its input is missing");
  const std::vector<int64_t> sizes = InputSizes(node, 0);
  const int64_t rank = sizes.size();
  SEGREL_ASSIGN_OR_RETURN(int64_t start, node.Int("start", 0));
  SEGREL_ASSIGN_OR_RETURN(int64_t end, node.Int("end", rank));
  start = std::clamp<int64_t>(NormaliseAxis(start, rank), 0, rank);
  end = std::clamp<int64_t>(NormaliseAxis(end, rank), 0, rank);
  const std::vector<int64_t> shape(sizes.begin() + start, sizes.begin() + std::max(start, end));
  return Outputs(OnnxValue::Constant(at::tensor(shape, at::kLong)));
}

absl::StatusOr<std::vector<OnnxValue>> Size(OnnxNode& node) {
  int64_t count = 1;
  for (int64_t size : InputSizes(node, 0)) count *= size;
  return Outputs(OnnxValue::Constant(at::scalar_tensor(count, at::kLong)));
}

absl::StatusOr<std::vector<OnnxValue>> Gather(OnnxNode& node) {
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor data, node.ConstantInput(0, "data"));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor indices, node.ConstantInput(1, "indices"));
  SEGREL_ASSIGN_OR_RETURN(const int64_t attribute, node.Int("axis", 0));
  SEGREL_ASSIGN_OR_RETURN(const int64_t axis, Axis(node, attribute, data.dim()));
  at::Tensor index = indices.to(at::kLong).reshape({-1});
  index = at::where(index < 0, index + data.size(axis), index);
  std::vector<int64_t> sizes(data.sizes().begin(), data.sizes().begin() + axis);
  for (int64_t size : indices.sizes()) sizes.push_back(size);
  for (int64_t d = axis + 1; d < data.dim(); ++d) sizes.push_back(data.size(d));
  return Outputs(OnnxValue::Constant(data.index_select(axis, index).reshape(sizes)));
}

absl::StatusOr<std::vector<OnnxValue>> ConstantOfShape(OnnxNode& node) {
  SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> shape, node.IntsInput(0, "shape"));
  SEGREL_RETURN_IF_ERROR(node.ElementCount(shape, "the shape").status());
  at::Tensor value = at::zeros({1}, at::kFloat);
  if (node.HasAttribute("value")) {
    SEGREL_ASSIGN_OR_RETURN(value, node.TensorAttribute("value"));
  }
  return Outputs(OnnxValue::Constant(at::full(shape, value.reshape({-1})[0].item(), value.options())));
}

// Operators that segrel evaluates on constants only (shape arithmetic), each a LibTorch function of the inputs.
using ConstantFunction = std::function<at::Tensor(const std::vector<at::Tensor>&)>;

const absl::flat_hash_map<std::string, ConstantFunction>& ConstantFunctions() {
  static const auto* const functions = new absl::flat_hash_map<std::string, ConstantFunction>({
      {"Floor", [](const std::vector<at::Tensor>& t) { return at::floor(t[0]); }},
      {"Ceil", [](const std::vector<at::Tensor>& t) { return at::ceil(t[0]); }},
      {"Neg", [](const std::vector<at::Tensor>& t) { return at::neg(t[0]); }},
      {"Abs", [](const std::vector<at::Tensor>& t) { return at::abs(t[0]); }},
      {"Sqrt", [](const std::vector<at::Tensor>& t) { return at::sqrt(t[0]); }},
      {"Reciprocal", [](const std::vector<at::Tensor>& t) { return at::reciprocal(t[0]); }},
      {"Not", [](const std::vector<at::Tensor>& t) { return at::logical_not(t[0]); }},
      {"Equal", [](const std::vector<at::Tensor>& t) { return at::eq(t[0], t[1]); }},
      {"Less", [](const std::vector<at::Tensor>& t) { return at::lt(t[0], t[1]); }},
      {"Greater", [](const std::vector<at::Tensor>& t) { return at::gt(t[0], t[1]); }},
      {"Min", [](const std::vector<at::Tensor>& t) {
         at::Tensor m = t[0];
         for (size_t i = 1; i < t.size(); ++i) m = at::minimum(m, t[i]);
         return m;
       }},
      {"Max", [](const std::vector<at::Tensor>& t) {
         at::Tensor m = t[0];
         for (size_t i = 1; i < t.size(); ++i) m = at::maximum(m, t[i]);
         return m;
       }},
      {"Where", [](const std::vector<at::Tensor>& t) { return at::where(t[0].to(at::kBool), t[1], t[2]); }},
      {"Expand", [](const std::vector<at::Tensor>& t) {
         const at::Tensor shape = t[1].to(at::kLong).contiguous();
         std::vector<int64_t> sizes(shape.data_ptr<int64_t>(), shape.data_ptr<int64_t>() + shape.numel());
         std::vector<int64_t> target = at::infer_size(sizes, t[0].sizes());
         return t[0].expand(target).contiguous();
       }},
      {"Range", [](const std::vector<at::Tensor>& t) {
         return at::arange(t[0].item(), t[1].item(), t[2].item(), t[0].options());
       }},
  });
  return *functions;
}

absl::StatusOr<std::vector<OnnxValue>> ConstantOnly(OnnxNode& node) {
  std::vector<at::Tensor> inputs;
  for (size_t i = 0; i < node.num_inputs(); ++i) {
    SEGREL_ASSIGN_OR_RETURN(at::Tensor input, node.ConstantInput(i, "an operand"));
    inputs.push_back(std::move(input));
  }
  // The two that can make large tensors from small ones: their sizes are checked before they are made.
  if (node.op_type() == "Expand" && inputs.size() == 2) {
    SEGREL_ASSIGN_OR_RETURN(const std::vector<int64_t> shape, node.IntsInput(1, "shape"));
    std::vector<int64_t> target = shape;
    for (size_t d = 0; d < std::min(shape.size(), static_cast<size_t>(inputs[0].dim())); ++d) {
      target[shape.size() - 1 - d] = std::max(shape[shape.size() - 1 - d], inputs[0].size(inputs[0].dim() - 1 - d));
    }
    SEGREL_RETURN_IF_ERROR(node.ElementCount(target, "the expanded shape").status());
  }
  if (node.op_type() == "Range" && inputs.size() == 3) {
    const double count = std::ceil((inputs[1].item<double>() - inputs[0].item<double>()) / inputs[2].item<double>());
    if (!(count <= 1e12)) return node.Invalid("a Range of too many values (or not a number)");
    SEGREL_RETURN_IF_ERROR(node.ElementCount({static_cast<int64_t>(std::max(0.0, count))}, "the range").status());
  }
  return Outputs(OnnxValue::Constant(ConstantFunctions().at(node.op_type())(inputs)));
}

const absl::flat_hash_map<std::string, Factory>& Table() {
  static const auto* const table = new absl::flat_hash_map<std::string, Factory>([] {
    absl::flat_hash_map<std::string, Factory> t = {
        {"Add", Arithmetic},      {"Sub", Arithmetic},      {"Mul", Arithmetic},       {"Div", Arithmetic},
        {"Gemm", Gemm},           {"MatMul", MatMul},       {"Concat", Concat},        {"Pad", Pad},
        {"Slice", Slice},         {"Reshape", Reshape},     {"Flatten", Flatten},      {"Squeeze", Squeeze},
        {"Unsqueeze", Unsqueeze}, {"Transpose", Transpose}, {"Identity", PassThrough}, {"Dropout", PassThrough},
        {"Cast", Cast},
    };
    for (const auto& [op, function] : ConstantFunctions()) t[op] = ConstantOnly;
    t["Constant"] = Constant;
    t["Shape"] = Shape;
    t["Size"] = Size;
    t["Gather"] = Gather;
    t["ConstantOfShape"] = ConstantOfShape;
    return t;
  }());
  return *table;
}

}  // namespace

OnnxOpFactory FindTensorOp(absl::string_view op_type) {
  const auto found = Table().find(op_type);
  return found == Table().end() ? nullptr : found->second;
}

std::vector<std::string> TensorDataOperators() {
  return {"Add",     "Sub",     "Mul",     "Div",       "Gemm",      "MatMul",   "Concat",  "Pad", "Slice",
          "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Dropout", "Cast"};
}

}  // namespace segrel::graph::onnx_import
