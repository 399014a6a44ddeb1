#include "core/analysis/explanation.h"

#include <chrono>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/analysis/region_relevance.h"
#include "core/analysis/regions.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"
#include "core/lrp/composite.h"
#include "core/lrp/explainer.h"

namespace segrel::analysis {
namespace {

class Stopwatch {
 public:
  double Lap() {
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    return seconds;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

absl::Status CheckSegmentationOutput(const graph::LayerGraph& graph) {
  const std::vector<int64_t>& in = graph.input_sizes();
  const std::vector<int64_t>& out = graph.output_sizes();
  const bool fits = out.size() == in.size() && out[0] == 1 && std::equal(in.begin() + 2, in.end(), out.begin() + 2);
  if (!fits) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model's output has shape [", absl::StrJoin(out, ", "), "] for an input of [", absl::StrJoin(in, ", "),
        "]; segrel explains segmentations, whose output is [1, K, ", absl::StrJoin(in.begin() + 2, in.end(), ", "),
        "]"));
  }
  return absl::OkStatus();
}

// Channel sums of a [1, C, ...] map.
std::vector<double> ChannelSums(const at::Tensor& map) {
  const at::Tensor sums = map[0].flatten(1).sum(1).to(at::kDouble).cpu();
  return std::vector<double>(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel());
}

}  // namespace

std::vector<double> Shares(const std::vector<double>& raw) {
  double total = 0;
  for (double value : raw) total += value;
  std::vector<double> shares(raw.size(), 0.0);
  if (total == 0) return shares;
  for (size_t s = 0; s < raw.size(); ++s) shares[s] = raw[s] / total;
  return shares;
}

absl::StatusOr<Explanation> ExplainSegmentation(const graph::TorchScriptModel& model, const at::Tensor& input,
                                                const ExplainOptions& options) {
  Explanation result;
  Stopwatch stopwatch;
  // With windows, the network is imported for one patch and explains the volume window by window.
  std::vector<int64_t> graph_sizes = input.sizes().vec();
  if (options.window.has_value()) {
    graph_sizes.resize(2);
    graph_sizes.insert(graph_sizes.end(), options.window->patch.begin(), options.window->patch.end());
  }
  SEGREL_ASSIGN_OR_RETURN(graph::LayerGraph imported, model.ImportGraph(graph_sizes));
  SEGREL_RETURN_IF_ERROR(CheckSegmentationOutput(imported));
  SEGREL_RETURN_IF_ERROR(imported.ConvertTo(at::TensorOptions().device(options.device)));
  auto graph = std::make_shared<const graph::LayerGraph>(std::move(imported));
  result.output_activation = graph->output_activation();
  SEGREL_ASSIGN_OR_RETURN(const lrp::Composite composite,
                          lrp::Composite::Create(options.composite, options.rule_parameters));
  auto explainer = std::make_shared<const lrp::Explainer>(graph, composite);
  result.seconds.import_graph = stopwatch.Lap();

  SEGREL_ASSIGN_OR_RETURN(const at::Tensor device_input,
                          CatchTorch("moving the input", [&]() -> absl::StatusOr<at::Tensor> {
                            return input.to(options.device, at::kFloat);
                          }));
  std::unique_ptr<lrp::RelevanceOperator> explained;
  if (options.window.has_value()) {
    SEGREL_ASSIGN_OR_RETURN(std::unique_ptr<WindowedExplanation> windowed,
                            WindowedExplanation::Create(explainer, device_input, *options.window));
    result.windows = static_cast<int64_t>(windowed->grid().windows().size());
    explained = std::move(windowed);
  } else {
    SEGREL_ASSIGN_OR_RETURN(lrp::ExplainedForward forward, explainer->Forward(device_input));
    explained = std::make_unique<lrp::ExplainedForward>(std::move(forward));
  }
  const lrp::RelevanceOperator& forward = *explained;
  result.seconds.inference = stopwatch.Lap();

  SEGREL_ASSIGN_OR_RETURN(const at::Tensor normalisers, RelevanceNormalisers(forward));
  result.seconds.transpose = stopwatch.Lap();

  const ClassLayout layout = LayoutOf(forward.output());
  std::vector<RegionChoice> choices;
  SEGREL_RETURN_IF_ERROR(CatchTorch("choosing regions", [&]() -> absl::Status {
    result.segmentation = Segment(forward.output());
    if (options.region_masks.empty()) {
      BalancedRegionsOptions balanced;
      balanced.seed = options.seed;
      balanced.tau = options.tau;
      BalancedRegions regions = ChooseBalancedRegions(result.segmentation, normalisers, layout, balanced);
      choices = std::move(regions.choices);
      result.notes = std::move(regions.notes);
      return absl::OkStatus();
    }
    SEGREL_ASSIGN_OR_RETURN(choices, MaskRegions(options.region_masks, result.segmentation, normalisers, layout,
                                                 options.tau));
    return absl::OkStatus();
  }));

  std::vector<ClassRegion> regions;
  for (const RegionChoice& choice : choices) regions.push_back(choice.region);
  RegionRelevanceOptions relevance_options;
  relevance_options.tau = options.tau;
  relevance_options.per_region = true;
  SEGREL_ASSIGN_OR_RETURN(const RegionRelevance relevance,
                          TwoPassRegionRelevance(forward, normalisers, regions, relevance_options));
  result.seconds.relevance = stopwatch.Lap();

  return CatchTorch("collecting the explanation", [&]() -> absl::StatusOr<Explanation> {
    for (size_t k = 0; k < choices.size(); ++k) {
      const RegionChoice& choice = choices[k];
      ClassExplanation explained;
      explained.class_index = choice.region.class_index;
      explained.channel = choice.region.channel;
      explained.region_kind = choice.kind;
      explained.predicted_voxels = choice.predicted_voxels;
      explained.region_voxels = relevance.region_voxels[k];
      explained.excluded_voxels = choice.excluded_voxels;
      explained.raw = ChannelSums(relevance.per_region[k]);
      if (explained.region_voxels > 0) {
        explained.mean_normaliser =
            normalisers[0][choice.region.channel].masked_select(choice.region.mask).mean().item<double>();
      }
      result.classes.push_back(std::move(explained));
    }
    result.raw = ChannelSums(relevance.combined);
    result.relevance_map = relevance.combined[0].to(at::kCPU, at::kFloat);
    result.logits = forward.output().to(at::kCPU, at::kFloat);
    result.segmentation = result.segmentation.cpu();
    return std::move(result);
  });
}

}  // namespace segrel::analysis
