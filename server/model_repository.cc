#include "server/model_repository.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace segrel::server {
namespace {

namespace fs = std::filesystem;

// REPO/NAME/segrel.json and REPO/NAME/VERSION/segrel.json, sorted so the scan is deterministic.
std::vector<std::string> BundleFiles(const fs::path& folder) {
  std::vector<std::string> files;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(folder, error)) {
    if (!entry.is_directory(error)) continue;
    if (fs::is_regular_file(entry.path() / "segrel.json", error)) {
      files.push_back((entry.path() / "segrel.json").string());
      continue;
    }
    for (const auto& version : fs::directory_iterator(entry.path(), error)) {
      if (version.is_directory(error) && fs::is_regular_file(version.path() / "segrel.json", error)) {
        files.push_back((version.path() / "segrel.json").string());
      }
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

bool VersionLess(const std::string& a, const std::string& b) {
  const std::vector<std::string> left = absl::StrSplit(a, '.');
  const std::vector<std::string> right = absl::StrSplit(b, '.');
  for (size_t i = 0; i < std::min(left.size(), right.size()); ++i) {
    int64_t x, y;
    if (absl::SimpleAtoi(left[i], &x) && absl::SimpleAtoi(right[i], &y)) {
      if (x != y) return x < y;
    } else if (left[i] != right[i]) {
      return left[i] < right[i];
    }
  }
  return left.size() < right.size();
}

absl::StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Create(const std::string& folder) {
  std::error_code error;
  if (!fs::is_directory(folder, error)) return absl::NotFoundError(absl::StrCat(folder, ": no such folder"));
  std::vector<model::Bundle> models;
  std::vector<FailedModel> failed;
  for (const std::string& file : BundleFiles(folder)) {
    absl::StatusOr<model::Bundle> bundle = model::ReadBundle(file);
    if (!bundle.ok()) {
      failed.push_back({file, fs::relative(file, folder, error).string(), bundle.status()});
      continue;
    }
    for (const model::Bundle& other : models) {
      if (other.name == bundle->name && other.version == bundle->version) {
        return absl::InvalidArgumentError(
            absl::StrCat(file, " and ", other.path, " both hold model ", other.name, " version ", other.version));
      }
    }
    models.push_back(*std::move(bundle));
  }
  std::sort(models.begin(), models.end(), [](const model::Bundle& a, const model::Bundle& b) {
    return a.name != b.name ? a.name < b.name : VersionLess(a.version, b.version);
  });
  return std::unique_ptr<ModelRepository>(new ModelRepository(std::move(models), std::move(failed)));
}

absl::StatusOr<model::Bundle> ModelRepository::Find(const std::string& model) const {
  const size_t at = model.find('@');
  const std::string name = model.substr(0, at);
  const std::string version = at == std::string::npos ? "" : model.substr(at + 1);
  const model::Bundle* found = nullptr;
  for (const model::Bundle& bundle : models_) {  // ordered by version: the last match is the highest
    if (bundle.name == name && (version.empty() || bundle.version == version)) found = &bundle;
  }
  if (found != nullptr) return *found;
  std::vector<std::string> served;
  for (const model::Bundle& bundle : models_) served.push_back(absl::StrCat(bundle.name, "@", bundle.version));
  return absl::NotFoundError(absl::StrCat("unknown model '", model, "'; this server holds ",
                                          served.empty() ? "no models" : absl::StrJoin(served, ", ")));
}

}  // namespace segrel::server
