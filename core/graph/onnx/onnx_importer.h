// The ONNX importer's inner parts: what it knows about values, OnnxNode (one node's inputs and attributes, and the
// means to add layers for it), and the importer that walks a graph.
//
// Internal to core/graph: onnx_model.cc and the op table (onnx_ops*.cc) use it.
#ifndef SEGREL_CORE_GRAPH_ONNX_ONNX_IMPORTER_H_
#define SEGREL_CORE_GRAPH_ONNX_ONNX_IMPORTER_H_

#include <ATen/ATen.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/graph/layer.h"
#include "core/graph/layer_graph.h"
#include "core/graph/network_model.h"
#include "core/graph/onnx/onnx_model.h"
#include "onnx/onnx_pb.h"

namespace segrel::graph {

struct OnnxModel::State {
  std::string path;
  std::filesystem::path dir;  // external data is named relative to it
  onnx::ModelProto model;
  int64_t opset = 0;
  std::map<std::string, at::Tensor> constants;  // initializers and fixed inputs, by name
  std::string data_input;
  std::vector<int64_t> declared_input_sizes;  // -1: not fixed
  int64_t max_elements = 0;                   // OnnxLoadOptions::max_elements
};

namespace onnx_import {

// An ONNX value as the importer sees it.
struct OnnxValue {
  enum class Kind {
    kAbsent,           // an optional input left out (empty name)
    kConstant,         // known at import: an initializer, a Constant node, anything computed from shapes
    kData,             // a tensor that depends on the network input: a layer graph value
    kActivatedOutput,  // softmax/log_softmax of data: allowed only as the network output
  };
  Kind kind = Kind::kAbsent;
  at::Tensor constant;                                    // kConstant
  int data = -1;                                          // kData; kActivatedOutput: the logits
  OutputActivation activation = OutputActivation::kNone;  // kActivatedOutput

  static OnnxValue Constant(at::Tensor value);
  static OnnxValue Data(int id);
  bool IsData() const { return kind == Kind::kData || kind == Kind::kActivatedOutput; }
  bool IsConstant() const { return kind == Kind::kConstant; }
};

class OnnxImporter;

// One node being imported. Factories read its inputs and attributes and add the layers it becomes.
class OnnxNode {
 public:
  OnnxNode(OnnxImporter& importer, int index, const onnx::NodeProto& proto);

  const onnx::NodeProto& proto() const { return proto_; }
  const std::string& op_type() const { return proto_.op_type(); }
  int index() const { return index_; }
  int64_t opset() const;
  // "node 12 (Conv \"/enc/conv1/Conv\")", for messages.
  const std::string& origin() const { return origin_; }

  size_t num_inputs() const { return proto_.input_size(); }
  // The input at `i`; kAbsent when the node has fewer inputs or leaves it out.
  const OnnxValue& Input(size_t i) const;
  // The input at `i`, which must be known at import. Errors: Unimplemented when it depends on the data;
  // InvalidArgument when it is absent. `what` names it ("weights", "pads").
  absl::StatusOr<at::Tensor> ConstantInput(size_t i, absl::string_view what) const;
  // The constant input at `i` as integers (e.g. shapes, axes); an absent input gives `absent`.
  absl::StatusOr<std::vector<int64_t>> IntsInput(size_t i, absl::string_view what,
                                                 std::vector<int64_t> absent = {}) const;
  // The layer graph value of the data input at `i`. Errors: Unimplemented when it is not data.
  absl::StatusOr<int> DataInput(size_t i, absl::string_view what) const;
  // The sizes of a layer graph value.
  std::vector<int64_t> Sizes(int data) const;

