// The TorchScript operators segrel can explain, and how each becomes a Layer.
//
// Internal to core/graph. Adding an operator: write a factory in op_table.cc and add one line to the table.
#ifndef SEGREL_CORE_GRAPH_OP_TABLE_H_
#define SEGREL_CORE_GRAPH_OP_TABLE_H_

#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "core/graph/node_args.h"

namespace segrel::graph {

using LayerFactory = absl::StatusOr<ImportedLayer> (*)(const NodeArgs& args);

// Returns the factory for the qualified operator name (e.g. "aten::_convolution"), or nullptr when segrel cannot
// explain the operator.
LayerFactory FindLayerFactory(absl::string_view qualified_name);

// Whether the operator only reads its tensor inputs' metadata (sizes, dimensions, type), so that it may take data
// inputs and still yield constants.
bool ReadsOnlyMetadata(absl::string_view qualified_name);

}  // namespace segrel::graph

#endif  // SEGREL_CORE_GRAPH_OP_TABLE_H_
