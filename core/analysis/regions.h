// The regions Eq. 2 explains: the paper's balanced background/tumour regions (section 2.3), or users' own masks.
#ifndef SEGREL_CORE_ANALYSIS_REGIONS_H_
#define SEGREL_CORE_ANALYSIS_REGIONS_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/analysis/region_relevance.h"

namespace segrel::analysis {

// How a network's outputs map to classes: K >= 2 output channels are K classes (argmax); one channel is a
// binary network (class 1 where its logit is positive), whose one channel explains both classes.
struct ClassLayout {
  int64_t num_classes = 2;
  int64_t num_channels = 2;
  int64_t ChannelOf(int64_t class_index) const { return num_channels == 1 ? 0 : class_index; }
};

// Returns the layout of logits [1, K, spatial...].
ClassLayout LayoutOf(const at::Tensor& logits);

// Returns the predicted class of every voxel (int64, the logits' spatial sizes).
at::Tensor Segment(const at::Tensor& logits);

// A region of one class, with its bookkeeping.
struct RegionChoice {
  ClassRegion region;            // the voxels to explain (eligible ones only)
  int64_t predicted_voxels = 0;  // voxels predicted as this class
  int64_t excluded_voxels = 0;   // voxels of the requested region left out for |c_a| <= tau
  std::string kind;              // "balanced" or "mask"
};

struct BalancedRegionsOptions {
  uint64_t seed = 0;
  double tau = 1e-6;
  // When nothing but background is predicted, explain this many background voxels (or all, if fewer).
  int64_t background_only_voxels = 4096;
};

// Section 2.3: every foreground class k >= 1 with its predicted voxels T_k, and background (class 0) with as many
// voxels as all T_k together, drawn uniformly without replacement with `seed` from the predicted background. Only
// eligible voxels (|c_a| > tau) are used; the others are counted as excluded. Also returns a note for unusual
// cases (no foreground predicted, fewer background voxels than foreground).
struct BalancedRegions {
  std::vector<RegionChoice> choices;
  std::vector<std::string> notes;
};
BalancedRegions ChooseBalancedRegions(const at::Tensor& segmentation, const at::Tensor& normalisers,
                                      const ClassLayout& layout, const BalancedRegionsOptions& options);

// Users' masks (bool or numeric, non-zero = in the region) per class. Errors: InvalidArgument for a class the
// network does not have or a mask of other sizes than the segmentation.
absl::StatusOr<std::vector<RegionChoice>> MaskRegions(const std::map<int64_t, at::Tensor>& masks,
                                                      const at::Tensor& segmentation, const at::Tensor& normalisers,
                                                      const ClassLayout& layout, double tau);

// Returns `count` distinct indices from [0, population), uniformly, deterministic for a seed on every platform
// (Mersenne Twister and rejection sampling, no implementation-defined distributions). REQUIRES count <= population.
std::vector<int64_t> SampleWithoutReplacement(int64_t population, int64_t count, uint64_t seed);

}  // namespace segrel::analysis

#endif  // SEGREL_CORE_ANALYSIS_REGIONS_H_
