#include "core/graph/network_model.h"

#include <filesystem>
#include <utility>

#include "absl/strings/ascii.h"
#include "core/common/status_macros.h"
#include "core/graph/onnx/onnx_model.h"
#include "core/graph/torchscript_importer.h"

namespace segrel::graph {

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
