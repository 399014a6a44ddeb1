// The memory of each NVIDIA GPU as the driver reports it (what nvidia-smi shows), through NVML
// (libnvidia-ml.so.1) loaded at run time: a CPU build links nothing of CUDA and runs where there is no driver.
#ifndef SEGREL_CORE_COMMON_GPU_MEMORY_H_
#define SEGREL_CORE_COMMON_GPU_MEMORY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace segrel {

struct GpuMemory {
  int index = 0;            // the driver's numbering (nvidia-smi's), not CUDA_VISIBLE_DEVICES'
  std::string name;         // e.g. "NVIDIA H100 80GB HBM3"
  uint64_t used_bytes = 0;  // by every process on the device
  uint64_t total_bytes = 0;
};

// Every GPU the driver sees. Thread-safe; NVML is loaded and initialised on the first call. Errors: Unavailable
// when there is no NVML (no NVIDIA driver) or it does not initialise; Internal when a query fails.
absl::StatusOr<std::vector<GpuMemory>> ReadGpuMemory();

}  // namespace segrel

#endif  // SEGREL_CORE_COMMON_GPU_MEMORY_H_
