// Intensity normalisation of an input sequence, as a model bundle declares it for its training data.
#ifndef SEGREL_CORE_VOLUME_NORMALISATION_H_
#define SEGREL_CORE_VOLUME_NORMALISATION_H_

#include <ATen/ATen.h>

#include <string>

#include "absl/status/statusor.h"

namespace segrel::volume {

enum class Normalisation {
  kNone,           // "none": values as read
  kZScoreNonzero,  // "zscore-nonzero": (x - mu) / sigma over the voxels that are not 0 (mu, sigma: their mean and
                   // population standard deviation, in float64); exactly 0 elsewhere. For skull-stripped images.
};

// Parses a bundle's name for it. Errors: InvalidArgument listing the known names.
absl::StatusOr<Normalisation> ParseNormalisation(const std::string& name);

// Returns `volume` normalised (float32). A constant (sigma 0) or empty foreground becomes 0.
at::Tensor Normalise(const at::Tensor& volume, Normalisation normalisation);

}  // namespace segrel::volume

#endif  // SEGREL_CORE_VOLUME_NORMALISATION_H_
