#include "core/lrp/rule.h"

#include <algorithm>
#include <utility>

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

const at::Tensor* LayerRelevance::SharedInputFactor() const {
  if (terms_.empty()) return nullptr;
  const at::Tensor* shared = nullptr;
  for (const Term& term : terms_) {
    if (term.input_factors.size() != 1 || !term.input_factors[0].defined()) return nullptr;
    if (shared != nullptr && !shared->is_same(term.input_factors[0])) return nullptr;
    shared = &term.input_factors[0];
  }
  return shared;
}

void LayerRelevance::DropInputFactors() {
  for (Term& term : terms_) term.input_factors.clear();
}

void LayerRelevance::ScaleOutputFactors(const at::Tensor& factor) {
  std::vector<std::pair<at::Tensor, at::Tensor>> scaled;  // original factor -> scaled, for shared factors
  for (Term& term : terms_) {
    if (!term.output_factor.defined()) {
      term.output_factor = factor;
      continue;
    }
    auto it = std::find_if(scaled.begin(), scaled.end(),
                           [&](const auto& entry) { return entry.first.is_same(term.output_factor); });
    if (it == scaled.end()) {
      scaled.emplace_back(term.output_factor, term.output_factor * factor);
      it = scaled.end() - 1;
    }
    term.output_factor = it->second;
  }
}

void LayerRelevance::CollectTensors(std::vector<at::Tensor>* tensors) const {
  for (const Term& term : terms_) {
    for (const at::Tensor& factor : term.input_factors) {
      if (factor.defined()) tensors->push_back(factor);
    }
    if (term.output_factor.defined()) tensors->push_back(term.output_factor);
    term.map->CollectForwardTensors(tensors);
  }
}

bool LayerRelevance::IsIdentity() const {
  return terms_.size() == 1 && terms_[0].input_factors.empty() && !terms_[0].output_factor.defined() &&
         dynamic_cast<const graph::IdentityMap*>(terms_[0].map.get()) != nullptr;
}

}  // namespace segrel::lrp
