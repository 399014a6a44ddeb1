// Running the segrel binary from the command-line tests (tools_tests).
#ifndef SEGREL_TESTS_TOOLS_RUN_SEGREL_H_
#define SEGREL_TESTS_TOOLS_RUN_SEGREL_H_

#include <string>

#include "tests/test_util.h"  // ReadFile

namespace segrel::testing {

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `segrel ARGUMENTS` (quoted by the caller where needed). Its stdout and stderr go to files of a folder of its
// own per run, not the test's TestTempDir (which holds the test's files; ctest runs tests in parallel).
RunResult RunSegrel(const std::string& arguments);

}  // namespace segrel::testing

#endif  // SEGREL_TESTS_TOOLS_RUN_SEGREL_H_
