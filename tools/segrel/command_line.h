// CommandLine: a subcommand's options. "--name value" and "--name=value" options may repeat (e.g. --input), which
// absl flags cannot express; flags take no value.
#ifndef SEGREL_TOOLS_SEGREL_COMMAND_LINE_H_
#define SEGREL_TOOLS_SEGREL_COMMAND_LINE_H_

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace segrel::cli {

class CommandLine {
 public:
  // Errors: InvalidArgument for an unknown option, an option without its value, or a value for a flag.
  static absl::StatusOr<CommandLine> Parse(const std::vector<std::string>& arguments,
                                           const std::set<std::string>& value_options,
                                           const std::set<std::string>& flags);

  // Every value given for `name`, in order.
  std::vector<std::string> Values(const std::string& name) const;
  // The value of an option given at most once. Errors: InvalidArgument when given several times.
  absl::StatusOr<std::optional<std::string>> Single(const std::string& name) const;
  bool Flag(const std::string& name) const { return flags_.count(name) > 0; }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::set<std::string> flags_;
  std::vector<std::string> positional_;
};

// Splits "NAME=VALUE". Errors: InvalidArgument naming `option` when there is no '=' or either side is empty.
absl::StatusOr<std::pair<std::string, std::string>> SplitAssignment(const std::string& option,
                                                                    const std::string& text);

}  // namespace segrel::cli

#endif  // SEGREL_TOOLS_SEGREL_COMMAND_LINE_H_
