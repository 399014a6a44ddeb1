#include "core/analysis/contributions.h"

#include "core/common/status_macros.h"
#include "core/common/torch_status.h"

namespace segrel::analysis {

absl::StatusOr<SequenceContributions> ComputeSequenceContributions(const lrp::RelevanceOperator& explained) {
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor indicators,
                          CatchTorch("sequence contributions", [&]() -> absl::StatusOr<at::Tensor> {
                            // Batch entry s holds ones on channel s: [C, C, spatial...] as a broadcast view.
                            std::vector<int64_t> sizes = explained.input_sizes();
                            const int64_t channels = sizes[1];
                            sizes[0] = channels;
                            std::vector<int64_t> eye_shape(sizes.size(), 1);
                            eye_shape[0] = eye_shape[1] = channels;
                            return at::eye(channels, explained.input_options()).view(eye_shape).expand(sizes);
                          }));
  SequenceContributions result;
  SEGREL_ASSIGN_OR_RETURN(result.per_sequence, explained.Transpose(indicators));
  SEGREL_RETURN_IF_ERROR(CatchTorch("sequence contributions", [&]() -> absl::Status {
    result.normalisers = result.per_sequence.sum(0, /*keepdim=*/true);
    return absl::OkStatus();
  }));
  return result;
}

std::vector<double> RegionSequenceRelevance(const SequenceContributions& contributions, int64_t channel,
                                            const at::Tensor& mask, double tau, int64_t* used) {
  const at::Tensor c = contributions.normalisers[0][channel];
  const at::Tensor region = mask.to(c.device()).to(at::kBool) & (c.abs() > tau);
  *used = region.sum().item<int64_t>();
  const at::Tensor inverse = at::where(region, at::reciprocal(c), at::zeros_like(c));
  const at::Tensor t = contributions.per_sequence.select(1, channel);  // [C, spatial...]
  const at::Tensor sums = (t * inverse).flatten(1).sum(1).to(at::kDouble).cpu();
  return std::vector<double>(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel());
}

}  // namespace segrel::analysis
