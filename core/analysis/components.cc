#include "core/analysis/components.h"

#include <vector>

namespace segrel::analysis {

Components ConnectedComponents(const at::Tensor& mask) {
  const at::Tensor in = (mask.cpu() != 0).contiguous();
  const int64_t ni = in.size(0), nj = in.size(1), nk = in.size(2);
  const bool* inside = in.data_ptr<bool>();
  Components result;
  result.labels = at::zeros(in.sizes(), at::kInt);
  int32_t* labels = result.labels.data_ptr<int32_t>();
  std::vector<int64_t> stack;
  for (int64_t start = 0; start < in.numel(); ++start) {
    if (!inside[start] || labels[start] != 0) continue;
    const int32_t label = static_cast<int32_t>(++result.count);
    labels[start] = label;
    stack.push_back(start);
    while (!stack.empty()) {  // depth-first flood fill over the 26 neighbours
      const int64_t voxel = stack.back();
      stack.pop_back();
      const int64_t i = voxel / (nj * nk), j = (voxel / nk) % nj, k = voxel % nk;
      for (int64_t di = -1; di <= 1; ++di) {
        for (int64_t dj = -1; dj <= 1; ++dj) {
          for (int64_t dk = -1; dk <= 1; ++dk) {
            const int64_t a = i + di, b = j + dj, c = k + dk;
            if (a < 0 || b < 0 || c < 0 || a >= ni || b >= nj || c >= nk) continue;
            const int64_t neighbour = (a * nj + b) * nk + c;
            if (inside[neighbour] && labels[neighbour] == 0) {
              labels[neighbour] = label;
              stack.push_back(neighbour);
            }
          }
        }
      }
    }
  }
  return result;
}

}  // namespace segrel::analysis
