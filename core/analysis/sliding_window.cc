#include "core/analysis/sliding_window.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "core/common/allocator.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"
#include "core/graph/linear_map.h"
#include "core/lrp/rules/rule_math.h"

namespace segrel::analysis {
namespace {

// The stabiliser of the norm rule on the blending layer (as the composites' norm rule).
constexpr double kBlendingStabilizer = 1e-6;

absl::Status CheckSpatial(const at::Tensor& tensor, const std::vector<int64_t>& spatial, absl::string_view what) {
  if (tensor.dim() != static_cast<int64_t>(spatial.size()) + 2 || tensor.sizes().slice(2) != at::IntArrayRef(spatial)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has shape [", absl::StrJoin(tensor.sizes(), ", "),
                                                   "], expected spatial sizes [", absl::StrJoin(spatial, ", "), "]"));
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<int64_t> WindowStarts(int64_t size, int64_t patch, double overlap) {
  if (size <= patch) return {0};
  const int64_t step = std::max<int64_t>(1, static_cast<int64_t>(std::floor(patch * (1.0 - overlap))));
  std::vector<int64_t> starts;
  for (int64_t start = 0; start + patch < size; start += step) starts.push_back(start);
  starts.push_back(size - patch);
  return starts;
}

at::Tensor GaussianImportance(const std::vector<int64_t>& patch, double sigma_fraction) {
  at::Tensor map = at::ones({}, at::kDouble);
  for (size_t d = 0; d < patch.size(); ++d) {
    const double sigma = patch[d] * sigma_fraction;
    const at::Tensor distance = at::arange(patch[d], at::kDouble) - (patch[d] - 1) / 2.0;
    at::Tensor axis = at::exp(-(distance * distance) / (2.0 * sigma * sigma));
    std::vector<int64_t> shape(patch.size(), 1);
    shape[d] = patch[d];
    map = map * axis.view(shape);
  }
  return map / map.max();
}

absl::StatusOr<WindowGrid> WindowGrid::Create(const std::vector<int64_t>& spatial_sizes, const WindowOptions& options) {
  if (options.patch.size() != spatial_sizes.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("patch [", absl::StrJoin(options.patch, ", "), "] for a ", spatial_sizes.size(), "-D volume"));
  }
  if (!(options.overlap >= 0.0 && options.overlap < 1.0) || options.sigma_fraction <= 0.0) {
    return absl::InvalidArgumentError(absl::StrCat("window overlap ", options.overlap, " must be in [0, 1) and sigma ",
                                                   options.sigma_fraction, " positive"));
  }
  WindowGrid grid;
  grid.sizes_ = spatial_sizes;
  grid.patch_ = options.patch;
  std::vector<std::vector<int64_t>> starts;
  for (size_t d = 0; d < spatial_sizes.size(); ++d) {
    if (options.patch[d] <= 0) return absl::InvalidArgumentError("patch sizes must be positive");
    grid.padded_.push_back(std::max(spatial_sizes[d], options.patch[d]));
    starts.push_back(WindowStarts(grid.padded_[d], options.patch[d], options.overlap));
  }
  // All combinations of the per-axis starts, the last axis fastest.
  grid.windows_ = {{}};
  for (const std::vector<int64_t>& axis : starts) {
    std::vector<std::vector<int64_t>> extended;
    for (const std::vector<int64_t>& prefix : grid.windows_) {
      for (int64_t start : axis) {
        extended.push_back(prefix);
        extended.back().push_back(start);
      }
    }
    grid.windows_ = std::move(extended);
  }
  return CatchTorch("window grid", [&]() -> absl::StatusOr<WindowGrid> {
    grid.importance_ = GaussianImportance(options.patch, options.sigma_fraction);
    std::vector<int64_t> padded_shape = {1, 1};
    padded_shape.insert(padded_shape.end(), grid.padded_.begin(), grid.padded_.end());
    grid.total_weight_ = at::zeros(padded_shape, at::kDouble);
    for (size_t w = 0; w < grid.windows_.size(); ++w) grid.Window(grid.total_weight_, w).add_(grid.importance_);
    return std::move(grid);
  });
}

at::Tensor WindowGrid::Pad(const at::Tensor& volume) const {
  std::vector<int64_t> pads;
  for (size_t d = sizes_.size(); d-- > 0;) {
    pads.push_back(0);
    pads.push_back(padded_[d] - sizes_[d]);
  }
  if (std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p == 0; })) return volume;
  return at::constant_pad_nd(volume, pads, 0.0);
}

at::Tensor WindowGrid::Crop(const at::Tensor& padded) const {
  at::Tensor cropped = padded;
  for (size_t d = 0; d < sizes_.size(); ++d) cropped = cropped.narrow(static_cast<int64_t>(d) + 2, 0, sizes_[d]);
  return cropped;
}

