#include "core/io/nifti.h"

#include <nifti2_io.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"

namespace segrel::io {
namespace {

using volume::Affine;
using volume::NiftiGeometry;
using volume::Volume;

struct NiftiImageDeleter {
  void operator()(nifti_image* image) const { nifti_image_free(image); }
};
using NiftiImagePtr = std::unique_ptr<nifti_image, NiftiImageDeleter>;

struct FreeDeleter {
  void operator()(void* memory) const { std::free(memory); }
};

// Header fields as the file stores them. nifticlib's nifti_image has them "fixed" without a word: sizes <= 0
// after the first read as 1, zero spacings as 1, a non-finite scl_inter as 0.
struct StoredHeader {
  int64_t dim[8];
  double pixdim[8];
  double scl_slope;
  double scl_inter;
};

template <typename Header>
StoredHeader StoredFieldsOf(const Header& header) {
  StoredHeader stored;
  for (int d = 0; d < 8; ++d) {
    stored.dim[d] = header.dim[d];
    stored.pixdim[d] = header.pixdim[d];
  }
  stored.scl_slope = header.scl_slope;
  stored.scl_inter = header.scl_inter;
  return stored;
}

absl::Status NotNifti(const std::string& path) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": not a readable NIfTI-1 or NIfTI-2 file"));
}

template <typename T>
T LoadBytes(const unsigned char* bytes, bool swapped) {
  unsigned char copy[sizeof(T)];
  std::memcpy(copy, bytes, sizeof(T));
  if (swapped) std::reverse(copy, copy + sizeof(T));
  T value;
  std::memcpy(&value, copy, sizeof(T));
  return value;
}

// Checks the first bytes of the header before nifticlib parses it: nifticlib trusts sizeof_hdr, the magic and
// dim[0], and overflows its stack on a NIfTI-1-sized header with the NIfTI-2 magic or on a dim[0] beyond 7
// (both found by fuzz/nifti_fuzzer). zlib reads .gz and plain files alike.
absl::Status CheckHeaderBytes(const std::string& path) {
  unsigned char bytes[540];
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return NotNifti(path);
  const int read = gzread(file, bytes, sizeof(bytes));
  gzclose(file);
  if (read < 4) return NotNifti(path);
  bool swapped = false;
  int32_t sizeof_hdr = LoadBytes<int32_t>(bytes, false);
  if (sizeof_hdr != 348 && sizeof_hdr != 540) {
    swapped = true;
    sizeof_hdr = LoadBytes<int32_t>(bytes, true);
  }
  const auto magic_is = [&](int offset, const char* a, const char* b) {
    return std::memcmp(bytes + offset, a, 4) == 0 || std::memcmp(bytes + offset, b, 4) == 0;
  };
  int64_t dim0 = 0;
  if (sizeof_hdr == 348 && read >= 348 && magic_is(344, "n+1", "ni1")) {  // the 4th byte: the strings' '\0'
    dim0 = LoadBytes<int16_t>(bytes + 40, swapped);
  } else if (sizeof_hdr == 540 && read >= 540 && magic_is(4, "n+2", "ni2")) {
    dim0 = LoadBytes<int64_t>(bytes + 16, swapped);
  } else {
    return NotNifti(path);
  }
  if (dim0 < 1 || dim0 > 7) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": dim[0] is ", dim0, "; it must be 1 to 7"));
  }
  return absl::OkStatus();
}

// Reads the header of a file again, byte-swapped to this machine's order but otherwise untouched.
absl::StatusOr<StoredHeader> ReadStoredHeader(const std::string& path) {
  // nifti_read_header tells the NIfTI version but does not swap; nifti_read_n1_hdr and nifti_read_n2_hdr swap.
  // (nifti_image::nifti_type says NIfTI-1 for NIfTI-2 files too.)
  int version = 0, swapped = 0;
  std::free(nifti_read_header(path.c_str(), &version, /*check=*/0));
  if (version == 2) {
    const std::unique_ptr<nifti_2_header, FreeDeleter> header(nifti_read_n2_hdr(path.c_str(), &swapped, 0));
    if (header != nullptr) return StoredFieldsOf(*header);
  } else {
    const std::unique_ptr<nifti_1_header, FreeDeleter> header(nifti_read_n1_hdr(path.c_str(), &swapped, 0));
    if (header != nullptr) return StoredFieldsOf(*header);
  }
  return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read the NIfTI header"));
}

