// Per-voxel sequence contributions: how the normalised relevance of every output voxel divides among the input
// sequences, for Eq. 2 over any number of regions at once.
//
// With T_s = Lambda^T 1_s (1_s: ones on input channel s, zero elsewhere), the channel-s sum of Eq. 2's map for a
// region A is <1_s, Lambda r_A> = <T_s, r_A> = sum_{a in A} T_s[a] / c[a], and c = sum_s T_s. One transpose pass
// with a batch of C input-side tensors therefore gives the exact per-sequence relevance of every region one may
// ask for (each lesion, false positives, false negatives), where relevance passes would cost one per region.
#ifndef SEGREL_CORE_ANALYSIS_CONTRIBUTIONS_H_
#define SEGREL_CORE_ANALYSIS_CONTRIBUTIONS_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/lrp/relevance_operator.h"

namespace segrel::analysis {

struct SequenceContributions {
  at::Tensor per_sequence;  // T: [C, K, spatial...], T_s in batch entry s
  at::Tensor normalisers;   // c = sum_s T_s: [1, K, spatial...]
};

// Runs the transpose pass with a batch of C (one per input sequence). Errors: those of the transpose pass.
absl::StatusOr<SequenceContributions> ComputeSequenceContributions(const lrp::RelevanceOperator& explained);

// The per-sequence relevance (raw: sums of T_s / c) of the region `mask` (bool, spatial sizes) explained through
// output `channel`, over its voxels with |c| > tau; `used` receives their number.
std::vector<double> RegionSequenceRelevance(const SequenceContributions& contributions, int64_t channel,
                                            const at::Tensor& mask, double tau, int64_t* used);

}  // namespace segrel::analysis

#endif  // SEGREL_CORE_ANALYSIS_CONTRIBUTIONS_H_
