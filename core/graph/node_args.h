// What the TorchScript importer knows about values, and NodeArgs: typed access to one node's arguments.
//
// Internal to core/graph: used by the importer and the op table, not by users of the layer graph.
#ifndef SEGREL_CORE_GRAPH_NODE_ARGS_H_
#define SEGREL_CORE_GRAPH_NODE_ARGS_H_

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>

#include <memory>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/graph/layer.h"
#include "core/graph/layer_graph.h"
#include "core/graph/op_call.h"

namespace torch::jit {
struct Node;
}  // namespace torch::jit

namespace segrel::graph {

// A TorchScript value as the importer sees it.
struct ImportedValue {
  enum class Kind {
    kConstant,         // known at import: a literal, a parameter, or anything computed from shapes
    kData,             // a tensor that depends on the network input: a layer graph value
    kDataList,         // a list of data tensors (the input of cat)
    kActivatedOutput,  // softmax/log_softmax of data: allowed only as the network output
  };
  Kind kind = Kind::kConstant;
  c10::IValue constant;   // kConstant
  int data = -1;          // kData; kActivatedOutput: the logits
  at::Tensor proxy;       // kData: an empty tensor on the meta device with the data's sizes
  std::vector<int> list;  // kDataList: layer graph values
  std::vector<at::Tensor> list_proxies;
  OutputActivation activation = OutputActivation::kNone;  // kActivatedOutput

  static ImportedValue Constant(c10::IValue value);
  static ImportedValue Data(int id, at::Tensor proxy);
  bool IsData() const { return kind != Kind::kConstant; }
};

// What an op-table entry makes of a data node.
struct ImportedLayer {
  std::unique_ptr<Layer> layer;  // null: the node passes its data input through unchanged (dropout, contiguous)
  std::vector<int> data_inputs;  // layer graph values the layer reads, in its input order
  OutputActivation output_activation = OutputActivation::kNone;  // set (and no layer) for a final softmax
};

// Whether `node` is an in-place operator (relu_, add_, ...).
bool IsInPlace(const torch::jit::Node* node);

// One node's inputs, addressed by their schema names ("weight", "stride", ...).
class NodeArgs {
 public:
  // `inputs` are the node's inputs in order; `origin` names the op and its source location for messages.
  NodeArgs(const torch::jit::Node* node, std::vector<const ImportedValue*> inputs, std::string origin);

  const std::string& origin() const { return origin_; }
  const torch::jit::Node* node() const { return node_; }

  // Index of the argument called `name`. Errors: Internal when the schema has no such argument.
  absl::StatusOr<size_t> Index(absl::string_view name) const;
  bool Has(absl::string_view name) const;

  const ImportedValue& Value(size_t index) const { return *inputs_[index]; }
  // The layer graph value of the data argument `name`. Errors: Unimplemented when it is not data.
  absl::StatusOr<int> Data(absl::string_view name) const;
  // The argument `name`, which must be known at import. Errors: Unimplemented when it depends on the data.
  absl::StatusOr<c10::IValue> Constant(absl::string_view name) const;
  absl::StatusOr<at::Tensor> Tensor(absl::string_view name) const;          // REQUIRES a defined tensor
  absl::StatusOr<at::Tensor> OptionalTensor(absl::string_view name) const;  // None -> undefined
  absl::StatusOr<int64_t> Int(absl::string_view name) const;
  absl::StatusOr<double> Double(absl::string_view name) const;  // accepts ints and 0-dim tensors
  absl::StatusOr<bool> Bool(absl::string_view name) const;
  absl::StatusOr<std::vector<int64_t>> Ints(absl::string_view name) const;

  // The node's operator applied to the data argument `data_name`, the other arguments fixed.
  absl::StatusOr<OpCall> Call(absl::string_view data_name) const;

  // Errors that name the node.
  absl::Status Unsupported(absl::string_view why) const;
  absl::Status Invalid(absl::string_view why) const;

 private:
  const torch::jit::Node* node_;
  std::vector<const ImportedValue*> inputs_;
  std::string origin_;
};

}  // namespace segrel::graph

#endif  // SEGREL_CORE_GRAPH_NODE_ARGS_H_
