// Explaining one segmentation: the network's prediction for a study, and which input sequences it relied on for
// each class (the paper's section 2.3), with exact Eq. 2 region relevance.
//
// ExplainSegmentation imports the network for the study's shape, runs the explained forward pass, one transpose
// pass (normalisers c), chooses the regions (balanced, or the user's masks), and runs one batched relevance pass
// with one entry per class. The combined map M = sum over classes; per-sequence relevance = channel sums.
#ifndef SEGREL_CORE_ANALYSIS_EXPLANATION_H_
#define SEGREL_CORE_ANALYSIS_EXPLANATION_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/analysis/sliding_window.h"
#include "core/analysis/stages.h"
#include "core/graph/layer_graph.h"
#include "core/graph/network_model.h"
#include "core/lrp/rule_registry.h"
#include "core/model/model_replica.h"

namespace segrel::analysis {

struct ExplainOptions {
  std::string composite = "epsilon-plus";      // a name from lrp::Composite::Names()
  lrp::RuleParameters rule_parameters;         // epsilon, stabiliser, gamma, z-box bounds
  double tau = 1e-6;                           // eligibility threshold on |c_a|
  uint64_t seed = 0;                           // for the balanced background region
  std::map<int64_t, at::Tensor> region_masks;  // class -> mask ([i, j, k], non-zero = in); empty: balanced regions
  at::Device device = at::kCPU;
  // Sliding windows (the network is imported for one patch); without: the whole volume in one pass.
  std::optional<WindowOptions> window;
  // Also explain each predicted lesion (connected component of a foreground class) on its own.
  bool per_lesion = false;
  // A reference segmentation ([i, j, k], non-zero = foreground): Dice, and true positives, false positives and
  // false negatives explained apart.
  at::Tensor reference;
  // Also predict with each sequence replaced by its mean inside the body, and report the change.
  bool ablation = false;
  // Which of the network's outputs is the segmentation (graph::ImportOptions::output; -1: the first, with a note).
  int output = -1;
  // Told at each stage and after each window; a non-OK return stops the explanation with that status.
  ProgressCallback progress;
};

// A region explained through the per-voxel sequence contributions (contributions.h).
struct RegionExplanation {
  std::string kind;   // "lesion", "true_positive", "false_positive" or "false_negative"
  int64_t label = 0;  // lesions: component number, 1.. by decreasing size
  int64_t class_index = 0;
  int64_t channel = 0;
  int64_t voxels = 0;            // in the region
  int64_t region_voxels = 0;     // explained (|c| > tau)
  std::vector<double> centroid;  // lesions: mean voxel index (i, j, k)
  std::vector<double> raw;       // per sequence
};

// The prediction with one sequence replaced by its mean inside the body (voxels where some sequence differs from
// its value at the volume's corner: the background of skull-stripped or z-scored studies is constant).
struct SequenceAblation {
  int64_t sequence = 0;
  int64_t foreground_voxels = 0;    // predicted foreground (any class > 0)
  double dice_with_prediction = 0;  // foreground Dice with the unablated prediction
  std::optional<double> dice_with_reference;
};

// One explained class.
struct ClassExplanation {
  int64_t class_index = 0;
  int64_t channel = 0;      // network output channel explained
  std::string region_kind;  // "balanced" or "mask"
  int64_t predicted_voxels = 0;
  int64_t region_voxels = 0;    // voxels explained
  int64_t excluded_voxels = 0;  // voxels of the region left out for |c_a| <= tau
  double mean_normaliser = 0;   // mean c_a over the region: the share of relevance that reaches the input
  std::vector<double> raw;      // per input sequence: channel sums of this class's M
};

struct Explanation {
  graph::OutputActivation output_activation = graph::OutputActivation::kNone;
  at::Tensor logits;         // [1, K, i, j, k], float32 on the CPU
  at::Tensor segmentation;   // [i, j, k], int64 class per voxel, on the CPU
  at::Tensor relevance_map;  // combined M, [C, i, j, k], float32 on the CPU
  std::vector<double> raw;   // per input sequence: channel sums of M
  std::vector<ClassExplanation> classes;
  std::vector<std::string> notes;
  StageTimes seconds;   // import, inference, transpose, relevance and (with ablation) ablation
  int64_t windows = 0;  // number of sliding windows (0: whole volume)

  std::vector<RegionExplanation> lesions;        // with per_lesion, by decreasing size
  std::vector<RegionExplanation> error_regions;  // with a reference: true/false positives, false negatives
  std::optional<double> dice;                    // foreground Dice with the reference
  int64_t foreground_voxels = 0;                 // predicted foreground (any class > 0)
  std::vector<SequenceAblation> ablation;        // with ablation, per sequence
};

// Explains the segmentation of `input` ([1, C, i, j, k], float32) by `replica`'s network (imported into the
// replica once per shape). Errors: InvalidArgument when the network's output is not [1, K, i, j, k] on the input's
// grid, the input does not fit the network, or a region mask does not fit; NotFound for an unknown composite;
// Unimplemented for a network segrel cannot explain; LibTorch failures as CatchTorch maps them.
absl::StatusOr<Explanation> ExplainSegmentation(model::ModelReplica& replica, const at::Tensor& input,
                                                const ExplainOptions& options);

// raw / sum(raw): shares that sum to 1 (all zero when the sum is zero).
std::vector<double> Shares(const std::vector<double>& raw);

}  // namespace segrel::analysis

#endif  // SEGREL_CORE_ANALYSIS_EXPLANATION_H_
