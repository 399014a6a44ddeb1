#include "core/model/bundle.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
#include "core/graph/network_model.h"
#include "core/lrp/composite.h"

namespace segrel::model {
namespace {

using nlohmann::json;

// Typed access to segrel.json's fields; every error names the file and the field.
class Fields {
 public:
  explicit Fields(std::string path) : path_(std::move(path)) {}

  absl::Status Error(const std::string& field, absl::string_view problem) const {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": field '", field, "' ", problem));
  }

  absl::StatusOr<const json*> Get(const json& object, const std::string& key, const std::string& field,
                                  bool required = true) const {
    const auto it = object.find(key);
    if (it == object.end()) {
      if (!required) return nullptr;
      return Error(field, "is missing");
    }
    return &*it;
  }

  absl::StatusOr<std::string> String(const json& object, const std::string& key, const std::string& field,
                                     bool required = true, const std::string& fallback = "") const {
    SEGREL_ASSIGN_OR_RETURN(const json* value, Get(object, key, field, required));
    if (value == nullptr) return fallback;
    if (!value->is_string()) return Error(field, "must be a string");
    return value->get<std::string>();
  }

  absl::StatusOr<double> Number(const json& object, const std::string& key, const std::string& field,
                                double fallback) const {
    SEGREL_ASSIGN_OR_RETURN(const json* value, Get(object, key, field, /*required=*/false));
    if (value == nullptr) return fallback;
    if (!value->is_number()) return Error(field, "must be a number");
    return value->get<double>();
  }

  absl::StatusOr<const json*> Array(const json& object, const std::string& key, const std::string& field) const {
    SEGREL_ASSIGN_OR_RETURN(const json* value, Get(object, key, field));
    if (!value->is_array() || value->empty()) return Error(field, "must be a non-empty array");
    return value;
  }

 private:
  std::string path_;
};

absl::StatusOr<SequenceSpec> ReadSequence(const Fields& fields, const json& entry, size_t index) {
  const std::string field = absl::StrCat("sequences[", index, "]");
  if (!entry.is_object()) return fields.Error(field, "must be an object");
  SequenceSpec spec;
  SEGREL_ASSIGN_OR_RETURN(spec.name, fields.String(entry, "name", field + ".name"));
  if (spec.name.empty()) return fields.Error(field + ".name", "is empty");
  SEGREL_ASSIGN_OR_RETURN(spec.description, fields.String(entry, "description", field + ".description", false));
  SEGREL_ASSIGN_OR_RETURN(const std::string normalisation,
                          fields.String(entry, "normalisation", field + ".normalisation", false, "none"));
  absl::StatusOr<volume::Normalisation> parsed = volume::ParseNormalisation(normalisation);
  if (!parsed.ok()) return fields.Error(field + ".normalisation", parsed.status().message());
  spec.normalisation = *parsed;
  SEGREL_ASSIGN_OR_RETURN(const json* range, fields.Get(entry, "range", field + ".range", /*required=*/false));
  if (range != nullptr) {
    if (!range->is_array() || range->size() != 2 || !(*range)[0].is_number() || !(*range)[1].is_number() ||
        (*range)[0].get<double>() > (*range)[1].get<double>()) {
      return fields.Error(field + ".range", "must be [low, high] with low <= high");
    }
    spec.range = std::make_pair((*range)[0].get<double>(), (*range)[1].get<double>());
  }
  return spec;
}

// The optional "series_rules" object: the rules must name exactly the bundle's sequences.
absl::StatusOr<std::optional<io::SeriesRules>> ReadRules(const Fields& fields, const json& document,
                                                         const Bundle& bundle) {
  const auto rules_json = document.find("series_rules");
  if (rules_json == document.end()) return std::nullopt;
  SEGREL_ASSIGN_OR_RETURN(io::SeriesRules rules,
                          io::ParseSeriesRules(rules_json->dump(), absl::StrCat(bundle.path, " series_rules")));
  std::vector<std::string> expected = bundle.SequenceNames(), named = rules.SequenceNames();
  std::sort(expected.begin(), expected.end());
  std::sort(named.begin(), named.end());
  if (expected != named) {
    return fields.Error("series_rules", absl::StrCat("names ", absl::StrJoin(named, ", "), " but the sequences are ",
                                                     absl::StrJoin(bundle.SequenceNames(), ", ")));
  }
  return rules;
}

