// The ONNX operators segrel reads, and what each becomes: constants folded at import, or layers.
//
// Internal to core/graph. Adding an operator: write a factory in onnx_ops_*.cc and add one line to its table.
#ifndef SEGREL_CORE_GRAPH_ONNX_ONNX_OPS_H_
#define SEGREL_CORE_GRAPH_ONNX_ONNX_OPS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/graph/layer.h"
#include "core/graph/onnx/onnx_importer.h"
#include "core/graph/op_call.h"

namespace segrel::graph::onnx_import {

// A factory returns one value per output of the node it imports (fewer when the later outputs are not produced).
using OnnxOpFactory = absl::StatusOr<std::vector<OnnxValue>> (*)(OnnxNode& node);

// The factory for an operator of the default domain, or nullptr when segrel cannot import it.
OnnxOpFactory FindOnnxOp(absl::string_view op_type);

// The operators segrel explains on data (beside those it only folds on constants), sorted.
std::vector<std::string> OnnxDataOperators();

// ---- helpers the two halves of the table share ----

// One output.
std::vector<OnnxValue> Outputs(OnnxValue value);
// `tensor` as a layer parameter: float32, contiguous.
at::Tensor AsParameter(const at::Tensor& tensor);
// The sizes of input `i`, data or constant.
std::vector<int64_t> InputSizes(const OnnxNode& node, size_t i);
// A function of input 0 that is linear in it (or affine, `linear` then being its linear part): evaluated at import
// when the input is a constant, else a LinearFunctionLayer of `kind` and `role`.
absl::StatusOr<std::vector<OnnxValue>> LinearOfInput(OnnxNode& node, std::string kind, LayerRole role,
                                                     OpCall::TensorFunction function,
                                                     std::vector<at::Tensor> constants = {},
                                                     std::optional<OpCall::TensorFunction> linear = std::nullopt);

// When the node (a Pad of the spatial dimensions with zeros, `begin` and `end` per spatial dimension) is read only
// by an AveragePool that pads nothing itself, imports both as one average pooling that counts the padding, as
// PyTorch's AvgPool with count_include_pad has it (PyTorch exports it as the two). Returns nothing otherwise.
absl::StatusOr<std::optional<OnnxValue>> FoldPaddingIntoAveragePool(OnnxNode& node, int data,
                                                                    const std::vector<int64_t>& begin,
                                                                    const std::vector<int64_t>& end);

// Resize (onnx_resize.cc).
absl::StatusOr<std::vector<OnnxValue>> Resize(OnnxNode& node);

// The two halves of the table (onnx_ops_nn.cc: convolutions, pooling, normalisation, activations, resizing;
// onnx_ops_tensor.cc: arithmetic, shapes and everything else).
OnnxOpFactory FindNnOp(absl::string_view op_type);
OnnxOpFactory FindTensorOp(absl::string_view op_type);
std::vector<std::string> NnDataOperators();
std::vector<std::string> TensorDataOperators();

}  // namespace segrel::graph::onnx_import

#endif  // SEGREL_CORE_GRAPH_ONNX_ONNX_OPS_H_
