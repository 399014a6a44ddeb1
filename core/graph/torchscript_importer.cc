#include "core/graph/torchscript_importer.h"

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/passes/remove_mutation.h>
#include <torch/csrc/jit/serialization/import.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"
#include "core/graph/node_args.h"
#include "core/graph/op_table.h"

namespace segrel::graph {

struct TorchScriptModel::State {
  std::string path;
  torch::jit::Module module;                 // frozen, evaluation mode
  std::shared_ptr<torch::jit::Graph> graph;  // its forward graph, inlined and without mutation
};

namespace {

using torch::jit::Node;
using torch::jit::Value;
using Kind = ImportedValue::Kind;

// Traced networks record the Python call stack as their "source": lines "FILE(LINE): FUNCTION", innermost first.
// Returns "FILE:LINE (FUNCTION)" for the innermost frame outside PyTorch itself (the user's model code), or "".
std::string UserFrame(const std::string& stack) {
  for (absl::string_view line : absl::StrSplit(stack, '\n')) {
    const size_t open = line.rfind('(');
    const size_t close = line.find("): ", open == absl::string_view::npos ? 0 : open);
    if (open == absl::string_view::npos || close == absl::string_view::npos || close < open) continue;
    const absl::string_view file = line.substr(0, open);
    if (absl::StrContains(file, "/torch/") || absl::StartsWith(file, "Serialized")) continue;
    return absl::StrCat(file, ":", line.substr(open + 1, close - open - 1), " (", line.substr(close + 3), ")");
  }
  return "";
}

// "aten::cumsum at model.py:12: x = torch.cumsum(x, 2)": the operator, and where the network's Python source has it
// (scripted networks: the source line; traced ones: the user's frame of the recorded call stack).
std::string NodeOrigin(const Node* node) {
  std::string origin = node->kind().toQualString();
  torch::jit::SourceRange range = node->sourceRange();
  if (auto original = range.findSourceRangeThatGenerated()) range = *original;
  const std::shared_ptr<torch::jit::Source>& source = range.source();
  if (!source) return origin;
  const size_t line = source->lineno_for_offset(range.start());
  const std::string text = source->get_line(line).str();
  if (absl::StrContains(text, "): ")) {
    const std::string frame = UserFrame(source->text_str().str());
    if (!frame.empty()) return absl::StrCat(origin, " at ", frame);
  }
  if (const auto& file = source->filename(); file.has_value()) {
    absl::StrAppend(&origin, " at ", *file, ":", source->lineno_to_source_lineno(line));
  }
  absl::StrAppend(&origin, ": ", absl::StripAsciiWhitespace(text));
  return origin;
}

c10::IValue ToMeta(const c10::IValue& value) {
  if (value.isTensor()) return value.toTensor().to(at::kMeta);
  return value;
}

class GraphImporter {
 public:
  GraphImporter(std::vector<int64_t> input_sizes, ImportOptions options)
      : graph_(std::move(input_sizes)), options_(options) {}

  absl::StatusOr<LayerGraph> Import(const torch::jit::Graph& jit_graph) {
    SEGREL_RETURN_IF_ERROR(BindInput(jit_graph));
    SEGREL_RETURN_IF_ERROR(ImportBlock(jit_graph.block()));
    SEGREL_RETURN_IF_ERROR(BindOutput(jit_graph));
    return std::move(graph_);
  }

 private:
  absl::Status BindInput(const torch::jit::Graph& jit_graph) {
    std::vector<const Value*> tensor_inputs;
    for (const Value* input : jit_graph.inputs()) {
      if (input->type()->cast<c10::ClassType>()) continue;  // the module itself
      tensor_inputs.push_back(input);
    }
    if (tensor_inputs.size() != 1 || !tensor_inputs[0]->type()->cast<c10::TensorType>()) {
      return absl::InvalidArgumentError(absl::StrCat("the network's forward takes ", tensor_inputs.size(),
                                                     " arguments; segrel needs exactly one tensor"));
    }
    const at::Tensor proxy = at::empty(graph_.input_sizes(), at::TensorOptions().device(at::kMeta));
    proxies_[LayerGraph::kInputValue] = proxy;
    values_[tensor_inputs[0]] = ImportedValue::Data(LayerGraph::kInputValue, proxy);
    return absl::OkStatus();
  }

