#include "core/report/gnuplot.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/common/files.h"

extern char** environ;

namespace segrel::report {
namespace {

// A fresh temporary folder (for the script and gnuplot's error output), removed when destroyed.
class TempFolder {
 public:
  TempFolder() {
    std::error_code error;
    std::string pattern = (std::filesystem::temp_directory_path(error) / "segrel-gnuplot-XXXXXX").string();
    if (!error && mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempFolder() {
    if (!path_.empty()) RemoveTree(path_).IgnoreError();  // a leftover temporary folder harms nothing
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;

  // Empty when the folder could not be made.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadText(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// The line of gnuplot's error output worth showing: the first that is not a warning, else the first at all.
std::string FirstErrorLine(const std::string& error_output) {
  std::string first;
  for (absl::string_view line : absl::StrSplit(error_output, '\n', absl::SkipWhitespace())) {
    line = absl::StripAsciiWhitespace(line);
    if (first.empty()) first = std::string(line);
    if (line.find("warning:") == absl::string_view::npos) return std::string(line);
  }
  return first.empty() ? "no error output" : first;
}

// Runs `gnuplot SCRIPT` with stdin and stdout on /dev/null and stderr into `error_path`. Returns its wait status,
// or -errno when it could not be started.
int SpawnGnuplot(const std::string& script_path, const std::string& error_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, error_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::string program = "gnuplot";
  std::string argument = script_path;
  char* argv[] = {program.data(), argument.data(), nullptr};
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, "gnuplot", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return -spawned;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -errno;
  }
  return status;
}

absl::Status CheckOutput(const std::string& output) {
  std::error_code error;
  const auto size = std::filesystem::file_size(output, error);
  if (error || size == 0) return absl::InternalError(absl::StrCat(output, ": gnuplot wrote no picture"));
  return absl::OkStatus();
}

}  // namespace

std::string GnuplotQuote(absl::string_view text) {
  return absl::StrCat("'", absl::StrReplaceAll(text, {{"'", "''"}}), "'");
}

std::string GnuplotDataString(absl::string_view text) {
  return absl::StrCat("\"", absl::StrReplaceAll(text, {{"\"", "'"}, {"\n", " "}}), "\"");
}

std::string GnuplotPngHeader(const std::string& output, int width, int height, absl::string_view options) {
  return absl::StrCat("set terminal pngcairo size ", width, ",", height, " noenhanced font 'sans,10' ", options, "\n",
                      "set output ", GnuplotQuote(output), "\n");
}

absl::Status RunGnuplot(const std::string& script, const std::string& output) {
  const TempFolder folder;
  if (folder.path().empty()) {
    return absl::InternalError(absl::StrCat(output, ": cannot make a temporary folder for the gnuplot script"));
  }
  const std::string script_path = folder.path() + "/chart.gp";
  const std::string error_path = folder.path() + "/stderr.txt";
  std::ofstream file(script_path, std::ios::binary | std::ios::trunc);
  file << script;
  file.close();
  if (!file) return absl::InternalError(absl::StrCat(output, ": cannot write the gnuplot script ", script_path));

  std::error_code error;
  std::filesystem::remove(output, error);  // so that a stale picture cannot pass for a new one
  const int status = SpawnGnuplot(script_path, error_path);
  if (status == -ENOENT) {
    return absl::FailedPreconditionError(
        absl::StrCat(output, ": gnuplot is not installed (Debian package gnuplot-nox)"));
  }
  if (status < 0) {
    return absl::InternalError(absl::StrCat(output, ": cannot run gnuplot: ", std::strerror(-status)));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string how = WIFEXITED(status) ? absl::StrCat("exit status ", WEXITSTATUS(status))
                                              : absl::StrCat("signal ", WTERMSIG(status));
    return absl::InternalError(
        absl::StrCat(output, ": gnuplot failed (", how, "): ", FirstErrorLine(ReadText(error_path))));
  }
  return CheckOutput(output);
}

}  // namespace segrel::report
