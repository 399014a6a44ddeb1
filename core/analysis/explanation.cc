#include "core/analysis/explanation.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/analysis/components.h"
#include "core/analysis/contributions.h"
#include "core/analysis/region_relevance.h"
#include "core/analysis/regions.h"
#include "core/common/allocator.h"
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

// Foreground Dice of two label volumes (any class > 0 is foreground); 1 when both are empty.
double ForegroundDice(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor fa = a.cpu() > 0, fb = b.cpu() > 0;
  const double overlap = (fa & fb).sum().item<double>();
  const double total = fa.sum().item<double>() + fb.sum().item<double>();
  return total == 0 ? 1.0 : 2.0 * overlap / total;
}

RegionExplanation ExplainRegion(const SequenceContributions& contributions, std::string kind, int64_t class_index,
                                const ClassLayout& layout, const at::Tensor& mask, double tau) {
  RegionExplanation region;
  region.kind = std::move(kind);
  region.class_index = class_index;
  region.channel = layout.ChannelOf(class_index);
  region.voxels = mask.sum().item<int64_t>();
  region.raw = RegionSequenceRelevance(contributions, region.channel, mask, tau, &region.region_voxels);
  return region;
}

// Each connected component of each foreground class, largest first (at most kMaxLesions of them). All lesions'
// sums come from one weighted count per quantity over the labelled volume.
std::vector<RegionExplanation> ExplainLesions(const SequenceContributions& contributions,
                                              const at::Tensor& segmentation, const ClassLayout& layout,
                                              double tau) {
  constexpr int64_t kMaxLesions = 1000;
  std::vector<RegionExplanation> lesions;
  for (int64_t k = 1; k < layout.num_classes; ++k) {
    const Components components = ConnectedComponents(segmentation == k);
    if (components.count == 0) continue;
    const int64_t channel = layout.ChannelOf(k);
    const at::Tensor labels = components.labels.flatten().to(at::kLong);
    const int64_t bins = components.count + 1;
    const auto count = [&](const at::Tensor& weights) {
      return at::bincount(labels, weights.flatten().to(at::kDouble).cpu(), bins);
    };
    const at::Tensor c = contributions.normalisers[0][channel].cpu();
    const at::Tensor eligible = c.abs() > tau;
    const at::Tensor inverse = at::where(eligible, at::reciprocal(c), at::zeros_like(c));
    const at::Tensor voxels = at::bincount(labels, {}, bins);
    const at::Tensor used = count(eligible);
    std::vector<at::Tensor> raw, centroid;
    for (int64_t s = 0; s < contributions.per_sequence.size(0); ++s) {
      raw.push_back(count(contributions.per_sequence[s][channel].cpu() * inverse));
    }
    const at::Tensor where = at::stack(at::meshgrid({at::arange(segmentation.size(0)), at::arange(segmentation.size(1)),
                                                     at::arange(segmentation.size(2))}, "ij"));
    for (int64_t d = 0; d < 3; ++d) centroid.push_back(count(where[d]) / voxels.to(at::kDouble));
    for (int64_t label = 1; label <= components.count; ++label) {
      RegionExplanation lesion;
      lesion.kind = "lesion";
      lesion.class_index = k;
      lesion.channel = channel;
      lesion.voxels = voxels[label].item<int64_t>();
      lesion.region_voxels = static_cast<int64_t>(used[label].item<double>());
      for (const at::Tensor& sums : raw) lesion.raw.push_back(sums[label].item<double>());
      for (const at::Tensor& coordinate : centroid) lesion.centroid.push_back(coordinate[label].item<double>());
      lesions.push_back(std::move(lesion));
    }
  }
  std::stable_sort(lesions.begin(), lesions.end(),
                   [](const RegionExplanation& a, const RegionExplanation& b) { return a.voxels > b.voxels; });
  if (static_cast<int64_t>(lesions.size()) > kMaxLesions) lesions.resize(kMaxLesions);
  for (size_t i = 0; i < lesions.size(); ++i) lesions[i].label = static_cast<int64_t>(i) + 1;
  return lesions;
}

