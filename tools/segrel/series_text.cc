#include "tools/segrel/series_text.h"

#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace segrel::cli {

std::string SizesText(const volume::Volume& volume) {
  std::vector<int64_t> sizes(volume.data.sizes().begin(), volume.data.sizes().end());
  return absl::StrJoin(sizes, "x");
}

std::string SpacingText(const volume::Volume& volume) {
  std::vector<std::string> spacing;
  for (int c = 0; c < 3; ++c) {
    const double length =
        std::sqrt(volume.affine[0][c] * volume.affine[0][c] + volume.affine[1][c] * volume.affine[1][c] +
                  volume.affine[2][c] * volume.affine[2][c]);
    spacing.push_back(absl::StrFormat("%.4g", length));
  }
  return absl::StrJoin(spacing, "x");
}

std::string WithoutRoot(absl::string_view message, const std::string& root) {
  std::string result(message);
  // As given and normalised ("a//b/" and "a/b"): readers build file names from the folder as given.
  for (std::string folder : {root, std::filesystem::path(root).lexically_normal().string()}) {
    while (folder.size() > 1 && folder.back() == '/') folder.pop_back();
    if (folder.empty() || folder == ".") continue;
    // Longest first: "root/" leaves a relative name, a bare "root" becomes ".".
    result = absl::StrReplaceAll(result, {{absl::StrCat(folder, "/"), ""}, {folder, "."}});
  }
  return result;
}

}  // namespace segrel::cli
