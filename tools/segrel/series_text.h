// Text helpers shared by `segrel inspect` and `segrel convert`: how a volume's grid is printed, and messages with
// the input folder's path taken out (folder names often hold patient IDs).
#ifndef SEGREL_TOOLS_SEGREL_SERIES_TEXT_H_
#define SEGREL_TOOLS_SEGREL_SERIES_TEXT_H_

#include <string>

#include "absl/strings/string_view.h"
#include "core/volume/volume.h"

namespace segrel::cli {

// "320x320x20" or "160x130x20x4" for a 4-D volume.
std::string SizesText(const volume::Volume& volume);

// The voxel spacing (affine column lengths) in mm, e.g. "0.625x0.625x3.6".
std::string SpacingText(const volume::Volume& volume);

// `message` with every occurrence of `root` (and of `root` followed by '/') removed, so that file names are
// relative to the folder the user gave.
std::string WithoutRoot(absl::string_view message, const std::string& root);

}  // namespace segrel::cli

#endif  // SEGREL_TOOLS_SEGREL_SERIES_TEXT_H_
