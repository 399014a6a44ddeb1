// CatchTorch: each kind of LibTorch exception becomes its status code with the caller's context in front and
// LibTorch's backtrace trailer cut; results and statuses pass through; nothing thrown escapes.
#include "core/common/torch_status.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <new>
#include <stdexcept>
#include <string>

namespace segrel {
namespace {

// What CatchTorch makes of `fn` (which throws) under the context "step".
template <typename F>
absl::Status Caught(F&& fn) {
  return CatchTorch("step", [&]() -> absl::Status {
    fn();
    return absl::OkStatus();
  });
}

TEST(CatchTorch, MapsEachLibTorchErrorToItsCode) {
  EXPECT_EQ(Caught([] { TORCH_CHECK_VALUE(false, "bad value"); }).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Caught([] { TORCH_CHECK_TYPE(false, "bad type"); }).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Caught([] { TORCH_CHECK_INDEX(false, "bad index"); }).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Caught([] { TORCH_CHECK_NOT_IMPLEMENTED(false, "not there"); }).code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(Caught([] {
              throw c10::OutOfMemoryError({__func__, __FILE__, __LINE__}, "no memory");
            }).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Caught([] { TORCH_CHECK(false, "plain error"); }).code(), absl::StatusCode::kInternal);
}

TEST(CatchTorch, RealLibTorchFailuresAreCaught) {
  // A shape mismatch inside an ATen operator, as a layer with the wrong input would raise it.
  const absl::Status status = Caught([] { (void)at::matmul(at::ones({2, 3}), at::ones({4, 5})); });
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.message().rfind("step: ", 0), 0u) << status;
}

TEST(CatchTorch, PutsTheContextFirstAndDropsTheBacktrace) {
  const absl::Status status = Caught([] { TORCH_CHECK_VALUE(false, "the window is too small"); });
  EXPECT_EQ(status.message(), "step: the window is too small");
}

TEST(CatchTorch, OtherExceptionsAreInternalAndBadAllocIsResourceExhausted) {
  const absl::Status runtime = Caught([] { throw std::runtime_error("disk on fire"); });
  EXPECT_EQ(runtime.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(runtime.message(), "step: disk on fire");
  const absl::Status memory = Caught([] { throw std::bad_alloc(); });
  EXPECT_EQ(memory.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(memory.message(), "step: out of memory");
  const absl::Status unknown = Caught([] { throw 42; });
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(unknown.message(), "step: unknown exception");
}

TEST(CatchTorch, PassesResultsAndStatusesThrough) {
  const absl::StatusOr<int> value = CatchTorch("step", []() -> absl::StatusOr<int> { return 7; });
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(*value, 7);
  const absl::Status returned = CatchTorch("step", [] { return absl::NotFoundError("no such file"); });
  EXPECT_EQ(returned, absl::NotFoundError("no such file")) << "a returned status is not rewritten";
  const absl::StatusOr<int> thrown = CatchTorch("step", []() -> absl::StatusOr<int> {
    TORCH_CHECK_INDEX(false, "index 9 out of range");
    return 0;
  });
  EXPECT_EQ(thrown.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace segrel
