// `segrel analyze`: segment a study and explain the segmentation (which sequences the network relied on).
//
//   segrel analyze --model MODEL.pt --input NAME=FILE.nii.gz [--input NAME=FILE.nii.gz ...]
//                  [--composite epsilon-plus] [--region CLASS=MASK.nii.gz ...] [--seed N] [--maps] --out DIR
//                  [--threads N] [--device cpu|cuda[:N]]
//
// Writes DIR/relevance.json, DIR/segmentation.nii.gz and, with --maps, DIR/relevance_<NAME>.nii.gz per sequence.
#ifndef SEGREL_TOOLS_SEGREL_ANALYZE_COMMAND_H_
#define SEGREL_TOOLS_SEGREL_ANALYZE_COMMAND_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/io/study.h"

namespace segrel::cli {

struct AnalyzeRequest {
  std::string model_path;
  std::vector<io::SequenceFile> inputs;                 // channel order as given
  std::string composite = "epsilon-plus";
  std::vector<std::pair<int64_t, std::string>> regions;  // class, mask file
  uint64_t seed = 0;
  bool write_maps = false;
  std::string out_dir;
  int threads = 0;  // 0: all cores
  std::string device = "cpu";
};

// Parses the arguments after "analyze". Errors: InvalidArgument naming the option at fault.
absl::StatusOr<AnalyzeRequest> ParseAnalyzeArguments(const std::vector<std::string>& arguments);

// Runs the analysis and writes its outputs; prints a short summary to `out`. Errors name the file or option.
absl::Status RunAnalyze(const AnalyzeRequest& request, std::ostream& out);

// The usage text.
const char* AnalyzeUsage();

}  // namespace segrel::cli

#endif  // SEGREL_TOOLS_SEGREL_ANALYZE_COMMAND_H_