// Against a reference: true positives and false positives explained through the predicted class, false negatives
// through the background (what made the network call them background).
absl::StatusOr<std::vector<RegionExplanation>> ExplainErrors(const SequenceContributions& contributions,
                                                             const at::Tensor& segmentation,
                                                             const at::Tensor& reference, const ClassLayout& layout,
                                                             double tau, std::optional<double>* dice) {
  if (reference.sizes() != segmentation.sizes()) {
    return absl::InvalidArgumentError(absl::StrCat("the reference mask has shape [",
                                                   absl::StrJoin(reference.sizes(), ", "), "], the study [",
                                                   absl::StrJoin(segmentation.sizes(), ", "), "]"));
  }
  const at::Tensor truth = reference.cpu() != 0;
  const at::Tensor predicted = segmentation > 0;
  *dice = ForegroundDice(segmentation, truth);
  std::vector<RegionExplanation> regions;
  for (int64_t k = 1; k < layout.num_classes; ++k) {
    regions.push_back(ExplainRegion(contributions, "true_positive", k, layout, (segmentation == k) & truth, tau));
    regions.push_back(ExplainRegion(contributions, "false_positive", k, layout, (segmentation == k) & ~truth, tau));
  }
  regions.push_back(ExplainRegion(contributions, "false_negative", 0, layout, ~predicted & truth, tau));
  return regions;
}

// The body: voxels where some sequence differs from its value at the volume's corner.
at::Tensor BodyMask(const at::Tensor& input) {
  const at::Tensor volume = input[0];  // [C, spatial...]
  at::Tensor corner = volume;
  for (int64_t d = 1; d < volume.dim(); ++d) corner = corner.narrow(d, 0, 1);
  return (volume != corner).any(0);
}

