#include "core/lrp/rule.h"

namespace segrel::lrp {
namespace {

// A sum of tensors that adds in place once it holds a tensor of its own.
class Sum {
 public:
  // `owned`: the caller hands over a tensor nobody else reads (it may be modified).
  void Add(at::Tensor addend, bool owned) {
    if (!sum_.defined()) {
      sum_ = std::move(addend);
      owned_ = owned;
    } else if (owned_) {
      sum_.add_(addend);
    } else {
      sum_ = sum_ + addend;
      owned_ = true;
    }
  }
  at::Tensor Take() { return std::move(sum_); }

 private:
  at::Tensor sum_;
  bool owned_ = false;
};

// `tensor` (.) `factor` (undefined factor: 1); in place when `owned` (the caller's tensor may be overwritten).
at::Tensor Scale(at::Tensor tensor, const at::Tensor& factor, bool& owned) {
  if (!factor.defined()) return tensor;
  if (owned) return tensor.mul_(factor);
  owned = true;
  return tensor * factor;
}

const at::Tensor& FactorAt(const std::vector<at::Tensor>& factors, size_t i) {
  static const at::Tensor* const kNone = new at::Tensor();
  return i < factors.size() ? factors[i] : *kNone;
}

}  // namespace

std::vector<at::Tensor> LayerRelevance::Relevance(const at::Tensor& relevance, size_t num_inputs) const {
  std::vector<Sum> sums(num_inputs);
  at::Tensor last_factor, last_scaled;  // terms that share g (z+, alpha-beta) share g (.) R
  for (const Term& term : terms_) {
    at::Tensor scaled = relevance;
    if (term.output_factor.defined()) {
      if (!last_factor.defined() || !last_factor.is_same(term.output_factor)) {
        last_factor = term.output_factor;
        last_scaled = relevance * term.output_factor;
      }
      scaled = last_scaled;
    }
    std::vector<at::Tensor> parts = term.map->Adjoint(scaled);
    for (size_t i = 0; i < num_inputs; ++i) {
      bool owned = term.map->ResultsAreFresh();
      at::Tensor part = Scale(std::move(parts[i]), FactorAt(term.input_factors, i), owned);
      sums[i].Add(std::move(part), owned);
    }
  }
  std::vector<at::Tensor> result;
  for (Sum& sum : sums) result.push_back(sum.Take());
  return result;
}

at::Tensor LayerRelevance::Transpose(const std::vector<at::Tensor>& u) const {
  Sum sum;
  for (const Term& term : terms_) {
    std::vector<at::Tensor> scaled;
    scaled.reserve(u.size());
    for (size_t i = 0; i < u.size(); ++i) {
      const at::Tensor& factor = FactorAt(term.input_factors, i);
      scaled.push_back(factor.defined() ? u[i] * factor : u[i]);
    }
    bool owned = term.map->ResultsAreFresh();
    at::Tensor output = Scale(term.map->Apply(scaled), term.output_factor, owned);
    sum.Add(std::move(output), owned);
  }
  return sum.Take();
}

}  // namespace segrel::lrp
