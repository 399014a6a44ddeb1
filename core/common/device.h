// Device names as segrel's programs take them (`--device`).
#ifndef SEGREL_CORE_COMMON_DEVICE_H_
#define SEGREL_CORE_COMMON_DEVICE_H_

#include <ATen/ATen.h>

#include <string>

#include "absl/status/statusor.h"

namespace segrel {

// "cpu", "cuda" or "cuda:N". Errors, naming --device: InvalidArgument for anything else; FailedPrecondition for
// CUDA where this build or machine has no CUDA device.
absl::StatusOr<at::Device> ParseDevice(const std::string& text);

}  // namespace segrel

#endif  // SEGREL_CORE_COMMON_DEVICE_H_
