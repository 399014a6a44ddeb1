// Small file helpers shared across core/.
#ifndef SEGREL_CORE_COMMON_FILES_H_
#define SEGREL_CORE_COMMON_FILES_H_

#include <string>

#include "absl/status/status.h"

namespace segrel {

// Writes `text` to `path`, replacing it. Errors: Internal naming `path` when it cannot be written.
absl::Status WriteTextFile(const std::string& path, const std::string& text);

// Removes `path` and everything below it (symbolic links themselves, never what they point to); a missing path is
// fine. Use it instead of std::filesystem::remove_all, which crashes segrel when LibTorch is a PyTorch pip wheel
// (2.5 and later export their own, statically linked std::filesystem functions: pytorch/pytorch#133437; seen with
// 2.11 on a GPU machine). Errors: Internal naming the first entry that cannot be removed.
absl::Status RemoveTree(const std::string& path);

}  // namespace segrel

#endif  // SEGREL_CORE_COMMON_FILES_H_
