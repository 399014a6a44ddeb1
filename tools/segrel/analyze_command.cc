#include "tools/segrel/analyze_command.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cctype>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"
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

// "128" or "128,128,96".
absl::StatusOr<std::vector<int64_t>> ParsePatch(const std::string& text) {
  std::vector<int64_t> patch;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t size;
    if (!absl::SimpleAtoi(part, &size) || size <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("--patch: '", text, "' is not N or N,N,N with N > 0"));
    }
    patch.push_back(size);
  }
  if (patch.size() == 1) patch.resize(3, patch[0]);
  if (patch.size() != 3) return absl::InvalidArgumentError("--patch: give one size or three");
  return patch;
}

void PrintSummary(const AnalyzeCommand& command, const analysis::AnalysisResult& result,
                  const std::vector<std::string>& written, std::ostream& out) {
  const analysis::Explanation& explanation = result.explanation;
  const std::vector<std::string>& names = result.study.names;
  const std::vector<double> shares = analysis::Shares(explanation.raw);
  out << "segrel analyze: model " << result.context.model << ", composite " << result.context.composite << ", seed "
      << result.context.seed;
  if (explanation.windows > 0) out << ", " << explanation.windows << " sliding windows";
  out << "\nrelevance per sequence (share of the combined map M, raw sum):\n";
  for (const std::string& name : analysis::RankSequences(names, shares)) {
    const size_t s = std::find(names.begin(), names.end(), name) - names.begin();
    out << absl::StrFormat("  %-12s %7.4f  %12.4f\n", name, shares[s], explanation.raw[s]);
  }
  for (const analysis::ClassExplanation& c : explanation.classes) {
    const std::string name = c.class_index < static_cast<int64_t>(result.class_names.size())
                                 ? absl::StrCat(" (", result.class_names[c.class_index], ")")
                                 : "";
    out << absl::StrFormat("class %d%s: %d voxels explained (%s region), %d excluded, %d predicted\n", c.class_index,
                           name, c.region_voxels, c.region_kind, c.excluded_voxels, c.predicted_voxels);
  }
  for (const std::string& note : explanation.notes) out << "note: " << note << "\n";
  out << "outputs in " << command.out_dir << ": " << absl::StrJoin(written, ", ") << "\n";
}

}  // namespace

const char* AnalyzeUsage() {
  return "usage: segrel analyze --model MODEL --input NAME=FILE.nii.gz [--input NAME=FILE.nii.gz ...] | --study DIR\n"
         "                      [--composite NAME] [--region CLASS=MASK.nii.gz ...] [--seed N] [--maps] --out DIR\n"
         "                      [--patch N[,N,N]] [--threads N] [--device cpu|cuda[:N]]\n"
         "MODEL: a bundle folder (segrel.json + TorchScript) or a TorchScript file\n";
}

absl::StatusOr<AnalyzeCommand> ParseAnalyzeArguments(const std::vector<std::string>& arguments) {
  SEGREL_ASSIGN_OR_RETURN(const CommandLine command_line,
                          CommandLine::Parse(arguments,
                                             {"model", "input", "study", "composite", "region", "seed", "out",
                                              "threads", "device", "patch"},
                                             {"maps"}));
  if (!command_line.positional().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", command_line.positional().front(), "'"));
  }
  AnalyzeCommand command;
  analysis::AnalysisRequest& request = command.request;
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> model, command_line.Single("model"));
  if (!model.has_value()) return absl::InvalidArgumentError("--model is required");
  request.model = *model;
  for (const std::string& input : command_line.Values("input")) {
    SEGREL_ASSIGN_OR_RETURN(const auto assignment, SplitAssignment("input", input));
    SEGREL_RETURN_IF_ERROR(CheckSequenceName(assignment.first));
    request.inputs.push_back({assignment.first, assignment.second});
  }
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> study, command_line.Single("study"));
  if (study.has_value()) request.study_dir = *study;
  if (request.inputs.empty() && request.study_dir.empty()) {
    return absl::InvalidArgumentError("give the study: --input NAME=FILE (one per sequence) or --study DIR");
  }
  SEGREL_ASSIGN_OR_RETURN(request.composite, command_line.Single("composite"));
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
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> patch, command_line.Single("patch"));
  if (patch.has_value()) {
    SEGREL_ASSIGN_OR_RETURN(request.patch, ParsePatch(*patch));
  }
  command.write_maps = command_line.Flag("maps");
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> out_dir, command_line.Single("out"));
  if (!out_dir.has_value()) return absl::InvalidArgumentError("--out DIR is required");
  command.out_dir = *out_dir;
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> threads, command_line.Single("threads"));
  if (threads.has_value() && (!absl::SimpleAtoi(*threads, &command.threads) || command.threads < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("--threads: '", *threads, "' is not a positive integer"));
  }
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> device, command_line.Single("device"));
  SEGREL_ASSIGN_OR_RETURN(request.device, ParseDevice(device.value_or("cpu")));
  return command;
}

absl::Status RunAnalyze(const AnalyzeCommand& command, std::ostream& out) {
  // OpenMP reports one thread unless told; LibTorch's thread count is set once, here.
  const int threads = command.threads > 0 ? command.threads : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(std::max(threads, 1));
  SEGREL_ASSIGN_OR_RETURN(const analysis::AnalysisResult result, analysis::RunAnalysis(command.request));
  SEGREL_ASSIGN_OR_RETURN(const std::vector<std::string> written,
                          analysis::WriteAnalysis(result, command.out_dir, command.write_maps));
  PrintSummary(command, result, written, out);
  return absl::OkStatus();
}

}  // namespace segrel::cli
