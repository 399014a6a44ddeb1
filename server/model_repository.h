// The models a server holds: the bundles (core/model/bundle.h) found in a repository folder.
//
// Layout (both may be mixed):
//   REPO/NAME/segrel.json              one version of a model, in its own folder
//   REPO/NAME/VERSION/segrel.json      several versions of a model, one folder each
// A model is known by the bundle's `name` and `version` (not by the folder names). Folders without segrel.json
// are ignored; a segrel.json that does not read as a bundle is reported as a failed load and not served.
#ifndef SEGREL_SERVER_MODEL_REPOSITORY_H_
#define SEGREL_SERVER_MODEL_REPOSITORY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model/bundle.h"

namespace segrel::server {

// One bundle that could not be loaded: its segrel.json and why.
struct FailedModel {
  std::string path;  // for the server's log
  std::string name;  // the bundle's segrel.json relative to the repository: what /metrics shows
  absl::Status status;
};

// Immutable after Create: thread-safe.
class ModelRepository {
 public:
  // Scans `folder`. Errors: NotFound when `folder` is not a folder; InvalidArgument when two bundles have the same
  // name and version. Bundles that fail to read do not fail Create: see failed().
  static absl::StatusOr<std::unique_ptr<ModelRepository>> Create(const std::string& folder);

  ModelRepository(const ModelRepository&) = delete;
  ModelRepository& operator=(const ModelRepository&) = delete;

  // The bundle for "NAME" (its highest version, versions compared as dotted numbers) or "NAME@VERSION".
  // Errors: NotFound listing the models served.
  absl::StatusOr<model::Bundle> Find(const std::string& model) const;

  // Every bundle, ordered by name then version.
  const std::vector<model::Bundle>& models() const { return models_; }
  const std::vector<FailedModel>& failed() const { return failed_; }

 private:
  ModelRepository(std::vector<model::Bundle> models, std::vector<FailedModel> failed)
      : models_(std::move(models)), failed_(std::move(failed)) {}

  std::vector<model::Bundle> models_;
  std::vector<FailedModel> failed_;
};

// Whether version `a` is lower than `b`, comparing dot-separated parts as numbers where both are numbers.
bool VersionLess(const std::string& a, const std::string& b);

}  // namespace segrel::server

#endif  // SEGREL_SERVER_MODEL_REPOSITORY_H_
