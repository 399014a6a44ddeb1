// The one place where LibTorch exceptions become absl::Status.
//
// LibTorch reports errors by throwing c10::Error and its subclasses. No exception may leave a public function
// of core/, so every such function runs its LibTorch calls inside CatchTorch(), which maps
//   ValueError, TypeError, IndexError -> InvalidArgument
//   NotImplementedError             -> Unimplemented
//   OutOfMemoryError                -> ResourceExhausted
//   anything else                   -> Internal
// and prefixes the message with the caller's context (e.g. "relevance pass, layer %x.3 (conv3d)").
#ifndef SEGREL_CORE_COMMON_TORCH_STATUS_H_
#define SEGREL_CORE_COMMON_TORCH_STATUS_H_

#include <exception>
#include <type_traits>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace c10 {
class Error;
}  // namespace c10

namespace segrel {

// Returns the status that corresponds to a LibTorch exception, with `context` in front of its message.
absl::Status StatusFromTorchError(const c10::Error& error, absl::string_view context);

// Returns an Internal status for any other exception.
absl::Status StatusFromException(const std::exception& error, absl::string_view context);

// Runs `fn` and returns its result; a thrown exception becomes the matching status.
// REQUIRES: `fn` returns absl::Status or absl::StatusOr<T>.
template <typename F>
std::invoke_result_t<F> CatchTorch(absl::string_view context, F&& fn);

// Implementation details follow.
namespace internal {
absl::Status CurrentExceptionToStatus(absl::string_view context);
}  // namespace internal

template <typename F>
std::invoke_result_t<F> CatchTorch(absl::string_view context, F&& fn) {
  try {
    return fn();
  } catch (...) {
    return internal::CurrentExceptionToStatus(context);
  }
}

}  // namespace segrel

#endif  // SEGREL_CORE_COMMON_TORCH_STATUS_H_
