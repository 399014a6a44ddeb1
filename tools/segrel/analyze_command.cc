#include "tools/segrel/analyze_command.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cctype>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/common/device.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"
#include "tools/command_line/command_line.h"

namespace segrel::cli {
namespace {

// Sequence names become file names (relevance_<NAME>.nii.gz): letters, digits, '.', '_' and '-' only.
absl::Status CheckSequenceName(const std::string& name) {
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return absl::InvalidArgumentError(
          absl::StrCat("--input: sequence name '", name, "' may hold only letters, digits, '.', '_' and '-'"));
    }
  }
  return absl::OkStatus();
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

// Core errors name the input or field at fault ("composite: ...", "region mask for class 1: ..."); the command
// line adds the flag that gave it.
absl::Status WithFlagName(const absl::Status& status) {
  static constexpr std::pair<absl::string_view, absl::string_view> kFlags[] = {
      {"composite", "--composite"}, {"region mask", "--region"}, {"device", "--device"},
      {"the device", "--device"},   {"sequence", "--input"},     {"missing sequence", "--input"}};
  for (const auto& [field, flag] : kFlags) {
    if (absl::StartsWith(status.message(), field)) {
      return absl::Status(status.code(), absl::StrCat(flag, ": ", status.message()));
    }
  }
  return status;
}

std::string FormatShares(const std::vector<std::string>& names, const std::vector<double>& shares) {
  std::vector<std::string> parts;
  for (size_t s = 0; s < names.size(); ++s) parts.push_back(absl::StrFormat("%s %.3f", names[s], shares[s]));
  return absl::StrJoin(parts, ", ");
}

void PrintRelevance(const report::AnalysisSummary& summary, std::ostream& out) {
  const std::vector<std::string>& names = summary.sequences;
  out << "relevance per sequence (share of the combined map M, raw sum):\n";
  for (const std::string& name : summary.ranking) {
    const size_t s = std::find(names.begin(), names.end(), name) - names.begin();
    out << absl::StrFormat("  %-12s %7.4f  %12.4f\n", name, summary.relevance.shares[s], summary.relevance.raw[s]);
  }
  for (const report::ClassSummary& c : summary.classes) {
    const std::string name = c.name.empty() ? "" : absl::StrCat(" (", c.name, ")");
    out << absl::StrFormat("class %d%s: %d voxels explained (%s region), %d excluded, %d predicted\n", c.index, name,
                           c.region_voxels, c.region, c.excluded_voxels, c.predicted_voxels);
  }
}

void PrintRegions(const report::AnalysisSummary& summary, std::ostream& out) {
  const std::vector<std::string>& names = summary.sequences;
  if (summary.dice.has_value()) {
    out << absl::StrFormat("reference: Dice %.4f\n", *summary.dice);
    for (const report::RegionSummary& region : summary.error_regions) {
      out << absl::StrFormat("  %-15s %7d voxels, shares %s\n", region.kind, region.voxels,
                             FormatShares(names, region.relevance.shares));
    }
  }
  if (!summary.lesions.empty()) {
    out << summary.lesions.size() << " lesions; the largest:\n";
    for (size_t i = 0; i < std::min<size_t>(5, summary.lesions.size()); ++i) {
      const report::RegionSummary& lesion = summary.lesions[i];
      out << absl::StrFormat("  lesion %d: %d voxels at (%.0f, %.0f, %.0f), shares %s\n", lesion.label, lesion.voxels,
                             lesion.centroid[0], lesion.centroid[1], lesion.centroid[2],
                             FormatShares(names, lesion.relevance.shares));
    }
  }
}

void PrintAblation(const report::AnalysisSummary& summary, std::ostream& out) {
  if (!summary.ablation.has_value()) return;
  out << "sequence ablation (prediction with the sequence replaced by its mean in the body):\n";
  for (const report::AblationSummary::Sequence& sequence : summary.ablation->sequences) {
    out << absl::StrFormat(
        "  without %-10s foreground %8d voxels (%+.1f %%), Dice with the prediction %.4f%s\n", sequence.name,
        sequence.foreground_voxels, 100.0 * sequence.foreground_change, sequence.dice_with_prediction,
        sequence.dice_with_reference ? absl::StrFormat(", with the reference %.4f", *sequence.dice_with_reference)
                                     : "");
  }
  out << "  ranking by relevance: " << absl::StrJoin(summary.ranking, " > ")
      << "\n  ranking by ablation:  " << absl::StrJoin(summary.ablation->ranking, " > ")
      << absl::StrFormat("\n  rank correlation %.2f\n", summary.ablation->rank_correlation_with_relevance);
}

void PrintSummary(const AnalyzeCommand& command, const pipeline::AnalysisResult& result,
                  const std::vector<std::string>& written, std::ostream& out) {
  const report::AnalysisSummary& summary = result.summary;
  out << "segrel analyze: model " << summary.model << ", composite " << summary.composite << ", seed " << summary.seed;
  if (summary.windows > 0) out << ", " << summary.windows << " sliding windows";
  out << "\n";
  if (!result.assembly.empty()) {
    out << "DICOM series used:\n";
    for (const std::string& line : result.assembly) out << "  " << line << "\n";
  }
  PrintRelevance(summary, out);
  PrintRegions(summary, out);
  PrintAblation(summary, out);
  for (const std::string& note : summary.notes) out << "note: " << note << "\n";
  out << "outputs in " << command.out_dir << ": " << absl::StrJoin(written, ", ") << "\n";
}

}  // namespace

