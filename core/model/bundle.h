// Model bundles: a network with everything segrel needs to run and explain it (docs/conventions.md, model bundles).
//
// A bundle is a folder holding `segrel.json` and the network file it names, TorchScript (.pt) or ONNX (.onnx):
//   {"format": "segrel.bundle/1", "name": "ms-flair4", "version": "1.0.0", "description": "...",
//    "model": "model.pt",
//    "sequences": [{"name": "T1", "description": "...", "normalisation": "zscore-nonzero", "range": [lo, hi]}, ...],
//    "reference_sequence": "FLAIR", "classes": ["background", "lesion"],
//    "patch_size": [128, 128, 128], "overlap": 0.5, "gaussian_sigma_fraction": 0.125,
//    "composite": "epsilon-plus", "output": 0, "training": {...}, "evaluation": {...}, "series_rules": {...}}
// `sequences` is the network's channel order; `range` (optional) is the sequence's value range after
// normalisation, the z-box bounds of composites that use them. `series_rules` (optional) says which DICOM series
// is which sequence (the format of core/io/series_rules.h); without it the bundle reads NIfTI studies only.
#ifndef SEGREL_CORE_MODEL_BUNDLE_H_
#define SEGREL_CORE_MODEL_BUNDLE_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/io/series_rules.h"
#include "core/volume/normalisation.h"

namespace segrel::model {

struct SequenceSpec {
  std::string name;
  std::string description;
  volume::Normalisation normalisation = volume::Normalisation::kNone;
  std::optional<std::pair<double, double>> range;  // after normalisation
};

struct Bundle {
  std::string path;  // the segrel.json file
  std::string name;
  std::string version;
  std::string description;
  std::string model_path;    // the network file, resolved against the bundle folder
  std::string model_format;  // "torchscript" or "onnx" (graph::IsOnnxPath: by the file's extension)
  std::vector<SequenceSpec> sequences;
  std::string reference_sequence;
  std::vector<std::string> classes;
  std::vector<int64_t> patch_size;
  double overlap = 0.5;
  double sigma_fraction = 0.125;
  std::string composite = "epsilon-plus";
  int output = -1;              // "output": which of the network's outputs is the segmentation (-1: the first)
  std::string license;          // training.license, for reports
  std::string training_json;    // the "training" object as written, for reports
  std::string evaluation_json;  // the "evaluation" object as written
  std::optional<io::SeriesRules> series_rules;  // one rule per sequence, when given

  // The sequence names in channel order.
  std::vector<std::string> SequenceNames() const;
  // Whether `given` names exactly the bundle's sequences (in any order, each once). Errors: InvalidArgument
  // naming the missing and the unexpected ones and listing what the bundle expects.
  absl::Status CheckSequences(const std::vector<std::string>& given) const;
};

// Whether `path` names a bundle: a folder with segrel.json, or a .json file.
bool LooksLikeBundle(const std::string& path);

// Reads the bundle at `path` (its folder or its segrel.json). Errors: NotFound when the file or the model it names
// is missing; InvalidArgument, naming the file and the field, for JSON that is malformed or does not describe a
// bundle (wrong format, missing or mistyped field, unknown normalisation or composite, a reference sequence that
// is not one of the sequences, non-positive patch sizes, series rules that ParseSeriesRules rejects or whose
// sequences are not exactly the bundle's).
absl::StatusOr<Bundle> ReadBundle(const std::string& path);

}  // namespace segrel::model

#endif  // SEGREL_CORE_MODEL_BUNDLE_H_
