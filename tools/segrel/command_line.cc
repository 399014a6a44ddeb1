#include "tools/segrel/command_line.h"

#include "absl/strings/str_cat.h"

namespace segrel::cli {

absl::StatusOr<CommandLine> CommandLine::Parse(const std::vector<std::string>& arguments,
                                               const std::set<std::string>& value_options,
                                               const std::set<std::string>& flags) {
  CommandLine command_line;
  for (size_t i = 0; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (argument.rfind("--", 0) != 0 || argument == "--") {
      command_line.positional_.push_back(argument);
      continue;
    }
    std::string name = argument.substr(2);
    std::optional<std::string> value;
    if (const size_t equals = name.find('='); equals != std::string::npos) {
      value = name.substr(equals + 1);
      name.resize(equals);
    }
    if (flags.count(name) > 0) {
      if (value.has_value()) return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      command_line.flags_.insert(name);
      continue;
    }
    if (value_options.count(name) == 0) return absl::InvalidArgumentError(absl::StrCat("unknown option --", name));
    if (!value.has_value()) {
      if (i + 1 >= arguments.size()) return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      value = arguments[++i];
    }
    command_line.values_[name].push_back(*value);
  }
  return command_line;
}

std::vector<std::string> CommandLine::Values(const std::string& name) const {
  const auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>() : it->second;
}

absl::StatusOr<std::optional<std::string>> CommandLine::Single(const std::string& name) const {
  const std::vector<std::string> values = Values(name);
  if (values.size() > 1) return absl::InvalidArgumentError(absl::StrCat("--", name, " is given more than once"));
  if (values.empty()) return std::optional<std::string>();
  return std::optional<std::string>(values.front());
}

absl::StatusOr<std::pair<std::string, std::string>> SplitAssignment(const std::string& option,
                                                                    const std::string& text) {
  const size_t equals = text.find('=');
  if (equals == std::string::npos || equals == 0 || equals + 1 == text.size()) {
    return absl::InvalidArgumentError(absl::StrCat("--", option, " expects NAME=FILE, got '", text, "'"));
  }
  return std::make_pair(text.substr(0, equals), text.substr(equals + 1));
}

}  // namespace segrel::cli