// nifti_image_load. nifticlib's nifti_read_buffer replaces NaN and infinite float voxels by 0, silently; it decides
// by the datatype, while byte swapping goes by swapsize. Loading float data as the integer type of the same width
// keeps the stored bits, so that ReadNifti can find and refuse such voxels as nibabel would show them.
int LoadStoredVoxels(nifti_image& image) {
  const int datatype = image.datatype;
  if (datatype == NIFTI_TYPE_FLOAT32) image.datatype = NIFTI_TYPE_INT32;
  if (datatype == NIFTI_TYPE_FLOAT64) image.datatype = NIFTI_TYPE_INT64;
  const int result = nifti_image_load(&image);
  image.datatype = datatype;
  return result;
}

// nifticlib reports problems on stderr; segrel reports them as statuses instead.
void QuietNiftiLibrary() {
  static std::once_flag once;
  std::call_once(once, [] { nifti_set_debug_level(0); });
}

Affine FromDmat44(const nifti_dmat44& m) {
  Affine affine{};
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) affine[r][c] = m.m[r][c];
  }
  return affine;
}

nifti_dmat44 ToDmat44(const Affine& affine) {
  nifti_dmat44 m;
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) m.m[r][c] = affine[r][c];
  }
  return m;
}

// nibabel's affine for a header without sform and qform: pixdim scaling, x flipped, centred on the grid.
Affine FallbackAffine(const nifti_image& image) {
  Affine affine = volume::IdentityAffine();
  const double zooms[3] = {image.pixdim[1], image.pixdim[2], image.pixdim[3]};
  const double sign[3] = {-1.0, 1.0, 1.0};
  const int64_t sizes[3] = {image.nx, image.ny, image.nz};
  for (int d = 0; d < 3; ++d) {
    affine[d][d] = sign[d] * zooms[d];
    affine[d][3] = -affine[d][d] * static_cast<double>(sizes[d] - 1) / 2.0;
  }
  return affine;
}

bool AllFinite(const Affine& a) {
  for (const auto& row : a) {
    for (double value : row) {
      if (!std::isfinite(value)) return false;
    }
  }
  return true;
}

double Determinant3(const Affine& a) {
  return a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
         a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
}

template <typename T>
void ConvertVoxels(const void* source, float* target, int64_t count, double slope, double intercept) {
  const T* values = static_cast<const T*>(source);
  for (int64_t n = 0; n < count; ++n)
    target[n] = static_cast<float>(static_cast<double>(values[n]) * slope + intercept);
}

absl::Status ConvertToFloat(const nifti_image& image, float* target, const std::string& path) {
  double slope = 1.0, intercept = 0.0;
  // As nibabel: a zero or non-finite slope means "not scaled".
  if (std::isfinite(image.scl_slope) && image.scl_slope != 0.0) {
    slope = image.scl_slope;
    intercept = std::isfinite(image.scl_inter) ? image.scl_inter : 0.0;
  }
  const int64_t n = image.nvox;
  switch (image.datatype) {
    case NIFTI_TYPE_UINT8:
      ConvertVoxels<uint8_t>(image.data, target, n, slope, intercept);
      break;
    case NIFTI_TYPE_INT8:
      ConvertVoxels<int8_t>(image.data, target, n, slope, intercept);
      break;
    case NIFTI_TYPE_UINT16:
      ConvertVoxels<uint16_t>(image.data, target, n, slope, intercept);
      break;
    case NIFTI_TYPE_INT16:
      ConvertVoxels<int16_t>(image.data, target, n, slope, intercept);
      break;
    case NIFTI_TYPE_UINT32:
      ConvertVoxels<uint32_t>(image.data, target, n, slope, intercept);
      break;
    case NIFTI_TYPE_INT32:
      ConvertVoxels<int32_t>(image.data, target, n, slope, intercept);
      break;
    case NIFTI_TYPE_UINT64:
      ConvertVoxels<uint64_t>(image.data, target, n, slope, intercept);
      break;
    case NIFTI_TYPE_INT64:
      ConvertVoxels<int64_t>(image.data, target, n, slope, intercept);
      break;
    case NIFTI_TYPE_FLOAT32:
      ConvertVoxels<float>(image.data, target, n, slope, intercept);
      break;
    case NIFTI_TYPE_FLOAT64:
      ConvertVoxels<double>(image.data, target, n, slope, intercept);
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": NIfTI data type ", nifti_datatype_string(image.datatype), " is not supported"));
  }
  return absl::OkStatus();
}

