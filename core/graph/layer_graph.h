// LayerGraph: segrel's own graph of a segmentation network, the structure the LRP engine walks.
//
// Values are numbered; value 0 is the network input. Nodes are kept in topological order, each one a Layer that
// reads one or more values and writes one new value. Everything that is not data (shapes, constants, lists) was
// resolved when the graph was imported for a given input shape (see torchscript_importer.h), so nodes carry only
// tensors. The graph's output is the logits: a final softmax or sigmoid is recorded, not applied.
//
// Thread-safety: const methods are safe to call concurrently; the builder methods and ConvertTo() are not.
#ifndef SEGREL_CORE_GRAPH_LAYER_GRAPH_H_
#define SEGREL_CORE_GRAPH_LAYER_GRAPH_H_

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/graph/layer.h"

namespace segrel::graph {

// The function the original network applied to its logits (segrel explains the logits, docs/conventions.md).
enum class OutputActivation { kNone, kSoftmax, kLogSoftmax, kSigmoid };

absl::string_view OutputActivationName(OutputActivation activation);

struct GraphNode {
  std::unique_ptr<Layer> layer;
  std::vector<int> inputs;  // value ids, in the layer's input order
  int output = -1;          // value id
  std::string origin;       // the TorchScript node it came from, for messages (op and source location)
};

class LayerGraph {
 public:
  // A graph for inputs of `input_sizes` ([N, C, spatial...]).
  explicit LayerGraph(std::vector<int64_t> input_sizes);
  LayerGraph(LayerGraph&&) = default;
  LayerGraph& operator=(LayerGraph&&) = default;

  static constexpr int kInputValue = 0;

  // Builder: appends a node reading `inputs` (existing values) and returns the id of its output value.
  int AddNode(std::unique_ptr<Layer> layer, std::vector<int> inputs, std::string origin);
  // The logits of the network output `value`: the input of a final sigmoid, which is recorded as the output
  // activation rather than explained; else `value` itself, with no activation.
  std::pair<int, OutputActivation> LogitsBeforeSigmoid(int value) const;

  // Builder: sets the output value, its sizes, and the activation the network applied to it. Removes the nodes
  // that do not contribute to the output.
  void SetOutput(int value, std::vector<int64_t> output_sizes, OutputActivation activation);

  const std::vector<GraphNode>& nodes() const { return nodes_; }
  int num_values() const { return num_values_; }
  int output() const { return output_; }
  OutputActivation output_activation() const { return output_activation_; }
  const std::vector<int64_t>& input_sizes() const { return input_sizes_; }
  // The sizes of the output (logits) for an input of input_sizes().
  const std::vector<int64_t>& output_sizes() const { return output_sizes_; }

  // Number of nodes reading each value (the graph output counts as one more reader).
  std::vector<int> ReaderCounts() const;

  // For each node: true when it is a convolution or linear layer with no convolution or linear layer before it on
  // any path from the input (the "first layer" that composites treat specially, e.g. with z-box or flat).
  std::vector<bool> FirstParametricNodes() const;

  // Returns the network's logits for `input`, freeing intermediate values as soon as they are read for the last
  // time. Errors: InvalidArgument when `input`'s sizes differ from input_sizes() (except the batch size);
  // LibTorch failures as mapped by CatchTorch().
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& input) const;

  // Checks `input` against input_sizes(), ignoring the batch size.
  absl::Status CheckInput(const at::Tensor& input) const;

  // Moves every parameter to `options` (device and floating-point type).
  absl::Status ConvertTo(const at::TensorOptions& options);

  // What the import decided that the user should know (e.g. which of several outputs is explained), one sentence
  // each; shown in the analysis's notes.
  const std::vector<std::string>& notes() const { return notes_; }
  void AddNote(std::string note) { notes_.push_back(std::move(note)); }

  // A multi-line description: one line per node (output, kind, inputs, origin).
  std::string DebugString() const;

 private:
  std::vector<int64_t> input_sizes_;
  std::vector<int64_t> output_sizes_;
  std::vector<GraphNode> nodes_;
  int num_values_ = 1;
  int output_ = kInputValue;
  OutputActivation output_activation_ = OutputActivation::kNone;
  std::vector<std::string> notes_;
};

}  // namespace segrel::graph

#endif  // SEGREL_CORE_GRAPH_LAYER_GRAPH_H_
