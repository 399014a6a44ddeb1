#include "tools/command_line/command_line.h"

#include <algorithm>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace segrel::cli {
namespace {

const Option* FindOption(const std::vector<Option>& options, const std::string& name) {
  const auto it =
      std::find_if(options.begin(), options.end(), [&](const Option& option) { return option.name == name; });
  return it == options.end() ? nullptr : &*it;
}

// The words of a flag file: each line one option, its value after '=' or the first space.
absl::StatusOr<std::vector<std::string>> ReadFlagFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return absl::NotFoundError(absl::StrCat("--flagfile ", path, ": cannot be read"));
  std::vector<std::string> words;
  for (std::string line; std::getline(file, line);) {
    const std::string text(absl::StripAsciiWhitespace(line));
    if (text.empty() || text[0] == '#') continue;
    const size_t space = text.find(' ');
    if (text.rfind("--", 0) == 0 && space != std::string::npos && text.find('=') > space) {
      words.push_back(text.substr(0, space));
      words.push_back(std::string(absl::StripAsciiWhitespace(text.substr(space + 1))));
    } else {
      words.push_back(text);
    }
  }
  return words;
}

}  // namespace

absl::StatusOr<CommandLine> CommandLine::Parse(const std::vector<std::string>& arguments,
                                               const std::vector<Option>& options) {
  CommandLine command_line;
  for (size_t next = 0; next < arguments.size();) {
    const std::string& argument = arguments[next++];
    if (argument == "--") {
      command_line.positional_.insert(command_line.positional_.end(), arguments.begin() + next, arguments.end());
      break;
    }
    if (absl::Status status = command_line.Add(argument, arguments, next, options, false); !status.ok()) {
      return status;
    }
  }
  return command_line;
}

absl::Status CommandLine::Add(const std::string& argument, const std::vector<std::string>& rest, size_t& next,
                              const std::vector<Option>& options, bool in_flag_file) {
  if (argument.rfind("--", 0) != 0) {
    if (in_flag_file) return absl::InvalidArgumentError(absl::StrCat("flag file: '", argument, "' is no option"));
    positional_.push_back(argument);
    return absl::OkStatus();
  }
  std::string name = argument.substr(2);
  std::optional<std::string> value;
  if (const size_t equals = name.find('='); equals != std::string::npos) {
    value = name.substr(equals + 1);
    name.resize(equals);
  }
  const bool is_flag_file = name == "flagfile";
  const Option* option = FindOption(options, name);
  if (option == nullptr && !is_flag_file) return absl::InvalidArgumentError(absl::StrCat("unknown option --", name));
  if (option != nullptr && option->value.empty()) {
    if (value.has_value()) return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
    switches_.insert(name);
    return absl::OkStatus();
  }
  if (!value.has_value()) {
    if (next >= rest.size()) return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
    value = rest[next++];
  }
  if (!is_flag_file) {
    values_[name].push_back(*value);
    return absl::OkStatus();
  }
  if (in_flag_file) return absl::InvalidArgumentError("a flag file may not name another (--flagfile)");
  absl::StatusOr<std::vector<std::string>> words = ReadFlagFile(*value);
  if (!words.ok()) return words.status();
  for (size_t word = 0; word < words->size();) {
    const std::string& text = (*words)[word++];
    if (absl::Status status = Add(text, *words, word, options, true); !status.ok()) {
      return absl::Status(status.code(), absl::StrCat("--flagfile ", *value, ": ", status.message()));
    }
  }
  return absl::OkStatus();
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

absl::StatusOr<std::optional<int64_t>> CommandLine::Integer(const std::string& name, int64_t minimum,
                                                            int64_t maximum) const {
  absl::StatusOr<std::optional<std::string>> text = Single(name);
  if (!text.ok()) return text.status();
  if (!text->has_value()) return std::optional<int64_t>();
  int64_t value = 0;
  if (!absl::SimpleAtoi(**text, &value) || value < minimum || value > maximum) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": '", **text, "' is not an integer from ", minimum, " to ", maximum));
  }
  return std::optional<int64_t>(value);
}

absl::StatusOr<std::optional<absl::Duration>> CommandLine::Duration(const std::string& name) const {
  absl::StatusOr<std::optional<std::string>> text = Single(name);
  if (!text.ok()) return text.status();
  if (!text->has_value()) return std::optional<absl::Duration>();
  absl::Duration value;
  if (!absl::ParseDuration(**text, &value) || value < absl::ZeroDuration() || value == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": '", **text, "' is not a duration such as 90s, 2m or 1h30m"));
  }
  return std::optional<absl::Duration>(value);
}

std::string OptionsHelp(const std::vector<Option>& options) {
  size_t width = 0;
  const auto left = [](const Option& option) {
    return absl::StrCat("--", option.name, option.value.empty() ? "" : " ", option.value);
  };
  for (const Option& option : options) width = std::max(width, left(option).size());
  std::string text;
  for (const Option& option : options) {
    absl::StrAppend(&text, absl::StrFormat("  %-*s  %s\n", static_cast<int>(width), left(option), option.help));
  }
  return text;
}

bool AsksForHelp(const std::vector<std::string>& arguments) {
  return std::any_of(arguments.begin(), arguments.end(),
                     [](const std::string& argument) { return argument == "--help" || argument == "-h"; });
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
