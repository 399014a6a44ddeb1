// ONNX against TorchScript (issue "ONNX models as the second door"): the same network from both files, loaded and
// imported into segrel's layer graph, then run. Prints, for each file, the median of `repeats` cold loads +
// imports (file to layer graph, as a server worker's first job of a model pays it) and of the layer graph's forward
// pass, their ratios, and the largest difference between the two graphs' outputs, all measured in this run.
//
//   onnx_bench [--torchscript bench/unet_bench.pt] [--onnx bench/unet_bench.onnx] [--sizes 1,6,96,96,64]
//              [--threads 2] [--repeats 3]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/graph/network_model.h"

namespace {

struct Options {
  std::string torchscript = "bench/unet_bench.pt";
  std::string onnx = "bench/unet_bench.onnx";
  std::vector<int64_t> sizes = {1, 6, 96, 96, 64};
  int threads = 2;
  int repeats = 3;
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "onnx_bench: %s\n", message.c_str());
  std::exit(1);
}

template <typename T>
T OrDie(absl::StatusOr<T> value) {
  if (!value.ok()) Die(std::string(value.status().message()));
  return *std::move(value);
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string name = argv[i];
    const std::string value = argv[i + 1];
    if (name == "--torchscript") {
      options.torchscript = value;
    } else if (name == "--onnx") {
      options.onnx = value;
    } else if (name == "--sizes") {
      options.sizes.clear();
      for (absl::string_view size : absl::StrSplit(value, ',')) {
        int64_t parsed = 0;
        if (!absl::SimpleAtoi(size, &parsed)) Die("bad --sizes " + value);
        options.sizes.push_back(parsed);
      }
    } else if (name == "--threads" && absl::SimpleAtoi(value, &options.threads)) {
    } else if (name == "--repeats" && absl::SimpleAtoi(value, &options.repeats)) {
    } else {
      Die("unknown option " + name + " (or bad value " + value + ")");
    }
  }
  if (argc % 2 == 0) Die("options come in pairs: --name value");
  return options;
}

double MedianSeconds(int repeats, const std::function<void()>& work) {
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    work();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

struct Measured {
  double import_seconds = 0;
  double forward_seconds = 0;
  at::Tensor output;
};

Measured Measure(const std::string& path, const Options& options, const at::Tensor& input) {
  Measured measured;
  std::unique_ptr<segrel::graph::LayerGraph> graph;
  measured.import_seconds = MedianSeconds(options.repeats, [&] {
    const std::unique_ptr<segrel::graph::NetworkModel> model = OrDie(segrel::graph::LoadNetworkModel(path));
    graph = std::make_unique<segrel::graph::LayerGraph>(OrDie(model->ImportGraph(options.sizes)));
  });
  OrDie(graph->Forward(input));  // oneDNN picks and caches its primitives on the first call
  measured.forward_seconds = MedianSeconds(options.repeats, [&] { measured.output = OrDie(graph->Forward(input)); });
  return measured;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = ParseOptions(argc, argv);
  at::set_num_threads(options.threads);
  at::manual_seed(0);
  c10::InferenceMode inference;
  const at::Tensor input = at::randn(options.sizes);
  std::printf("input [%s], %d threads, median of %d\n", absl::StrJoin(options.sizes, ", ").c_str(), options.threads,
              options.repeats);
  const Measured torchscript = Measure(options.torchscript, options, input);
  const Measured onnx = Measure(options.onnx, options, input);
  std::printf("%-12s %10s %10s\n", "", "import s", "forward s");
  std::printf("%-12s %10.3f %10.3f   %s\n", "torchscript", torchscript.import_seconds, torchscript.forward_seconds,
              options.torchscript.c_str());
  std::printf("%-12s %10.3f %10.3f   %s\n", "onnx", onnx.import_seconds, onnx.forward_seconds, options.onnx.c_str());
  std::printf("onnx / torchscript: import %.3f, forward %.3f\n", onnx.import_seconds / torchscript.import_seconds,
              onnx.forward_seconds / torchscript.forward_seconds);
  const double scale = torchscript.output.abs().max().item<double>();
  std::printf("max |onnx - torchscript| / max |torchscript| = %.3g\n",
              (onnx.output - torchscript.output).abs().max().item<double>() / scale);
  return 0;
}
