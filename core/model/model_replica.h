// A model kept loaded between analyses: the network (TorchScript or ONNX) and the layer graphs imported from it, one
// per input shape and device. Importing a network (freezing, shape-specialised conversion) costs about a second for a
// 128^3 patch, so a server worker keeps one replica per model and reuses it for every job.
#ifndef SEGREL_CORE_MODEL_MODEL_REPLICA_H_
#define SEGREL_CORE_MODEL_MODEL_REPLICA_H_

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/graph/layer_graph.h"
#include "core/graph/network_model.h"

namespace segrel::model {

// Thread-safe; graphs handed out are immutable and may be used by several threads.
class ModelReplica {
 public:
  explicit ModelReplica(std::unique_ptr<const graph::NetworkModel> model) : model_(std::move(model)) {}

  // Errors: those of graph::LoadNetworkModel.
  static absl::StatusOr<std::unique_ptr<ModelReplica>> Load(const std::string& path);

  const graph::NetworkModel& model() const { return *model_; }

  // The network imported for inputs of `input_sizes` ([N, C, spatial...]) with its tensors on `device`: imported
  // on the first call for these sizes and device, the same graph afterwards. Errors: those of ImportGraph.
  absl::StatusOr<std::shared_ptr<const graph::LayerGraph>> Graph(const std::vector<int64_t>& input_sizes,
                                                                 const at::Device& device,
                                                                 const graph::ImportOptions& options = {});

  // How many graphs were imported so far (for tests and metrics).
  int imports() const;

 private:
  const std::unique_ptr<const graph::NetworkModel> model_;
  mutable absl::Mutex mutex_;
  std::map<std::tuple<std::vector<int64_t>, std::string, int>, std::shared_ptr<const graph::LayerGraph>> graphs_
      ABSL_GUARDED_BY(mutex_);
  int imports_ ABSL_GUARDED_BY(mutex_) = 0;
};

// Replicas by model file, each loaded on first use: what one server worker keeps. Thread-safe.
class ModelReplicas {
 public:
  // The replica of the network file at `path`. Errors: those of ModelReplica::Load (not kept: a later call
  // tries again).
  absl::StatusOr<ModelReplica*> Get(const std::string& path);

 private:
  absl::Mutex mutex_;
  std::map<std::string, std::unique_ptr<ModelReplica>> replicas_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace segrel::model

#endif  // SEGREL_CORE_MODEL_MODEL_REPLICA_H_
