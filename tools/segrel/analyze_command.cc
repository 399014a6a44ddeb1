#include "tools/segrel/analyze_command.h"

#include <ATen/Parallel.h>
#include <ATen/Context.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/analysis/explanation.h"
#include "core/analysis/relevance_report.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"
#include "core/graph/torchscript_importer.h"
#include "core/io/nifti.h"
#include "core/lrp/composite.h"
#include "tools/segrel/command_line.h"

namespace segrel::cli {
namespace {

// Sequence names become file names (relevance_<NAME>.nii.gz): letters, digits, '.', '_' and '-' only.
absl::Status CheckSequenceName(const std::string& name) {
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return absl::InvalidArgumentError(absl::StrCat("--input: sequence name '", name,
                                                     "' may hold only letters, digits, '.', '_' and '-'"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Device> ParseDevice(const std::string& text) {
  if (text == "cpu") return at::Device(at::kCPU);
  if (text.rfind("cuda", 0) == 0) {
    if (!at::hasCUDA()) {
      return absl::FailedPreconditionError(absl::StrCat("--device ", text, ": this build or machine has no CUDA device"));
    }
    return CatchTorch("--device", [&]() -> absl::StatusOr<at::Device> { return at::Device(text); });
  }
  return absl::InvalidArgumentError(absl::StrCat("--device must be cpu, cuda or cuda:N, not '", text, "'"));
}

std::string FileName(const std::string& path) { return std::filesystem::path(path).filename().string(); }

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << text;
  file.close();
  if (!file) return absl::InternalError(absl::StrCat(path, ": cannot write"));
  return absl::OkStatus();
}

void PrintSummary(const AnalyzeRequest& request, const analysis::Explanation& explanation,
                  const std::vector<std::string>& written, std::ostream& out) {
  const std::vector<double> shares = analysis::Shares(explanation.raw);
  out << "segrel analyze: " << FileName(request.model_path) << ", composite " << request.composite << ", seed "
      << request.seed << "\n";
  out << "relevance per sequence (share of the combined map, raw sum):\n";
  for (const std::string& name : analysis::RankSequences(
           [&] {
             std::vector<std::string> names;
             for (const io::SequenceFile& input : request.inputs) names.push_back(input.name);
             return names;
           }(),
           shares)) {
    for (size_t s = 0; s < request.inputs.size(); ++s) {
      if (request.inputs[s].name == name) {
        out << absl::StrFormat("  %-12s %7.4f  %12.4f\n", name, shares[s], explanation.raw[s]);
      }
    }
  }
  for (const analysis::ClassExplanation& c : explanation.classes) {
    out << absl::StrFormat("class %d: %d voxels explained (%s region), %d excluded, %d predicted\n", c.class_index,
                           c.region_voxels, c.region_kind, c.excluded_voxels, c.predicted_voxels);
  }
  for (const std::string& note : explanation.notes) out << "note: " << note << "\n";
  out << "outputs in " << request.out_dir << ": " << absl::StrJoin(written, ", ") << "\n";
}

}  // namespace

const char* AnalyzeUsage() {
  return "usage: segrel analyze --model MODEL.pt --input NAME=FILE.nii.gz [--input NAME=FILE.nii.gz ...]\n"
         "                      [--composite epsilon-plus] [--region CLASS=MASK.nii.gz ...] [--seed N] [--maps]\n"
         "                      --out DIR [--threads N] [--device cpu|cuda[:N]]\n";
}

absl::StatusOr<AnalyzeRequest> ParseAnalyzeArguments(const std::vector<std::string>& arguments) {
  SEGREL_ASSIGN_OR_RETURN(
      const CommandLine command_line,
      CommandLine::Parse(arguments, {"model", "input", "composite", "region", "seed", "out", "threads", "device"},
                         {"maps"}));
  if (!command_line.positional().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", command_line.positional().front(), "'"));
  }
  AnalyzeRequest request;
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> model, command_line.Single("model"));
  if (!model.has_value()) return absl::InvalidArgumentError("--model is required");
  request.model_path = *model;
  for (const std::string& input : command_line.Values("input")) {
    SEGREL_ASSIGN_OR_RETURN(const auto assignment, SplitAssignment("input", input));
    SEGREL_RETURN_IF_ERROR(CheckSequenceName(assignment.first));
    request.inputs.push_back({assignment.first, assignment.second});
  }
  if (request.inputs.empty()) return absl::InvalidArgumentError("at least one --input NAME=FILE is required");
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> composite, command_line.Single("composite"));
  if (composite.has_value()) request.composite = *composite;
  for (const std::string& region : command_line.Values("region")) {
    SEGREL_ASSIGN_OR_RETURN(const auto assignment, SplitAssignment("region", region));
    int64_t class_index;
    if (!absl::SimpleAtoi(assignment.first, &class_index) || class_index < 0) {
      return absl::InvalidArgumentError(absl::StrCat("--region: class '", assignment.first, "' is not a class index"));
    }
    for (const auto& [existing, path] : request.regions) {
      if (existing == class_index) {
        return absl::InvalidArgumentError(absl::StrCat("--region: class ", class_index, " is given twice"));
      }
    }
    request.regions.emplace_back(class_index, assignment.second);
  }
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> seed, command_line.Single("seed"));
  if (seed.has_value() && !absl::SimpleAtoi(*seed, &request.seed)) {
    return absl::InvalidArgumentError(absl::StrCat("--seed: '", *seed, "' is not a non-negative integer"));
  }
  request.write_maps = command_line.Flag("maps");
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> out_dir, command_line.Single("out"));
  if (!out_dir.has_value()) return absl::InvalidArgumentError("--out DIR is required");
  request.out_dir = *out_dir;
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> threads, command_line.Single("threads"));
  if (threads.has_value() && (!absl::SimpleAtoi(*threads, &request.threads) || request.threads < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("--threads: '", *threads, "' is not a positive integer"));
  }
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> device, command_line.Single("device"));
  if (device.has_value()) request.device = *device;
  return request;
}

