// Loading ONNX networks and importing them into segrel's layer graph: the second door beside TorchScript.
//
// segrel reads the ONNX file itself (Debian's libonnx for the protobuf schema) and walks its graph once for a given
// input shape, as the TorchScript importer does:
//   - initializers, Constant nodes and everything computed from shapes (Shape/Gather/Concat/... chains) are
//     evaluated at import with LibTorch;
//   - every operation on data becomes a Layer of the same kinds the TorchScript importer makes (BatchNormalization
//     after a convolution is folded into it, the decomposed GroupNorm PyTorch exports becomes one group norm, a
//     MatMul followed by the addition of a bias becomes one linear layer), or an error naming the operator, the
//     node's name and its index;
//   - a Softmax, LogSoftmax or Sigmoid at the very end is recorded, not applied: segrel explains the logits.
// Opsets 11 to 17 of the default domain are read; docs/onnx.md lists the operators and attributes.
#ifndef SEGREL_CORE_GRAPH_ONNX_ONNX_MODEL_H_
#define SEGREL_CORE_GRAPH_ONNX_ONNX_MODEL_H_

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/graph/layer_graph.h"
#include "core/graph/network_model.h"

namespace segrel::graph {

struct OnnxLoadOptions {
  // Graph inputs other than the network's data input, fixed to these values (by input name). Default: none, so
  // that the network must take exactly one input that is not an initializer.
  std::map<std::string, at::Tensor> fixed_inputs;
  // The most elements any value of the graph may have (constants computed at import and layer outputs): a guard
  // against files that would make segrel allocate without bound. Default 2^32.
  int64_t max_elements = int64_t{1} << 32;
};

// A loaded ONNX network. Copies share it.
//
// Thread-safety: all methods are const and safe to call concurrently.
class OnnxModel final : public NetworkModel {
 public:
  static constexpr int64_t kMinOpset = 11;
  static constexpr int64_t kMaxOpset = 17;

  // Reads the ONNX file at `path` and its initializers (external data relative to the file's folder).
  // Errors: NotFound when the file (or an external data file) does not exist; InvalidArgument when it is not an
  // ONNX model, is truncated, uses an opset outside 11..17 or another domain's opset for its nodes, has an
  // initializer segrel cannot read, or does not take exactly one data input.
  static absl::StatusOr<OnnxModel> Load(const std::string& path, OnnxLoadOptions options = {});

  const std::string& path() const override;
  absl::string_view format() const override { return "onnx"; }
  // The model's opset of the default domain.
  int64_t opset() const;
  // The declared sizes of the data input; -1 for a dimension without a fixed size (a symbolic one).
  const std::vector<int64_t>& declared_input_sizes() const;

  // Returns the network as a layer graph for inputs of `input_sizes` ([N, C, spatial...]).
  // Errors: InvalidArgument when `input_sizes` contradict the input's declared sizes (the message gives them) or
  // an operator refuses the shapes; Unimplemented, naming the operator, node and index, for an operation or
  // attribute value segrel cannot explain.
  absl::StatusOr<LayerGraph> ImportGraph(const std::vector<int64_t>& input_sizes,
                                         const ImportOptions& options) const override;
  using NetworkModel::ImportGraph;

  struct State;

 private:
  explicit OnnxModel(std::shared_ptr<const State> state);

  std::shared_ptr<const State> state_;
};

}  // namespace segrel::graph

#endif  // SEGREL_CORE_GRAPH_ONNX_ONNX_MODEL_H_
