#include "core/model/model_replica.h"

#include <filesystem>

#include "core/common/status_macros.h"

namespace segrel::model {

absl::StatusOr<std::unique_ptr<ModelReplica>> ModelReplica::Load(const std::string& path) {
  SEGREL_ASSIGN_OR_RETURN(std::unique_ptr<graph::NetworkModel> model, graph::LoadNetworkModel(path));
  return std::make_unique<ModelReplica>(std::move(model));
}

absl::StatusOr<std::shared_ptr<const graph::LayerGraph>> ModelReplica::Graph(const std::vector<int64_t>& input_sizes,
                                                                             const at::Device& device,
                                                                             const graph::ImportOptions& options) {
  const auto key = std::make_tuple(input_sizes, device.str(), options.output);
  absl::MutexLock lock(&mutex_);  // held while importing: two jobs of one worker never import the same graph twice
  if (const auto found = graphs_.find(key); found != graphs_.end()) return found->second;
  SEGREL_ASSIGN_OR_RETURN(graph::LayerGraph imported, model_->ImportGraph(input_sizes, options));
  SEGREL_RETURN_IF_ERROR(imported.ConvertTo(at::TensorOptions().device(device)));
  auto graph = std::make_shared<const graph::LayerGraph>(std::move(imported));
  graphs_[key] = graph;
  ++imports_;
  return graph;
}

int ModelReplica::imports() const {
  absl::MutexLock lock(&mutex_);
  return imports_;
}

absl::StatusOr<ModelReplica*> ModelReplicas::Get(const std::string& path) {
  // One replica per file, however the path to it is spelled ("bundle/../model.pt").
  std::error_code error;
  const std::filesystem::path canonical = std::filesystem::weakly_canonical(path, error);
  const std::string key = error ? path : canonical.string();
  absl::MutexLock lock(&mutex_);
  std::unique_ptr<ModelReplica>& replica = replicas_[key];
  if (replica == nullptr) {
    absl::StatusOr<std::unique_ptr<ModelReplica>> loaded = ModelReplica::Load(path);
    if (!loaded.ok()) {
      replicas_.erase(key);
      return loaded.status();
    }
    replica = *std::move(loaded);
  }
  return replica.get();
}

}  // namespace segrel::model
