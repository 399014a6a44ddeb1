#include "core/io/dicom_series.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"
#include "core/io/dicom_file.h"
#include "core/io/dicom_layout.h"

namespace segrel::io {
namespace {

using dicom::FileKind;
using dicom::ScannedFile;
using dicom::SliceHeader;

// Regular files under `dir`, recursively, in a fixed (sorted) order.
std::vector<std::string> ListFiles(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code error;
  for (auto it = std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::skip_permission_denied, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    if (it->is_regular_file(error)) files.push_back(it->path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Scans every file, on all of LibTorch's intra-op threads (each file is parsed by one thread).
std::vector<ScannedFile> ScanFiles(const std::vector<std::string>& files) {
  std::vector<ScannedFile> scanned(files.size());
  at::parallel_for(0, static_cast<int64_t>(files.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) scanned[n] = dicom::ScanDicomFile(files[n]);
  });
  return scanned;
}

// The images (and unreadable files) of one SeriesInstanceUID.
struct SeriesFiles {
  std::vector<SliceHeader> images;
  std::vector<absl::Status> errors;
};

std::string CommonFolder(const std::vector<std::string>& files) {
  std::filesystem::path common = std::filesystem::path(files.front()).parent_path();
  for (const std::string& file : files) {
    const std::filesystem::path folder = std::filesystem::path(file).parent_path();
    while (!common.empty() &&
           std::mismatch(common.begin(), common.end(), folder.begin(), folder.end()).first != common.end()) {
      common = common.parent_path();
    }
  }
  return common.string();
}

DicomSeriesInfo DescribeSeries(const std::vector<SliceHeader>& images, const dicom::SeriesLayout& layout) {
  const SliceHeader& first = images[layout.order.front()];
  DicomSeriesInfo info;
  info.series_instance_uid = first.series_instance_uid;
  info.study_instance_uid = first.study_instance_uid;
  info.frame_of_reference_uid = first.frame_of_reference_uid;
  info.sop_class_uid = first.sop_class_uid;
  info.modality = first.modality;
  info.series_number = first.series_number;
  info.series_description = first.series_description;
  info.protocol_name = first.protocol_name;
  info.image_type = first.image_type;
  info.echo_time = first.echo_time;
  info.repetition_time = first.repetition_time;
  info.flip_angle = first.flip_angle;
  info.trigger_time = first.trigger_time;
  info.patient_position = first.patient_position;
  info.transfer_syntax = first.transfer_syntax;
  for (size_t index : layout.order) {
    info.files.push_back(images[index].path);
    info.sop_instance_uids.push_back(images[index].sop_instance_uid);
  }
  for (int64_t k = 0; k < layout.slices; ++k) info.positions.push_back(*images[layout.order[k]].position);
  info.folder = CommonFolder(info.files);
  info.orientation = *first.orientation;
  info.pixel_spacing = *first.pixel_spacing;
  info.slice_thickness = first.slice_thickness;
  info.slice_spacing = layout.slice_spacing;
  info.rows = layout.rows;
  info.columns = layout.columns;
  info.slices = layout.slices;
  info.volumes = layout.volumes;
  info.notes = layout.notes;
  return info;
}

// Decodes every image into its place in the volume [i, j, k(, t)] (layout in dicom_layout.h).
absl::Status DecodeImages(const std::vector<SliceHeader>& images, const dicom::SeriesLayout& layout, float* data) {
  const int64_t J = layout.rows, K = layout.slices, T = layout.volumes;
  const int64_t count = K * T;
  std::vector<absl::Status> statuses(count);
  at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const int64_t t = n / K, k = n % K;
      // Pixel (r, c) goes to i = c, j = J - 1 - r.
      float* origin = data + ((J - 1) * K + k) * T + t;
      statuses[n] = dicom::DecodeSlice(images[layout.order[n]], origin, /*row_stride=*/-K * T,
                                       /*column_stride=*/J * K * T);
    }
  });
  for (const absl::Status& status : statuses) SEGREL_RETURN_IF_ERROR(status);
  return absl::OkStatus();
}

absl::StatusOr<DicomSeries> AssembleSeries(const std::vector<SliceHeader>& images, const DicomReadOptions& options) {
  dicom::LayoutOptions layout_options;
  layout_options.spacing_tolerance = options.spacing_tolerance;
  layout_options.orientation_tolerance = options.orientation_tolerance;
  SEGREL_ASSIGN_OR_RETURN(const dicom::SeriesLayout layout, dicom::PlanSeries(images, layout_options));
  DicomSeries series;
  series.info = DescribeSeries(images, layout);
  const int64_t voxels = layout.columns * layout.rows * layout.slices * layout.volumes;
  const std::string label = SeriesLabel(series.info.series_number, series.info.series_description);
  if (voxels > options.max_bytes / 4) {
    return absl::ResourceExhaustedError(absl::StrCat(series.info.folder, " (series ", label, "): ", voxels,
                                                     " voxels, more than the limit of ", options.max_bytes / 4));
  }
  std::vector<int64_t> sizes = {layout.columns, layout.rows, layout.slices};
  if (layout.volumes > 1) sizes.push_back(layout.volumes);
  SEGREL_ASSIGN_OR_RETURN(series.volume.data, CatchTorch(series.info.folder, [&]() -> absl::StatusOr<at::Tensor> {
                            return at::empty(sizes, at::kFloat);
                          }));
  SEGREL_RETURN_IF_ERROR(DecodeImages(images, layout, series.volume.data.data_ptr<float>()));
  series.volume.affine = layout.affine;
  series.volume.source = absl::StrCat(series.info.folder, " (series ", label, ")");
  return series;
}

// Series order: SeriesNumber (missing last), then SeriesInstanceUID.
auto SeriesOrder(const std::optional<int64_t>& number, const std::string& uid) {
  return std::make_tuple(number.value_or(std::numeric_limits<int64_t>::max()), std::cref(uid));
}

std::string SkippedSummary(const std::vector<std::string>& notes) {
  if (notes.empty()) return "";
  return absl::StrCat("; skipped: ", notes.front(),
                      notes.size() > 1 ? absl::StrCat(" and ", notes.size() - 1, " more") : "");
}

absl::StatusOr<DicomFolder> ReadFolder(const std::string& dir, const DicomReadOptions& options) {
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) return absl::NotFoundError(absl::StrCat(dir, ": no such folder"));

