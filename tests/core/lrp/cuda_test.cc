// The engine on a CUDA device gives what it gives on the CPU. Labelled "cuda" in ctest; skipped without a device
// (Debian's LibTorch is a CPU build; the CUDA image uses an official CUDA build).
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <memory>
#include <string>

#include "core/analysis/region_relevance.h"
#include "core/common/gpu_memory.h"
#include "core/graph/torchscript_importer.h"
#include "core/lrp/composite.h"
#include "core/lrp/explainer.h"
#include "tests/test_util.h"

namespace segrel::lrp {
namespace {

using segrel::testing::RelativeError;

class CudaTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  }
};

// Explains unet_variant (instance norm, average pooling, trilinear upsampling, residual adds) on `device`:
// relevance of the logits and the normalisers c.
std::pair<at::Tensor, at::Tensor> ExplainOn(const std::string& composite_name, at::Device device) {
  const auto fixture = segrel::testing::LoadModelFixture("unet_variant");
  absl::StatusOr<graph::TorchScriptModel> model = graph::TorchScriptModel::Load(fixture.model_path);
  EXPECT_TRUE(model.ok()) << model.status();
  absl::StatusOr<graph::LayerGraph> graph = model->ImportGraph(fixture.input.sizes().vec());
  EXPECT_TRUE(graph.ok()) << graph.status();
  EXPECT_TRUE(graph->ConvertTo(at::TensorOptions().device(device)).ok());
  const Explainer explainer(std::make_shared<graph::LayerGraph>(*std::move(graph)), *Composite::Create(composite_name));
  absl::StatusOr<ExplainedForward> forward = explainer.Forward(fixture.input.to(device));
  EXPECT_TRUE(forward.ok()) << forward.status();
  absl::StatusOr<at::Tensor> relevance = forward->Relevance(forward->output());
  absl::StatusOr<at::Tensor> normalisers = analysis::RelevanceNormalisers(*forward);
  EXPECT_TRUE(relevance.ok() && normalisers.ok());
  return {relevance->cpu(), normalisers->cpu()};
}

// The plain forward pass first: if it differs, so will everything explained on top of it.
TEST(CudaForward, MatchesTheCpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const auto fixture = segrel::testing::LoadModelFixture("unet_variant");
  absl::StatusOr<graph::TorchScriptModel> model = graph::TorchScriptModel::Load(fixture.model_path);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<graph::LayerGraph> graph = model->ImportGraph(fixture.input.sizes().vec());
  ASSERT_TRUE(graph.ok()) << graph.status();
  const absl::StatusOr<at::Tensor> cpu = graph->Forward(fixture.input);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  ASSERT_TRUE(graph->ConvertTo(at::TensorOptions().device(at::kCUDA, 0)).ok());
  const absl::StatusOr<at::Tensor> cuda = graph->Forward(fixture.input.to(at::kCUDA));
  ASSERT_TRUE(cuda.ok()) << cuda.status();
  EXPECT_LT(RelativeError(cuda->cpu(), *cpu), 1e-5);
  EXPECT_FALSE(at::globalContext().allowTF32CuDNN()) << "explanations on CUDA need full float32 convolutions";
}

// float32 on both devices with different summation orders. Measured on an H100 with PyTorch 2.11 (TF32 off):
// below 1e-4 of the largest value for every composite but epsilon, whose small stabiliser lets the summation order
// show: 1.1e-4 (relevance) and 2.2e-4 (normalisers). With TF32 on, errors were 0.06 to 0.45.
TEST_P(CudaTest, RelevanceAndNormalisersMatchTheCpu) {
  const auto [cpu_relevance, cpu_normalisers] = ExplainOn(GetParam(), at::kCPU);
  const auto [cuda_relevance, cuda_normalisers] = ExplainOn(GetParam(), at::Device(at::kCUDA, 0));
  const double tolerance = GetParam() == "epsilon" ? 5e-4 : 1e-4;
  EXPECT_LT(RelativeError(cuda_relevance, cpu_relevance), tolerance);
  EXPECT_LT(RelativeError(cuda_normalisers, cpu_normalisers), tolerance);
}

INSTANTIATE_TEST_SUITE_P(Composites, CudaTest, ::testing::ValuesIn(Composite::Names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

// NVML's view of the GPUs: every device LibTorch sees, and a 1 GiB allocation shows in the used memory.
TEST(GpuMemory, ReportsEveryDeviceAndSeesAnAllocation) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const absl::StatusOr<std::vector<GpuMemory>> before = ReadGpuMemory();
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_GE(before->size(), static_cast<size_t>(torch::cuda::device_count()));
  uint64_t used_before = 0;
  for (const GpuMemory& gpu : *before) {
    EXPECT_FALSE(gpu.name.empty());
    EXPECT_GT(gpu.total_bytes, 0u);
    EXPECT_LE(gpu.used_bytes, gpu.total_bytes);
    used_before += gpu.used_bytes;
  }
  const at::Tensor block = at::ones({int64_t{1} << 28}, at::TensorOptions().device(at::kCUDA, 0));  // 1 GiB
  torch::cuda::synchronize();
  const absl::StatusOr<std::vector<GpuMemory>> after = ReadGpuMemory();
  ASSERT_TRUE(after.ok()) << after.status();
  uint64_t used_after = 0;
  for (const GpuMemory& gpu : *after) used_after += gpu.used_bytes;
  EXPECT_GE(used_after, used_before + (uint64_t{7} << 27))  // 0.875 GiB: NVML sees whole pages of the allocator
      << "1 GiB allocated, NVML saw " << static_cast<int64_t>(used_after - used_before) << " bytes more";
  EXPECT_EQ(block.sum().item<double>(), static_cast<double>(int64_t{1} << 28));
}

}  // namespace
}  // namespace segrel::lrp
