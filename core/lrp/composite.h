// Composites: which rule explains which layer (docs/rules.md, composites; names as Zennit's, in kebab-case).
//
//   composite                   convolutions   linear    first convolution/linear layer
//   epsilon                     epsilon        epsilon   -
//   epsilon-plus                zplus          epsilon   -
//   epsilon-alpha2-beta1        alpha-beta     epsilon   -
//   epsilon-gamma-box           gamma          epsilon   zbox
//   epsilon-plus-flat           zplus          epsilon   flat
//   epsilon-alpha2-beta1-flat   alpha-beta     epsilon   flat
// and in all of them: pass on activations, norm on sums of branches, average pooling and scaling by constants,
// epsilon on normalisation layers (frozen per-channel affine maps), gradient on everything else. Transposed
// convolutions are convolutions. The "first" layer is a convolution or linear layer with none before it.
#ifndef SEGREL_CORE_LRP_COMPOSITE_H_
#define SEGREL_CORE_LRP_COMPOSITE_H_

#include <memory>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "core/graph/layer.h"
#include "core/lrp/rule.h"
#include "core/lrp/rule_registry.h"

namespace segrel::lrp {

// A composite: immutable and thread-safe once created.
class Composite {
 public:
  // Returns the composite called `name` with rules built from `parameters` (alpha and beta are set by the
  // composite). Errors: NotFound for an unknown name, listing the known ones.
  static absl::StatusOr<Composite> Create(absl::string_view name, RuleParameters parameters = {});

  // The known composite names, in the order of the table above.
  static std::vector<std::string> Names();

  const std::string& name() const { return name_; }

  // The rule for a layer of `role`; `first` marks the first convolution or linear layer.
  const Rule& RuleFor(graph::LayerRole role, bool first) const;

 private:
  Composite() = default;

  std::string name_;
  std::shared_ptr<const Rule> convolution_;
  std::shared_ptr<const Rule> linear_;
  std::shared_ptr<const Rule> first_;  // null: the first layer gets its role's rule
  std::shared_ptr<const Rule> normalisation_;
  std::shared_ptr<const Rule> activation_;
  std::shared_ptr<const Rule> parameter_free_;
  std::shared_ptr<const Rule> structural_;
};

}  // namespace segrel::lrp

#endif  // SEGREL_CORE_LRP_COMPOSITE_H_