NiftiGeometry GeometryOf(const nifti_image& image) {
  NiftiGeometry g;
  g.sform_code = image.sform_code;
  g.sform = FromDmat44(image.sto_xyz);
  g.qform_code = image.qform_code;
  g.quatern_b = image.quatern_b;
  g.quatern_c = image.quatern_c;
  g.quatern_d = image.quatern_d;
  g.qoffset_x = image.qoffset_x;
  g.qoffset_y = image.qoffset_y;
  g.qoffset_z = image.qoffset_z;
  g.qfac = image.qfac;
  g.spacing = {image.pixdim[1], image.pixdim[2], image.pixdim[3]};
  g.xyz_units = image.xyz_units;
  return g;
}

absl::Status CheckHeader(const nifti_image& image, const StoredHeader& stored, const std::string& path,
                         const NiftiReadOptions& options) {
  if (image.ndim < 1 || image.ndim > 4) {
    bool extra_dims_are_one = image.ndim > 4;
    for (int d = 5; d <= image.ndim && d < 8; ++d) extra_dims_are_one = extra_dims_are_one && stored.dim[d] == 1;
    if (!extra_dims_are_one) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", image.ndim, "-D image; segrel reads 3-D and 4-D"));
    }
  }
  const int64_t sizes[4] = {image.nx, image.ny, image.nz, image.nt};
  int64_t voxels = 1;
  for (int d = 0; d < 4; ++d) {
    const int64_t size = d < image.ndim ? stored.dim[d + 1] : std::max<int64_t>(sizes[d], 1);
    if (size <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": dimension ", d + 1, " has size ", size));
    }
    if (voxels > std::numeric_limits<int64_t>::max() / size) {
      return absl::ResourceExhaustedError(absl::StrCat(path, ": the header's dimensions overflow"));
    }
    voxels *= size;
  }
  if (voxels > options.max_bytes / 4) {
    return absl::ResourceExhaustedError(absl::StrCat(path, ": the header asks for ", voxels,
                                                     " voxels, more than the limit of ", options.max_bytes / 4));
  }
  // As nibabel ("Valid slope but invalid intercept").
  if (std::isfinite(stored.scl_slope) && stored.scl_slope != 0.0 && !std::isfinite(stored.scl_inter)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": scl_slope is ", stored.scl_slope, " but scl_inter is ", stored.scl_inter));
  }
  return absl::OkStatus();
}

