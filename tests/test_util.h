// Helpers shared by segrel's tests: fixture paths and raw tensor files.
#ifndef SEGREL_TESTS_TEST_UTIL_H_
#define SEGREL_TESTS_TEST_UTIL_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include <gmock/gmock.h>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/graph/layer_graph.h"

namespace segrel::testing {
namespace internal {
inline absl::Status StatusOf(const absl::Status& status) { return status; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& value) {
  return value.status();
}
}  // namespace internal

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

// "conv3d/0 <- 1" per node of `graph`: what the LRP engine sees of each layer (its role decides the rule), with its
// number of inputs. Layers that move or average values are named by their role: ONNX's Flatten is a reshape where
// TorchScript has aten::flatten, and an adaptive average pooling may be exported as the AveragePool it amounts to.
std::vector<std::string> LayerSignature(const graph::LayerGraph& graph);

// `logits` with the activation the network applied to them (what its module returned).
at::Tensor ApplyOutputActivation(const at::Tensor& logits, graph::OutputActivation activation);

// max |a - b| / max(max |b|, floor).
double RelativeError(const at::Tensor& a, const at::Tensor& b, double floor = 1e-30);

// A temporary directory unique to the running test, created empty (each call empties it again).
std::string TestTempDir();

// `text` quoted for /bin/sh.
std::string ShellQuote(const std::string& text);

// The whole content of a file, as bytes ("" when it cannot be read).
std::string ReadFile(const std::string& path);

// Matches an absl::Status, or the status of an absl::StatusOr, with code `code`:
//   EXPECT_THAT(manager->Cancel("x").status(), StatusIs(absl::StatusCode::kNotFound));
MATCHER_P(StatusIs, code, absl::StrCat("has status code ", absl::StatusCodeToString(code))) {
  const absl::Status status = segrel::testing::internal::StatusOf(arg);
  *result_listener << "whose status is " << status;
  return status.code() == code;
}

// The same, and a message that `message_matcher` matches:
//   EXPECT_THAT(status, StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("unknown job")));
MATCHER_P2(StatusIs, code, message_matcher, absl::StrCat("has status code ", absl::StatusCodeToString(code))) {
  const absl::Status status = segrel::testing::internal::StatusOf(arg);
  *result_listener << "whose status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(status.message()), result_listener);
}

}  // namespace segrel::testing

#endif  // SEGREL_TESTS_TEST_UTIL_H_
