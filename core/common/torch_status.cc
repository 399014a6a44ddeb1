#include "core/common/torch_status.h"

#include <c10/util/Exception.h>

#include <new>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace segrel {
namespace {

std::string WithContext(absl::string_view context, absl::string_view message) {
  if (context.empty()) return std::string(message);
  return absl::StrCat(context, ": ", message);
}

}  // namespace

absl::Status StatusFromTorchError(const c10::Error& error, absl::string_view context) {
  // what_without_backtrace() still carries LibTorch's "Exception raised from ..." trailer; keep the first line.
  std::string message = error.msg();
  if (const auto newline = message.find('\n'); newline != std::string::npos) message.resize(newline);
  const std::string text = WithContext(context, message);
  if (dynamic_cast<const c10::ValueError*>(&error) || dynamic_cast<const c10::TypeError*>(&error) ||
      dynamic_cast<const c10::IndexError*>(&error)) {
    return absl::InvalidArgumentError(text);
  }
  if (dynamic_cast<const c10::NotImplementedError*>(&error)) return absl::UnimplementedError(text);
  if (dynamic_cast<const c10::OutOfMemoryError*>(&error)) return absl::ResourceExhaustedError(text);
  return absl::InternalError(text);
}

absl::Status StatusFromException(const std::exception& error, absl::string_view context) {
  if (dynamic_cast<const std::bad_alloc*>(&error)) {
    return absl::ResourceExhaustedError(WithContext(context, "out of memory"));
  }
  return absl::InternalError(WithContext(context, error.what()));
}

namespace internal {

absl::Status CurrentExceptionToStatus(absl::string_view context) {
  try {
    throw;
  } catch (const c10::Error& error) {
    return StatusFromTorchError(error, context);
  } catch (const std::exception& error) {
    return StatusFromException(error, context);
  } catch (...) {
    return absl::InternalError(WithContext(context, "unknown exception"));
  }
}

}  // namespace internal
}  // namespace segrel
