// LRP engine benchmark (issue "LRP engine ..."): a depth-3 U-Net with batch norm (16 base features, 6 input
// sequences, 2 classes) on a 96x96x64 volume, on the CPU (explicit thread count) or a CUDA device. Prints, per
// composite, the time of a plain forward pass, of the whole explanation of balanced regions (4,096 + 4,096 voxels:
// explained forward pass, transpose pass, relevance pass for both classes together), of the per-class variant (one
// relevance pass entry per class), and of the naive method per voxel, and their ratios, all measured in this run.
//
//   lrp_bench [--model bench/unet_bench.pt] [--threads 2] [--repeats 3] [--naive-voxels 2]
//             [--composites epsilon-plus,epsilon,...] [--device cpu|cuda[:N]]
//
// On a CUDA device every time is read after synchronising the device (kernels run asynchronously), each forward
// pass is run once untimed first (lazy CUDA initialisation, cuDNN algorithm choice), and the TorchScript module is
// loaded onto the device with torch::jit::load.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "core/analysis/region_relevance.h"
#include "core/analysis/regions.h"
#include "core/common/allocator.h"
#include "core/common/device.h"
#include "core/graph/torchscript_importer.h"
#include "core/lrp/composite.h"
#include "core/lrp/explainer.h"

namespace {

using segrel::analysis::ClassRegion;

struct Options {
  std::string model = "bench/unet_bench.pt";
  int threads = 2;
  int repeats = 3;
  int naive_voxels = 2;
  std::vector<int64_t> input_sizes = {1, 6, 96, 96, 64};
  int64_t region_voxels = 4096;
  std::vector<std::string> composites = segrel::lrp::Composite::Names();
  at::Device device = at::kCPU;
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "lrp_bench: %s\n", message.c_str());
  std::exit(1);
}

template <typename T>
T OrDie(absl::StatusOr<T> value) {
  if (!value.ok()) Die(std::string(value.status().message()));
  return *std::move(value);
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Waits until `device` has run every queued kernel, so that a clock read after it times the work. A no-op on the CPU.
void Synchronize(const at::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

// The clock, read after synchronising `device`.
std::chrono::steady_clock::time_point Now(const at::Device& device) {
  Synchronize(device);
  return std::chrono::steady_clock::now();
}

// Median wall time of `repeats` runs of `work` on `device`, in seconds.
double MedianSeconds(int repeats, const at::Device& device, const std::function<void()>& work) {
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const auto start = Now(device);
    work();
    times.push_back(std::chrono::duration<double>(Now(device) - start).count());
  }
  return Median(times);
}

// "cpu", "cuda" or "cuda:N", as `segrel analyze --device`.
at::Device ParseDevice(const std::string& text) {
  const absl::StatusOr<at::Device> device = segrel::ParseDevice(text);
  if (!device.ok()) Die(std::string(device.status().message()));
  return *device;
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string name = argv[i], value = argv[i + 1];
    if (name == "--model") {
      options.model = value;
    } else if (name == "--threads" && absl::SimpleAtoi(value, &options.threads)) {
    } else if (name == "--repeats" && absl::SimpleAtoi(value, &options.repeats)) {
    } else if (name == "--naive-voxels" && absl::SimpleAtoi(value, &options.naive_voxels)) {
    } else if (name == "--device") {
      options.device = ParseDevice(value);
    } else if (name == "--composites") {
      options.composites = absl::StrSplit(value, ',');
    } else if (name == "--input-sizes") {
      options.input_sizes.clear();
      for (absl::string_view size : absl::StrSplit(value, ',')) {
        int64_t parsed = 0;
        if (!absl::SimpleAtoi(size, &parsed) || parsed <= 0) Die("bad --input-sizes " + value);
        options.input_sizes.push_back(parsed);
      }
    } else {
      Die("unknown option or bad value: " + name + " " + value);
    }
  }
  return options;
}

// `count` voxels for each of the two classes, drawn from those whose normaliser is eligible.
std::vector<ClassRegion> BalancedBenchmarkRegions(const at::Tensor& normalisers, int64_t count) {
  std::vector<ClassRegion> regions;
  const at::Tensor eligible = segrel::analysis::EligibleVoxels(normalisers, 1e-6);
  for (int64_t k = 0; k < 2; ++k) {
    const at::Tensor candidates = eligible[k].flatten().nonzero().flatten();
    const std::vector<int64_t> picks =
        segrel::analysis::SampleWithoutReplacement(candidates.numel(), std::min(count, candidates.numel()), 42 + k);
    at::Tensor mask = at::zeros({eligible[k].numel()}, at::kBool);
    mask.index_put_({candidates.index({at::tensor(picks, at::kLong)})}, true);
    regions.push_back({k, k, mask.view(eligible[k].sizes())});
  }
  return regions;
}

}  // namespace

