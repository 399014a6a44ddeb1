#include "core/graph/node_args.h"

#include <torch/csrc/jit/ir/ir.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/common/status_macros.h"

namespace segrel::graph {

ImportedValue ImportedValue::Constant(c10::IValue value) {
  ImportedValue imported;
  imported.constant = std::move(value);
  return imported;
}

ImportedValue ImportedValue::Data(int id, at::Tensor proxy) {
  ImportedValue imported;
  imported.kind = Kind::kData;
  imported.data = id;
  imported.proxy = std::move(proxy);
  return imported;
}

bool IsInPlace(const torch::jit::Node* node) {
  const std::string name = node->kind().toUnqualString();
  return name.size() > 1 && name.back() == '_' && name.front() != '_';
}

NodeArgs::NodeArgs(const torch::jit::Node* node, std::vector<const ImportedValue*> inputs, std::string origin)
    : node_(node), inputs_(std::move(inputs)), origin_(std::move(origin)) {}

bool NodeArgs::Has(absl::string_view name) const {
  const c10::FunctionSchema* schema = node_->maybeSchema();
  return schema != nullptr && schema->argumentIndexWithName(c10::string_view(name.data(), name.size())).has_value();
}

absl::StatusOr<size_t> NodeArgs::Index(absl::string_view name) const {
  const c10::FunctionSchema* schema = node_->maybeSchema();
  if (schema == nullptr) return absl::InternalError(absl::StrCat(origin_, ": the operator has no schema"));
  const auto index = schema->argumentIndexWithName(c10::string_view(name.data(), name.size()));
  if (!index.has_value() || static_cast<size_t>(*index) >= inputs_.size()) {
    return absl::InternalError(absl::StrCat(origin_, ": the operator has no argument '", name, "'"));
  }
  return static_cast<size_t>(*index);
}

absl::StatusOr<int> NodeArgs::Data(absl::string_view name) const {
  SEGREL_ASSIGN_OR_RETURN(const size_t index, Index(name));
  const ImportedValue& value = *inputs_[index];
  if (value.kind != ImportedValue::Kind::kData) {
    return Unsupported(absl::StrCat("argument '", name, "' must be a tensor computed from the network input"));
  }
  return value.data;
}

absl::StatusOr<c10::IValue> NodeArgs::Constant(absl::string_view name) const {
  SEGREL_ASSIGN_OR_RETURN(const size_t index, Index(name));
  const ImportedValue& value = *inputs_[index];
  if (value.IsData()) {
    return Unsupported(absl::StrCat("argument '", name, "' depends on the network input; it must be a constant"));
  }
  return value.constant;
}

absl::StatusOr<at::Tensor> NodeArgs::OptionalTensor(absl::string_view name) const {
  SEGREL_ASSIGN_OR_RETURN(const c10::IValue value, Constant(name));
  if (value.isNone()) return at::Tensor();
  if (!value.isTensor()) return Invalid(absl::StrCat("argument '", name, "' is not a tensor"));
  return value.toTensor();
}

absl::StatusOr<at::Tensor> NodeArgs::Tensor(absl::string_view name) const {
  SEGREL_ASSIGN_OR_RETURN(at::Tensor tensor, OptionalTensor(name));
  if (!tensor.defined()) return Invalid(absl::StrCat("argument '", name, "' is None"));
  return tensor;
}

absl::StatusOr<int64_t> NodeArgs::Int(absl::string_view name) const {
  SEGREL_ASSIGN_OR_RETURN(const c10::IValue value, Constant(name));
  if (!value.isInt()) return Invalid(absl::StrCat("argument '", name, "' is not an integer"));
  return value.toInt();
}

absl::StatusOr<double> NodeArgs::Double(absl::string_view name) const {
  SEGREL_ASSIGN_OR_RETURN(const c10::IValue value, Constant(name));
  if (value.isDouble()) return value.toDouble();
  if (value.isInt()) return static_cast<double>(value.toInt());
  if (value.isBool()) return value.toBool() ? 1.0 : 0.0;
  if (value.isTensor() && value.toTensor().numel() == 1) return value.toTensor().item<double>();
  return Invalid(absl::StrCat("argument '", name, "' is not a number"));
}

absl::StatusOr<bool> NodeArgs::Bool(absl::string_view name) const {
  SEGREL_ASSIGN_OR_RETURN(const c10::IValue value, Constant(name));
  if (!value.isBool()) return Invalid(absl::StrCat("argument '", name, "' is not a boolean"));
  return value.toBool();
}

absl::StatusOr<std::vector<int64_t>> NodeArgs::Ints(absl::string_view name) const {
  SEGREL_ASSIGN_OR_RETURN(const c10::IValue value, Constant(name));
  if (value.isIntList()) return value.toIntVector();
  if (value.isInt()) return std::vector<int64_t>{value.toInt()};
  return Invalid(absl::StrCat("argument '", name, "' is not a list of integers"));
}

absl::StatusOr<OpCall> NodeArgs::Call(absl::string_view data_name) const {
  SEGREL_ASSIGN_OR_RETURN(const size_t data_index, Index(data_name));
  std::vector<c10::IValue> arguments;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const ImportedValue& value = *inputs_[i];
    if (i == data_index) {
      if (value.kind != ImportedValue::Kind::kData) {
        return Unsupported(absl::StrCat("argument '", data_name, "' must be computed from the network input"));
      }
      arguments.emplace_back(at::Tensor());
    } else if (value.IsData()) {
      return Unsupported("only one argument may depend on the network input");
    } else {
      arguments.push_back(value.constant);
    }
  }
  // In-place variants (relu_, ...) would overwrite values other layers still read: they get a copy.
  return OpCall(node_->getOperation(), std::move(arguments), data_index, IsInPlace(node_));
}

absl::Status NodeArgs::Unsupported(absl::string_view why) const {
  return absl::UnimplementedError(absl::StrCat(origin_, ": ", why));
}

absl::Status NodeArgs::Invalid(absl::string_view why) const {
  return absl::InvalidArgumentError(absl::StrCat(origin_, ": ", why));
}

}  // namespace segrel::graph