  absl::Status BindOutput(const torch::jit::Graph& jit_graph) {
    if (jit_graph.outputs().size() != 1) {
      return absl::InvalidArgumentError("the network returns several values; segrel needs one tensor");
    }
    ImportedValue output = values_.at(jit_graph.outputs()[0]);
    if (output.kind == Kind::kDataList) {  // several outputs (deep supervision): one of them is the segmentation
      SEGREL_ASSIGN_OR_RETURN(const size_t chosen, ChooseOutput(output.list.size(), options_, graph_));
      output = ImportedValue::Data(output.list[chosen], output.list_proxies[chosen]);
    } else if (options_.output > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("the network returns one tensor; there is no output ", options_.output));
    }
    switch (output.kind) {
      case Kind::kConstant:
        return absl::InvalidArgumentError("the network's output does not depend on its input");
      case Kind::kDataList:
        return absl::InternalError("a list output was not resolved");
      case Kind::kActivatedOutput:
        graph_.SetOutput(output.data, SizesOf(output.data), output.activation);
        return absl::OkStatus();
      case Kind::kData:
        break;
    }
    const auto [logits, activation] = graph_.LogitsBeforeSigmoid(output.data);
    graph_.SetOutput(logits, SizesOf(logits), activation);
    return absl::OkStatus();
  }

  absl::Status ImportBlock(const torch::jit::Block* block) {
    for (const Node* node : block->nodes()) SEGREL_RETURN_IF_ERROR(ImportNode(node));
    return absl::OkStatus();
  }

  absl::Status ImportNode(const Node* node) {
    const c10::Symbol kind = node->kind();
    if (kind == c10::prim::Constant) {
      auto value = torch::jit::toIValue(node->output());  // c10::optional (1.13) or std::optional (2.x)
      if (!value.has_value()) return Unsupported(node, "a constant of a type segrel cannot read");
      values_[node->output()] = ImportedValue::Constant(*std::move(value));
      return absl::OkStatus();
    }
    if (kind == c10::prim::If) return ImportIf(node);
    if (kind == c10::prim::Loop) return ImportLoop(node);
    if (kind == c10::prim::ListConstruct || kind == c10::prim::TupleConstruct) {
      if (HasDataInput(node)) return ImportDataList(node);
      return Construct(node);
    }
    if (kind == c10::prim::ListUnpack || kind == c10::prim::TupleUnpack) {
      if (Find(node->input(0)).kind == Kind::kDataList) return ImportUnpack(node);
      return Unpack(node);
    }
    if (IsDataListOperation(node)) return ImportListOperation(node);
    if (kind == c10::prim::Uninitialized) {
      values_[node->output()] = ImportedValue::Constant(c10::IValue());
      return absl::OkStatus();
    }
    if (kind == c10::prim::unchecked_cast) {
      values_[node->output()] = Find(node->input(0));
      return absl::OkStatus();
    }
    if (kind == c10::prim::RaiseException) {
      return absl::InvalidArgumentError(
          absl::StrCat(NodeOrigin(node), ": the network raises an exception for this input shape"));
    }
    if (!HasDataInput(node) || ReadsOnlyMetadata(kind.toQualString())) return Evaluate(node);
    return ImportDataNode(node);
  }

  // A branch whose condition is known at import (e.g. a comparison of shapes): import the branch taken.
  absl::Status ImportIf(const Node* node) {
    const ImportedValue& condition = Find(node->input(0));
    if (condition.IsData() || !condition.constant.isBool()) {
      return Unsupported(node, "a branch that depends on the data");
    }
    const torch::jit::Block* taken = node->blocks()[condition.constant.toBool() ? 0 : 1];
    SEGREL_RETURN_IF_ERROR(ImportBlock(taken));
    for (size_t i = 0; i < node->outputs().size(); ++i) values_[node->output(i)] = Find(taken->outputs()[i]);
    return absl::OkStatus();
  }

