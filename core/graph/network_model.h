// NetworkModel: a segmentation network file that segrel imports into its layer graph, whatever its format.
//
// Two formats: TorchScript (torch.jit.trace / torch.jit.script archives, torchscript_importer.h) and ONNX
// (onnx/onnx_model.h). Both give the same LayerGraph, so every rule, composite and the whole pipeline work the same
// on either.
#ifndef SEGREL_CORE_GRAPH_NETWORK_MODEL_H_
#define SEGREL_CORE_GRAPH_NETWORK_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/graph/layer_graph.h"

namespace segrel::graph {

struct ImportOptions {
  // Which output of a network with several (a tuple or list in TorchScript, graph outputs in ONNX; deep supervision,
  // auxiliary heads) is the segmentation's logits. Default -1: the first, and the graph's notes say how many there
  // were and how to choose another.
  int output = -1;
};

// Thread-safety: implementations' const methods are safe to call concurrently.
class NetworkModel {
 public:
  virtual ~NetworkModel() = default;

  // The file the network was loaded from.
  virtual const std::string& path() const = 0;
  // "torchscript" or "onnx".
  virtual absl::string_view format() const = 0;

  // Returns the network as a layer graph for inputs of `input_sizes` ([N, C, spatial...]). Errors: Unimplemented
  // naming the operation segrel cannot explain; InvalidArgument when the network does not fit such an input, or
  // `options.output` names an output it does not have.
  virtual absl::StatusOr<LayerGraph> ImportGraph(const std::vector<int64_t>& input_sizes,
                                                 const ImportOptions& options) const = 0;
  absl::StatusOr<LayerGraph> ImportGraph(const std::vector<int64_t>& input_sizes) const {
    return ImportGraph(input_sizes, ImportOptions());
  }
};

// The output to explain of a network with `count` outputs: options.output, or 0 with a note in `graph` naming the
// count. Errors: InvalidArgument when options.output is not below `count`.
absl::StatusOr<size_t> ChooseOutput(size_t count, const ImportOptions& options, LayerGraph& graph);

// What to say after LibTorch's message when an operator refuses the shapes an input of `input_sizes` gives it.
std::string InputSizeHint(const std::vector<int64_t>& input_sizes);

// Whether `path` names an ONNX file (by its extension, ".onnx").
bool IsOnnxPath(const std::string& path);

// Loads the network at `path`: ONNX for ".onnx" files, TorchScript otherwise. Errors: those of the format's Load.
absl::StatusOr<std::unique_ptr<NetworkModel>> LoadNetworkModel(const std::string& path);

}  // namespace segrel::graph

#endif  // SEGREL_CORE_GRAPH_NETWORK_MODEL_H_