// Where pixdim makes the affine (qform, fall-back), a zero or negative spacing is an error: nifticlib would read it
// as 1 (nibabel as |pixdim|, 0 as 1), and a negative x spacing would flip left and right.
absl::Status CheckSpacing(const StoredHeader& stored, const std::string& path) {
  for (int d = 1; d <= 3; ++d) {
    if (!(std::isfinite(stored.pixdim[d]) && stored.pixdim[d] > 0.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": spacing pixdim[", d, "] is ", stored.pixdim[d], "; it must be positive"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Volume> ReadNifti(const std::string& path, const NiftiReadOptions& options) {
  QuietNiftiLibrary();
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) return absl::NotFoundError(absl::StrCat(path, ": no such file"));

  SEGREL_RETURN_IF_ERROR(CheckHeaderBytes(path));
  NiftiImagePtr image(nifti_image_read(path.c_str(), /*read_data=*/0));
  if (image == nullptr) return NotNifti(path);
  SEGREL_ASSIGN_OR_RETURN(const StoredHeader stored, ReadStoredHeader(path));
  SEGREL_RETURN_IF_ERROR(CheckHeader(*image, stored, path, options));
  if (image->sform_code <= 0) SEGREL_RETURN_IF_ERROR(CheckSpacing(stored, path));
  if (LoadStoredVoxels(*image) != 0 || image->data == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": the voxel data is truncated or unreadable"));
  }

  Volume volume;
  volume.source = path;
  volume.nifti = GeometryOf(*image);
  if (image->sform_code > 0) {
    volume.affine = FromDmat44(image->sto_xyz);
  } else if (image->qform_code > 0) {
    volume.affine = FromDmat44(image->qto_xyz);
  } else {
    volume.affine = FallbackAffine(*image);
  }
  if (!AllFinite(volume.affine) || !(std::abs(Determinant3(volume.affine)) >= 1e-12)) {
    return absl::InvalidArgumentError(absl::StrCat(path,
                                                   ": degenerate or non-finite voxel-to-world "
                                                   "transform (zero spacing, collinear axes, NaN)"));
  }

  return CatchTorch(path, [&]() -> absl::StatusOr<Volume> {
    const int64_t nt = image->ndim >= 4 ? image->nt : 1;
    // NIfTI stores x fastest: the data is a C-order [t, z, y, x] array.
    at::Tensor data = at::empty({nt, image->nz, image->ny, image->nx}, at::kFloat);
    // nifticlib counts the voxels over every dimension it read; the volume segrel reads is x, y, z and t. A header
    // whose counts disagree (a fuzzed NIfTI-2 header: 0 sizes with a non-zero voxel count) must not be converted.
    if (data.numel() != static_cast<int64_t>(image->nvox) || data.numel() == 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": the header's sizes (", image->nx, " x ", image->ny, " x ",
                                                     image->nz, " x ", nt, ") do not match its ", image->nvox,
                                                     " voxels"));
    }
    SEGREL_RETURN_IF_ERROR(ConvertToFloat(*image, data.data_ptr<float>(), path));
    // The stored voxels are converted: free them before the reordering copy, so that reading a volume needs about
    // twice its float32 size at the peak, not three times (bench/README.md, io_bench).
    nifti_image_unload(image.get());
    if (!at::isfinite(data).all().item<bool>()) {
      const int64_t non_finite = (~at::isfinite(data)).sum().item<int64_t>();
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", non_finite, " voxels are NaN or infinite"));
    }
    data = data.permute({3, 2, 1, 0});
    volume.data = (nt == 1 ? data.squeeze(3) : data).contiguous();
    return volume;
  });
}

namespace {

// The NIfTI datatype code and the tensor type WriteNifti converts to.
std::pair<int, at::ScalarType> StoredType(NiftiDataType type) {
  switch (type) {
    case NiftiDataType::kUInt8:
      return {NIFTI_TYPE_UINT8, at::kByte};
    case NiftiDataType::kInt16:
      return {NIFTI_TYPE_INT16, at::kShort};
    case NiftiDataType::kUInt16:
      // ATen of Debian 12 has no uint16: int32 values are narrowed when copied (see WriteNifti).
      return {NIFTI_TYPE_UINT16, at::kInt};
    case NiftiDataType::kInt32:
      return {NIFTI_TYPE_INT32, at::kInt};
    case NiftiDataType::kFloat32:
      break;
  }
  return {NIFTI_TYPE_FLOAT32, at::kFloat};
}

// Copies `data` ([i, j, k] or [i, j, k, t]) into `image` as `type` (stored as `scalar_type`), in NIfTI's order.
absl::Status FillVoxels(const at::Tensor& data, NiftiDataType type, at::ScalarType scalar_type, const std::string& path,
                        nifti_image& image) {
  return CatchTorch(path, [&]() -> absl::Status {
    // To NIfTI's x-fastest order ([t, z, y, x] in C order).
    const at::Tensor cpu = data.detach().to(at::kCPU);
    const at::Tensor ordered = (data.dim() == 4 ? cpu.permute({3, 2, 1, 0}) : cpu.permute({2, 1, 0})).contiguous();
    const at::Tensor converted = ordered.to(scalar_type);
    if (type == NiftiDataType::kUInt16) {
      const int32_t* from = converted.data_ptr<int32_t>();
      uint16_t* to = static_cast<uint16_t*>(image.data);
      for (int64_t n = 0; n < converted.numel(); ++n) to[n] = static_cast<uint16_t>(from[n]);
    } else {
      std::memcpy(image.data, converted.data_ptr(), converted.numel() * converted.element_size());
    }
    return absl::OkStatus();
  });
}

// The grid's geometry in `image`: its own NIfTI header fields when it came from NIfTI, else its affine.
void SetGeometry(const volume::Volume& grid, nifti_image& image) {
  const NiftiGeometry geometry = grid.nifti.value_or(NiftiGeometry{});
  if (grid.nifti.has_value()) {
    image.qform_code = geometry.qform_code;
    image.quatern_b = geometry.quatern_b;
    image.quatern_c = geometry.quatern_c;
    image.quatern_d = geometry.quatern_d;
    image.qoffset_x = geometry.qoffset_x;
    image.qoffset_y = geometry.qoffset_y;
    image.qoffset_z = geometry.qoffset_z;
    image.qfac = geometry.qfac;
    image.sform_code = geometry.sform_code;
    image.sto_xyz = ToDmat44(geometry.sform);
    image.xyz_units = geometry.xyz_units;
    for (int d = 0; d < 3; ++d) image.pixdim[d + 1] = geometry.spacing[d];
  } else {
    // A grid from elsewhere: its affine as sform and qform ("aligned to an anatomical scan").
    image.sform_code = NIFTI_XFORM_ALIGNED_ANAT;
    image.sto_xyz = ToDmat44(grid.affine);
    image.qform_code = NIFTI_XFORM_ALIGNED_ANAT;
    double dx, dy, dz;
    nifti_dmat44_to_quatern(image.sto_xyz, &image.quatern_b, &image.quatern_c, &image.quatern_d, &image.qoffset_x,
                            &image.qoffset_y, &image.qoffset_z, &dx, &dy, &dz, &image.qfac);
    image.pixdim[1] = dx;
    image.pixdim[2] = dy;
    image.pixdim[3] = dz;
    image.xyz_units = NIFTI_UNITS_MM;
  }
  image.dx = image.pixdim[1];
  image.dy = image.pixdim[2];
  image.dz = image.pixdim[3];
  image.pixdim[0] = image.qfac;
}

}  // namespace

