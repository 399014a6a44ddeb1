#include "core/graph/onnx/onnx_tensor.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"

namespace segrel::graph::onnx_import {
namespace {

using onnx::TensorProto;

// The name ONNX gives an element type, for messages.
std::string TypeName(int onnx_type) {
  if (TensorProto::DataType_IsValid(onnx_type)) {
    return TensorProto::DataType_Name(static_cast<TensorProto::DataType>(onnx_type));
  }
  return absl::StrCat("type ", onnx_type);
}

// Copies `values` (one typed field of the proto) into a tensor of `type`, element by element.
template <typename Field>
at::Tensor FromField(const Field& values, at::ScalarType type) {
  at::Tensor result = at::empty({static_cast<int64_t>(values.size())}, at::TensorOptions().dtype(type));
  if (type == at::kLong) {
    int64_t* out = result.data_ptr<int64_t>();
    for (int i = 0; i < values.size(); ++i) out[i] = static_cast<int64_t>(values.Get(i));
    return result;
  }
  at::Tensor as_double_tensor = at::empty({static_cast<int64_t>(values.size())}, at::kDouble);
  double* out = as_double_tensor.data_ptr<double>();
  for (int i = 0; i < values.size(); ++i) out[i] = static_cast<double>(values.Get(i));
  return as_double_tensor.to(type);
}

// float16 and bfloat16 in int32_data keep their 16 bits in the low half of each entry.
at::Tensor FromHalfBits(const google::protobuf::RepeatedField<int32_t>& values, at::ScalarType type) {
  at::Tensor result = at::empty({static_cast<int64_t>(values.size())}, at::TensorOptions().dtype(type));
  auto* out = static_cast<uint16_t*>(result.data_ptr());
  for (int i = 0; i < values.size(); ++i) out[i] = static_cast<uint16_t>(values.Get(i) & 0xffff);
  return result;
}

absl::StatusOr<at::Tensor> FromTypedFields(const TensorProto& proto, at::ScalarType type) {
  switch (proto.data_type()) {
    case TensorProto::FLOAT:
      return FromField(proto.float_data(), type);
    case TensorProto::DOUBLE:
      return FromField(proto.double_data(), type);
    case TensorProto::INT64:
      return FromField(proto.int64_data(), type);
    case TensorProto::FLOAT16:
    case TensorProto::BFLOAT16:
      return FromHalfBits(proto.int32_data(), type);
    default:  // int32, int16, int8, uint8, uint16, bool: stored in int32_data
      return FromField(proto.int32_data(), type);
  }
}

// The bytes of an EXTERNAL tensor: the file named by its "location", from "offset" for "length" bytes (default:
// to the end of the file).
absl::StatusOr<std::string> ReadExternal(const TensorProto& proto, const std::filesystem::path& model_dir,
                                         const std::string& what) {
  std::string location;
  int64_t offset = 0;
  int64_t length = -1;
  for (const onnx::StringStringEntryProto& entry : proto.external_data()) {
    if (entry.key() == "location") location = entry.value();
    if (entry.key() == "offset" || entry.key() == "length") {
      int64_t value = 0;
      if (!absl::SimpleAtoi(entry.value(), &value) || value < 0) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": external data ", entry.key(), " '", entry.value(),
                                                       "' is not a non-negative integer"));
      }
      (entry.key() == "offset" ? offset : length) = value;
    }
  }
  const std::filesystem::path relative(location);
  if (location.empty() || relative.is_absolute() ||
      std::find(relative.begin(), relative.end(), "..") != relative.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": external data location '", location, "' must name a file in the model's folder"));
  }
  const std::filesystem::path path = model_dir / relative;
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(what, ": external data file not found: ", path.string()));
  file.seekg(0, std::ios::end);
  const int64_t file_size = file.tellg();
  if (length < 0) length = file_size - offset;
  if (offset + length > file_size || length < 0) {
    return absl::OutOfRangeError(absl::StrCat(what, ": external data file ", path.string(), " has ", file_size,
                                              " bytes; the tensor needs ", length, " from offset ", offset));
  }
  std::string bytes(static_cast<size_t>(length), '\0');
  file.seekg(offset);
  file.read(bytes.data(), length);
  if (!file) return absl::DataLossError(absl::StrCat(what, ": cannot read external data file ", path.string()));
  return bytes;
}

}  // namespace

absl::StatusOr<at::ScalarType> ScalarTypeOf(int onnx_type) {
  switch (onnx_type) {
    case TensorProto::FLOAT:
      return at::kFloat;
    case TensorProto::DOUBLE:
      return at::kDouble;
    case TensorProto::FLOAT16:
      return at::kHalf;
    case TensorProto::BFLOAT16:
      return at::kBFloat16;
    case TensorProto::INT64:
      return at::kLong;
    case TensorProto::INT32:
      return at::kInt;
    case TensorProto::INT16:
      return at::kShort;
    case TensorProto::INT8:
      return at::kChar;
    case TensorProto::UINT8:
      return at::kByte;
    case TensorProto::BOOL:
      return at::kBool;
    default:
      return absl::InvalidArgumentError(absl::StrCat("element type ", TypeName(onnx_type), " is not supported"));
  }
}

absl::StatusOr<at::Tensor> ReadTensor(const TensorProto& proto, const std::filesystem::path& model_dir,
                                      const std::string& what) {
  absl::StatusOr<at::ScalarType> type = ScalarTypeOf(proto.data_type());
  if (!type.ok()) return absl::InvalidArgumentError(absl::StrCat(what, ": ", type.status().message()));
  std::vector<int64_t> dims(proto.dims().begin(), proto.dims().end());
  int64_t count = 1;
  for (int64_t dim : dims) {
    if (dim < 0 || __builtin_mul_overflow(count, dim, &count)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": dimensions [", absl::StrJoin(dims, ", "), "] are negative or too large"));
    }
  }
  if (proto.segment().end() != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": segmented tensors are not supported"));
  }

  at::Tensor flat;
  const size_t element_size = at::elementSize(*type);
  auto from_bytes = [&](const std::string& bytes) -> absl::StatusOr<at::Tensor> {
    if (bytes.size() != static_cast<size_t>(count) * element_size) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": ", bytes.size(), " bytes of data for ", count,
                                                     " elements of ", element_size, " bytes ([",
                                                     absl::StrJoin(dims, ", "), "])"));
    }
    at::Tensor tensor = at::empty({count}, at::TensorOptions().dtype(*type));
    std::memcpy(tensor.data_ptr(), bytes.data(), bytes.size());  // ONNX stores raw data little-endian, as x86 does
    return tensor;
  };
  if (proto.data_location() == TensorProto::EXTERNAL) {
    SEGREL_ASSIGN_OR_RETURN(const std::string bytes, ReadExternal(proto, model_dir, what));
    SEGREL_ASSIGN_OR_RETURN(flat, from_bytes(bytes));
  } else if (proto.has_raw_data()) {
    SEGREL_ASSIGN_OR_RETURN(flat, from_bytes(proto.raw_data()));
  } else {
    SEGREL_ASSIGN_OR_RETURN(flat, FromTypedFields(proto, *type));
    if (flat.numel() != count) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": ", flat.numel(), " values for shape [", absl::StrJoin(dims, ", "), "]"));
    }
  }
  return flat.reshape(dims);
}

}  // namespace segrel::graph::onnx_import