  bool HasAttribute(absl::string_view name) const;
  absl::StatusOr<int64_t> Int(absl::string_view name, int64_t fallback) const;
  absl::StatusOr<std::vector<int64_t>> Ints(absl::string_view name, std::vector<int64_t> fallback = {}) const;
  // ONNX keeps float attributes in single precision; this returns the shortest decimal that rounds to the stored
  // value (0.1f as 0.1), which is what the exporting framework had, so that float64 analyses see the same slope or
  // epsilon as the network's TorchScript twin.
  absl::StatusOr<double> Float(absl::string_view name, double fallback) const;
  absl::StatusOr<std::string> String(absl::string_view name, std::string fallback) const;
  absl::StatusOr<at::Tensor> TensorAttribute(absl::string_view name) const;

  // The number of elements of a tensor of `sizes`. Errors: InvalidArgument naming `what` when a size is negative
  // or the count exceeds the import's limit (OnnxLoadOptions::max_elements).
  absl::StatusOr<int64_t> ElementCount(const std::vector<int64_t>& sizes, absl::string_view what) const;

  // Adds `layer` reading the data values `inputs` and returns its output. Errors: InvalidArgument when the layer
  // refuses the inputs' shapes (the message is LibTorch's, prefixed with the origin).
  absl::StatusOr<OnnxValue> Add(std::unique_ptr<Layer> layer, std::vector<int> inputs);

  // The one node that reads this node's output `output`, when exactly one does and the output is not a graph
  // output (so a factory may fold that node into this one); nullptr otherwise.
  const onnx::NodeProto* SoleReader(size_t output, int* reader_index) const;
  // The value called `name` if it is already known (initializers, earlier nodes); nullptr otherwise.
  const OnnxValue* Lookup(const std::string& name) const;
  // The node that computes the value called `name` (nullptr for graph inputs and initializers).
  const onnx::NodeProto* Writer(const std::string& name) const;
  // Another node of the graph (a sole reader), to read its attributes and inputs.
  OnnxNode Other(int index) const;
  // The layer graph node that computes the data value `data`; nullptr for the network input.
  const GraphNode* Producer(int data) const;
  // Folds node `reader_index` into this one: it is skipped, and its first output is this node's first output.
  void Absorb(int reader_index);

  // Errors that name the node.
  absl::Status Unsupported(absl::string_view why) const;
  absl::Status Invalid(absl::string_view why) const;

 private:
  const onnx::AttributeProto* FindAttribute(absl::string_view name) const;

  OnnxImporter& importer_;
  int index_;
  const onnx::NodeProto& proto_;
  std::string origin_;
};

// Walks one ONNX graph for one input shape and builds the layer graph.
class OnnxImporter {
 public:
  OnnxImporter(const OnnxModel::State& model, std::vector<int64_t> input_sizes, ImportOptions options);

  absl::StatusOr<LayerGraph> Import();

 private:
  friend class OnnxNode;

  absl::Status ImportNode(int index);
  // The name of the graph output that is the segmentation (ImportOptions::output).
  absl::StatusOr<std::string> OutputName();
  absl::Status BindOutput();
  absl::StatusOr<OnnxValue> AddLayer(const std::string& origin, std::unique_ptr<Layer> layer, std::vector<int> inputs);
  const OnnxValue& Find(const std::string& name) const;

  const OnnxModel::State& model_;
  const ImportOptions options_;
  const onnx::GraphProto& graph_proto_;
  LayerGraph graph_;
  std::unordered_map<std::string, OnnxValue> values_;
  absl::flat_hash_map<int, at::Tensor> proxies_;               // layer graph value -> its sizes, as a meta tensor
  std::unordered_map<std::string, std::vector<int>> readers_;  // value name -> indices of the nodes reading it
  std::unordered_map<std::string, int> writers_;               // value name -> index of the node computing it
  std::string output_name_;                                    // the graph output segrel explains
  std::map<int, int> absorbed_;                                // node index -> the node it was folded into
};

}  // namespace onnx_import
}  // namespace segrel::graph

#endif  // SEGREL_CORE_GRAPH_ONNX_ONNX_IMPORTER_H_
