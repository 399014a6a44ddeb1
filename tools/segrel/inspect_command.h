// `segrel inspect`: what segrel sees in a DICOM folder or NIfTI files, so that users can check its reading before
// they analyse.
//
//   segrel inspect PATH [--rules RULES.json | --model BUNDLE]
//
// PATH is a DICOM folder (searched recursively), a NIfTI file, or a folder of NIfTI files. One line per series (or
// file): series number, description, the sequence the rules map it to, grid size, spacing, orientation codes
// (nibabel's aff2axcodes), transfer syntax; then the mapping of sequences (what matched, what is missing or
// ambiguous) and the problems found (series that could not be read, with why; skipped files). Patient names and
// IDs are never read; paths are printed relative to PATH.
#ifndef SEGREL_TOOLS_SEGREL_INSPECT_COMMAND_H_
#define SEGREL_TOOLS_SEGREL_INSPECT_COMMAND_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace segrel::cli {

struct InspectCommand {
  std::string path;
  std::string rules_path;  // --rules, or ""
  std::string model_path;  // --model, or ""
};

// Parses the arguments after "inspect". Errors: InvalidArgument when PATH is missing or given twice, for unknown
// options, or when both --rules and --model are given.
absl::StatusOr<InspectCommand> ParseInspectArguments(const std::vector<std::string>& arguments);

// Reads PATH and prints what it holds to `out`. Errors: NotFound when PATH does not exist or holds no image;
// those of ReadSeriesRules and ReadBundle; a bundle without series_rules is InvalidArgument for DICOM folders.
absl::Status RunInspect(const InspectCommand& command, std::ostream& out);

// The usage text.
std::string InspectUsage();

}  // namespace segrel::cli

#endif  // SEGREL_TOOLS_SEGREL_INSPECT_COMMAND_H_