// "sequences" (each once) and "reference_sequence" (one of them).
absl::Status ReadSequences(const Fields& fields, const json& document, Bundle& bundle) {
  SEGREL_ASSIGN_OR_RETURN(const json* sequences, fields.Array(document, "sequences", "sequences"));
  std::set<std::string> names;
  for (size_t i = 0; i < sequences->size(); ++i) {
    SEGREL_ASSIGN_OR_RETURN(SequenceSpec spec, ReadSequence(fields, (*sequences)[i], i));
    if (!names.insert(spec.name).second) return fields.Error("sequences", absl::StrCat("names ", spec.name, " twice"));
    bundle.sequences.push_back(std::move(spec));
  }
  SEGREL_ASSIGN_OR_RETURN(bundle.reference_sequence, fields.String(document, "reference_sequence", "reference_sequence",
                                                                   false, bundle.sequences.front().name));
  if (names.count(bundle.reference_sequence) == 0) {
    return fields.Error("reference_sequence", absl::StrCat("'", bundle.reference_sequence, "' is not a sequence"));
  }
  return absl::OkStatus();
}

// "classes": a name per class.
absl::Status ReadClasses(const Fields& fields, const json& document, Bundle& bundle) {
  SEGREL_ASSIGN_OR_RETURN(const json* classes, fields.Array(document, "classes", "classes"));
  for (size_t i = 0; i < classes->size(); ++i) {
    if (!(*classes)[i].is_string()) return fields.Error(absl::StrCat("classes[", i, "]"), "must be a string");
    bundle.classes.push_back((*classes)[i].get<std::string>());
  }
  return absl::OkStatus();
}

// Sliding windows: "patch_size", "overlap" and "gaussian_sigma_fraction".
absl::Status ReadWindows(const Fields& fields, const json& document, Bundle& bundle) {
  SEGREL_ASSIGN_OR_RETURN(const json* patch, fields.Array(document, "patch_size", "patch_size"));
  for (size_t i = 0; i < patch->size(); ++i) {
    if (!(*patch)[i].is_number_integer() || (*patch)[i].get<int64_t>() <= 0) {
      return fields.Error(absl::StrCat("patch_size[", i, "]"), "must be a positive integer");
    }
    bundle.patch_size.push_back((*patch)[i].get<int64_t>());
  }
  SEGREL_ASSIGN_OR_RETURN(bundle.overlap, fields.Number(document, "overlap", "overlap", 0.5));
  if (bundle.overlap < 0 || bundle.overlap >= 1) return fields.Error("overlap", "must be in [0, 1)");
  SEGREL_ASSIGN_OR_RETURN(bundle.sigma_fraction,
                          fields.Number(document, "gaussian_sigma_fraction", "gaussian_sigma_fraction", 0.125));
  if (bundle.sigma_fraction <= 0) return fields.Error("gaussian_sigma_fraction", "must be positive");
  return absl::OkStatus();
}

// "training" and "evaluation" as written, and the training data's license, for reports.
void ReadProvenance(const json& document, Bundle& bundle) {
  if (const auto training = document.find("training"); training != document.end()) {
    bundle.training_json = training->dump();
    if (training->is_object() && training->contains("license") && (*training)["license"].is_string()) {
      bundle.license = (*training)["license"].get<std::string>();
    }
  }
  if (const auto evaluation = document.find("evaluation"); evaluation != document.end()) {
    bundle.evaluation_json = evaluation->dump();
  }
}

}  // namespace

std::vector<std::string> Bundle::SequenceNames() const {
  std::vector<std::string> names;
  for (const SequenceSpec& spec : sequences) names.push_back(spec.name);
  return names;
}

