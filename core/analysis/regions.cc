#include "core/analysis/regions.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace segrel::analysis {
namespace {

// A uniform integer in [0, bound) by rejection: the same numbers for a seed with every standard library.
uint64_t UniformBelow(std::mt19937_64& engine, uint64_t bound) {
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % bound;
  uint64_t draw;
  do {
    draw = engine();
  } while (draw >= limit);
  return draw % bound;
}

int64_t Count(const at::Tensor& mask) { return mask.sum().item<int64_t>(); }

}  // namespace

ClassLayout LayoutOf(const at::Tensor& logits) {
  ClassLayout layout;
  layout.num_channels = logits.size(1);
  layout.num_classes = std::max<int64_t>(layout.num_channels, 2);
  return layout;
}

at::Tensor Segment(const at::Tensor& logits) {
  if (logits.size(1) == 1) return (logits[0][0] > 0).to(at::kLong);
  return logits[0].argmax(0);
}

std::vector<int64_t> SampleWithoutReplacement(int64_t population, int64_t count, uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::vector<int64_t> indices(population);
  std::iota(indices.begin(), indices.end(), 0);
  // Partial Fisher-Yates: the first `count` entries become a uniform sample.
  for (int64_t i = 0; i < count; ++i) {
    const int64_t j = i + static_cast<int64_t>(UniformBelow(engine, static_cast<uint64_t>(population - i)));
    std::swap(indices[i], indices[j]);
  }
  indices.resize(count);
  std::sort(indices.begin(), indices.end());
  return indices;
}

BalancedRegions ChooseBalancedRegions(const at::Tensor& segmentation, const at::Tensor& normalisers,
                                      const ClassLayout& layout, const BalancedRegionsOptions& options) {
  const at::Tensor eligible = EligibleVoxels(normalisers, options.tau).to(segmentation.device());
  BalancedRegions result;
  int64_t foreground = 0;
  for (int64_t k = 1; k < layout.num_classes; ++k) {
    const at::Tensor predicted = segmentation == k;
    RegionChoice choice;
    choice.kind = "balanced";
    choice.region = {k, layout.ChannelOf(k), predicted & eligible[layout.ChannelOf(k)]};
    choice.predicted_voxels = Count(predicted);
    choice.excluded_voxels = choice.predicted_voxels - Count(choice.region.mask);
    foreground += Count(choice.region.mask);
    result.choices.push_back(std::move(choice));
  }

  const at::Tensor background = segmentation == 0;
  const at::Tensor candidates = background & eligible[layout.ChannelOf(0)];
  const at::Tensor candidate_indices = candidates.flatten().nonzero().flatten().cpu();
  const int64_t available = candidate_indices.numel();
  int64_t wanted = foreground;
  if (foreground == 0) {
    wanted = options.background_only_voxels;
    result.notes.push_back(absl::StrCat("no foreground voxel is predicted: only the background is explained, with ",
                                        std::min(wanted, available), " voxels drawn at random"));
  } else if (available < foreground) {
    result.notes.push_back(absl::StrCat("fewer eligible background voxels (", available, ") than foreground voxels (",
                                        foreground, "): the background region has all of them"));
  }
  const int64_t drawn = std::min(wanted, available);
  const std::vector<int64_t> picks = SampleWithoutReplacement(available, drawn, options.seed);
  at::Tensor background_mask = at::zeros({segmentation.numel()}, at::kBool);
  if (drawn > 0) {
    const at::Tensor pick_tensor = at::tensor(picks, at::kLong);
    background_mask.index_put_({candidate_indices.index({pick_tensor})}, true);
  }
  RegionChoice choice;
  choice.kind = "balanced";
  choice.region = {0, layout.ChannelOf(0), background_mask.view(segmentation.sizes()).to(segmentation.device())};
  choice.predicted_voxels = Count(background);
  choice.excluded_voxels = choice.predicted_voxels - available;
  result.choices.insert(result.choices.begin(), std::move(choice));
  return result;
}

absl::StatusOr<std::vector<RegionChoice>> MaskRegions(const std::map<int64_t, at::Tensor>& masks,
                                                      const at::Tensor& segmentation, const at::Tensor& normalisers,
                                                      const ClassLayout& layout, double tau) {
  const at::Tensor eligible = EligibleVoxels(normalisers, tau).to(segmentation.device());
  std::vector<RegionChoice> choices;
  for (const auto& [class_index, mask] : masks) {
    if (class_index < 0 || class_index >= layout.num_classes) {
      return absl::InvalidArgumentError(absl::StrCat("region mask for class ", class_index,
                                                     ": the network has classes 0 to ", layout.num_classes - 1));
    }
    if (mask.sizes() != segmentation.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat("region mask for class ", class_index, ": shape [",
                                                     absl::StrJoin(mask.sizes(), ", "), "], the study has [",
                                                     absl::StrJoin(segmentation.sizes(), ", "), "]"));
    }
    const at::Tensor requested = mask.to(segmentation.device()) != 0;
    RegionChoice choice;
    choice.kind = "mask";
    choice.region = {class_index, layout.ChannelOf(class_index), requested & eligible[layout.ChannelOf(class_index)]};
    choice.predicted_voxels = Count(segmentation == class_index);
    choice.excluded_voxels = Count(requested) - Count(choice.region.mask);
    choices.push_back(std::move(choice));
  }
  return choices;
}

}  // namespace segrel::analysis