absl::Status WriteNifti(const std::string& path, const at::Tensor& data, NiftiDataType type,
                        const volume::Volume& grid) {
  QuietNiftiLibrary();
  // nifticlib would add ".nii" to any other name and write a file other than `path`.
  if (!absl::EndsWith(path, ".nii") && !absl::EndsWith(path, ".nii.gz")) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a NIfTI file name (.nii or .nii.gz)"));
  }
  const std::array<int64_t, 3> grid_sizes = grid.SpatialSizes();
  if ((data.dim() != 3 && data.dim() != 4) || data.sizes().slice(0, 3) != at::IntArrayRef(grid_sizes.data(), 3)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": data of ", data.dim(), " dimensions does not fit the grid ", volume::GridSummary(grid)));
  }
  // Not a structured binding: the lambda below captures scalar_type, which clang (the fuzz build) refuses in C++17.
  const std::pair<int, at::ScalarType> stored_type = StoredType(type);
  const int datatype = stored_type.first;
  const at::ScalarType scalar_type = stored_type.second;
  const int64_t nt = data.dim() == 4 ? data.size(3) : 1;
  const int64_t dims[8] = {data.dim(), data.size(0), data.size(1), data.size(2), nt, 1, 1, 1};
  NiftiImagePtr image(nifti_make_new_nim(dims, datatype, /*data_fill=*/1));
  if (image == nullptr) return absl::ResourceExhaustedError(absl::StrCat(path, ": cannot allocate the image"));

  SEGREL_RETURN_IF_ERROR(FillVoxels(data, type, scalar_type, path, *image));
  SetGeometry(grid, *image);

  if (nifti_set_filenames(image.get(), path.c_str(), /*check=*/0, /*set_byte_order=*/1) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a NIfTI file name (.nii or .nii.gz)"));
  }
  // nifticlib prints a failure to open the file on stderr whatever its debug level, naming the path (which may hold
  // a client's job id): find out first, and say it as a status.
  if (std::FILE* probe = std::fopen(path.c_str(), "wb"); probe != nullptr) {
    std::fclose(probe);
  } else {
    return absl::InternalError(absl::StrCat(path, ": cannot write: ", std::strerror(errno)));
  }
  nifti_image_write(image.get());
  // nifti_image_write reports failure only on stderr: check that the file is there and readable.
  NiftiImagePtr written(nifti_image_read(path.c_str(), /*read_data=*/0));
  if (written == nullptr || written->nvox != image->nvox) {
    return absl::InternalError(absl::StrCat(path, ": could not write the NIfTI file"));
  }
  return absl::OkStatus();
}

}  // namespace segrel::io
