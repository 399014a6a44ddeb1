#include "core/graph/onnx/onnx_model.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"
#include "core/graph/onnx/onnx_importer.h"
#include "core/graph/onnx/onnx_tensor.h"

namespace segrel::graph {
namespace {

// Parses the whole file as a ModelProto (protobuf's default limit of 64 MiB per message would refuse large models;
// ONNX files stay below protobuf's hard 2 GiB limit, beyond which weights go to external data).
absl::Status ParseModel(const std::string& path, onnx::ModelProto& model) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat("model file not found: ", path));
  bool parsed = false;
  {
    google::protobuf::io::FileInputStream file(fd);
    google::protobuf::io::CodedInputStream input(&file);
    input.SetTotalBytesLimit(INT32_MAX);
    parsed = model.ParseFromCodedStream(&input) && input.ConsumedEntireMessage();
  }
  ::close(fd);
  if (!parsed) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not an ONNX model (it does not parse as an ONNX ModelProto; truncated?)"));
  }
  // Any bytes parse as *some* protobuf message; an ONNX model has an IR version, a graph and an opset.
  if (model.ir_version() <= 0 || !model.has_graph() || model.opset_import_size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not an ONNX model (no IR version, graph or opset import)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> DefaultDomainOpset(const onnx::ModelProto& model, const std::string& path) {
  int64_t opset = 0;
  for (const onnx::OperatorSetIdProto& set : model.opset_import()) {
    if (set.domain().empty() || set.domain() == "ai.onnx") opset = set.version();
  }
  if (opset < OnnxModel::kMinOpset || opset > OnnxModel::kMaxOpset) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " uses opset ", opset, " of the ONNX operators; segrel reads opsets ", OnnxModel::kMinOpset,
                     " to ", OnnxModel::kMaxOpset, " (convert it with onnx.version_converter)"));
  }
  return opset;
}

// The sizes a graph input declares (-1 where a dimension is symbolic or left open).
std::vector<int64_t> DeclaredSizes(const onnx::ValueInfoProto& input) {
  std::vector<int64_t> sizes;
  if (!input.type().has_tensor_type() || !input.type().tensor_type().has_shape()) return sizes;
  for (const onnx::TensorShapeProto::Dimension& dim : input.type().tensor_type().shape().dim()) {
    sizes.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
  }
  return sizes;
}

absl::Status ReadInitializers(OnnxModel::State& state) {
  for (const onnx::TensorProto& initializer : state.model.graph().initializer()) {
    SEGREL_ASSIGN_OR_RETURN(
        at::Tensor tensor,
        onnx_import::ReadTensor(initializer, state.dir, absl::StrCat("initializer \"", initializer.name(), "\"")));
    state.constants[initializer.name()] = std::move(tensor);
  }
  if (state.model.graph().sparse_initializer_size() > 0) {
    return absl::InvalidArgumentError(absl::StrCat(state.path, ": sparse initializers are not supported"));
  }
  return absl::OkStatus();
}

// The one graph input that is neither an initializer nor fixed: the network's data input.
absl::Status FindDataInput(OnnxModel::State& state, const OnnxLoadOptions& options) {
  std::vector<std::string> data_inputs;
  for (const onnx::ValueInfoProto& input : state.model.graph().input()) {
    if (state.constants.count(input.name()) != 0) continue;
    if (const auto fixed = options.fixed_inputs.find(input.name()); fixed != options.fixed_inputs.end()) {
      state.constants[input.name()] = fixed->second;
      continue;
    }
    data_inputs.push_back(input.name());
    state.declared_input_sizes = DeclaredSizes(input);
    if (input.type().has_tensor_type()) {
      const int type = input.type().tensor_type().elem_type();
      if (type != onnx::TensorProto::FLOAT && type != onnx::TensorProto::DOUBLE && type != onnx::TensorProto::FLOAT16) {
        return absl::InvalidArgumentError(
            absl::StrCat(state.path, ": the input \"", input.name(), "\" is not a floating-point tensor"));
      }
    }
  }
  if (data_inputs.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(state.path, ": the network takes ", data_inputs.size(), " inputs (",
                                                   absl::StrJoin(data_inputs, ", "),
                                                   "); segrel needs exactly one tensor"));
  }
  state.data_input = data_inputs[0];
  return absl::OkStatus();
}

}  // namespace

OnnxModel::OnnxModel(std::shared_ptr<const State> state) : state_(std::move(state)) {}

const std::string& OnnxModel::path() const { return state_->path; }
int64_t OnnxModel::opset() const { return state_->opset; }
const std::vector<int64_t>& OnnxModel::declared_input_sizes() const { return state_->declared_input_sizes; }

absl::StatusOr<OnnxModel> OnnxModel::Load(const std::string& path, OnnxLoadOptions options) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return absl::NotFoundError(absl::StrCat("model file not found: ", path));
  }
  auto state = std::make_shared<State>();
  state->path = path;
  state->dir = std::filesystem::path(path).parent_path();
  state->max_elements = options.max_elements;
  SEGREL_RETURN_IF_ERROR(ParseModel(path, state->model));
  SEGREL_ASSIGN_OR_RETURN(state->opset, DefaultDomainOpset(state->model, path));
  absl::Status read = CatchTorch(absl::StrCat("reading ", path), [&]() -> absl::Status {
    SEGREL_RETURN_IF_ERROR(ReadInitializers(*state));
    return FindDataInput(*state, options);
  });
  if (!read.ok()) {
    if (read.code() == absl::StatusCode::kNotFound) return read;
    return absl::InvalidArgumentError(read.message());
  }
  return OnnxModel(std::move(state));
}

absl::StatusOr<LayerGraph> OnnxModel::ImportGraph(const std::vector<int64_t>& input_sizes,
                                                  const ImportOptions& options) const {
  const std::vector<int64_t>& declared = state_->declared_input_sizes;
  bool fits = input_sizes.size() >= 2 && (declared.empty() || declared.size() == input_sizes.size());
  for (size_t i = 1; fits && i < declared.size(); ++i) fits = declared[i] < 0 || declared[i] == input_sizes[i];
  int64_t elements = 1;
  for (int64_t size : input_sizes) {
    if (size < 0 || __builtin_mul_overflow(elements, size, &elements) || elements > state_->max_elements) {
      return absl::InvalidArgumentError(absl::StrCat("input sizes [", absl::StrJoin(input_sizes, ", "),
                                                     "] are negative or exceed the import limit of ",
                                                     state_->max_elements, " elements"));
    }
  }
  if (!fits) {
    std::vector<std::string> shown;
    for (int64_t size : declared) shown.push_back(size < 0 ? "?" : absl::StrCat(size));
    return absl::InvalidArgumentError(absl::StrCat(
        "the model was exported for inputs of [", absl::StrJoin(shown, ", "), "], not [",
        absl::StrJoin(input_sizes, ", "),
        "]; give it windows of its size (the bundle's patch size, or --patch) or export it with dynamic axes"));
  }
  return CatchTorch(absl::StrCat("importing ", state_->path), [&]() -> absl::StatusOr<LayerGraph> {
    return onnx_import::OnnxImporter(*state_, input_sizes, options).Import();
  });
}

}  // namespace segrel::graph