absl::Status RunAnalyze(const AnalyzeRequest& request, std::ostream& out) {
  const auto start = std::chrono::steady_clock::now();
  // OpenMP reports one thread unless told; LibTorch's thread count is set once, here.
  const int threads = request.threads > 0 ? request.threads : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(std::max(threads, 1));
  SEGREL_ASSIGN_OR_RETURN(const at::Device device, ParseDevice(request.device));
  {
    // Checked before any work: an unknown composite should not cost a model load.
    const absl::StatusOr<lrp::Composite> composite = lrp::Composite::Create(request.composite);
    if (!composite.ok()) return absl::InvalidArgumentError(absl::StrCat("--composite: ", composite.status().message()));
  }

  SEGREL_ASSIGN_OR_RETURN(const io::Study study, io::ReadNiftiStudy(request.inputs));
  analysis::ExplainOptions options;
  options.composite = request.composite;
  options.seed = request.seed;
  options.device = device;
  for (const auto& [class_index, path] : request.regions) {
    SEGREL_ASSIGN_OR_RETURN(const volume::Volume mask, io::ReadNifti(path));
    SEGREL_RETURN_IF_ERROR(io::CheckSameGrid(mask, study.volumes.front()));
    options.region_masks[class_index] = mask.data;
  }
  const double read_seconds = SecondsSince(start);

  SEGREL_ASSIGN_OR_RETURN(const graph::TorchScriptModel model, graph::TorchScriptModel::Load(request.model_path));
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor input, CatchTorch("stacking sequences", [&]() -> absl::StatusOr<at::Tensor> {
                            return study.Stack();
                          }));
  SEGREL_ASSIGN_OR_RETURN(const analysis::Explanation explanation,
                          analysis::ExplainSegmentation(model, input, options));

  const auto write_start = std::chrono::steady_clock::now();
  std::error_code error;
  std::filesystem::create_directories(request.out_dir, error);
  if (error) return absl::InternalError(absl::StrCat(request.out_dir, ": cannot create the directory: ", error.message()));
  std::vector<std::string> written = {"relevance.json", "segmentation.nii.gz"};
  const volume::Volume& grid = study.volumes.front();
  SEGREL_RETURN_IF_ERROR(io::WriteNifti(request.out_dir + "/segmentation.nii.gz", explanation.segmentation,
                                        io::NiftiDataType::kUInt8, grid));
  if (request.write_maps) {
    for (size_t s = 0; s < study.names.size(); ++s) {
      const std::string name = absl::StrCat("relevance_", study.names[s], ".nii.gz");
      SEGREL_RETURN_IF_ERROR(io::WriteNifti(request.out_dir + "/" + name, explanation.relevance_map[s],
                                            io::NiftiDataType::kFloat32, grid));
      written.push_back(name);
    }
  }
  analysis::ReportContext context;
  context.model = FileName(request.model_path);
  context.sequences = study.names;
  const auto sizes = grid.SpatialSizes();
  context.grid = {sizes[0], sizes[1], sizes[2]};
  context.composite = request.composite;
  context.seed = request.seed;
  context.tau = options.tau;
  context.device = device.str();
  context.threads = at::get_num_threads();
  context.seconds["read"] = read_seconds;
  context.seconds["write"] = SecondsSince(write_start);
  context.seconds["total"] = SecondsSince(start);
  SEGREL_RETURN_IF_ERROR(WriteText(request.out_dir + "/relevance.json",
                                   analysis::RelevanceReportJson(explanation, context)));
  PrintSummary(request, explanation, written, out);
  return absl::OkStatus();
}

}  // namespace segrel::cli