  // A loop whose trip count and condition are known at import (e.g. over the spatial dimensions) is unrolled.
  absl::Status ImportLoop(const Node* node) {
    constexpr int64_t kMaxIterations = 1 << 20;
    const ImportedValue& trips = Find(node->input(0));
    const ImportedValue& initially = Find(node->input(1));
    if (trips.IsData() || initially.IsData() || !trips.constant.isInt() || !initially.constant.isBool()) {
      return Unsupported(node, "a loop that depends on the data");
    }
    const torch::jit::Block* body = node->blocks()[0];
    std::vector<ImportedValue> carried;
    for (size_t k = 2; k < node->inputs().size(); ++k) carried.push_back(Find(node->input(k)));
    bool proceed = initially.constant.toBool();
    for (int64_t i = 0; proceed && i < trips.constant.toInt(); ++i) {
      if (i == kMaxIterations) return Unsupported(node, "a loop of more than 2^20 iterations");
      values_[body->inputs()[0]] = ImportedValue::Constant(i);
      for (size_t k = 0; k < carried.size(); ++k) values_[body->inputs()[k + 1]] = carried[k];
      SEGREL_RETURN_IF_ERROR(ImportBlock(body));
      const ImportedValue& condition = Find(body->outputs()[0]);
      if (condition.IsData() || !condition.constant.isBool()) {
        return Unsupported(node, "a loop whose condition depends on the data");
      }
      proceed = condition.constant.toBool();
      for (size_t k = 0; k < carried.size(); ++k) carried[k] = Find(body->outputs()[k + 1]);
    }
    for (size_t k = 0; k < carried.size(); ++k) values_[node->output(k)] = carried[k];
    return absl::OkStatus();
  }

  // Lists of data tensors that a scripted network builds step by step (skip connections collected in a loop):
  // append, insert, pop, reverse, indexing, len, slicing and concatenation act on the importer's copy of the list,
  // which the loops and branches around them have already resolved.
  bool IsDataListOperation(const Node* node) {
    static const auto* const ops = new std::unordered_map<std::string, int>({{"aten::append", 0},
                                                                             {"aten::insert", 0},
                                                                             {"aten::pop", 0},
                                                                             {"aten::reverse", 0},
                                                                             {"aten::__getitem__", 0},
                                                                             {"aten::len", 0},
                                                                             {"aten::slice", 0},
                                                                             {"aten::add", 0},
                                                                             {"aten::extend", 0}});
    if (ops->count(node->kind().toQualString()) == 0 || node->inputs().empty()) return false;
    if (!node->input(0)->type()->cast<c10::ListType>()) return false;
    if (Find(node->input(0)).kind == Kind::kDataList) return true;
    // An empty list of tensors that receives data.
    const std::string op = node->kind().toQualString();
    return (op == "aten::append" || op == "aten::insert") && Find(node->inputs().back()).kind == Kind::kData;
  }