at::Tensor WindowGrid::Window(const at::Tensor& padded, size_t w) const {
  at::Tensor window = padded;
  for (size_t d = 0; d < patch_.size(); ++d) {
    window = window.narrow(static_cast<int64_t>(d) + 2, windows_[w][d], patch_[d]);
  }
  return window;
}

namespace {

// The blended logits over the padded volume: sum_p w_p y^p / W.
absl::StatusOr<at::Tensor> BlendedLogits(const graph::LayerGraph& graph, const at::Tensor& padded_input,
                                         const WindowGrid& grid, int64_t batch,
                                         const WindowCallback& after_window = {}) {
  at::Tensor sum;
  const at::Tensor importance = grid.importance().to(padded_input.options());
  const size_t count = grid.windows().size();
  for (size_t first = 0; first < count; first += static_cast<size_t>(std::max<int64_t>(batch, 1))) {
    const size_t last = std::min(count, first + static_cast<size_t>(std::max<int64_t>(batch, 1)));
    std::vector<at::Tensor> patches;
    for (size_t w = first; w < last; ++w) patches.push_back(grid.Window(padded_input, w));
    SEGREL_ASSIGN_OR_RETURN(const at::Tensor logits, graph.Forward(at::cat(patches, 0)));
    if (!sum.defined()) {
      std::vector<int64_t> shape = {1, logits.size(1)};
      shape.insert(shape.end(), grid.padded_sizes().begin(), grid.padded_sizes().end());
      sum = at::zeros(shape, logits.options());
    }
    for (size_t w = first; w < last; ++w) {
      grid.Window(sum, w).add_(logits.narrow(0, static_cast<int64_t>(w - first), 1) * importance);
    }
    if (after_window) SEGREL_RETURN_IF_ERROR(after_window(static_cast<int64_t>(last), static_cast<int64_t>(count)));
  }
  return sum / grid.total_weight().to(sum.options());
}

}  // namespace

absl::StatusOr<at::Tensor> PredictWindowed(const graph::LayerGraph& graph, const at::Tensor& input,
                                           const WindowOptions& options) {
  const std::vector<int64_t> spatial(input.sizes().begin() + 2, input.sizes().end());
  SEGREL_ASSIGN_OR_RETURN(const WindowGrid grid, WindowGrid::Create(spatial, options));
  return CatchTorch("windowed prediction", [&]() -> absl::StatusOr<at::Tensor> {
    SEGREL_ASSIGN_OR_RETURN(const at::Tensor blended, BlendedLogits(graph, grid.Pad(input), grid, options.batch));
    return grid.Crop(blended).contiguous();
  });
}

absl::StatusOr<std::unique_ptr<WindowedExplanation>> WindowedExplanation::Create(
    std::shared_ptr<const lrp::Explainer> explainer, at::Tensor input, const WindowOptions& options,
    const WindowCallback& after_window) {
  const std::vector<int64_t> spatial(input.sizes().begin() + 2, input.sizes().end());
  SEGREL_ASSIGN_OR_RETURN(WindowGrid grid, WindowGrid::Create(spatial, options));
  return CatchTorch("windowed prediction", [&]() -> absl::StatusOr<std::unique_ptr<WindowedExplanation>> {
    SEGREL_ASSIGN_OR_RETURN(const at::Tensor blended,
                            BlendedLogits(explainer->graph(), grid.Pad(input), grid, options.batch, after_window));
    at::Tensor output = grid.Crop(blended).contiguous();
    auto explanation = std::unique_ptr<WindowedExplanation>(new WindowedExplanation(
        std::move(explainer), std::move(input), std::move(grid), std::move(output), options.cache_bytes));
    explanation->output_scale_ = lrp::StabilizedReciprocal(blended, kBlendingStabilizer)
                                     .div_(explanation->grid_.total_weight().to(blended.options()));
    return explanation;
  });
}

WindowedExplanation::WindowedExplanation(std::shared_ptr<const lrp::Explainer> explainer, at::Tensor input,
                                         WindowGrid grid, at::Tensor output, int64_t cache_bytes)
    : explainer_(std::move(explainer)),
      input_(std::move(input)),
      grid_(std::move(grid)),
      output_(std::move(output)),
      cache_budget_(cache_bytes) {
  padded_input_ = grid_.Pad(input_);
  cache_.resize(grid_.windows().size());
}

