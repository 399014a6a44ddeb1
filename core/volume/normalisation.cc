#include "core/volume/normalisation.h"

#include "absl/strings/str_cat.h"

namespace segrel::volume {

absl::StatusOr<Normalisation> ParseNormalisation(const std::string& name) {
  if (name == "none") return Normalisation::kNone;
  if (name == "zscore-nonzero") return Normalisation::kZScoreNonzero;
  return absl::InvalidArgumentError(absl::StrCat("unknown normalisation '", name, "'; known: none, zscore-nonzero"));
}

at::Tensor Normalise(const at::Tensor& volume, Normalisation normalisation) {
  const at::Tensor values = volume.to(at::kFloat);
  if (normalisation == Normalisation::kNone) return values;
  const at::Tensor foreground = values != 0;
  const at::Tensor selected = values.masked_select(foreground).to(at::kDouble);
  if (selected.numel() == 0) return at::zeros_like(values);
  const double mean = selected.mean().item<double>();
  const double deviation = selected.std(/*unbiased=*/false).item<double>();
  if (deviation == 0.0) return at::zeros_like(values);
  const at::Tensor normalised = ((values.to(at::kDouble) - mean) / deviation).to(at::kFloat);
  return at::where(foreground, normalised, at::zeros_like(normalised));
}

}  // namespace segrel::volume
