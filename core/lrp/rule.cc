#include "core/lrp/rule.h"

namespace segrel::lrp {
namespace {

at::Tensor ScaledBy(const at::Tensor& tensor, const at::Tensor& factor) {
  return factor.defined() ? tensor * factor : tensor;
}

void Accumulate(at::Tensor& sum, at::Tensor addend) {
  sum = sum.defined() ? sum + addend : std::move(addend);
}

}  // namespace

std::vector<at::Tensor> LayerRelevance::Relevance(const at::Tensor& relevance, size_t num_inputs) const {
  std::vector<at::Tensor> result(num_inputs);
  for (const Term& term : terms_) {
    const std::vector<at::Tensor> parts = term.map->Adjoint(ScaledBy(relevance, term.output_factor));
    for (size_t i = 0; i < num_inputs; ++i) {
      const at::Tensor& factor = i < term.input_factors.size() ? term.input_factors[i] : at::Tensor();
      Accumulate(result[i], ScaledBy(parts[i], factor));
    }
  }
  return result;
}

at::Tensor LayerRelevance::Transpose(const std::vector<at::Tensor>& u) const {
  at::Tensor result;
  for (const Term& term : terms_) {
    std::vector<at::Tensor> scaled;
    scaled.reserve(u.size());
    for (size_t i = 0; i < u.size(); ++i) {
      scaled.push_back(ScaledBy(u[i], i < term.input_factors.size() ? term.input_factors[i] : at::Tensor()));
    }
    Accumulate(result, ScaledBy(term.map->Apply(scaled), term.output_factor));
  }
  return result;
}

}  // namespace segrel::lrp
