#include "core/graph/onnx/onnx_importer.h"

#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"
#include "core/graph/onnx/onnx_ops.h"
#include "core/graph/onnx/onnx_tensor.h"

namespace segrel::graph::onnx_import {

using Kind = OnnxValue::Kind;

OnnxValue OnnxValue::Constant(at::Tensor value) {
  OnnxValue result;
  result.kind = Kind::kConstant;
  result.constant = std::move(value);
  return result;
}

OnnxValue OnnxValue::Data(int id) {
  OnnxValue result;
  result.kind = Kind::kData;
  result.data = id;
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// OnnxNode

OnnxNode::OnnxNode(OnnxImporter& importer, int index, const onnx::NodeProto& proto)
    : importer_(importer), index_(index), proto_(proto) {
  origin_ = absl::StrCat("node ", index, " (", proto.op_type());
  if (!proto.name().empty()) absl::StrAppend(&origin_, " \"", proto.name(), "\"");
  absl::StrAppend(&origin_, ")");
}

int64_t OnnxNode::opset() const { return importer_.model_.opset; }

const OnnxValue& OnnxNode::Input(size_t i) const {
  // No value is called "" (ONNX's name for a left-out optional input), so Find gives the absent value for it.
  return importer_.Find(i < static_cast<size_t>(proto_.input_size()) ? proto_.input(i) : std::string());
}

absl::StatusOr<at::Tensor> OnnxNode::ConstantInput(size_t i, absl::string_view what) const {
  const OnnxValue& value = Input(i);
  if (value.kind == Kind::kAbsent) return Invalid(absl::StrCat("its input ", i, " (", what, ") is missing"));
  if (value.IsData()) return Unsupported(absl::StrCat(what, " (input ", i, ") that depend on the network's input"));
  return value.constant;
}

absl::StatusOr<std::vector<int64_t>> OnnxNode::IntsInput(size_t i, absl::string_view what,
                                                         std::vector<int64_t> absent) const {
  if (Input(i).kind == Kind::kAbsent) return absent;
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor tensor, ConstantInput(i, what));
  if (at::isFloatingType(tensor.scalar_type()) || tensor.dim() > 1) {
    return Invalid(absl::StrCat(what, " (input ", i, ") must be integers of at most one dimension"));
  }
  const at::Tensor flat = tensor.to(at::kLong).contiguous().reshape({-1});
  return std::vector<int64_t>(flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel());
}

absl::StatusOr<int> OnnxNode::DataInput(size_t i, absl::string_view what) const {
  const OnnxValue& value = Input(i);
  if (value.kind != Kind::kData) {
    return Unsupported(
        absl::StrCat(what, " (input ", i, ") that is ", value.kind == Kind::kAbsent ? "missing" : "a constant"));
  }
  return value.data;
}

std::vector<int64_t> OnnxNode::Sizes(int data) const { return importer_.proxies_.at(data).sizes().vec(); }

const onnx::AttributeProto* OnnxNode::FindAttribute(absl::string_view name) const {
  for (const onnx::AttributeProto& attribute : proto_.attribute()) {
    if (attribute.name() == name) return &attribute;
  }
  return nullptr;
}

bool OnnxNode::HasAttribute(absl::string_view name) const { return FindAttribute(name) != nullptr; }

absl::StatusOr<int64_t> OnnxNode::Int(absl::string_view name, int64_t fallback) const {
  const onnx::AttributeProto* attribute = FindAttribute(name);
  if (attribute == nullptr) return fallback;
  if (attribute->type() != onnx::AttributeProto::INT)
    return Invalid(absl::StrCat("attribute ", name, " is not an int"));
  return attribute->i();
}

absl::StatusOr<std::vector<int64_t>> OnnxNode::Ints(absl::string_view name, std::vector<int64_t> fallback) const {
  const onnx::AttributeProto* attribute = FindAttribute(name);
  if (attribute == nullptr) return fallback;
  if (attribute->type() != onnx::AttributeProto::INTS) {
    return Invalid(absl::StrCat("attribute ", name, " is not a list of ints"));
  }
  // Sizes, strides, pads, axes and permutations: no network needs more, and bounded values keep the arithmetic on
  // them from overflowing.
  constexpr int64_t kLimit = int64_t{1} << 24;
  for (int64_t value : attribute->ints()) {
    if (value > kLimit || value < -kLimit) {
      return Invalid(absl::StrCat("attribute ", name, " holds ", value, ", beyond +-2^24"));
    }
  }
  return std::vector<int64_t>(attribute->ints().begin(), attribute->ints().end());
}

absl::StatusOr<double> OnnxNode::Float(absl::string_view name, double fallback) const {
  const onnx::AttributeProto* attribute = FindAttribute(name);
  if (attribute == nullptr) return fallback;
  if (attribute->type() != onnx::AttributeProto::FLOAT) {
    return Invalid(absl::StrCat("attribute ", name, " is not a float"));
  }
  const float value = attribute->f();
  for (int digits = 1; digits < 9; ++digits) {
    const double decimal = std::strtod(absl::StrFormat("%.*g", digits, value).c_str(), nullptr);
    if (static_cast<float>(decimal) == value) return decimal;
  }
  return static_cast<double>(value);
}

absl::StatusOr<std::string> OnnxNode::String(absl::string_view name, std::string fallback) const {
  const onnx::AttributeProto* attribute = FindAttribute(name);
  if (attribute == nullptr) return fallback;
  if (attribute->type() != onnx::AttributeProto::STRING) {
    return Invalid(absl::StrCat("attribute ", name, " is not a string"));
  }
  return attribute->s();
}

absl::StatusOr<at::Tensor> OnnxNode::TensorAttribute(absl::string_view name) const {
  const onnx::AttributeProto* attribute = FindAttribute(name);
  if (attribute == nullptr || attribute->type() != onnx::AttributeProto::TENSOR) {
    return Invalid(absl::StrCat("attribute ", name, " is not a tensor"));
  }
  return ReadTensor(attribute->t(), importer_.model_.dir, absl::StrCat(origin_, " attribute ", name));
}

absl::StatusOr<int64_t> OnnxNode::ElementCount(const std::vector<int64_t>& sizes, absl::string_view what) const {
  int64_t count = 1;
  for (int64_t size : sizes) {
    if (size < 0) return Invalid(absl::StrCat(what, " [", absl::StrJoin(sizes, ", "), "] has a negative size"));
    if (__builtin_mul_overflow(count, size, &count) || count > importer_.model_.max_elements) {
      return Invalid(absl::StrCat(what, " [", absl::StrJoin(sizes, ", "), "] exceeds the import limit of ",
                                  importer_.model_.max_elements, " elements"));
    }
  }
  return count;
}

absl::StatusOr<OnnxValue> OnnxNode::Add(std::unique_ptr<Layer> layer, std::vector<int> inputs) {
  return importer_.AddLayer(origin_, std::move(layer), std::move(inputs));
}

const onnx::NodeProto* OnnxNode::SoleReader(size_t output, int* reader_index) const {
  if (output >= static_cast<size_t>(proto_.output_size())) return nullptr;
  const std::string& name = proto_.output(output);
  if (name == importer_.output_name_) return nullptr;
  const auto found = importer_.readers_.find(name);
  if (found == importer_.readers_.end() || found->second.size() != 1) return nullptr;
  *reader_index = found->second[0];
  return &importer_.graph_proto_.node(*reader_index);
}

const OnnxValue* OnnxNode::Lookup(const std::string& name) const {
  const auto found = importer_.values_.find(name);
  return found == importer_.values_.end() ? nullptr : &found->second;
}

const onnx::NodeProto* OnnxNode::Writer(const std::string& name) const {
  const auto found = importer_.writers_.find(name);
  return found == importer_.writers_.end() ? nullptr : &importer_.graph_proto_.node(found->second);
}

OnnxNode OnnxNode::Other(int index) const { return OnnxNode(importer_, index, importer_.graph_proto_.node(index)); }

const GraphNode* OnnxNode::Producer(int data) const {
  for (const GraphNode& node : importer_.graph_.nodes()) {
    if (node.output == data) return &node;
  }
  return nullptr;
}

void OnnxNode::Absorb(int reader_index) { importer_.absorbed_[reader_index] = index_; }

absl::Status OnnxNode::Unsupported(absl::string_view why) const {
  return absl::UnimplementedError(absl::StrCat(origin_, ": segrel cannot explain ", why));
}

absl::Status OnnxNode::Invalid(absl::string_view why) const {
  return absl::InvalidArgumentError(absl::StrCat(origin_, ": ", why));
}

// ---------------------------------------------------------------------------------------------------------------
// OnnxImporter

OnnxImporter::OnnxImporter(const OnnxModel::State& model, std::vector<int64_t> input_sizes, ImportOptions options)
    : model_(model), options_(options), graph_proto_(model.model.graph()), graph_(std::move(input_sizes)) {}

absl::StatusOr<LayerGraph> OnnxImporter::Import() {
  for (const auto& [name, tensor] : model_.constants) values_[name] = OnnxValue::Constant(tensor);
  values_[model_.data_input] = OnnxValue::Data(LayerGraph::kInputValue);
  proxies_[LayerGraph::kInputValue] = at::empty(graph_.input_sizes(), at::TensorOptions().device(at::kMeta));
  for (int i = 0; i < graph_proto_.node_size(); ++i) {
    for (const std::string& input : graph_proto_.node(i).input()) {
      if (!input.empty()) readers_[input].push_back(i);
    }
    for (const std::string& output : graph_proto_.node(i).output()) writers_[output] = i;
  }
  SEGREL_ASSIGN_OR_RETURN(output_name_, OutputName());
  for (int i = 0; i < graph_proto_.node_size(); ++i) SEGREL_RETURN_IF_ERROR(ImportNode(i));
  SEGREL_RETURN_IF_ERROR(BindOutput());
  return std::move(graph_);
}

absl::Status OnnxImporter::ImportNode(int index) {
  const onnx::NodeProto& proto = graph_proto_.node(index);
  OnnxNode node(*this, index, proto);
  if (const auto folded = absorbed_.find(index); folded != absorbed_.end()) {
    values_[proto.output(0)] = values_.at(graph_proto_.node(folded->second).output(0));
    return absl::OkStatus();
  }
  if (!proto.domain().empty() && proto.domain() != "ai.onnx") {
    return node.Unsupported(absl::StrCat("operators of the domain \"", proto.domain(), "\""));
  }
  for (size_t i = 0; i < node.num_inputs(); ++i) {
    if (node.Input(i).kind == Kind::kActivatedOutput) {
      return node.Unsupported("an operation on the softmax: it is supported only as the network's last operation");
    }
    if (!proto.input(i).empty() && values_.count(proto.input(i)) == 0) {
      return node.Invalid(absl::StrCat("its input \"", proto.input(i),
                                       "\" is neither a graph input, an initializer nor an earlier node's output"));
    }
  }
  const OnnxOpFactory factory = FindOnnxOp(proto.op_type());
  if (factory == nullptr) {
    return absl::UnimplementedError(absl::StrCat("segrel cannot explain the ONNX operator ", proto.op_type(), " at ",
                                                 node.origin(), " (docs/onnx.md lists the supported operators)"));
  }
  SEGREL_ASSIGN_OR_RETURN(std::vector<OnnxValue> outputs, CatchTorch(node.origin(), [&]() { return factory(node); }));
  for (int k = 0; k < proto.output_size(); ++k) {
    const std::string& name = proto.output(k);
    if (name.empty()) continue;
    if (static_cast<size_t>(k) < outputs.size()) {
      if (outputs[k].IsConstant() && outputs[k].constant.numel() > model_.max_elements) {
        return node.Invalid(
            absl::StrCat("its output ", k, " exceeds the import limit of ", model_.max_elements, " elements"));
      }
      values_[name] = std::move(outputs[k]);
    } else if (readers_.count(name) != 0 || name == output_name_) {
      return node.Unsupported(absl::StrCat("an operation whose output ", k, " (\"", name, "\") is used"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<OnnxValue> OnnxImporter::AddLayer(const std::string& origin, std::unique_ptr<Layer> layer,
                                                 std::vector<int> inputs) {
  // The output's sizes: the layer run on meta tensors, or on zeros where LibTorch 1.13 has no meta kernel.
  auto run = [&](bool on_meta) -> absl::StatusOr<at::Tensor> {
    std::vector<at::Tensor> arguments;
    for (int input : inputs) {
      const at::Tensor& proxy = proxies_.at(input);
      arguments.push_back(on_meta ? proxy : at::zeros(proxy.sizes(), at::kFloat));
    }
    return CatchTorch(origin, [&]() -> absl::StatusOr<at::Tensor> {
      return at::empty(layer->Forward(arguments).sizes(), at::TensorOptions().device(at::kMeta));
    });
  };
  absl::StatusOr<at::Tensor> proxy = run(/*on_meta=*/true);
  if (!proxy.ok()) proxy = run(/*on_meta=*/false);  // the inputs' sizes are within the import's limit
  if (!proxy.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(proxy.status().message(), InputSizeHint(graph_.input_sizes())));
  }
  if (proxy->numel() > model_.max_elements) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": its output [", absl::StrJoin(proxy->sizes(), ", "),
                                                   "] exceeds the import limit of ", model_.max_elements, " elements"));
  }
  const LayerRole role = layer->Role();
  if ((role == LayerRole::kActivation || role == LayerRole::kScaling) &&
      proxy->sizes() != proxies_.at(inputs[0]).sizes()) {
    return absl::UnimplementedError(
        absl::StrCat(origin, ": segrel cannot explain an elementwise operation that broadcasts its input to [",
                     absl::StrJoin(proxy->sizes(), ", "), "]"));
  }
  const int id = graph_.AddNode(std::move(layer), std::move(inputs), origin);
  proxies_[id] = *std::move(proxy);
  return OnnxValue::Data(id);
}

const OnnxValue& OnnxImporter::Find(const std::string& name) const {
  static const OnnxValue* const kAbsent = new OnnxValue();
  const auto found = values_.find(name);
  return found == values_.end() ? *kAbsent : found->second;
}

absl::StatusOr<std::string> OnnxImporter::OutputName() {
  if (graph_proto_.output_size() == 0) return absl::InvalidArgumentError("the network has no output");
  SEGREL_ASSIGN_OR_RETURN(const size_t chosen, ChooseOutput(graph_proto_.output_size(), options_, graph_));
  return graph_proto_.output(static_cast<int>(chosen)).name();
}

absl::Status OnnxImporter::BindOutput() {
  const OnnxValue& output = Find(output_name_);
  auto sizes = [&](int id) { return proxies_.at(id).sizes().vec(); };
  switch (output.kind) {
    case Kind::kAbsent:
    case Kind::kConstant:
      return absl::InvalidArgumentError("the network's output does not depend on its input");
    case Kind::kActivatedOutput:
      graph_.SetOutput(output.data, sizes(output.data), output.activation);
      return absl::OkStatus();
    case Kind::kData:
      break;
  }
  const auto [logits, activation] = graph_.LogitsBeforeSigmoid(output.data);
  graph_.SetOutput(logits, sizes(logits), activation);
  return absl::OkStatus();
}

}  // namespace segrel::graph::onnx_import
