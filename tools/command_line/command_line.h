// The one command-line mechanism of segrel's programs (segrel, segrel-server, segrel-client): options are declared
// once, as a table of Option, from which both the parser and the --help text come, so that --help lists every
// option. Spelling: "--kebab-case", "--name value" or "--name=value"; options may repeat (e.g. --input), which
// absl flags cannot express; switches take no value; "--flagfile FILE" reads options from a file (for container
// and Kubernetes configuration).
#ifndef SEGREL_TOOLS_COMMAND_LINE_COMMAND_LINE_H_
#define SEGREL_TOOLS_COMMAND_LINE_COMMAND_LINE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace segrel::cli {

// One option of a program or subcommand.
struct Option {
  std::string name;   // without "--", kebab-case
  std::string value;  // the value's placeholder in --help ("DIR", "N"); empty: a switch, which takes no value
  std::string help;   // what it does, and its default
};

// Thread-compatible value.
class CommandLine {
 public:
  // Parses `arguments` (without the program name) against `options`: "--name value", "--name=value", "--switch",
  // and positional words (anything not starting with "--", and everything after "--"). "--flagfile FILE" stands
  // for the options in FILE, one per line as "--name=value", "--name value" or "--switch" (blank lines and lines
  // starting with '#' are skipped); a flag file may not name another. Errors: InvalidArgument for an unknown
  // option (naming it), an option without its value, a value for a switch, a positional word in a flag file;
  // NotFound when a flag file cannot be read.
  static absl::StatusOr<CommandLine> Parse(const std::vector<std::string>& arguments,
                                           const std::vector<Option>& options);

  // Every value given for `name`, in order.
  std::vector<std::string> Values(const std::string& name) const;
  // The value of an option given at most once. Errors: InvalidArgument when given several times.
  absl::StatusOr<std::optional<std::string>> Single(const std::string& name) const;
  // The value of an option given at most once, as an integer in [`minimum`, `maximum`]. Errors: InvalidArgument
  // naming the option when it is given several times, is not an integer or is out of range.
  absl::StatusOr<std::optional<int64_t>> Integer(const std::string& name, int64_t minimum = INT64_MIN,
                                                 int64_t maximum = INT64_MAX) const;
  // The value of an option given at most once, as a duration ("90s", "2m", "1h30m"). Errors: InvalidArgument
  // naming the option when it is given several times or is not a non-negative duration.
  absl::StatusOr<std::optional<absl::Duration>> Duration(const std::string& name) const;
  bool Flag(const std::string& name) const { return switches_.count(name) > 0; }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  absl::Status Add(const std::string& argument, const std::vector<std::string>& rest, size_t& next,
                   const std::vector<Option>& options, bool in_flag_file);

  std::map<std::string, std::vector<std::string>> values_;
  std::set<std::string> switches_;
  std::vector<std::string> positional_;
};

// The options as --help lists them, one per line: "  --name VALUE  help".
std::string OptionsHelp(const std::vector<Option>& options);

// Whether `arguments` ask for help ("--help" or "-h" anywhere).
bool AsksForHelp(const std::vector<std::string>& arguments);

// Splits "NAME=VALUE". Errors: InvalidArgument naming `option` when there is no '=' or either side is empty.
absl::StatusOr<std::pair<std::string, std::string>> SplitAssignment(const std::string& option, const std::string& text);

}  // namespace segrel::cli

#endif  // SEGREL_TOOLS_COMMAND_LINE_COMMAND_LINE_H_
