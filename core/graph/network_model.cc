#include "core/graph/network_model.h"

#include <filesystem>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
#include "core/graph/onnx/onnx_model.h"
#include "core/graph/torchscript_importer.h"

namespace segrel::graph {

absl::StatusOr<size_t> ChooseOutput(size_t count, const ImportOptions& options, LayerGraph& graph) {
  if (options.output >= 0) {
    if (static_cast<size_t>(options.output) >= count) {
      return absl::InvalidArgumentError(
          absl::StrCat("the network has ", count, " outputs; there is no output ", options.output));
    }
    return static_cast<size_t>(options.output);
  }
  if (count > 1) {
    graph.AddNote(absl::StrCat("the network has ", count,
                               " outputs; segrel explains output 0 (choose another with --output N or the bundle's "
                               "\"output\")"));
  }
  return 0;
}

std::string InputSizeHint(const std::vector<int64_t>& input_sizes) {
  return absl::StrCat(" (for inputs of [", absl::StrJoin(input_sizes, ", "),
                      "]: the network may need another input size, e.g. the one it was traced or exported for; give "
                      "it windows of that size with the bundle's patch_size or --patch)");
}

bool IsOnnxPath(const std::string& path) {
  return absl::AsciiStrToLower(std::filesystem::path(path).extension().string()) == ".onnx";
}

absl::StatusOr<std::unique_ptr<NetworkModel>> LoadNetworkModel(const std::string& path) {
  if (IsOnnxPath(path)) {
    SEGREL_ASSIGN_OR_RETURN(OnnxModel model, OnnxModel::Load(path));
    return std::make_unique<OnnxModel>(std::move(model));
  }
  SEGREL_ASSIGN_OR_RETURN(TorchScriptModel model, TorchScriptModel::Load(path));
  return std::make_unique<TorchScriptModel>(std::move(model));
}

}  // namespace segrel::graph