absl::Status Bundle::CheckSequences(const std::vector<std::string>& given) const {
  const std::vector<std::string> expected = SequenceNames();
  const std::set<std::string> named(given.begin(), given.end());
  std::vector<std::string> missing, unexpected;
  for (const std::string& name : expected) {
    if (!named.count(name)) missing.push_back(name);
  }
  for (const std::string& name : named) {
    if (std::find(expected.begin(), expected.end(), name) == expected.end()) unexpected.push_back(name);
  }
  for (const std::string& name : named) {
    if (std::count(given.begin(), given.end(), name) > 1) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", name, " given twice; the bundle ", this->name,
                                                     " expects ", absl::StrJoin(expected, ", ")));
    }
  }
  if (missing.empty() && unexpected.empty()) return absl::OkStatus();
  std::string problem;
  if (!missing.empty()) problem = absl::StrCat("missing sequence ", absl::StrJoin(missing, ", "));
  if (!unexpected.empty()) {
    absl::StrAppend(&problem, problem.empty() ? "" : "; ", "unexpected sequence ", absl::StrJoin(unexpected, ", "));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(problem, "; the bundle ", this->name, " expects ", absl::StrJoin(expected, ", ")));
}

bool LooksLikeBundle(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) return true;
  return std::filesystem::path(path).extension() == ".json";
}

absl::StatusOr<Bundle> ReadBundle(const std::string& path) {
  std::error_code error;
  const std::filesystem::path file = std::filesystem::is_directory(path, error)
                                         ? std::filesystem::path(path) / "segrel.json"
                                         : std::filesystem::path(path);
  std::ifstream stream(file);
  if (!stream) return absl::NotFoundError(absl::StrCat(file.string(), ": no such bundle file"));
  const json document = json::parse(stream, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded() || !document.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(file.string(), ": not a JSON object"));
  }
  const Fields fields(file.string());
  Bundle bundle;
  bundle.path = file.string();
  SEGREL_ASSIGN_OR_RETURN(const std::string format, fields.String(document, "format", "format"));
  if (format != "segrel.bundle/1")
    return fields.Error("format", absl::StrCat("is '", format, "', not segrel.bundle/1"));
  SEGREL_ASSIGN_OR_RETURN(bundle.name, fields.String(document, "name", "name"));
  SEGREL_ASSIGN_OR_RETURN(bundle.version, fields.String(document, "version", "version"));
  SEGREL_ASSIGN_OR_RETURN(bundle.description, fields.String(document, "description", "description", false));

  SEGREL_ASSIGN_OR_RETURN(const std::string model, fields.String(document, "model", "model"));
  bundle.model_path = (file.parent_path() / model).string();
  bundle.model_format = graph::IsOnnxPath(bundle.model_path) ? "onnx" : "torchscript";
  if (!std::filesystem::is_regular_file(bundle.model_path, error)) {
    return absl::NotFoundError(absl::StrCat(file.string(), ": the model file ", bundle.model_path, " does not exist"));
  }

  SEGREL_RETURN_IF_ERROR(ReadSequences(fields, document, bundle));
  SEGREL_RETURN_IF_ERROR(ReadClasses(fields, document, bundle));
  SEGREL_RETURN_IF_ERROR(ReadWindows(fields, document, bundle));
  SEGREL_ASSIGN_OR_RETURN(bundle.composite, fields.String(document, "composite", "composite", false, "epsilon-plus"));
  if (const absl::StatusOr<lrp::Composite> composite = lrp::Composite::Create(bundle.composite); !composite.ok()) {
    return fields.Error("composite", composite.status().message());
  }

  if (document.contains("output")) {
    const json& output = document["output"];
    if (!output.is_number_integer() || output.get<int64_t>() < 0 || output.get<int64_t>() > 1000) {
      return fields.Error("output", "must be the index of one of the network's outputs (0, 1, ...)");
    }
    bundle.output = output.get<int>();
  }

  ReadProvenance(document, bundle);
  SEGREL_ASSIGN_OR_RETURN(bundle.series_rules, ReadRules(fields, document, bundle));
  return bundle;
}

}  // namespace segrel::model
