#include "core/lrp/explainer.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"

namespace segrel::lrp {
namespace {

// Checks that `tensor` has `expected`'s sizes but for the batch dimension.
absl::Status CheckSizes(const at::Tensor& tensor, const at::Tensor& expected, absl::string_view what) {
  const at::IntArrayRef sizes = tensor.sizes();
  const at::IntArrayRef want = expected.sizes();
  if (sizes.size() != want.size() || sizes.slice(1) != want.slice(1)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has shape [", absl::StrJoin(sizes, ", "), "], expected [B, ",
                                                   absl::StrJoin(want.slice(1), ", "), "]"));
  }
  return absl::OkStatus();
}

// Moves diagonal scalings between neighbouring layers. In a chain A -> (pass layers, e.g. ReLU) -> B where each
// value has a single reader, B's relevance ends with "multiply by its input x" and A's begins with "multiply by
// g_A" (and the transpose pass the other way round): the same elementwise products, once per pass, on the same
// positions. Multiplying g_A by x once here and dropping x from B gives the same Lambda and Lambda^T with one
// elementwise pass less per layer and direction. Values inside the chain then hold other intermediate
// relevances, which nothing reads.
void FuseScalings(const graph::LayerGraph& graph, std::vector<LayerRelevance>& layers) {
  const std::vector<graph::GraphNode>& nodes = graph.nodes();
  std::vector<int> producer(graph.num_values(), -1);
  for (size_t i = 0; i < nodes.size(); ++i) producer[nodes[i].output] = static_cast<int>(i);
  const std::vector<int> readers = graph.ReaderCounts();
  for (size_t b = 0; b < nodes.size(); ++b) {
    const at::Tensor* factor = layers[b].SharedInputFactor();
    if (factor == nullptr || nodes[b].inputs.size() != 1) continue;
    int value = nodes[b].inputs[0];
    int a = producer[value];
    while (a >= 0 && readers[value] == 1 && layers[a].IsIdentity() && nodes[a].inputs.size() == 1) {
      value = nodes[a].inputs[0];
      a = producer[value];
    }
    if (a < 0 || readers[value] != 1 || layers[a].IsIdentity()) continue;
    layers[a].ScaleOutputFactors(*factor);
    layers[b].DropInputFactors();
  }
}

}  // namespace

ExplainedForward::ExplainedForward(std::shared_ptr<const graph::LayerGraph> graph, at::Tensor input, at::Tensor output,
                                   std::vector<LayerRelevance> layers)
    : graph_(std::move(graph)), input_(std::move(input)), output_(std::move(output)), layers_(std::move(layers)) {}

int64_t ExplainedForward::RetainedBytes() const {
  std::vector<at::Tensor> tensors = {input_, output_};
  for (const LayerRelevance& layer : layers_) layer.CollectTensors(&tensors);
  std::set<const void*> seen;
  int64_t bytes = 0;
  for (const at::Tensor& tensor : tensors) {
    const void* storage = tensor.storage().data();
    if (seen.insert(storage).second) bytes += static_cast<int64_t>(tensor.storage().nbytes());
  }
  return bytes;
}

absl::StatusOr<at::Tensor> ExplainedForward::Relevance(const at::Tensor& r) const {
  SEGREL_RETURN_IF_ERROR(CheckSizes(r, output_, "output relevance"));
  const std::vector<graph::GraphNode>& nodes = graph_->nodes();
  std::vector<at::Tensor> relevance(graph_->num_values());
  relevance[graph_->output()] = r;
  for (size_t i = nodes.size(); i-- > 0;) {
    const graph::GraphNode& node = nodes[i];
    at::Tensor at_output = std::move(relevance[node.output]);
    if (!at_output.defined()) continue;  // no relevance reaches this node
    SEGREL_ASSIGN_OR_RETURN(
        std::vector<at::Tensor> parts,
        CatchTorch(absl::StrCat("relevance pass, ", node.origin), [&]() -> absl::StatusOr<std::vector<at::Tensor>> {
          return layers_[i].Relevance(at_output, node.inputs.size());
        }));
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      at::Tensor& sum = relevance[node.inputs[k]];
      sum = sum.defined() ? sum + parts[k] : std::move(parts[k]);
    }
  }
  at::Tensor result = std::move(relevance[graph::LayerGraph::kInputValue]);
  if (!result.defined()) {
    result = at::zeros(graph::WithBatch(input_.sizes().vec(), r.size(0)), r.options());
  }
  return result;
}

