#include "fuzz/fuzz_entries.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "core/graph/onnx/onnx_model.h"
#include "core/io/dicom_series.h"
#include "core/io/nifti.h"
#include "core/volume/volume.h"

namespace segrel::fuzz {
namespace {

namespace fs = std::filesystem;

// A folder of this process's own under the system's temporary folder, removed at exit.
class TempFolder {
 public:
  TempFolder() {
    std::string pattern = (fs::temp_directory_path() / "segrel-fuzz-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) Fail("cannot create a temporary folder");
    path_ = pattern;
    // The readers' own threads would only add noise to the fuzzer's timing and coverage.
    at::set_num_threads(1);
  }
  ~TempFolder() {
    std::error_code error;
    fs::remove_all(path_, error);
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;

  const fs::path& path() const { return path_; }

  [[noreturn]] static void Fail(const std::string& what) {
    std::fprintf(stderr, "segrel fuzz entry: %s\n", what.c_str());
    std::abort();
  }

 private:
  fs::path path_;
};

TempFolder& Temp() {
  static TempFolder* const folder = new TempFolder();
  static const int registered = std::atexit([] { delete folder; });
  (void)registered;
  return *folder;
}

void Check(bool condition, const std::string& what) {
  if (!condition) TempFolder::Fail(what);
}

void WriteFile(const fs::path& path, absl::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  Check(out.good(), "cannot write " + path.string());
}

void CheckError(const absl::Status& status) {
  Check(!status.ok() && !status.message().empty(), "an error without a message");
}

// What the readers promise of every volume they return.
void CheckVolume(const volume::Volume& volume, const std::string& what) {
  Check(volume.data.defined() && volume.data.scalar_type() == at::kFloat, what + ": not a float32 tensor");
  Check(volume.data.dim() == 3 || volume.data.dim() == 4, what + ": not 3-D or 4-D");
  Check(volume.data.numel() * 4 <= kFuzzMaxBytes, what + ": larger than max_bytes");
  Check(at::isfinite(volume.data).all().item<bool>(), what + ": NaN or infinite voxels");
  for (const auto& row : volume.affine) {
    for (double value : row) Check(std::isfinite(value), what + ": non-finite affine");
  }
}

void CheckSeries(const io::DicomSeries& series) {
  const io::DicomSeriesInfo& info = series.info;
  CheckVolume(series.volume, "DICOM series");
  std::vector<int64_t> sizes = {info.columns, info.rows, info.slices};
  if (info.volumes > 1) sizes.push_back(info.volumes);
  Check(series.volume.data.sizes() == at::IntArrayRef(sizes), "DICOM series: sizes differ from the info");
  const size_t images = static_cast<size_t>(info.slices * info.volumes);
  Check(info.files.size() == images && info.sop_instance_uids.size() == images,
        "DICOM series: one file per image expected");
  Check(info.positions.size() == static_cast<size_t>(info.slices), "DICOM series: one position per slice expected");
}

}  // namespace

int FuzzNifti(const uint8_t* data, size_t size) {
  const bool gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  const fs::path path = Temp().path() / (gzip ? "input.nii.gz" : "input.nii");
  WriteFile(path, absl::string_view(reinterpret_cast<const char*>(data), size));
  io::NiftiReadOptions options;
  options.max_bytes = kFuzzMaxBytes;
  const absl::StatusOr<volume::Volume> volume = io::ReadNifti(path.string(), options);
  if (volume.ok()) {
    CheckVolume(*volume, "NIfTI volume");
  } else {
    CheckError(volume.status());
  }
  return 0;
}

int FuzzOnnx(const uint8_t* data, size_t size) {
  const fs::path path = Temp().path() / "model.onnx";
  WriteFile(path, absl::string_view(reinterpret_cast<const char*>(data), size));
  graph::OnnxLoadOptions options;
  options.max_elements = int64_t{1} << 20;
  const absl::StatusOr<graph::OnnxModel> model = graph::OnnxModel::Load(path.string(), options);
  if (!model.ok()) {
    CheckError(model.status());
    return 0;
  }
  std::vector<int64_t> sizes = model->declared_input_sizes();
  if (sizes.size() < 2) sizes.resize(2, 1);
  for (int64_t& size : sizes) size = size < 0 ? 4 : size;
  const absl::StatusOr<graph::LayerGraph> imported = model->ImportGraph(sizes);
  if (!imported.ok()) {
    CheckError(imported.status());
    return 0;
  }
  const absl::StatusOr<at::Tensor> output = imported->Forward(at::zeros(sizes));
  if (!output.ok()) {
    CheckError(output.status());
    return 0;
  }
  Check(output->sizes() == at::IntArrayRef(imported->output_sizes()), "ONNX: output sizes differ from the graph's");
  return 0;
}

int FuzzDicomFolder(const uint8_t* data, size_t size) {
  const fs::path folder = Temp().path() / "dicom";
  std::error_code error;
  fs::remove_all(folder, error);
  fs::create_directories(folder);
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::vector<absl::string_view> pieces =
      absl::StrSplit(bytes, absl::MaxSplits(kDicomFileSeparator, kMaxDicomFiles - 1));
  for (size_t n = 0; n < pieces.size(); ++n) WriteFile(folder / absl::StrCat(n, ".dcm"), pieces[n]);

  io::DicomReadOptions options;
  options.max_bytes = kFuzzMaxBytes;
  const absl::StatusOr<io::DicomFolder> read = io::ReadDicomFolder(folder.string(), options);
  if (!read.ok()) {
    CheckError(read.status());
    return 0;
  }
  for (const io::DicomSeries& series : read->series) CheckSeries(series);
  for (const io::FailedDicomSeries& failed : read->failed) CheckError(failed.status);
  for (const absl::Status& broken : read->broken_files) CheckError(broken);
  Check(read->files == static_cast<int64_t>(pieces.size()), "DICOM folder: files miscounted");
  return 0;
}

}  // namespace segrel::fuzz
