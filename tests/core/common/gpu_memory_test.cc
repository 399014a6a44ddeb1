// GPU memory through NVML: a clear Unavailable where there is no NVIDIA driver (CPU machines, CI); the CUDA test
// (core/lrp/cuda_test.cc) checks the numbers on a GPU.
#include "core/common/gpu_memory.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

namespace segrel {
namespace {

TEST(GpuMemory, WithoutADriverIsUnavailableAndSaysWhy) {
  void* nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (nvml != nullptr) {
    dlclose(nvml);
    GTEST_SKIP() << "this machine has an NVIDIA driver";
  }
  const absl::StatusOr<std::vector<GpuMemory>> gpus = ReadGpuMemory();
  EXPECT_EQ(gpus.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(gpus.status().message().find("libnvidia-ml.so.1"), absl::string_view::npos) << gpus.status();
  EXPECT_EQ(ReadGpuMemory().status(), gpus.status());  // and again, without trying to load it twice
}

}  // namespace
}  // namespace segrel