absl::StatusOr<at::Tensor> ExplainedForward::Transpose(const at::Tensor& u) const {
  SEGREL_RETURN_IF_ERROR(CheckSizes(u, input_, "input-side tensor"));
  const std::vector<graph::GraphNode>& nodes = graph_->nodes();
  std::vector<at::Tensor> values(graph_->num_values());
  std::vector<int> unread = graph_->ReaderCounts();
  values[graph::LayerGraph::kInputValue] = u;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const graph::GraphNode& node = nodes[i];
    std::vector<at::Tensor> inputs;
    for (int id : node.inputs) inputs.push_back(values[id]);
    for (int id : node.inputs) {
      if (--unread[id] == 0) values[id].reset();
    }
    SEGREL_ASSIGN_OR_RETURN(values[node.output],
                            CatchTorch(absl::StrCat("transpose pass, ", node.origin),
                                       [&]() -> absl::StatusOr<at::Tensor> { return layers_[i].Transpose(inputs); }));
  }
  return values[graph_->output()];
}

Explainer::Explainer(std::shared_ptr<const graph::LayerGraph> graph, Composite composite)
    : graph_(std::move(graph)), composite_(std::move(composite)), first_(graph_->FirstParametricNodes()) {}

absl::StatusOr<ExplainedForward> Explainer::Forward(const at::Tensor& input) const {
  SEGREL_RETURN_IF_ERROR(graph_->CheckInput(input));
  const std::vector<graph::GraphNode>& nodes = graph_->nodes();
  std::vector<at::Tensor> values(graph_->num_values());
  std::vector<int> unread = graph_->ReaderCounts();
  std::vector<LayerRelevance> layers;
  layers.reserve(nodes.size());
  values[graph::LayerGraph::kInputValue] = input;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const graph::GraphNode& node = nodes[i];
    std::vector<at::Tensor> inputs;
    for (int id : node.inputs) inputs.push_back(values[id]);
    const Rule& rule = composite_.RuleFor(node.layer->Role(), first_[i]);
    SEGREL_RETURN_IF_ERROR(CatchTorch(absl::StrCat("explained forward pass, ", node.origin), [&]() -> absl::Status {
      graph::LinearMapPtr jacobian;
      if (rule.UsesJacobian()) {
        graph::Layer::Linearisation linearised = node.layer->Linearise(inputs);
        values[node.output] = std::move(linearised.output);
        jacobian = std::move(linearised.jacobian);
      } else {
        values[node.output] = node.layer->Forward(inputs);
      }
      absl::StatusOr<std::vector<Term>> terms = rule.Terms({*node.layer, inputs, values[node.output], jacobian});
      if (!terms.ok()) {
        return absl::Status(terms.status().code(), absl::StrCat(node.origin, ": ", terms.status().message()));
      }
      layers.emplace_back(*std::move(terms));
      return absl::OkStatus();
    }));
    for (int id : node.inputs) {
      if (--unread[id] == 0) values[id].reset();
    }
  }
  SEGREL_RETURN_IF_ERROR(CatchTorch("explained forward pass", [&]() -> absl::Status {
    FuseScalings(*graph_, layers);
    return absl::OkStatus();
  }));
  return ExplainedForward(graph_, input, values[graph_->output()], std::move(layers));
}

}  // namespace segrel::lrp
