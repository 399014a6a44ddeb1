// The registry of LRP rules by name. Adding a rule: its class (declared in rules/rules.h, its terms in a file of its
// own in rules/, which the build picks up), one line in rule_registry.cc, and one entry in the dense references of
// tests/core/lrp/dense_reference.cc (RuleRegistry.EveryRegisteredRuleHasADenseReference fails without it).
#ifndef SEGREL_CORE_LRP_RULE_REGISTRY_H_
#define SEGREL_CORE_LRP_RULE_REGISTRY_H_

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/lrp/rule.h"

namespace segrel::lrp {

// Parameters of the rules; each rule reads the ones it needs.
struct RuleParameters {
  double epsilon = 1e-6;     // epsilon rule's epsilon
  double stabilizer = 1e-6;  // the other rules' stabiliser
  double gamma = 0.25;       // gamma rule
  double alpha = 2.0;        // alpha-beta rule; alpha - beta must be 1
  double beta = 1.0;
  at::Tensor box_low;   // zbox bounds, broadcastable to the layer input; undefined: the input's per-channel
  at::Tensor box_high;  // minimum and maximum
};

// Returns the rule called `name` ("epsilon", "zplus", "alpha-beta", "gamma", "flat", "wsquare", "zbox", "norm",
// "pass", "gradient"). Errors: NotFound for an unknown name; InvalidArgument for invalid parameters.
absl::StatusOr<std::shared_ptr<const Rule>> MakeRule(absl::string_view name, const RuleParameters& parameters);

// The registered rule names, sorted.
std::vector<std::string> RuleNames();

}  // namespace segrel::lrp

#endif  // SEGREL_CORE_LRP_RULE_REGISTRY_H_
