// segrel: segmentation of multi-sequence MRI explained by layer-wise relevance propagation.
// main only dispatches to the subcommands; every error ends as one line on stderr and a non-zero exit.
#include <iostream>
#include <string>
#include <vector>

#include "core/common/allocator.h"
#include "tools/segrel/analyze_command.h"

namespace {

constexpr char kUsage[] =
    "usage: segrel <command> [options]\n"
    "commands:\n"
    "  analyze   segment a study and explain which sequences the network relied on\n"
    "run 'segrel <command> --help' for a command's options\n";

int Fail(const std::string& command, const std::string& message) {
  std::cerr << "segrel " << command << ": error: " << message << "\n";
  return 1;
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
  if (command == "analyze") {
    for (const std::string& argument : rest) {
      if (argument == "--help" || argument == "-h") {
        std::cout << segrel::cli::AnalyzeUsage();
        return 0;
      }
    }
    const absl::StatusOr<segrel::cli::AnalyzeCommand> request = segrel::cli::ParseAnalyzeArguments(rest);
    if (!request.ok()) {
      return Fail(command, std::string(request.status().message()) + " (see 'segrel analyze --help')");
    }
    const absl::Status status = segrel::cli::RunAnalyze(*request, std::cout);
    if (!status.ok()) return Fail(command, std::string(status.message()));
    return 0;
  }
  return Fail(command, "unknown command (see 'segrel --help')");
}
