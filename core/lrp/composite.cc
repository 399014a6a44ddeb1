#include "core/lrp/composite.h"

#include <array>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "core/common/status_macros.h"

namespace segrel::lrp {
namespace {

struct CompositeSpec {
  const char* name;
  const char* convolution;
  const char* linear;
  const char* first;  // empty: none
};

constexpr std::array<CompositeSpec, 6> kComposites = {{
    {"epsilon", "epsilon", "epsilon", ""},
    {"epsilon-plus", "zplus", "epsilon", ""},
    {"epsilon-alpha2-beta1", "alpha-beta", "epsilon", ""},
    {"epsilon-gamma-box", "gamma", "epsilon", "zbox"},
    {"epsilon-plus-flat", "zplus", "epsilon", "flat"},
    {"epsilon-alpha2-beta1-flat", "alpha-beta", "epsilon", "flat"},
}};

}  // namespace

absl::StatusOr<Composite> Composite::Create(absl::string_view name, RuleParameters parameters) {
  const CompositeSpec* spec = nullptr;
  for (const CompositeSpec& candidate : kComposites) {
    if (name == candidate.name) spec = &candidate;
  }
  if (spec == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("unknown composite '", name, "'; known composites: ", absl::StrJoin(Names(), ", ")));
  }
  parameters.alpha = 2.0;
  parameters.beta = 1.0;
  Composite composite;
  composite.name_ = spec->name;
  SEGREL_ASSIGN_OR_RETURN(composite.convolution_, MakeRule(spec->convolution, parameters));
  SEGREL_ASSIGN_OR_RETURN(composite.linear_, MakeRule(spec->linear, parameters));
  if (*spec->first != '\0') {
    SEGREL_ASSIGN_OR_RETURN(composite.first_, MakeRule(spec->first, parameters));
  }
  SEGREL_ASSIGN_OR_RETURN(composite.normalisation_, MakeRule("epsilon", parameters));
  SEGREL_ASSIGN_OR_RETURN(composite.activation_, MakeRule("pass", parameters));
  SEGREL_ASSIGN_OR_RETURN(composite.parameter_free_, MakeRule("norm", parameters));
  SEGREL_ASSIGN_OR_RETURN(composite.structural_, MakeRule("gradient", parameters));
  return composite;
}

std::vector<std::string> Composite::Names() {
  std::vector<std::string> names;
  for (const CompositeSpec& spec : kComposites) names.emplace_back(spec.name);
  return names;
}

const Rule& Composite::RuleFor(graph::LayerRole role, bool first) const {
  using graph::LayerRole;
  switch (role) {
    case LayerRole::kConvolution:
      return first && first_ ? *first_ : *convolution_;
    case LayerRole::kLinear:
      return first && first_ ? *first_ : *linear_;
    case LayerRole::kNormalisation:
      return *normalisation_;
    case LayerRole::kActivation:
      return *activation_;
    case LayerRole::kSum:
    case LayerRole::kAveragePool:
    case LayerRole::kScaling:
      return *parameter_free_;
    case LayerRole::kStructural:
      break;
  }
  return *structural_;
}

}  // namespace segrel::lrp
