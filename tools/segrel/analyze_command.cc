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
#include "core/common/device.h"
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

std::string FormatShares(const std::vector<std::string>& names, const std::vector<double>& shares) {
  std::vector<std::string> parts;
  for (size_t s = 0; s < names.size(); ++s) parts.push_back(absl::StrFormat("%s %.3f", names[s], shares[s]));
  return absl::StrJoin(parts, ", ");
}

void PrintSummary(const AnalyzeCommand& command, const analysis::AnalysisResult& result,
                  const std::vector<std::string>& written, std::ostream& out) {
  const analysis::Explanation& explanation = result.explanation;
  const std::vector<std::string>& names = result.study.names;
  const std::vector<double> shares = analysis::Shares(explanation.raw);
  out << "segrel analyze: model " << result.context.model << ", composite " << result.context.composite << ", seed "
      << result.context.seed;
  if (explanation.windows > 0) out << ", " << explanation.windows << " sliding windows";
  out << "\n";
  if (!result.assembly.empty()) {
    out << "DICOM series used:\n";
    for (const std::string& line : result.assembly) out << "  " << line << "\n";
  }
  out << "relevance per sequence (share of the combined map M, raw sum):\n";
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
  if (explanation.dice.has_value()) {
    out << absl::StrFormat("reference: Dice %.4f\n", *explanation.dice);
    for (const analysis::RegionExplanation& region : explanation.error_regions) {
      out << absl::StrFormat("  %-15s %7d voxels, shares %s\n", region.kind, region.voxels,
                             FormatShares(names, analysis::Shares(region.raw)));
    }
  }
  if (!explanation.lesions.empty()) {
    out << explanation.lesions.size() << " lesions; the largest:\n";
    for (size_t i = 0; i < std::min<size_t>(5, explanation.lesions.size()); ++i) {
      const analysis::RegionExplanation& lesion = explanation.lesions[i];
      out << absl::StrFormat("  lesion %d: %d voxels at (%.0f, %.0f, %.0f), shares %s\n", lesion.label, lesion.voxels,
                             lesion.centroid[0], lesion.centroid[1], lesion.centroid[2],
                             FormatShares(names, analysis::Shares(lesion.raw)));
    }
  }
  if (!explanation.ablation.empty()) {
    out << "sequence ablation (prediction with the sequence replaced by its mean in the body):\n";
    std::vector<double> effect;
    for (const analysis::SequenceAblation& ablation : explanation.ablation) {
      out << absl::StrFormat("  without %-10s foreground %8d voxels (%+.1f %%), Dice with the prediction %.4f%s\n",
                             names[ablation.sequence], ablation.foreground_voxels,
                             explanation.foreground_voxels > 0
                                 ? 100.0 * (ablation.foreground_voxels - explanation.foreground_voxels) /
                                       explanation.foreground_voxels
                                 : 0.0,
                             ablation.dice_with_prediction,
                             ablation.dice_with_reference ? absl::StrFormat(", with the reference %.4f",
                                                                            *ablation.dice_with_reference)
                                                          : "");
      effect.push_back(1.0 - ablation.dice_with_prediction);
    }
    out << "  ranking by relevance: " << absl::StrJoin(analysis::RankSequences(names, shares), " > ")
        << "\n  ranking by ablation:  " << absl::StrJoin(analysis::RankSequences(names, effect), " > ")
        << absl::StrFormat("\n  rank correlation %.2f\n", analysis::SpearmanCorrelation(shares, effect));
  }
  for (const std::string& note : explanation.notes) out << "note: " << note << "\n";
  out << "outputs in " << command.out_dir << ": " << absl::StrJoin(written, ", ") << "\n";
}

}  // namespace

const char* AnalyzeUsage() {
  return "usage: segrel analyze --model MODEL --input NAME=FILE.nii.gz [--input NAME=FILE.nii.gz ...] | --study DIR\n"
         "                      [--composite NAME] [--region CLASS=MASK.nii.gz ...] [--seed N] [--maps] --out DIR\n"
         "                      [--lesions] [--reference MASK.nii.gz] [--ablation] [--no-pictures]\n"
         "                      [--patch N[,N,N]] [--window-cache-mb 0] [--threads N] [--device cpu|cuda[:N]]\n"
         "MODEL: a bundle folder (segrel.json + TorchScript) or a TorchScript file\n"
         "--study DIR: one NAME.nii.gz per bundle sequence, or a DICOM folder (mapped by the bundle's series_rules,\n"
         "resampled onto the reference sequence's grid)\n"
         "--lesions: explain each predicted lesion; --reference: Dice, and true/false positives and false negatives\n"
         "explained apart; --ablation: predict without each sequence and compare with the relevance ranking\n";
}

absl::StatusOr<AnalyzeCommand> ParseAnalyzeArguments(const std::vector<std::string>& arguments) {
  SEGREL_ASSIGN_OR_RETURN(const CommandLine command_line,
                          CommandLine::Parse(arguments,
                                             {"model", "input", "study", "composite", "region", "seed", "out",
                                              "threads", "device", "patch", "reference", "window-cache-mb"},
                                             {"maps", "lesions", "ablation", "no-pictures"}));
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
  SEGREL_ASSIGN_OR_RETURN(request.device, ParseDevice(device.value_or("cpu")));
  return command;
}

absl::Status RunAnalyze(const AnalyzeCommand& command, std::ostream& out) {
  // OpenMP reports one thread unless told; LibTorch's thread count is set once, here.
  const int threads = command.threads > 0 ? command.threads : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(std::max(threads, 1));
  SEGREL_ASSIGN_OR_RETURN(const analysis::AnalysisResult result, analysis::RunAnalysis(command.request));
  SEGREL_ASSIGN_OR_RETURN(const std::vector<std::string> written,
                          analysis::WriteAnalysis(result, command.out_dir, command.write_maps, command.pictures));
  PrintSummary(command, result, written, out);
  if (command.pictures && std::find(written.begin(), written.end(), "relevance_bars.png") == written.end()) {
    out << "note: no pictures: gnuplot is not installed (Debian package gnuplot-nox); relevance.json has the rest\n";
  }
  return absl::OkStatus();
}

}  // namespace segrel::cli