const std::vector<Option>& AnalyzeOptions() {
  static const auto* const options = new std::vector<Option>{
      {"model", "MODEL", "a bundle folder (segrel.json + TorchScript) or a TorchScript file (required)"},
      {"input", "NAME=FILE", "a sequence as NIfTI; one per sequence (with a bundle in any order)"},
      {"study", "DIR", "instead of --input: one NAME.nii.gz per bundle sequence, or a DICOM folder"},
      {"out", "DIR", "where the outputs go (required)"},
      {"composite", "NAME", "the LRP composite (default: the bundle's, else epsilon-plus)"},
      {"region", "CLASS=MASK", "explain class CLASS over the mask's voxels instead of the balanced region"},
      {"seed", "N", "seed of the balanced background region (default 0)"},
      {"maps", "", "also write one relevance map per sequence"},
      {"lesions", "", "explain each predicted lesion on its own"},
      {"reference", "MASK", "a reference segmentation: Dice, true/false positives and false negatives explained"},
      {"ablation", "", "predict without each sequence and compare with the relevance ranking"},
      {"no-pictures", "", "skip relevance_bars.png and relevance_overlay.png"},
      {"patch", "N[,N,N]", "sliding-window patch for a bare model (bundles give their own)"},
      {"output", "N", "which of the network's outputs is the segmentation (default: the bundle's, else 0)"},
      {"window-cache-mb", "MB", "memory for windows kept between the two passes (default 0: recompute)"},
      {"threads", "N", "LibTorch threads (default: all cores)"},
      {"device", "cpu|cuda[:N]", "where the analysis runs (default cpu)"},
  };
  return *options;
}

std::string AnalyzeUsage() {
  return "usage: segrel analyze --model MODEL (--input NAME=FILE ... | --study DIR) --out DIR [options]\n" +
         OptionsHelp(AnalyzeOptions());
}

absl::StatusOr<AnalyzeCommand> ParseAnalyzeArguments(const std::vector<std::string>& arguments) {
  SEGREL_ASSIGN_OR_RETURN(const CommandLine command_line, CommandLine::Parse(arguments, AnalyzeOptions()));
  if (!command_line.positional().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", command_line.positional().front(), "'"));
  }
  AnalyzeCommand command;
  pipeline::AnalysisRequest& request = command.request;
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
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> output, command_line.Single("output"));
  int output_index = 0;
  if (output.has_value()) {
    if (!absl::SimpleAtoi(*output, &output_index) || output_index < 0) {
      return absl::InvalidArgumentError(absl::StrCat("--output: '", *output, "' is not an output index (0, 1, ...)"));
    }
    request.output = output_index;
  }
  command.write_maps = command_line.Flag("maps");
  command.pictures = !command_line.Flag("no-pictures");
  request.per_lesion = command_line.Flag("lesions");
  request.ablation = command_line.Flag("ablation");
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> cache, command_line.Single("window-cache-mb"));
  int64_t cache_mb = 0;
  if (cache.has_value() && (!absl::SimpleAtoi(*cache, &cache_mb) || cache_mb < 0)) {
    return absl::InvalidArgumentError(absl::StrCat("--window-cache-mb: '", *cache, "' is not a size in MB"));
  }
  request.window_cache_bytes = cache_mb << 20;
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> reference, command_line.Single("reference"));
  if (reference.has_value()) request.reference = *reference;
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> out_dir, command_line.Single("out"));
  if (!out_dir.has_value()) return absl::InvalidArgumentError("--out DIR is required");
  command.out_dir = *out_dir;
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> threads, command_line.Single("threads"));
  if (threads.has_value() && (!absl::SimpleAtoi(*threads, &command.threads) || command.threads < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("--threads: '", *threads, "' is not a positive integer"));
  }
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> device, command_line.Single("device"));
  absl::StatusOr<at::Device> parsed_device = ParseDevice(device.value_or("cpu"));
  if (!parsed_device.ok()) return WithFlagName(parsed_device.status());
  request.device = *parsed_device;
  return command;
}

absl::Status RunAnalyze(const AnalyzeCommand& command, std::ostream& out) {
  // OpenMP reports one thread unless told; LibTorch's thread count is set once, here.
  const int threads = command.threads > 0 ? command.threads : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(std::max(threads, 1));
  absl::StatusOr<pipeline::AnalysisResult> analysed = pipeline::RunAnalysis(command.request);
  if (!analysed.ok()) return WithFlagName(analysed.status());
  const pipeline::AnalysisResult& result = *analysed;
  SEGREL_ASSIGN_OR_RETURN(const std::vector<std::string> written,
                          pipeline::WriteAnalysis(result, command.out_dir, command.write_maps, command.pictures));
  PrintSummary(command, result, written, out);
  if (command.pictures && std::find(written.begin(), written.end(), "relevance_bars.png") == written.end()) {
    out << "note: no pictures: gnuplot is not installed (Debian package gnuplot-nox); relevance.json has the rest\n";
  }
  return absl::OkStatus();
}

}  // namespace segrel::cli