  absl::Status ImportListOperation(const Node* node) {
    const std::string op = node->kind().toQualString();
    ImportedValue& list = values_[node->input(0)];
    if (list.kind == Kind::kConstant) {  // the empty list a data tensor is appended to
      if (!list.constant.isList() || !list.constant.toListRef().empty()) {
        return Unsupported(node, "a list that mixes data with constants");
      }
      list = ImportedValue();
      list.kind = Kind::kDataList;
    }
    auto constant_int = [&](size_t index, int64_t fallback) -> absl::StatusOr<int64_t> {
      if (index >= node->inputs().size()) return fallback;
      const ImportedValue& value = Find(node->input(index));
      if (value.IsData()) return Unsupported(node, "a list index that depends on the data");
      if (value.constant.isNone()) return fallback;
      if (!value.constant.isInt()) return Unsupported(node, "a list index that is not an integer");
      return value.constant.toInt();
    };
    const int64_t size = static_cast<int64_t>(list.list.size());
    auto position = [&](int64_t index, bool inserting) -> absl::StatusOr<size_t> {
      const int64_t wrapped = index < 0 ? index + size : index;
      if (inserting) return static_cast<size_t>(std::clamp<int64_t>(wrapped, 0, size));
      if (wrapped < 0 || wrapped >= size) {
        return absl::InvalidArgumentError(
            absl::StrCat(NodeOrigin(node), ": list index ", index, " is out of range for a list of ", size));
      }
      return static_cast<size_t>(wrapped);
    };
    auto element = [&](const Value* value) -> absl::StatusOr<const ImportedValue*> {
      const ImportedValue& found = Find(value);
      if (found.kind != Kind::kData) return Unsupported(node, "a list that mixes data with constants");
      return &found;
    };
    if (op == "aten::append" || op == "aten::insert") {
      SEGREL_ASSIGN_OR_RETURN(const ImportedValue* added, element(node->inputs().back()));
      size_t at = list.list.size();
      if (op == "aten::insert") {
        SEGREL_ASSIGN_OR_RETURN(const int64_t index, constant_int(1, 0));
        SEGREL_ASSIGN_OR_RETURN(at, position(index, /*inserting=*/true));
      }
      const int data = added->data;
      const at::Tensor proxy = added->proxy;
      list.list.insert(list.list.begin() + at, data);
      list.list_proxies.insert(list.list_proxies.begin() + at, proxy);
    } else if (op == "aten::extend" || op == "aten::add") {
      const ImportedValue& other = Find(node->input(1));
      if (other.kind != Kind::kDataList) return Unsupported(node, "a list that mixes data with constants");
      ImportedValue joined = list;
      joined.list.insert(joined.list.end(), other.list.begin(), other.list.end());
      joined.list_proxies.insert(joined.list_proxies.end(), other.list_proxies.begin(), other.list_proxies.end());
      if (op == "aten::extend") {
        list = joined;
      } else {
        values_[node->output()] = std::move(joined);
        return absl::OkStatus();
      }
    } else if (op == "aten::reverse") {
      std::reverse(list.list.begin(), list.list.end());
      std::reverse(list.list_proxies.begin(), list.list_proxies.end());
    } else if (op == "aten::len") {
      values_[node->output()] = ImportedValue::Constant(size);
      return absl::OkStatus();
    } else if (op == "aten::__getitem__" || op == "aten::pop") {
      SEGREL_ASSIGN_OR_RETURN(const int64_t index, constant_int(1, -1));
      SEGREL_ASSIGN_OR_RETURN(const size_t at, position(index, /*inserting=*/false));
      ImportedValue chosen = ImportedValue::Data(list.list[at], list.list_proxies[at]);
      if (op == "aten::pop") {
        list.list.erase(list.list.begin() + at);
        list.list_proxies.erase(list.list_proxies.begin() + at);
      }
      values_[node->output()] = std::move(chosen);
      return absl::OkStatus();
    } else {  // aten::slice(list, start, end, step), as Python slices
      SEGREL_ASSIGN_OR_RETURN(const int64_t step, constant_int(3, 1));
      if (step <= 0) return Unsupported(node, "a list slice with a step below 1");
      SEGREL_ASSIGN_OR_RETURN(int64_t start, constant_int(1, 0));
      SEGREL_ASSIGN_OR_RETURN(int64_t end, constant_int(2, size));
      start = std::clamp<int64_t>(start < 0 ? start + size : start, 0, size);
      end = std::clamp<int64_t>(end < 0 ? end + size : end, 0, size);
      ImportedValue sliced;
      sliced.kind = Kind::kDataList;
      for (int64_t i = start; i < end; i += step) {
        sliced.list.push_back(list.list[i]);
        sliced.list_proxies.push_back(list.list_proxies[i]);
      }
      values_[node->output()] = std::move(sliced);
      return absl::OkStatus();
    }
    // Mutating operators return the list itself (append) or nothing (reverse, insert).
    if (node->outputs().size() == 1 && node->output()->type()->cast<c10::ListType>()) values_[node->output()] = list;
    return absl::OkStatus();
  }

