// Small file helpers shared across core/.
#ifndef SEGREL_CORE_COMMON_FILES_H_
#define SEGREL_CORE_COMMON_FILES_H_

#include <string>

#include "absl/status/status.h"

namespace segrel {

// Writes `text` to `path`, replacing it. Errors: Internal naming `path` when it cannot be written.
absl::Status WriteTextFile(const std::string& path, const std::string& text);

}  // namespace segrel

#endif  // SEGREL_CORE_COMMON_FILES_H_
