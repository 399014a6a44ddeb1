// Loading TorchScript networks and importing them into segrel's layer graph.
//
// Users export their trained network with torch.jit.trace or torch.jit.script. segrel loads it on the CPU, switches
// it to evaluation mode and freezes it (torch::jit::freeze: parameters become constants and batch norm folds into
// the preceding convolution), then walks the frozen graph once for a given input shape:
//   - everything that does not depend on the input's values (parameters, shapes, list and integer arithmetic,
//     branches on shapes) is evaluated right away with LibTorch's own operators;
//   - every operation on data becomes a Layer, or an error that names the operator and its source location;
//   - a softmax or sigmoid at the very end is recorded, not applied: segrel explains the logits.
#ifndef SEGREL_CORE_GRAPH_TORCHSCRIPT_IMPORTER_H_
#define SEGREL_CORE_GRAPH_TORCHSCRIPT_IMPORTER_H_

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/graph/layer_graph.h"
#include "core/graph/network_model.h"

namespace segrel::graph {

// A loaded and frozen TorchScript network. Copies share the network.
//
// Thread-safety: all methods are const and safe to call concurrently.
class TorchScriptModel final : public NetworkModel {
 public:
  // Loads the TorchScript file at `path` onto the CPU in float32, in evaluation mode, and freezes it.
  // Errors: NotFound when the file does not exist; InvalidArgument when it is not a loadable TorchScript archive
  // or has no forward method.
  static absl::StatusOr<TorchScriptModel> Load(const std::string& path);

  const std::string& path() const override;
  absl::string_view format() const override { return "torchscript"; }

  // Runs the frozen TorchScript module itself: the reference the layer graph must reproduce.
  // Errors: InvalidArgument when the module rejects the input or returns something other than one tensor.
  absl::StatusOr<at::Tensor> Run(const at::Tensor& input) const;

  // Returns the network as a layer graph for inputs of `input_sizes` ([N, C, spatial...]).
  // Errors: Unimplemented, naming the operator and its source location, for an operation segrel cannot explain
  // (or control flow that depends on the data); InvalidArgument when the network does not take exactly one tensor
  // or does not return exactly one tensor that depends on its input.
  absl::StatusOr<LayerGraph> ImportGraph(const std::vector<int64_t>& input_sizes,
                                         const ImportOptions& options) const override;
  using NetworkModel::ImportGraph;

 private:
  struct State;
  explicit TorchScriptModel(std::shared_ptr<const State> state);

  std::shared_ptr<const State> state_;
};

}  // namespace segrel::graph

#endif  // SEGREL_CORE_GRAPH_TORCHSCRIPT_IMPORTER_H_