  absl::Status ImportDataList(const Node* node) {
    ImportedValue list;
    list.kind = Kind::kDataList;
    for (const Value* input : node->inputs()) {
      const ImportedValue& element = Find(input);
      if (element.kind != Kind::kData) {
        return Unsupported(node, "a list that mixes data with constants or other lists");
      }
      list.list.push_back(element.data);
      list.list_proxies.push_back(element.proxy);
    }
    values_[node->output()] = std::move(list);
    return absl::OkStatus();
  }

  absl::Status ImportUnpack(const Node* node) {
    const ImportedValue& list = Find(node->input(0));
    if (list.list.size() != node->outputs().size()) return Unsupported(node, "unpacking a list of another length");
    for (size_t i = 0; i < list.list.size(); ++i) {
      values_[node->output(i)] = ImportedValue::Data(list.list[i], list.list_proxies[i]);
    }
    return absl::OkStatus();
  }

  // Lists and tuples of constants (the interpreter builds these itself; they have no operator).
  absl::Status Construct(const Node* node) {
    std::vector<c10::IValue> elements;
    for (const Value* input : node->inputs()) elements.push_back(Find(input).constant);
    if (node->kind() == c10::prim::TupleConstruct) {
      values_[node->output()] = ImportedValue::Constant(c10::ivalue::Tuple::create(std::move(elements)));
      return absl::OkStatus();
    }
    c10::impl::GenericList list(node->output()->type()->expectRef<c10::ListType>().getElementType());
    for (c10::IValue& element : elements) list.push_back(std::move(element));
    values_[node->output()] = ImportedValue::Constant(c10::IValue(std::move(list)));
    return absl::OkStatus();
  }

  absl::Status Unpack(const Node* node) {
    const c10::IValue& packed = Find(node->input(0)).constant;
    std::vector<c10::IValue> elements;
    if (packed.isTuple()) {
      elements = packed.toTupleRef().elements().vec();
    } else if (packed.isList()) {
      elements = packed.toList().vec();
    } else {
      return Unsupported(node, "unpacking something that is neither a list nor a tuple");
    }
    if (elements.size() != node->outputs().size()) return Unsupported(node, "unpacking to another length");
    for (size_t i = 0; i < elements.size(); ++i) values_[node->output(i)] = ImportedValue::Constant(elements[i]);
    return absl::OkStatus();
  }

  // Runs a node that yields constants with LibTorch's own implementation of its operator.
  absl::Status Evaluate(const Node* node) {
    torch::jit::Stack stack;
    for (const Value* input : node->inputs()) {
      const ImportedValue& value = Find(input);
      switch (value.kind) {
        case Kind::kConstant:
          stack.push_back(value.constant);
          break;
        case Kind::kData:
          stack.emplace_back(value.proxy);  // metadata operators read its sizes only
          break;
        default:
          return Unsupported(node, "an operation on a list of data tensors or on the softmax output");
      }
    }
    SEGREL_RETURN_IF_ERROR(CatchTorch(NodeOrigin(node), [&]() -> absl::Status {
      node->getOperation()(stack);
      return absl::OkStatus();
    }));
    if (stack.size() != node->outputs().size()) {
      return absl::InternalError(absl::StrCat(NodeOrigin(node), ": evaluating it gave ", stack.size(), " values for ",
                                              node->outputs().size(), " outputs"));
    }
    for (size_t i = 0; i < stack.size(); ++i) values_[node->output(i)] = ImportedValue::Constant(stack[i]);
    return absl::OkStatus();
  }