int main(int argc, char** argv) {
  segrel::ReuseFreedMemory();
  const Options options = ParseOptions(argc, argv);
  at::set_num_threads(options.threads);
  at::manual_seed(0);
  const at::Device device = options.device;
  const bool on_cpu = device.is_cpu();
  // Drawn on the CPU whatever the device, so that every device explains the same input.
  const at::Tensor input = at::randn(options.input_sizes).to(device);
  const segrel::graph::TorchScriptModel model = OrDie(segrel::graph::TorchScriptModel::Load(options.model));
  segrel::graph::LayerGraph imported = OrDie(model.ImportGraph(options.input_sizes));
  if (!on_cpu) {
    const absl::Status moved = imported.ConvertTo(at::TensorOptions().device(device));
    if (!moved.ok()) Die(std::string(moved.message()));
  }
  auto graph = std::make_shared<const segrel::graph::LayerGraph>(std::move(imported));

  std::printf(
      "model %s, input [%lld, %lld, %lld, %lld, %lld], device %s, %d threads (at::get_num_threads() = %d), "
      "%d repeats\n",
      options.model.c_str(), static_cast<long long>(options.input_sizes[0]),
      static_cast<long long>(options.input_sizes[1]), static_cast<long long>(options.input_sizes[2]),
      static_cast<long long>(options.input_sizes[3]), static_cast<long long>(options.input_sizes[4]),
      device.str().c_str(), options.threads, at::get_num_threads(), options.repeats);

  torch::autograd::AutoGradMode no_grad(false);
  // The TorchScript module itself: segrel's frozen CPU copy, or on another device the file loaded onto it.
  std::function<void()> run_torchscript = [&] { OrDie(model.Run(input)); };
  if (!on_cpu) {
    torch::jit::Module module;
    try {
      module = torch::jit::load(options.model, device);
      module.eval();
      module = torch::jit::freeze(module);
    } catch (const c10::Error& error) {
      Die(options.model + ": " + error.what_without_backtrace());
    }
    run_torchscript = [module, &input]() mutable { module.forward({input}).toTensor(); };
    run_torchscript();
    OrDie(graph->Forward(input));
  }
  const double torchscript = MedianSeconds(options.repeats, device, run_torchscript);
  const double forward = MedianSeconds(options.repeats, device, [&] { OrDie(graph->Forward(input)); });
  std::printf("plain forward (no autograd): segrel layer graph %.3f s, the TorchScript module itself %.3f s\n", forward,
              torchscript);
  std::printf("ratios below are to segrel's forward pass (same kernels); to the TorchScript module's in brackets\n\n");
  std::printf("%-26s %8s %9s %9s %8s %9s %14s %14s %11s\n", "composite", "expl.fwd", "transpose", "relevance", "whole",
              "per-class", "whole/fwd", "per-class/fwd", "naive/voxel");

  for (const std::string& name : options.composites) {
    const segrel::lrp::Explainer explainer(graph, OrDie(segrel::lrp::Composite::Create(name)));
    // Regions are drawn once, from a first explained forward pass.
    const segrel::lrp::ExplainedForward first = OrDie(explainer.Forward(input));
    const at::Tensor normalisers = OrDie(segrel::analysis::RelevanceNormalisers(first));
    const std::vector<ClassRegion> regions = BalancedBenchmarkRegions(normalisers.cpu(), options.region_voxels);

    // The whole explanation: explained forward, transpose pass (c), one relevance pass for both classes.
    std::vector<double> stage_forward, stage_transpose, stage_relevance, whole_times;
    for (int r = 0; r < options.repeats; ++r) {
      const auto t0 = Now(device);
      const segrel::lrp::ExplainedForward f = OrDie(explainer.Forward(input));
      const auto t1 = Now(device);
      const at::Tensor c = OrDie(segrel::analysis::RelevanceNormalisers(f));
      const auto t2 = Now(device);
      segrel::analysis::RegionRelevanceOptions combined;
      combined.per_region = false;
      OrDie(segrel::analysis::TwoPassRegionRelevance(f, c, regions, combined));
      const auto t3 = Now(device);
      stage_forward.push_back(std::chrono::duration<double>(t1 - t0).count());
      stage_transpose.push_back(std::chrono::duration<double>(t2 - t1).count());
      stage_relevance.push_back(std::chrono::duration<double>(t3 - t2).count());
      whole_times.push_back(std::chrono::duration<double>(t3 - t0).count());
    }
    const double whole = Median(whole_times);
    // Per class: one relevance pass entry per class (what `segrel analyze` reports), instead of the combined one.
    const double per_class_relevance = MedianSeconds(
        options.repeats, device, [&] { OrDie(segrel::analysis::TwoPassRegionRelevance(first, normalisers, regions)); });
    const double per_class = whole - Median(stage_relevance) + per_class_relevance;

    // Naive: one relevance pass per voxel; time a few voxels and extrapolate to all 2 x region_voxels.
    std::vector<ClassRegion> few;
    int64_t naive_count = 0;
    for (const ClassRegion& region : regions) {
      const at::Tensor voxels = region.mask.flatten().nonzero().flatten().slice(0, 0, (options.naive_voxels + 1) / 2);
      at::Tensor mask = at::zeros({region.mask.numel()}, at::kBool);
      mask.index_put_({voxels}, true);
      naive_count += voxels.numel();
      few.push_back({region.class_index, region.channel, mask.view(region.mask.sizes())});
    }
    const double naive_per_voxel =
        MedianSeconds(1, device, [&] { OrDie(segrel::analysis::NaiveRegionRelevance(first, few)); }) /
        static_cast<double>(naive_count);
    const double naive_whole = naive_per_voxel * 2.0 * static_cast<double>(options.region_voxels);

    std::printf("%-26s %8.3f %9.3f %9.3f %8.3f %9.3f %6.2f (%5.2f) %6.2f (%5.2f) %11.3f\n", name.c_str(),
                Median(stage_forward), Median(stage_transpose), Median(stage_relevance), whole, per_class,
                whole / forward, whole / torchscript, per_class / forward, per_class / torchscript, naive_per_voxel);
    std::printf("%-26s naive Eq. 2 for %lld voxels (extrapolated): %.0f s, %.0f x the two-pass explanation\n", "",
                static_cast<long long>(2 * options.region_voxels), naive_whole, naive_whole / whole);
    std::printf("%-26s explained forward pass keeps %.0f MB (input %.0f MB)\n", "",
                static_cast<double>(first.RetainedBytes()) / (1 << 20),
                static_cast<double>(input.numel() * 4) / (1 << 20));
    std::fflush(stdout);
  }
  return 0;
}
