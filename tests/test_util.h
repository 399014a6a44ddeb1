// Helpers shared by segrel's tests: fixture paths and raw tensor files.
#ifndef SEGREL_TESTS_TEST_UTIL_H_
#define SEGREL_TESTS_TEST_UTIL_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace segrel::testing {

// Path of a file under tests/fixtures/data/.
std::string FixturePath(const std::string& name);

// A fixture's raw little-endian float32 file as a tensor of `sizes`. Fails the test (and returns an empty tensor)
// when the file is missing or has the wrong size.
at::Tensor ReadFloat32(const std::string& name, const std::vector<int64_t>& sizes);

// A fixture's JSON file.
nlohmann::json ReadJson(const std::string& name);

// A reference model fixture: TorchScript file, input and the module's output as saved by the generator.
struct ModelFixture {
  std::string model_path;
  at::Tensor input;
  at::Tensor output;              // what the module returned (after any output activation)
  std::string output_activation;  // "none", "softmax" or "sigmoid"
};
ModelFixture LoadModelFixture(const std::string& name, const std::string& data_name = "");

// max |a - b| / max(max |b|, floor).
double RelativeError(const at::Tensor& a, const at::Tensor& b, double floor = 1e-30);

// A temporary directory unique to the running test, created empty (each call empties it again).
std::string TestTempDir();

// `text` quoted for /bin/sh.
std::string ShellQuote(const std::string& text);

}  // namespace segrel::testing

#endif  // SEGREL_TESTS_TEST_UTIL_H_