  absl::Status ImportDataNode(const Node* node) {
    for (const Value* input : node->inputs()) {
      if (Find(input).kind == Kind::kActivatedOutput) {
        return Unsupported(node, "softmax is supported only as the network's last operation");
      }
    }
    for (size_t i = 1; i < node->outputs().size(); ++i) {
      if (node->output(i)->hasUses()) return Unsupported(node, "an operation whose second output is used");
    }
    const LayerFactory factory = FindLayerFactory(node->kind().toQualString());
    if (factory == nullptr) {
      return absl::UnimplementedError(absl::StrCat("segrel cannot explain the operation ", NodeOrigin(node),
                                                   " (see README: supported operations)"));
    }
    if (IsInPlace(node)) SEGREL_RETURN_IF_ERROR(CheckNotReadLater(node));
    std::vector<const ImportedValue*> inputs;
    for (const Value* input : node->inputs()) inputs.push_back(&Find(input));
    const NodeArgs args(node, std::move(inputs), NodeOrigin(node));
    SEGREL_ASSIGN_OR_RETURN(ImportedLayer imported, CatchTorch(args.origin(), [&]() { return factory(args); }));

    if (imported.output_activation != OutputActivation::kNone) {
      ImportedValue activated;
      activated.kind = Kind::kActivatedOutput;
      activated.data = imported.data_inputs[0];
      activated.activation = imported.output_activation;
      values_[node->output(0)] = std::move(activated);
      return absl::OkStatus();
    }
    if (imported.layer == nullptr) {  // passes its data input through
      for (const Value* input : node->inputs()) {
        if (Find(input).kind == Kind::kData) {
          values_[node->output(0)] = Find(input);
          return absl::OkStatus();
        }
      }
    }
    SEGREL_ASSIGN_OR_RETURN(at::Tensor proxy, InferOutputProxy(node));
    const LayerRole role = imported.layer->Role();
    if ((role == LayerRole::kActivation || role == LayerRole::kScaling) &&
        proxy.sizes() != proxies_.at(imported.data_inputs[0]).sizes()) {
      return Unsupported(node, "an elementwise operation that broadcasts its input to a larger shape");
    }
    const int id = graph_.AddNode(std::move(imported.layer), std::move(imported.data_inputs), args.origin());
    proxies_[id] = proxy;
    values_[node->output(0)] = ImportedValue::Data(id, std::move(proxy));
    return absl::OkStatus();
  }

  // The output's sizes, from the operator run on meta tensors, or on zeros for operators without meta kernels
  // in LibTorch 1.13 (e.g. max pooling, nearest upsampling; both cheap).
  absl::StatusOr<at::Tensor> InferOutputProxy(const Node* node) {
    auto run = [&](bool on_meta) -> absl::StatusOr<at::Tensor> {
      torch::jit::Stack stack;
      for (const Value* input : node->inputs()) {
        const ImportedValue& value = Find(input);
        auto data_tensor = [&](const at::Tensor& proxy) {
          return on_meta ? proxy : at::zeros(proxy.sizes(), at::kFloat);
        };
        if (value.kind == Kind::kData) {
          stack.emplace_back(data_tensor(value.proxy));
        } else if (value.kind == Kind::kDataList) {
          c10::List<at::Tensor> list;
          for (const at::Tensor& proxy : value.list_proxies) list.push_back(data_tensor(proxy));
          stack.emplace_back(list);
        } else {
          stack.push_back(on_meta ? ToMeta(value.constant) : value.constant);
        }
      }
      return CatchTorch(NodeOrigin(node), [&]() -> absl::StatusOr<at::Tensor> {
        node->getOperation()(stack);
        return at::empty(stack.front().toTensor().sizes(), at::TensorOptions().device(at::kMeta));
      });
    };
    absl::StatusOr<at::Tensor> proxy = run(/*on_meta=*/true);
    if (proxy.ok()) return proxy;
    proxy = run(/*on_meta=*/false);
    // An operator that refuses its inputs' shapes: the input does not fit the network, most often because a traced
    // network is fixed to the size it was traced at (its skip connections, pads or reshapes were recorded for it).
    if (!proxy.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(proxy.status().message(), InputSizeHint(graph_.input_sizes())));
    }
    return proxy;
  }