absl::StatusOr<std::vector<SequenceAblation>> AblateSequences(
    const at::Tensor& input, const at::Tensor& segmentation, const at::Tensor& reference,
    const std::function<absl::StatusOr<at::Tensor>(const at::Tensor&)>& predict) {
  std::vector<SequenceAblation> ablations;
  const at::Tensor body = BodyMask(input);
  for (int64_t s = 0; s < input.size(1); ++s) {
    at::Tensor ablated = input.clone();
    at::Tensor channel = ablated[0][s];
    const double mean = body.any().item<bool>() ? channel.masked_select(body).mean().item<double>() : 0.0;
    channel.masked_fill_(body, mean);
    SEGREL_ASSIGN_OR_RETURN(const at::Tensor logits, predict(ablated));
    const at::Tensor labels = Segment(logits).cpu();
    SequenceAblation ablation;
    ablation.sequence = s;
    ablation.foreground_voxels = (labels > 0).sum().item<int64_t>();
    ablation.dice_with_prediction = ForegroundDice(labels, segmentation);
    if (reference.defined()) ablation.dice_with_reference = ForegroundDice(labels, reference != 0);
    ablations.push_back(ablation);
  }
  return ablations;
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

absl::StatusOr<Explanation> ExplainSegmentation(ModelReplica& replica, const at::Tensor& input,
                                                const ExplainOptions& options) {
  Explanation result;
  Stopwatch stopwatch;
  // With windows, the network is imported for one patch and explains the volume window by window.
  std::vector<int64_t> graph_sizes = input.sizes().vec();
  if (options.window.has_value()) {
    graph_sizes.resize(2);
    graph_sizes.insert(graph_sizes.end(), options.window->patch.begin(), options.window->patch.end());
  }
  SEGREL_RETURN_IF_ERROR(ReportProgress(options.progress, "import", 0, 1));
  SEGREL_ASSIGN_OR_RETURN(const std::shared_ptr<const graph::LayerGraph> graph,
                          replica.Graph(graph_sizes, options.device));
  SEGREL_RETURN_IF_ERROR(CheckSegmentationOutput(*graph));
  result.output_activation = graph->output_activation();
  SEGREL_ASSIGN_OR_RETURN(const lrp::Composite composite,
                          lrp::Composite::Create(options.composite, options.rule_parameters));
  auto explainer = std::make_shared<const lrp::Explainer>(graph, composite);
  ReleaseFreedMemory();  // what importing left free
  result.seconds.import_graph = stopwatch.Lap();

  SEGREL_ASSIGN_OR_RETURN(const at::Tensor device_input,
                          CatchTorch("moving the input", [&]() -> absl::StatusOr<at::Tensor> {
                            return input.to(options.device, at::kFloat);
                          }));
  // Tells the caller each window of a stage as it ends: how a long stage shows progress and can be stopped.
  const auto in_stage = [&options](const char* stage) -> WindowCallback {
    if (!options.progress) return {};
    return [&options, stage](int64_t done, int64_t total) { return options.progress(stage, done, total); };
  };
  std::unique_ptr<lrp::RelevanceOperator> explained;
  WindowedExplanation* windowed_explanation = nullptr;
  SEGREL_RETURN_IF_ERROR(ReportProgress(options.progress, "inference", 0, 1));
  if (options.window.has_value()) {
    SEGREL_ASSIGN_OR_RETURN(std::unique_ptr<WindowedExplanation> windowed,
                            WindowedExplanation::Create(explainer, device_input, *options.window,
                                                        in_stage("inference")));
    result.windows = static_cast<int64_t>(windowed->grid().windows().size());
    windowed_explanation = windowed.get();
    explained = std::move(windowed);
  } else {
    SEGREL_ASSIGN_OR_RETURN(lrp::ExplainedForward forward, explainer->Forward(device_input));
    explained = std::make_unique<lrp::ExplainedForward>(std::move(forward));
    SEGREL_RETURN_IF_ERROR(ReportProgress(options.progress, "inference", 1, 1));
  }
  // Starts a stage: tells the caller, and has the windows report under its name.
  const auto start_stage = [&](const char* stage) {
    if (windowed_explanation != nullptr) windowed_explanation->set_after_window(in_stage(stage));
    return ReportProgress(options.progress, stage, 0, std::max<int64_t>(result.windows, 1));
  };
  const lrp::RelevanceOperator& forward = *explained;
  ReleaseFreedMemory();  // what importing and predicting left free
  result.seconds.inference = stopwatch.Lap();

  // Transpose stage: the normalisers c; for per-region analyses the per-voxel sequence contributions, whose sum c is.
  SEGREL_RETURN_IF_ERROR(start_stage("transpose"));
  std::optional<SequenceContributions> contributions;
  at::Tensor normalisers;
  if (options.per_lesion || options.reference.defined()) {
    SEGREL_ASSIGN_OR_RETURN(contributions, ComputeSequenceContributions(forward));
    normalisers = contributions->normalisers;
  } else {
    SEGREL_ASSIGN_OR_RETURN(normalisers, RelevanceNormalisers(forward));
  }
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

  // Relevance stage: the combined map M, and each class's own map unless the contributions give its sums.
  std::vector<ClassRegion> regions;
  for (const RegionChoice& choice : choices) regions.push_back(choice.region);
  SEGREL_RETURN_IF_ERROR(start_stage("relevance"));
  RegionRelevanceOptions relevance_options;
  relevance_options.tau = options.tau;
  relevance_options.per_region = !contributions.has_value();
  SEGREL_ASSIGN_OR_RETURN(const RegionRelevance relevance,
                          TwoPassRegionRelevance(forward, normalisers, regions, relevance_options));
  result.seconds.relevance = stopwatch.Lap();

  SEGREL_RETURN_IF_ERROR(CatchTorch("collecting the explanation", [&]() -> absl::Status {
    for (size_t k = 0; k < choices.size(); ++k) {
      const RegionChoice& choice = choices[k];
      ClassExplanation explained;
      explained.class_index = choice.region.class_index;
      explained.channel = choice.region.channel;
      explained.region_kind = choice.kind;
      explained.predicted_voxels = choice.predicted_voxels;
      explained.region_voxels = relevance.region_voxels[k];
      explained.excluded_voxels = choice.excluded_voxels;
      if (contributions) {
        int64_t used = 0;
        explained.raw = RegionSequenceRelevance(*contributions, choice.region.channel, choice.region.mask,
                                                options.tau, &used);
      } else {
        explained.raw = ChannelSums(relevance.per_region[k]);
      }
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
    result.foreground_voxels = (result.segmentation > 0).sum().item<int64_t>();
    if (options.per_lesion) result.lesions = ExplainLesions(*contributions, result.segmentation, layout, options.tau);
    if (options.reference.defined()) {
      SEGREL_ASSIGN_OR_RETURN(result.error_regions,
                              ExplainErrors(*contributions, result.segmentation, options.reference, layout,
                                            options.tau, &result.dice));
    }
    return absl::OkStatus();
  }));

  if (windowed_explanation != nullptr) windowed_explanation->set_after_window({});
  if (options.ablation) {
    const int64_t sequences = device_input.size(1);
    SEGREL_RETURN_IF_ERROR(ReportProgress(options.progress, "ablation", 0, sequences));
    int64_t ablated_sequences = 0;
    const auto predict = [&](const at::Tensor& ablated) -> absl::StatusOr<at::Tensor> {
      absl::StatusOr<at::Tensor> logits = options.window.has_value()
                                              ? PredictWindowed(*graph, ablated, *options.window)
                                              : graph->Forward(ablated);
      if (!logits.ok()) return logits;
      SEGREL_RETURN_IF_ERROR(ReportProgress(options.progress, "ablation", ++ablated_sequences, sequences));
      return logits;
    };
    SEGREL_ASSIGN_OR_RETURN(result.ablation, CatchTorch("sequence ablation", [&] {
                              return AblateSequences(device_input, result.segmentation, options.reference, predict);
                            }));
    result.ablation_seconds = stopwatch.Lap();
  }
  return result;
}

}  // namespace segrel::analysis
