// Pipeline benchmark (issue "Segmentation + relevance pipeline"): `segrel analyze`'s whole pipeline in this process
// on a bundled model and study, with the wall time of each stage and the peak resident memory (getrusage).
//
//   pipeline_bench [--model models/ms-flair4] [--study data/ms-lesjak/patient19] [--threads 2] [--composite NAME]
//                  [--window-cache-mb 0] [--out out/pipeline_bench] [--device cpu|cuda[:N]]
//
// On a CUDA device the clock is read after synchronising it; the per-stage times come from the pipeline itself
// (core/analysis), which reads its clock without synchronising, so on CUDA a stage's time may include kernels
// queued by the stage before it (the total is exact).
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <sys/resource.h>
#include <torch/cuda.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "core/common/allocator.h"
#include "core/common/device.h"
#include "core/pipeline/pipeline.h"

namespace {

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "pipeline_bench: %s\n", message.c_str());
  std::exit(1);
}

// "cpu", "cuda" or "cuda:N", as `segrel analyze --device`.
at::Device ParseDevice(const std::string& text) {
  const absl::StatusOr<at::Device> device = segrel::ParseDevice(text);
  if (!device.ok()) Die(std::string(device.status().message()));
  return *device;
}

// The clock, read after `device` has run every queued kernel.
std::chrono::steady_clock::time_point Now(const at::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
  return std::chrono::steady_clock::now();
}

}  // namespace

int main(int argc, char** argv) {
  segrel::ReuseFreedMemory();
  segrel::pipeline::AnalysisRequest request;
  request.model = "models/ms-flair4";
  request.study_dir = "data/ms-lesjak/patient19";
  std::string out = "out/pipeline_bench";
  int threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string name = argv[i], value = argv[i + 1];
    int64_t megabytes = 0;
    if (name == "--model") {
      request.model = value;
    } else if (name == "--study") {
      request.study_dir = value;
    } else if (name == "--out") {
      out = value;
    } else if (name == "--device") {
      request.device = ParseDevice(value);
    } else if (name == "--composite") {
      request.composite = value;
    } else if (name == "--threads" && absl::SimpleAtoi(value, &threads)) {
    } else if (name == "--window-cache-mb" && absl::SimpleAtoi(value, &megabytes)) {
      request.window_cache_bytes = megabytes << 20;
    } else {
      Die("unknown option or bad value: " + name + " " + value);
    }
  }
  at::set_num_threads(threads);
  const auto start = Now(request.device);
  absl::StatusOr<segrel::pipeline::AnalysisResult> result = segrel::pipeline::RunAnalysis(request);
  if (!result.ok()) Die(std::string(result.status().message()));
  const auto written_start = Now(request.device);
  absl::StatusOr<std::vector<std::string>> written = segrel::pipeline::WriteAnalysis(*result, out, false, false);
  if (!written.ok()) Die(std::string(written.status().message()));
  const auto end = Now(request.device);

  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  using segrel::analysis::Stage;
  const segrel::analysis::StageTimes& s = result->summary.seconds;
  const double read = result->summary.seconds.at(Stage::kRead);
  const double write = std::chrono::duration<double>(end - written_start).count();
  const double total = std::chrono::duration<double>(end - start).count();
  const double load = result->summary.seconds.at(Stage::kLoadModel);
  const double normalise = result->summary.seconds.at(Stage::kNormalise);
  std::printf("model %s, study %s, composite %s, device %s, %d threads, %lld windows, window cache %lld MB\n",
              request.model.c_str(), request.study_dir.c_str(), result->summary.composite.c_str(),
              request.device.str().c_str(), threads, static_cast<long long>(result->explanation.windows),
              static_cast<long long>(request.window_cache_bytes >> 20));
  std::printf("%-34s %8.2f s\n", "read (NIfTI)", read);
  std::printf("%-34s %8.2f s\n", "load model", load);
  std::printf("%-34s %8.2f s\n", "normalise", normalise);
  std::printf("%-34s %8.2f s\n", "import graph", s.at(Stage::kImport));
  std::printf("%-34s %8.2f s\n", "inference (windowed prediction)", s.at(Stage::kInference));
  std::printf("%-34s %8.2f s\n", "transpose pass (c)", s.at(Stage::kTranspose));
  std::printf("%-34s %8.2f s\n", "relevance pass (per class)", s.at(Stage::kRelevance));
  std::printf("%-34s %8.2f s\n", "write", write);
  std::printf("%-34s %8.2f s\n", "total", total);
  std::printf("relevance stages / inference: %.2f\n",
              (s.at(Stage::kTranspose) + s.at(Stage::kRelevance)) / s.at(Stage::kInference));
  std::printf("peak resident memory: %.2f GB\n", static_cast<double>(usage.ru_maxrss) / (1024.0 * 1024.0));
  return 0;
}
