// Sliding windows: segmentation and explanation of volumes of any size with a network imported for one patch size.
//
// As nnU-Net and MONAI: windows of the patch size overlap by a fraction (default 50 %), each window's logits are
// weighted by a Gaussian importance map (sigma = patch / 8) and the weighted average is the served output
// (volumes smaller than the patch are zero-padded at the high end and cropped back). The blending is linear, so
// it is one more layer of the explained network: a weighted sum of the windows' logits y = sum_p w_p y^p / W,
// explained with the norm rule (each window gets relevance in proportion to its contribution):
//     relevance:  R_p = w_p (.) y^p (.) R / (W s(y))           transpose:  c = sum_p w_p (.) y^p (.) c^p / (W s(y))
// WindowedExplanation is that network's RelevanceOperator, so Eq. 2 by two passes, region choice and the naive
// reference all work on it unchanged. Memory stays bounded by one window unless asked otherwise: each call runs
// the windows' explained forward passes one after the other (a transpose or relevance call costs one explained
// forward per window), keeping as many of them for the next call as WindowOptions::cache_bytes allows.
#ifndef SEGREL_CORE_ANALYSIS_SLIDING_WINDOW_H_
#define SEGREL_CORE_ANALYSIS_SLIDING_WINDOW_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/graph/layer_graph.h"
#include "core/lrp/explainer.h"
#include "core/lrp/relevance_operator.h"

namespace segrel::analysis {

struct WindowOptions {
  std::vector<int64_t> patch;     // spatial patch sizes, one per spatial dimension
  double overlap = 0.5;           // fraction of a patch that neighbouring windows share
  double sigma_fraction = 0.125;  // Gaussian sigma as a fraction of the patch size
  int64_t batch = 1;              // windows per forward pass when only predicting
  // Explained forward passes a WindowedExplanation keeps for later calls (transpose, then relevance), up to this
  // many bytes; 0 keeps none (every call recomputes them: memory bounded by one window).
  int64_t cache_bytes = 0;
};

// The windows' start positions along an axis of `size` voxels: 0, step, 2 step, ... and one flush with the end
// (step = patch * (1 - overlap), at least 1). A `size` up to the patch gives {0}.
std::vector<int64_t> WindowStarts(int64_t size, int64_t patch, double overlap);

// The Gaussian importance map over a patch: exp(-d^2 / (2 sigma^2)) per axis (d: distance to the patch centre,
// sigma = patch * sigma_fraction), their product, scaled to a maximum of 1. float64, the patch's sizes.
at::Tensor GaussianImportance(const std::vector<int64_t>& patch, double sigma_fraction);

// The windows over a volume and their blending weights.
class WindowGrid {
 public:
  // Errors: InvalidArgument when the patch has another number of dimensions than `spatial_sizes` or is not
  // positive, or the overlap is not in [0, 1).
  static absl::StatusOr<WindowGrid> Create(const std::vector<int64_t>& spatial_sizes, const WindowOptions& options);

  const std::vector<int64_t>& spatial_sizes() const { return sizes_; }
  const std::vector<int64_t>& padded_sizes() const { return padded_; }  // at least the patch in every dimension
  const std::vector<int64_t>& patch() const { return patch_; }
  // Each window's start in the padded volume.
  const std::vector<std::vector<int64_t>>& windows() const { return windows_; }
  // The Gaussian map (patch sizes) and the sum of all windows' maps over the padded volume (W above), float64.
  const at::Tensor& importance() const { return importance_; }
  const at::Tensor& total_weight() const { return total_weight_; }

  // [N, C, padded...] from [N, C, spatial...]: zeros at the high end; and back.
  at::Tensor Pad(const at::Tensor& volume) const;
  at::Tensor Crop(const at::Tensor& padded) const;
  // The window `w` of a padded [N, C, padded...] tensor (a view).
  at::Tensor Window(const at::Tensor& padded, size_t w) const;

 private:
  std::vector<int64_t> sizes_;
  std::vector<int64_t> padded_;
  std::vector<int64_t> patch_;
  std::vector<std::vector<int64_t>> windows_;
  at::Tensor importance_;
  at::Tensor total_weight_;
};

// The blended logits [1, K, spatial...] of `graph` (imported for [1, C, patch...]) over `input` [1, C, spatial...].
// Errors: those of WindowGrid::Create and of the forward pass.
absl::StatusOr<at::Tensor> PredictWindowed(const graph::LayerGraph& graph, const at::Tensor& input,
                                           const WindowOptions& options);

// Told after each window of a pass over the windows (done of total); a non-OK return stops the pass with it.
using WindowCallback = std::function<absl::Status(int64_t done, int64_t total)>;

// The explanation of the windowed network for one input (see the file comment). Keeps the explainer alive.
class WindowedExplanation final : public lrp::RelevanceOperator {
 public:
  // Runs the windowed forward pass for `input` ([1, C, spatial...], on the explainer's device) with the patch
  // graph of `explainer` (imported for [1, C, patch...]), telling `after_window` after each window. Errors: those
  // of PredictWindowed, and what `after_window` returns.
  static absl::StatusOr<std::unique_ptr<WindowedExplanation>> Create(std::shared_ptr<const lrp::Explainer> explainer,
                                                                     at::Tensor input, const WindowOptions& options,
                                                                     const WindowCallback& after_window = {});

  const at::Tensor& output() const override { return output_; }
  std::vector<int64_t> input_sizes() const override { return input_.sizes().vec(); }
  at::TensorOptions input_options() const override { return input_.options(); }
  absl::StatusOr<at::Tensor> Relevance(const at::Tensor& r) const override;
  absl::StatusOr<at::Tensor> Transpose(const at::Tensor& u) const override;

  const WindowGrid& grid() const { return grid_; }
  // Told after each window of every later Transpose and Relevance call (none: nobody is told).
  void set_after_window(WindowCallback after_window) { after_window_ = std::move(after_window); }

 private:
  WindowedExplanation(std::shared_ptr<const lrp::Explainer> explainer, at::Tensor input, WindowGrid grid,
                      at::Tensor output, int64_t cache_bytes);

  // Window w's explained forward pass: kept from an earlier call, or computed (and kept while the budget allows).
  absl::StatusOr<lrp::ExplainedForward> WindowForward(size_t w) const;
  // Adds window w's share of the transpose pass (of u, padded) or of the relevance pass (of its slice of the scaled
  // output relevance) to `sum`. Own functions so that the window's explained forward pass ends with them.
  absl::Status TransposeWindow(size_t w, const at::Tensor& padded_u, const at::Tensor& importance,
                               at::Tensor& sum) const;
  absl::Status RelevanceOfWindow(size_t w, const at::Tensor& window_relevance, const at::Tensor& importance,
                                 at::Tensor& sum) const;
  absl::Status AfterWindow(size_t w) const;  // tells after_window_ that window w is done

  std::shared_ptr<const lrp::Explainer> explainer_;
  at::Tensor input_;         // [1, C, spatial...]
  at::Tensor padded_input_;  // [1, C, padded...]
  WindowGrid grid_;
  at::Tensor output_;        // blended logits [1, K, spatial...]
  at::Tensor output_scale_;  // 1 / (W s(y)) over the padded volume, [1, K, padded...]
  const int64_t cache_budget_;
  WindowCallback after_window_;
  mutable absl::Mutex mutex_;
  mutable std::vector<std::optional<lrp::ExplainedForward>> cache_ ABSL_GUARDED_BY(mutex_);
  mutable int64_t cached_bytes_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace segrel::analysis

#endif  // SEGREL_CORE_ANALYSIS_SLIDING_WINDOW_H_
