#include "core/analysis/explanation.h"

#include <algorithm>
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

absl::Status CheckSegmentationOutput(const graph::LayerGraph& graph) {
  const std::vector<int64_t>& in = graph.input_sizes();
  const std::vector<int64_t>& out = graph.output_sizes();
  const bool fits = out.size() == in.size() && out[0] == 1 && std::equal(in.begin() + 2, in.end(), out.begin() + 2);
  if (!fits) {
    return absl::InvalidArgumentError(absl::StrCat("the model's output has shape [", absl::StrJoin(out, ", "),
                                                   "] for an input of [", absl::StrJoin(in, ", "),
                                                   "]; segrel explains segmentations, whose output is [1, K, ",
                                                   absl::StrJoin(in.begin() + 2, in.end(), ", "), "]"));
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
                                              const at::Tensor& segmentation, const ClassLayout& layout, double tau) {
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
    const at::Tensor where = at::stack(at::meshgrid(
        {at::arange(segmentation.size(0)), at::arange(segmentation.size(1)), at::arange(segmentation.size(2))}, "ij"));
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

// What the stages of one explanation share, from the imported network to the explained regions.
struct ExplanationRun {
  explicit ExplanationRun(const ExplainOptions& explain_options)
      : options(explain_options), stages(explain_options.progress) {}

  // The units the transpose and relevance stages report: windows, or the whole volume as one.
  int64_t Units() const { return std::max<int64_t>(result.windows, 1); }

  const ExplainOptions& options;
  StageTracker stages;
  Explanation result;
  std::shared_ptr<const graph::LayerGraph> graph;  // for the network input (with windows: for one patch)
  std::shared_ptr<const lrp::Explainer> explainer;
  at::Tensor input;  // on the device
  std::unique_ptr<lrp::RelevanceOperator> explained;
  std::optional<SequenceContributions> contributions;  // for per-region analyses (lesions, reference)
  at::Tensor normalisers;                              // c = Lambda^T 1
  std::vector<RegionChoice> choices;
};

// Import stage: the network's layer graph (imported into the replica once per shape) and its explainer.
absl::Status ImportNetwork(model::ModelReplica& replica, const at::Tensor& input, ExplanationRun& run) {
  SEGREL_RETURN_IF_ERROR(run.stages.Start(Stage::kImport));
  // With windows, the network is imported for one patch and explains the volume window by window.
  std::vector<int64_t> graph_sizes = input.sizes().vec();
  if (run.options.window.has_value()) {
    graph_sizes.resize(2);
    graph_sizes.insert(graph_sizes.end(), run.options.window->patch.begin(), run.options.window->patch.end());
  }
  graph::ImportOptions import;
  import.output = run.options.output;
  SEGREL_ASSIGN_OR_RETURN(run.graph, replica.Graph(graph_sizes, run.options.device, import));
  run.result.notes.insert(run.result.notes.end(), run.graph->notes().begin(), run.graph->notes().end());
  SEGREL_RETURN_IF_ERROR(CheckSegmentationOutput(*run.graph));
  run.result.output_activation = run.graph->output_activation();
  SEGREL_ASSIGN_OR_RETURN(const lrp::Composite composite,
                          lrp::Composite::Create(run.options.composite, run.options.rule_parameters));
  run.explainer = std::make_shared<const lrp::Explainer>(run.graph, composite);
  ReleaseFreedMemory();  // what importing left free
  return absl::OkStatus();
}

// Inference stage: the explained forward pass, which the transpose and relevance passes reuse.
absl::Status Predict(const at::Tensor& input, ExplanationRun& run) {
  SEGREL_RETURN_IF_ERROR(run.stages.Start(Stage::kInference));
  SEGREL_ASSIGN_OR_RETURN(run.input, CatchTorch("moving the input", [&]() -> absl::StatusOr<at::Tensor> {
                            return input.to(run.options.device, at::kFloat);
                          }));
  if (run.options.window.has_value()) {
    // Each window of every later pass is told to the caller under the stage running then.
    const WindowCallback after_window = run.stages.ProgressOfCurrentStage();
    SEGREL_ASSIGN_OR_RETURN(std::unique_ptr<WindowedExplanation> windowed,
                            WindowedExplanation::Create(run.explainer, run.input, *run.options.window, after_window));
    run.result.windows = static_cast<int64_t>(windowed->grid().windows().size());
    windowed->set_after_window(after_window);
    run.explained = std::move(windowed);
  } else {
    SEGREL_ASSIGN_OR_RETURN(lrp::ExplainedForward forward, run.explainer->Forward(run.input));
    run.explained = std::make_unique<lrp::ExplainedForward>(std::move(forward));
    SEGREL_RETURN_IF_ERROR(run.stages.Progress(1));
  }
  ReleaseFreedMemory();  // what importing and predicting left free
  return absl::OkStatus();
}

// Transpose stage: the normalisers c; for per-region analyses the per-voxel sequence contributions, whose sum c is.
absl::Status Transpose(ExplanationRun& run) {
  SEGREL_RETURN_IF_ERROR(run.stages.Start(Stage::kTranspose, run.Units()));
  if (run.options.per_lesion || run.options.reference.defined()) {
    SEGREL_ASSIGN_OR_RETURN(run.contributions, ComputeSequenceContributions(*run.explained));
    run.normalisers = run.contributions->normalisers;
    return absl::OkStatus();
  }
  SEGREL_ASSIGN_OR_RETURN(run.normalisers, RelevanceNormalisers(*run.explained));
  return absl::OkStatus();
}

// The segmentation and the region of each class: the paper's balanced regions, or the caller's masks.
absl::Status ChooseRegions(const ClassLayout& layout, ExplanationRun& run) {
  return CatchTorch("choosing regions", [&]() -> absl::Status {
    const ExplainOptions& options = run.options;
    run.result.segmentation = Segment(run.explained->output());
    if (options.region_masks.empty()) {
      BalancedRegionsOptions balanced;
      balanced.seed = options.seed;
      balanced.tau = options.tau;
      BalancedRegions regions = ChooseBalancedRegions(run.result.segmentation, run.normalisers, layout, balanced);
      run.choices = std::move(regions.choices);
      run.result.notes.insert(run.result.notes.end(), regions.notes.begin(), regions.notes.end());
      return absl::OkStatus();
    }
    SEGREL_ASSIGN_OR_RETURN(
        run.choices, MaskRegions(options.region_masks, run.result.segmentation, run.normalisers, layout, options.tau));
    return absl::OkStatus();
  });
}

// One class's explanation from the relevance pass (or, for per-region analyses, from the contributions).
ClassExplanation ExplainClass(const RegionChoice& choice, const at::Tensor& own_map, int64_t region_voxels,
                              const ExplanationRun& run) {
  ClassExplanation explained;
  explained.class_index = choice.region.class_index;
  explained.channel = choice.region.channel;
  explained.region_kind = choice.kind;
  explained.predicted_voxels = choice.predicted_voxels;
  explained.region_voxels = region_voxels;
  explained.excluded_voxels = choice.excluded_voxels;
  if (run.contributions) {
    int64_t used = 0;
    explained.raw =
        RegionSequenceRelevance(*run.contributions, choice.region.channel, choice.region.mask, run.options.tau, &used);
  } else {
    explained.raw = ChannelSums(own_map);
  }
  if (explained.region_voxels > 0) {
    explained.mean_normaliser =
        run.normalisers[0][choice.region.channel].masked_select(choice.region.mask).mean().item<double>();
  }
  return explained;
}

// Relevance stage (after the regions): the combined map M, each class's own sums, lesions and error regions.
absl::Status ExplainRegions(const ClassLayout& layout, ExplanationRun& run) {
  const ExplainOptions& options = run.options;
  std::vector<ClassRegion> regions;
  for (const RegionChoice& choice : run.choices) regions.push_back(choice.region);
  RegionRelevanceOptions relevance_options;
  relevance_options.tau = options.tau;
  relevance_options.per_region = !run.contributions.has_value();  // else the contributions give each class's sums
  SEGREL_ASSIGN_OR_RETURN(const RegionRelevance relevance,
                          TwoPassRegionRelevance(*run.explained, run.normalisers, regions, relevance_options));
  return CatchTorch("collecting the explanation", [&]() -> absl::Status {
    Explanation& result = run.result;
    for (size_t k = 0; k < run.choices.size(); ++k) {
      const at::Tensor own_map = relevance_options.per_region ? relevance.per_region[k] : at::Tensor();
      result.classes.push_back(ExplainClass(run.choices[k], own_map, relevance.region_voxels[k], run));
    }
    result.raw = ChannelSums(relevance.combined);
    result.relevance_map = relevance.combined[0].to(at::kCPU, at::kFloat);
    result.logits = run.explained->output().to(at::kCPU, at::kFloat);
    result.segmentation = result.segmentation.cpu();
    result.foreground_voxels = (result.segmentation > 0).sum().item<int64_t>();
    if (options.per_lesion)
      result.lesions = ExplainLesions(*run.contributions, result.segmentation, layout, options.tau);
    if (options.reference.defined()) {
      SEGREL_ASSIGN_OR_RETURN(
          result.error_regions,
          ExplainErrors(*run.contributions, result.segmentation, options.reference, layout, options.tau, &result.dice));
    }
    return absl::OkStatus();
  });
}

// Ablation stage: the prediction again with each sequence replaced by its mean inside the body.
absl::Status Ablate(ExplanationRun& run) {
  const ExplainOptions& options = run.options;
  const int64_t sequences = run.input.size(1);
  SEGREL_RETURN_IF_ERROR(run.stages.Start(Stage::kAblation, sequences));
  int64_t ablated_sequences = 0;
  const auto predict = [&](const at::Tensor& ablated) -> absl::StatusOr<at::Tensor> {
    absl::StatusOr<at::Tensor> logits = options.window.has_value()
                                            ? PredictWindowed(*run.graph, ablated, *options.window)
                                            : run.graph->Forward(ablated);
    if (!logits.ok()) return logits;
    SEGREL_RETURN_IF_ERROR(run.stages.Progress(++ablated_sequences));
    return logits;
  };
  SEGREL_ASSIGN_OR_RETURN(run.result.ablation, CatchTorch("sequence ablation", [&] {
                            return AblateSequences(run.input, run.result.segmentation, options.reference, predict);
                          }));
  return absl::OkStatus();
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

absl::StatusOr<Explanation> ExplainSegmentation(model::ModelReplica& replica, const at::Tensor& input,
                                                const ExplainOptions& options) {
  ExplanationRun run(options);
  SEGREL_RETURN_IF_ERROR(ImportNetwork(replica, input, run));
  SEGREL_RETURN_IF_ERROR(Predict(input, run));
  SEGREL_RETURN_IF_ERROR(Transpose(run));
  const ClassLayout layout = LayoutOf(run.explained->output());
  SEGREL_RETURN_IF_ERROR(run.stages.Start(Stage::kRelevance, run.Units()));
  SEGREL_RETURN_IF_ERROR(ChooseRegions(layout, run));
  SEGREL_RETURN_IF_ERROR(ExplainRegions(layout, run));
  if (options.ablation) SEGREL_RETURN_IF_ERROR(Ablate(run));
  run.stages.Stop();
  run.result.seconds = run.stages.times();
  return std::move(run.result);
}

}  // namespace segrel::analysis
