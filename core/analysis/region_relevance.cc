#include "core/analysis/region_relevance.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"
#include "core/graph/linear_map.h"

namespace segrel::analysis {
namespace {

absl::Status CheckRegion(const ClassRegion& region, const at::Tensor& output) {
  if (region.channel < 0 || region.channel >= output.size(1)) {
    return absl::InvalidArgumentError(absl::StrCat("class ", region.class_index, ": output channel ", region.channel,
                                                   " does not exist; the network has ", output.size(1)));
  }
  if (!region.mask.defined() || region.mask.sizes() != output.sizes().slice(2)) {
    return absl::InvalidArgumentError(
        absl::StrCat("class ", region.class_index, ": region mask has shape [",
                     region.mask.defined() ? absl::StrJoin(region.mask.sizes(), ", ") : "",
                     "], the network output has [", absl::StrJoin(output.sizes().slice(2), ", "), "]"));
  }
  return absl::OkStatus();
}

absl::Status CheckRegions(const std::vector<ClassRegion>& regions, const at::Tensor& output) {
  for (const ClassRegion& region : regions) SEGREL_RETURN_IF_ERROR(CheckRegion(region, output));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<at::Tensor> RelevanceNormalisers(const lrp::RelevanceOperator& forward) {
  return forward.Transpose(at::ones(forward.input_sizes(), forward.input_options()));
}

at::Tensor EligibleVoxels(const at::Tensor& normalisers, double tau) { return normalisers[0].abs() > tau; }

absl::StatusOr<RegionRelevance> TwoPassRegionRelevance(const lrp::RelevanceOperator& forward,
                                                       const std::vector<ClassRegion>& regions,
                                                       const RegionRelevanceOptions& options) {
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor normalisers, RelevanceNormalisers(forward));
  return TwoPassRegionRelevance(forward, normalisers, regions, options);
}

absl::StatusOr<RegionRelevance> TwoPassRegionRelevance(const lrp::RelevanceOperator& forward,
                                                       const at::Tensor& normalisers,
                                                       const std::vector<ClassRegion>& regions,
                                                       const RegionRelevanceOptions& options) {
  const at::Tensor& output = forward.output();
  SEGREL_RETURN_IF_ERROR(CheckRegions(regions, output));
  if (normalisers.sizes() != output.sizes()) {
    return absl::InvalidArgumentError("normalisers do not have the network output's shape");
  }
  RegionRelevance result;
  result.normalisers = normalisers;
  // The starting relevance r = 1 / c on each region's eligible voxels: one batch entry per region, or one for all.
  SEGREL_ASSIGN_OR_RETURN(
      const at::Tensor r, CatchTorch("region relevance", [&]() -> absl::StatusOr<at::Tensor> {
        const int64_t batch = options.per_region ? static_cast<int64_t>(regions.size()) : 1;
        at::Tensor start = at::zeros(graph::WithBatch(output.sizes().vec(), batch), output.options());
        for (size_t k = 0; k < regions.size(); ++k) {
          const ClassRegion& region = regions[k];
          const at::Tensor c = result.normalisers[0][region.channel];
          const at::Tensor in_region = region.mask.to(c.device()).to(at::kBool);
          const at::Tensor used = in_region & (c.abs() > options.tau);
          result.region_voxels.push_back(used.sum().item<int64_t>());
          result.excluded_voxels.push_back(in_region.sum().item<int64_t>() - result.region_voxels.back());
          start[options.per_region ? k : 0][region.channel].add_(at::where(used, at::reciprocal(c), at::zeros_like(c)));
        }
        return start;
      }));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor maps, forward.Relevance(r));
  result.combined = maps.sum(0, /*keepdim=*/true);
  if (options.per_region) {
    for (int64_t k = 0; k < maps.size(0); ++k) result.per_region.push_back(maps.slice(0, k, k + 1));
  }
  return result;
}

absl::StatusOr<RegionRelevance> NaiveRegionRelevance(const lrp::RelevanceOperator& forward,
                                                     const std::vector<ClassRegion>& regions,
                                                     const RegionRelevanceOptions& options) {
  const at::Tensor& output = forward.output();
  SEGREL_RETURN_IF_ERROR(CheckRegions(regions, output));
  return CatchTorch("naive region relevance", [&]() -> absl::StatusOr<RegionRelevance> {
    RegionRelevance result;
    result.combined = at::zeros(forward.input_sizes(), forward.input_options());
    for (const ClassRegion& region : regions) {
      at::Tensor region_map = at::zeros(forward.input_sizes(), forward.input_options());
      int64_t used = 0;
      int64_t excluded = 0;
      const at::Tensor voxels = region.mask.to(at::kBool).flatten().nonzero().flatten().cpu();
      const at::Tensor logits = output[0][region.channel].flatten();
      for (int64_t n = 0; n < voxels.numel(); ++n) {
        const int64_t a = voxels[n].item<int64_t>();
        // Eq. 1: relevance y_a at (class, a), zero elsewhere.
        at::Tensor start = at::zeros_like(output);
        start[0][region.channel].view({-1})[a] = logits[a];
        SEGREL_ASSIGN_OR_RETURN(const at::Tensor map, forward.Relevance(start));
        const double total = map.sum().item<double>();
        const double y = logits[a].item<double>();
        if (y == 0.0 || std::abs(total / y) <= options.tau) {
          ++excluded;
          continue;
        }
        region_map.add_(map / total);
        ++used;
      }
      result.region_voxels.push_back(used);
      result.excluded_voxels.push_back(excluded);
      result.combined.add_(region_map);
      if (options.per_region) result.per_region.push_back(region_map);
    }
    return result;
  });
}

}  // namespace segrel::analysis
