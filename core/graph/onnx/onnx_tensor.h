// Tensors stored in ONNX files (initializers, Constant nodes, attributes), read into LibTorch tensors.
//
// Internal to core/graph: used by the ONNX importer only.
#ifndef SEGREL_CORE_GRAPH_ONNX_ONNX_TENSOR_H_
#define SEGREL_CORE_GRAPH_ONNX_ONNX_TENSOR_H_

#include <ATen/ATen.h>

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "onnx/onnx_pb.h"

namespace segrel::graph::onnx_import {

// Returns the tensor `proto` holds, with its ONNX element type (float16 and bfloat16 as such, booleans as kBool).
// Data may be inline (raw_data or the typed fields) or, for EXTERNAL tensors, in a file named relative to
// `model_dir`, at the given offset and length. `what` names the tensor in messages.
// Errors: InvalidArgument for an element type segrel cannot read (strings, complex, unsigned 32/64-bit), a size
// that does not match the dims, or external data outside `model_dir`; NotFound when the external file is missing;
// OutOfRange when it is shorter than offset + length.
absl::StatusOr<at::Tensor> ReadTensor(const onnx::TensorProto& proto, const std::filesystem::path& model_dir,
                                      const std::string& what);

// The LibTorch element type of an ONNX TensorProto::DataType, or InvalidArgument naming it.
absl::StatusOr<at::ScalarType> ScalarTypeOf(int onnx_type);

}  // namespace segrel::graph::onnx_import

#endif  // SEGREL_CORE_GRAPH_ONNX_ONNX_TENSOR_H_
