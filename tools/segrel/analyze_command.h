// `segrel analyze`: segment a study and explain the segmentation (which sequences the network relied on).
//
//   segrel analyze --model MODEL --input NAME=FILE.nii.gz [--input NAME=FILE.nii.gz ...] | --study DIR
//                  [--composite NAME] [--region CLASS=MASK.nii.gz ...] [--seed N] [--maps] --out DIR
//                  [--patch N[,N,N]] [--threads N] [--device cpu|cuda[:N]]
//
// MODEL is a bundle (folder with segrel.json) or a TorchScript file. Writes DIR/relevance.json,
// DIR/segmentation.nii.gz and, with --maps, DIR/relevance_<NAME>.nii.gz per sequence.
#ifndef SEGREL_TOOLS_SEGREL_ANALYZE_COMMAND_H_
#define SEGREL_TOOLS_SEGREL_ANALYZE_COMMAND_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/pipeline/pipeline.h"

namespace segrel::cli {

struct AnalyzeCommand {
  pipeline::AnalysisRequest request;
  bool write_maps = false;
  bool pictures = true;  // relevance_bars.png, relevance_overlay.png
  std::string out_dir;
  int threads = 0;  // 0: all cores
};

// Parses the arguments after "analyze". Errors: InvalidArgument naming the option at fault.
absl::StatusOr<AnalyzeCommand> ParseAnalyzeArguments(const std::vector<std::string>& arguments);

// Runs the analysis and writes its outputs; prints a short summary to `out`. Errors name the file or option.
absl::Status RunAnalyze(const AnalyzeCommand& command, std::ostream& out);

// The usage text.
std::string AnalyzeUsage();

}  // namespace segrel::cli

#endif  // SEGREL_TOOLS_SEGREL_ANALYZE_COMMAND_H_
