#include "core/common/device.h"

#include "absl/strings/str_cat.h"
#include "core/common/torch_status.h"

namespace segrel {

absl::StatusOr<at::Device> ParseDevice(const std::string& text) {
  if (text == "cpu") return at::Device(at::kCPU);
  if (text.rfind("cuda", 0) == 0) {
    if (!at::hasCUDA()) {
      return absl::FailedPreconditionError(absl::StrCat("device ", text, ": this build or machine has no CUDA device"));
    }
    return CatchTorch(absl::StrCat("device ", text), [&]() -> absl::StatusOr<at::Device> { return at::Device(text); });
  }
  return absl::InvalidArgumentError(absl::StrCat("the device must be cpu, cuda or cuda:N, not '", text, "'"));
}

}  // namespace segrel
