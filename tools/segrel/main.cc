// segrel: segmentation of multi-sequence MRI explained by layer-wise relevance propagation.
// main only dispatches to the subcommands; every error ends as one line on stderr and a non-zero exit.
#include <iostream>
#include <string>
#include <vector>

#include "core/common/allocator.h"
#include "tools/command_line/command_line.h"
#include "tools/segrel/analyze_command.h"
#include "tools/segrel/convert_command.h"
#include "tools/segrel/inspect_command.h"
#include "tools/segrel/report_command.h"

namespace {

constexpr char kUsage[] =
    "usage: segrel <command> [options]\n"
    "commands:\n"
    "  analyze   segment a study and explain which sequences the network relied on\n"
    "  report    summarise many analyze runs: mean/median share per sequence, ranking, chart\n"
    "  inspect   show what segrel sees in a DICOM folder or NIfTI files: series, grids, sequence mapping, problems\n"
    "  convert   write every DICOM series of a folder as NIfTI (<SeriesNumber>_<SeriesDescription>.nii.gz)\n"
    "run 'segrel <command> --help' for a command's options\n";

int Fail(const std::string& command, const std::string& message) {
  std::cerr << "segrel " << command << ": error: " << message << "\n";
  return 1;
}

// Runs one subcommand: --help prints its usage; otherwise parse, then run.
template <typename Command>
int RunCommand(const std::string& name, const std::vector<std::string>& arguments, const std::string& usage,
               absl::StatusOr<Command> (*parse)(const std::vector<std::string>&),
               absl::Status (*run)(const Command&, std::ostream&)) {
  if (segrel::cli::AsksForHelp(arguments)) {
    std::cout << usage;
    return 0;
  }
  const absl::StatusOr<Command> command = parse(arguments);
  if (!command.ok()) {
    return Fail(name, std::string(command.status().message()) + " (see 'segrel " + name + " --help')");
  }
  const absl::Status status = run(*command, std::cout);
  if (!status.ok()) return Fail(name, std::string(status.message()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  segrel::ReuseFreedMemory();
  const std::vector<std::string> arguments(argv + 1, argv + argc);
  if (arguments.empty() || arguments[0] == "--help" || arguments[0] == "-h") {
    std::cout << kUsage;
    return arguments.empty() ? 2 : 0;
  }
  const std::string command = arguments[0];
  const std::vector<std::string> rest(arguments.begin() + 1, arguments.end());
  namespace cli = segrel::cli;
  if (command == "analyze") {
    return RunCommand(command, rest, cli::AnalyzeUsage(), cli::ParseAnalyzeArguments, cli::RunAnalyze);
  }
  if (command == "report") {
    return RunCommand(command, rest, cli::ReportUsage(), cli::ParseReportArguments, cli::RunReport);
  }
  if (command == "inspect") {
    return RunCommand(command, rest, cli::InspectUsage(), cli::ParseInspectArguments, cli::RunInspect);
  }
  if (command == "convert") {
    return RunCommand(command, rest, cli::ConvertUsage(), cli::ParseConvertArguments, cli::RunConvert);
  }
  return Fail(command, "unknown command (see 'segrel --help')");
}
