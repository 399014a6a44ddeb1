// Connected components of a 3-D mask (26-connectivity): the separate lesions of a segmentation.
#ifndef SEGREL_CORE_ANALYSIS_COMPONENTS_H_
#define SEGREL_CORE_ANALYSIS_COMPONENTS_H_

#include <ATen/ATen.h>

#include <cstdint>

namespace segrel::analysis {

struct Components {
  at::Tensor labels;  // int32, the mask's sizes: 0 outside the mask, 1..count inside, ordered by first voxel
  int64_t count = 0;
};

// Labels the 26-connected components of `mask` (3-D, any type; non-zero = in the mask; on the CPU).
Components ConnectedComponents(const at::Tensor& mask);

}  // namespace segrel::analysis

#endif  // SEGREL_CORE_ANALYSIS_COMPONENTS_H_