absl::StatusOr<lrp::ExplainedForward> WindowedExplanation::WindowForward(size_t w) const {
  {
    absl::MutexLock lock(&mutex_);
    if (cache_[w].has_value()) return *cache_[w];
  }
  SEGREL_ASSIGN_OR_RETURN(lrp::ExplainedForward forward,
                          explainer_->Forward(grid_.Window(padded_input_, w).contiguous()));
  if (cache_budget_ > 0) {
    const int64_t bytes = forward.RetainedBytes();
    absl::MutexLock lock(&mutex_);
    if (!cache_[w].has_value() && cached_bytes_ + bytes <= cache_budget_) {
      cache_[w] = forward;
      cached_bytes_ += bytes;
    }
  }
  return forward;
}

absl::Status WindowedExplanation::TransposeWindow(size_t w, const at::Tensor& padded_u, const at::Tensor& importance,
                                                  at::Tensor& sum) const {
  SEGREL_ASSIGN_OR_RETURN(const lrp::ExplainedForward forward, WindowForward(w));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor transposed, forward.Transpose(grid_.Window(padded_u, w).contiguous()));
  grid_.Window(sum, w).add_(transposed.mul_(forward.output() * importance));
  return absl::OkStatus();
}

absl::Status WindowedExplanation::RelevanceOfWindow(size_t w, const at::Tensor& window_relevance,
                                                    const at::Tensor& importance, at::Tensor& sum) const {
  SEGREL_ASSIGN_OR_RETURN(const lrp::ExplainedForward forward, WindowForward(w));
  const at::Tensor start = window_relevance * (forward.output() * importance);
  const at::Tensor window_sum = grid_.Window(sum, w);
  // One batch entry (region) at a time: a relevance pass's temporaries scale with the batch, and at a 128^3 patch
  // each entry's are about a gigabyte; convolutions on a batch of one are hardly slower per entry.
  for (int64_t b = 0; b < start.size(0); ++b) {
    SEGREL_ASSIGN_OR_RETURN(const at::Tensor relevance, forward.Relevance(start.narrow(0, b, 1)));
    window_sum.narrow(0, b, 1).add_(relevance);
  }
  return absl::OkStatus();
}

absl::Status WindowedExplanation::AfterWindow(size_t w) const {
  if (!after_window_) return absl::OkStatus();
  return after_window_(static_cast<int64_t>(w) + 1, static_cast<int64_t>(grid_.windows().size()));
}

absl::StatusOr<at::Tensor> WindowedExplanation::Transpose(const at::Tensor& u) const {
  SEGREL_RETURN_IF_ERROR(CheckSpatial(u, grid_.spatial_sizes(), "input-side tensor"));
  return CatchTorch("windowed transpose pass", [&]() -> absl::StatusOr<at::Tensor> {
    const at::Tensor padded_u = grid_.Pad(u);
    const at::Tensor importance = grid_.importance().to(u.options());
    std::vector<int64_t> shape = {u.size(0), output_.size(1)};
    shape.insert(shape.end(), grid_.padded_sizes().begin(), grid_.padded_sizes().end());
    at::Tensor sum = at::zeros(shape, u.options());
    for (size_t w = 0; w < grid_.windows().size(); ++w) {
      SEGREL_RETURN_IF_ERROR(TransposeWindow(w, padded_u, importance, sum));
      ReleaseFreedMemory();  // the window's explained forward pass is gone
      SEGREL_RETURN_IF_ERROR(AfterWindow(w));
    }
    return grid_.Crop(sum.mul_(output_scale_)).contiguous();
  });
}

absl::StatusOr<at::Tensor> WindowedExplanation::Relevance(const at::Tensor& r) const {
  SEGREL_RETURN_IF_ERROR(CheckSpatial(r, grid_.spatial_sizes(), "output relevance"));
  if (r.size(1) != output_.size(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("output relevance has ", r.size(1), " channels, the network ", output_.size(1)));
  }
  return CatchTorch("windowed relevance pass", [&]() -> absl::StatusOr<at::Tensor> {
    const at::Tensor scaled = grid_.Pad(r) * output_scale_;  // R / (W s(y))
    const at::Tensor importance = grid_.importance().to(r.options());
    std::vector<int64_t> shape = {r.size(0), input_.size(1)};
    shape.insert(shape.end(), grid_.padded_sizes().begin(), grid_.padded_sizes().end());
    at::Tensor sum = at::zeros(shape, r.options());
    for (size_t w = 0; w < grid_.windows().size(); ++w) {
      const at::Tensor window_relevance = grid_.Window(scaled, w);
      if (window_relevance.any().item<bool>()) {  // else no relevance starts in this window
        SEGREL_RETURN_IF_ERROR(RelevanceOfWindow(w, window_relevance, importance, sum));
        ReleaseFreedMemory();  // the window's explained forward pass is gone
      }
      SEGREL_RETURN_IF_ERROR(AfterWindow(w));
    }
    return grid_.Crop(sum).contiguous();
  });
}

}  // namespace segrel::analysis
