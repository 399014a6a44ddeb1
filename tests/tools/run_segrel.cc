#include "tests/tools/run_segrel.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace segrel::testing {

RunResult RunSegrel(const std::string& arguments) {
  static int runs = 0;
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(test->test_suite_name()) + "." + test->name();
  std::replace(name.begin(), name.end(), '/', '_');  // parameterised tests
  const std::string dir =
      (std::filesystem::temp_directory_path() / "segrel_tests" / "command_runs" / (name + "." + std::to_string(++runs)))
          .string();
  std::filesystem::create_directories(dir);
  const std::string command =
      std::string(SEGREL_BINARY) + " " + arguments + " > " + dir + "/out.txt 2> " + dir + "/err.txt";
  const int status = std::system(command.c_str());
  RunResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ReadFile(dir + "/out.txt");
  result.err = ReadFile(dir + "/err.txt");
  return result;
}

}  // namespace segrel::testing