  DicomFolder folder;
  const std::vector<std::string> files = ListFiles(dir);
  folder.files = static_cast<int64_t>(files.size());
  std::map<std::string, SeriesFiles> by_uid;
  for (ScannedFile& file : ScanFiles(files)) {
    switch (file.kind) {
      case FileKind::kImage:
        by_uid[file.header.series_instance_uid].images.push_back(std::move(file.header));
        break;
      case FileKind::kBroken:
        if (file.header.series_instance_uid.empty()) {
          folder.broken_files.push_back(file.error);
        } else {
          by_uid[file.header.series_instance_uid].errors.push_back(file.error);
        }
        break;
      case FileKind::kNotDicom:
      case FileKind::kNotImage:
        folder.notes.push_back(std::move(file.note));
        break;
    }
  }
  if (by_uid.empty() && folder.broken_files.empty()) {
    return absl::NotFoundError(
        absl::StrCat(dir, ": no DICOM image found (", folder.files, " files", SkippedSummary(folder.notes), ")"));
  }

  for (auto& [uid, series_files] : by_uid) {
    absl::StatusOr<DicomSeries> series =
        series_files.errors.empty() ? AssembleSeries(series_files.images, options) : series_files.errors.front();
    if (series.ok()) {
      folder.series.push_back(*std::move(series));
      continue;
    }
    FailedDicomSeries failed;
    failed.series_instance_uid = uid;
    if (!series_files.images.empty()) {
      failed.series_number = series_files.images.front().series_number;
      failed.series_description = series_files.images.front().series_description;
    }
    failed.status = series.status();
    folder.failed.push_back(std::move(failed));
  }
  std::sort(folder.series.begin(), folder.series.end(), [](const DicomSeries& a, const DicomSeries& b) {
    return SeriesOrder(a.info.series_number, a.info.series_instance_uid) <
           SeriesOrder(b.info.series_number, b.info.series_instance_uid);
  });
  std::sort(folder.failed.begin(), folder.failed.end(), [](const FailedDicomSeries& a, const FailedDicomSeries& b) {
    return SeriesOrder(a.series_number, a.series_instance_uid) < SeriesOrder(b.series_number, b.series_instance_uid);
  });
  return folder;
}

}  // namespace

std::string SeriesLabel(const std::optional<int64_t>& series_number, const std::string& description) {
  const std::string number = series_number.has_value() ? absl::StrCat(*series_number) : "?";
  return description.empty() ? number : absl::StrCat(number, " ", description);
}

absl::StatusOr<DicomFolder> ReadDicomFolder(const std::string& dir, const DicomReadOptions& options) {
  SEGREL_RETURN_IF_ERROR(dicom::InitDicom());
  // DCMTK and LibTorch may throw (out of memory): no exception leaves core/.
  return CatchTorch(dir, [&] { return ReadFolder(dir, options); });
}

absl::StatusOr<DicomSeries> ReadDicomSeries(const std::string& dir, const DicomReadOptions& options) {
  SEGREL_ASSIGN_OR_RETURN(DicomFolder folder, ReadDicomFolder(dir, options));
  if (!folder.broken_files.empty()) return folder.broken_files.front();
  if (folder.series.size() + folder.failed.size() > 1) {
    std::vector<std::string> labels;
    for (const DicomSeries& s : folder.series)
      labels.push_back(SeriesLabel(s.info.series_number, s.info.series_description));
    for (const FailedDicomSeries& s : folder.failed)
      labels.push_back(SeriesLabel(s.series_number, s.series_description));
    return absl::InvalidArgumentError(
        absl::StrCat(dir, " holds ", labels.size(), " series (", absl::StrJoin(labels, "; "), "), not one"));
  }
  if (!folder.failed.empty()) return folder.failed.front().status;
  return std::move(folder.series.front());
}

}  // namespace segrel::io