  // An in-place operator is imported as its functional form, which is right only if no later node reads the
  // value it overwrites.
  absl::Status CheckNotReadLater(const Node* node) {
    for (const torch::jit::Use& use : node->input(0)->uses()) {
      if (use.user != node && use.user->isAfter(node)) {
        return Unsupported(node, "an in-place operation on a value that is read again later");
      }
    }
    return absl::OkStatus();
  }

  std::vector<int64_t> SizesOf(int id) const { return proxies_.at(id).sizes().vec(); }

  bool HasDataInput(const Node* node) {
    for (const Value* input : node->inputs()) {
      if (Find(input).IsData()) return true;
    }
    return false;
  }

  const ImportedValue& Find(const Value* value) {
    const auto it = values_.find(value);
    if (it != values_.end()) return it->second;
    // Unseen values (e.g. the module argument) are constants without a value.
    return values_[value];
  }

  absl::Status Unsupported(const Node* node, absl::string_view what) {
    return absl::UnimplementedError(absl::StrCat(NodeOrigin(node), ": segrel cannot explain ", what));
  }

  LayerGraph graph_;
  ImportOptions options_;
  // References into values_ must survive insertions, hence a node-based map.
  std::unordered_map<const Value*, ImportedValue> values_;
  absl::flat_hash_map<int, at::Tensor> proxies_;  // layer graph value -> its sizes, as a meta tensor
};

}  // namespace

TorchScriptModel::TorchScriptModel(std::shared_ptr<const State> state) : state_(std::move(state)) {}

const std::string& TorchScriptModel::path() const { return state_->path; }

absl::StatusOr<TorchScriptModel> TorchScriptModel::Load(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return absl::NotFoundError(absl::StrCat("model file not found: ", path));
  }
  auto state = std::make_shared<State>();
  state->path = path;
  absl::Status loaded = CatchTorch(absl::StrCat("loading TorchScript model ", path), [&]() -> absl::Status {
    torch::jit::Module module = torch::jit::load(path, at::Device(at::kCPU));
    module.eval();
    module.to(at::kFloat);
    state->module = torch::jit::freeze(module);
    state->graph = state->module.get_method("forward").graph()->copy();
    torch::jit::Inline(*state->graph);
    torch::jit::RemoveListMutation(state->graph);
    torch::jit::RemoveTensorMutation(state->graph);
    torch::jit::EliminateDeadCode(state->graph);
    return absl::OkStatus();
  });
  if (!loaded.ok()) return absl::InvalidArgumentError(loaded.message());
  return TorchScriptModel(std::move(state));
}

absl::StatusOr<at::Tensor> TorchScriptModel::Run(const at::Tensor& input) const {
  return CatchTorch(absl::StrCat("running TorchScript model ", state_->path), [&]() -> absl::StatusOr<at::Tensor> {
    torch::jit::Module module = state_->module;
    const c10::IValue output = module.forward({input});
    if (!output.isTensor()) return absl::InvalidArgumentError("the network does not return one tensor");
    return output.toTensor();
  });
}

absl::StatusOr<LayerGraph> TorchScriptModel::ImportGraph(const std::vector<int64_t>& input_sizes,
                                                         const ImportOptions& options) const {
  if (input_sizes.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat("input sizes [", absl::StrJoin(input_sizes, ", "),
                                                   "] need at least a batch and a channel dimension"));
  }
  return CatchTorch(absl::StrCat("importing ", state_->path), [&]() -> absl::StatusOr<LayerGraph> {
    return GraphImporter(input_sizes, options).Import(*state_->graph);
  });
}

}  // namespace segrel::graph
