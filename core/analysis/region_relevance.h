// Region relevance: the paper's Eq. 2, exactly, with two passes (docs/method.md, Eq. 2 in two passes).
//
// For class i and output region A, Eq. 2 sums the per-voxel relevance maps M_a = Lambda(y_a e_a), each normalised
// by its total: M_A = sum_{a in A} M_a / sum(M_a). Since sum(M_a) = y_a c_a with c = Lambda^T 1, this is
// M_A = Lambda r with r_a = 1 / c_a on A and 0 elsewhere: one transpose pass for c, one relevance pass with r,
// whatever the size of A. Voxels with |c_a| <= tau cannot be normalised and are left out (counted as excluded).
// NaiveRegionRelevance computes Eq. 2 by its definition, one relevance pass per voxel: the reference that tests
// compare the two-pass method against.
#ifndef SEGREL_CORE_ANALYSIS_REGION_RELEVANCE_H_
#define SEGREL_CORE_ANALYSIS_REGION_RELEVANCE_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/lrp/relevance_operator.h"

namespace segrel::analysis {

// The voxels of one class to explain.
struct ClassRegion {
  int64_t class_index = 0;  // the class as reported
  int64_t channel = 0;      // the network output channel explained (the class, unless the network has one channel)
  at::Tensor mask;          // bool, the output's spatial sizes; true = in the region
};

struct RegionRelevanceOptions {
  double tau = 1e-6;       // eligibility threshold on |c_a|
  bool per_region = true;  // also return each region's own map (costs one relevance pass per region)
};

struct RegionRelevance {
  at::Tensor combined;                   // M = sum over regions of M_{A_i}^i; the input's sizes
  std::vector<at::Tensor> per_region;    // M_{A_i}^i, when requested
  std::vector<int64_t> region_voxels;    // voxels used (eligible) per region
  std::vector<int64_t> excluded_voxels;  // voxels of each region left out for |c_a| <= tau
  at::Tensor normalisers;                // c = Lambda^T 1, the output's sizes (two-pass method only)
};

// Returns c = Lambda^T 1: the share of each output voxel's relevance that reaches the input.
absl::StatusOr<at::Tensor> RelevanceNormalisers(const lrp::RelevanceOperator& forward);

// Eq. 2 for every region by the two-pass method, with normalisers c already computed (RelevanceNormalisers).
// Errors: InvalidArgument for a mask or channel that does not fit the network output.
absl::StatusOr<RegionRelevance> TwoPassRegionRelevance(const lrp::RelevanceOperator& forward,
                                                       const at::Tensor& normalisers,
                                                       const std::vector<ClassRegion>& regions,
                                                       const RegionRelevanceOptions& options = {});

// As above, computing the normalisers first (one transpose pass).
absl::StatusOr<RegionRelevance> TwoPassRegionRelevance(const lrp::RelevanceOperator& forward,
                                                       const std::vector<ClassRegion>& regions,
                                                       const RegionRelevanceOptions& options = {});

// Voxels where |c| > tau, per output channel: bool, the output's sizes without the batch dimension.
at::Tensor EligibleVoxels(const at::Tensor& normalisers, double tau);

// Eq. 2 for every region by its definition, one relevance pass per voxel (slow: for tests and benchmarks).
// A voxel is left out when |sum(M_a) / y_a| <= tau.
absl::StatusOr<RegionRelevance> NaiveRegionRelevance(const lrp::RelevanceOperator& forward,
                                                     const std::vector<ClassRegion>& regions,
                                                     const RegionRelevanceOptions& options = {});

}  // namespace segrel::analysis

#endif  // SEGREL_CORE_ANALYSIS_REGION_RELEVANCE_H_
