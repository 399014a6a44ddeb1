#include "core/lrp/rule_registry.h"

#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "core/lrp/rules/rules.h"

namespace segrel::lrp {
namespace {

using RuleFactory = absl::StatusOr<std::shared_ptr<const Rule>> (*)(const RuleParameters&);

absl::StatusOr<std::shared_ptr<const Rule>> MakeAlphaBeta(const RuleParameters& p) {
  if (p.alpha < 0 || p.beta < 0 || std::abs(p.alpha - p.beta - 1.0) > 1e-12) {
    return absl::InvalidArgumentError(
        absl::StrCat("alpha-beta needs alpha, beta >= 0 and alpha - beta = 1, got alpha=", p.alpha, " beta=", p.beta));
  }
  return std::make_shared<AlphaBetaRule>(p.alpha, p.beta, p.stabilizer);
}

const std::map<std::string, RuleFactory, std::less<>>& Registry() {
  static const auto* const registry = new std::map<std::string, RuleFactory, std::less<>>{
      {"epsilon",
       [](const RuleParameters& p) -> absl::StatusOr<std::shared_ptr<const Rule>> {
         return std::make_shared<EpsilonRule>(p.epsilon);
       }},
      {"zplus",
       [](const RuleParameters& p) -> absl::StatusOr<std::shared_ptr<const Rule>> {
         return std::make_shared<ZPlusRule>(p.stabilizer);
       }},
      {"alpha-beta", MakeAlphaBeta},
      {"gamma",
       [](const RuleParameters& p) -> absl::StatusOr<std::shared_ptr<const Rule>> {
         return std::make_shared<GammaRule>(p.gamma, p.stabilizer);
       }},
      {"flat",
       [](const RuleParameters& p) -> absl::StatusOr<std::shared_ptr<const Rule>> {
         return std::make_shared<FlatRule>(p.stabilizer);
       }},
      {"wsquare",
       [](const RuleParameters& p) -> absl::StatusOr<std::shared_ptr<const Rule>> {
         return std::make_shared<WSquareRule>(p.stabilizer);
       }},
      {"zbox",
       [](const RuleParameters& p) -> absl::StatusOr<std::shared_ptr<const Rule>> {
         return std::make_shared<ZBoxRule>(p.box_low, p.box_high, p.stabilizer);
       }},
      {"norm",
       [](const RuleParameters& p) -> absl::StatusOr<std::shared_ptr<const Rule>> {
         return std::make_shared<NormRule>(p.stabilizer);
       }},
      {"pass",
       [](const RuleParameters&) -> absl::StatusOr<std::shared_ptr<const Rule>> {
         return std::make_shared<PassRule>();
       }},
      {"gradient",
       [](const RuleParameters&) -> absl::StatusOr<std::shared_ptr<const Rule>> {
         return std::make_shared<GradientRule>();
       }},
  };
  return *registry;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Rule>> MakeRule(absl::string_view name, const RuleParameters& parameters) {
  const auto& registry = Registry();
  const auto it = registry.find(name);
  if (it == registry.end()) {
    return absl::NotFoundError(
        absl::StrCat("unknown LRP rule '", name, "'; known rules: ", absl::StrJoin(RuleNames(), ", ")));
  }
  return it->second(parameters);
}

std::vector<std::string> RuleNames() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : Registry()) names.push_back(name);
  return names;
}

}  // namespace segrel::lrp
