#include "core/io/dicom_layout.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/common/status_macros.h"

namespace segrel::io::dicom {
namespace {

using Vector3 = std::array<double, 3>;

Vector3 Row(const SliceHeader& s) { return {(*s.orientation)[0], (*s.orientation)[1], (*s.orientation)[2]}; }
Vector3 Column(const SliceHeader& s) { return {(*s.orientation)[3], (*s.orientation)[4], (*s.orientation)[5]}; }

double Dot(const Vector3& a, const Vector3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
Vector3 Cross(const Vector3& a, const Vector3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
Vector3 Difference(const Vector3& a, const Vector3& b) { return {a[0] - b[0], a[1] - b[1], a[2] - b[2]}; }
double Norm(const Vector3& a) { return std::sqrt(Dot(a, a)); }

std::string FormatVector(const Vector3& v) { return absl::StrFormat("(%.6g, %.6g, %.6g)", v[0], v[1], v[2]); }

absl::Status CheckEachImage(const SliceHeader& s) {
  if (s.frames != 1) {
    return absl::UnimplementedError(absl::StrCat(s.path, ": multi-frame image (", s.frames,
                                                 " frames, e.g. enhanced MR); segrel reads one image per file "
                                                 "(convert the series with dcm2niix and read the NIfTI file)"));
  }
  const char* missing = !s.position.has_value()        ? "ImagePositionPatient"
                        : !s.orientation.has_value()   ? "ImageOrientationPatient"
                        : !s.pixel_spacing.has_value() ? "PixelSpacing"
                                                       : nullptr;
  if (missing != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(s.path, ": no ", missing, ", so the image cannot be placed"));
  }
  if (s.rows <= 0 || s.columns <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(s.path, ": image of ", s.rows, "x", s.columns, " pixels"));
  }
  if (!((*s.pixel_spacing)[0] > 0 && (*s.pixel_spacing)[1] > 0)) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: PixelSpacing %g\\%g; it must be positive", s.path,
                                                      (*s.pixel_spacing)[0], (*s.pixel_spacing)[1]));
  }
  const Vector3 row = Row(s), column = Column(s);
  constexpr double kUnitTolerance = 1e-3;  // DS values carry about 6 significant digits in some files
  if (std::abs(Norm(row) - 1) > kUnitTolerance || std::abs(Norm(column) - 1) > kUnitTolerance ||
      std::abs(Dot(row, column)) > kUnitTolerance) {
    return absl::InvalidArgumentError(absl::StrCat(s.path, ": ImageOrientationPatient ", FormatVector(row), ", ",
                                                   FormatVector(column),
                                                   " is not two orthogonal unit vectors (degenerate directions)"));
  }
  return absl::OkStatus();
}

// Every image must share the first image's orientation, size and pixel spacing.
absl::Status CheckSameImageGeometry(const std::vector<SliceHeader>& slices, const LayoutOptions& options) {
  const SliceHeader& first = slices.front();
  for (const SliceHeader& s : slices) {
    for (int n = 0; n < 6; ++n) {
      if (std::abs((*s.orientation)[n] - (*first.orientation)[n]) > options.orientation_tolerance) {
        return absl::InvalidArgumentError(absl::StrCat("mixed orientations in one series: ", first.path,
                                                       " has row/column directions ", FormatVector(Row(first)), " ",
                                                       FormatVector(Column(first)), ", ", s.path, " has ",
                                                       FormatVector(Row(s)), " ", FormatVector(Column(s))));
      }
    }
    if (s.rows != first.rows || s.columns != first.columns) {
      return absl::InvalidArgumentError(absl::StrCat("images of different size in one series: ", first.path, " has ",
                                                     first.rows, "x", first.columns, " pixels, ", s.path, " has ",
                                                     s.rows, "x", s.columns));
    }
    for (int n = 0; n < 2; ++n) {
      const double a = (*first.pixel_spacing)[n], b = (*s.pixel_spacing)[n];
      if (std::abs(a - b) > options.spacing_tolerance * std::max(a, b)) {
        return absl::InvalidArgumentError(
            absl::StrFormat("images of different pixel spacing in one series: %s has %g\\%g mm, %s has %g\\%g mm",
                            first.path, (*first.pixel_spacing)[0], (*first.pixel_spacing)[1], s.path,
                            (*s.pixel_spacing)[0], (*s.pixel_spacing)[1]));
      }
    }
  }
  return absl::OkStatus();
}

// Images at one position, in time order.
using Position = std::vector<size_t>;

// Sort key inside a position: InstanceNumber, then AcquisitionNumber, then the path (missing numbers last).
auto TimeKey(const SliceHeader& s) {
  constexpr int64_t kLast = std::numeric_limits<int64_t>::max();
  return std::make_tuple(s.instance_number.value_or(kLast), s.acquisition_number.value_or(kLast), std::cref(s.path));
}

std::vector<Position> GroupByPosition(const std::vector<SliceHeader>& slices, const std::vector<double>& distance,
                                      const LayoutOptions& options) {
  std::vector<size_t> sorted(slices.size());
  std::iota(sorted.begin(), sorted.end(), 0);
  std::stable_sort(sorted.begin(), sorted.end(), [&](size_t a, size_t b) { return distance[a] < distance[b]; });
  std::vector<Position> positions;
  for (size_t index : sorted) {
    if (positions.empty() || distance[index] - distance[positions.back().front()] > options.position_tolerance_mm) {
      positions.emplace_back();
    }
    positions.back().push_back(index);
  }
  for (Position& position : positions) {
    std::sort(position.begin(), position.end(),
              [&](size_t a, size_t b) { return TimeKey(slices[a]) < TimeKey(slices[b]); });
  }
  return positions;
}

// Every position must hold the same number of distinct images: that number is the number of volumes.
absl::StatusOr<int64_t> CountVolumes(const std::vector<SliceHeader>& slices, const std::vector<Position>& positions,
                                     const std::vector<double>& distance) {
  std::map<size_t, int> histogram;
  for (const Position& p : positions) ++histogram[p.size()];
  const size_t volumes = std::max_element(histogram.begin(), histogram.end(), [](const auto& a, const auto& b) {
                           return a.second < b.second || (a.second == b.second && a.first < b.first);
                         })->first;
  for (const Position& p : positions) {
    for (size_t a = 0; a < p.size(); ++a) {
      for (size_t b = a + 1; b < p.size(); ++b) {
        if (!slices[p[a]].sop_instance_uid.empty() && slices[p[a]].sop_instance_uid == slices[p[b]].sop_instance_uid) {
          return absl::InvalidArgumentError(absl::StrCat("duplicated image: ", slices[p[a]].path, " and ",
                                                         slices[p[b]].path, " are the same image (SOPInstanceUID ",
                                                         slices[p[a]].sop_instance_uid, ")"));
        }
      }
    }
    if (p.size() > volumes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "duplicated slice: %s and %s lie at the same position (%.4f mm along the slice normal), where every "
          "other position holds %d image(s)",
          slices[p[0]].path, slices[p[1]].path, distance[p[0]], volumes));
    }
    if (p.size() < volumes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "missing image: the position of %s (%.4f mm along the slice normal) holds %d image(s), every other "
          "position %d",
          slices[p[0]].path, distance[p[0]], p.size(), volumes));
    }
  }
  return static_cast<int64_t>(volumes);
}

double Median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

// Gaps between neighbouring positions must all equal the median gap; a gap of n medians is n - 1 missing slices.
absl::StatusOr<double> CheckSpacing(const std::vector<SliceHeader>& slices, const std::vector<Position>& positions,
                                    const std::vector<double>& distance, const LayoutOptions& options) {
  std::vector<double> gaps;
  for (size_t k = 0; k + 1 < positions.size(); ++k) {
    gaps.push_back(distance[positions[k + 1].front()] - distance[positions[k].front()]);
  }
  const double median = Median(gaps);
  for (size_t k = 0; k < gaps.size(); ++k) {
    if (std::abs(gaps[k] - median) <= options.spacing_tolerance * median) continue;
    const std::string& a = slices[positions[k].front()].path;
    const std::string& b = slices[positions[k + 1].front()].path;
    const double multiple = std::round(gaps[k] / median);
    if (multiple >= 2 && std::abs(gaps[k] - multiple * median) <= options.spacing_tolerance * median * multiple) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "missing slice: %s and %s are %.4g mm apart along the slice normal where the other slices are %.4g mm "
          "apart; %d slice(s) missing between them",
          a, b, gaps[k], median, static_cast<int>(multiple) - 1));
    }
    return absl::InvalidArgumentError(absl::StrFormat(
        "non-uniform slice spacing: %s and %s are %.4g mm apart along the slice normal, the median gap is %.4g mm", a,
        b, gaps[k], median));
  }
  return median;
}

// Consecutive slices must lie along the normal, not shifted within the image plane.
absl::Status CheckStack(const std::vector<SliceHeader>& slices, const std::vector<Position>& positions,
                        const Vector3& normal, double spacing, const LayoutOptions& options) {
  const double tolerance = options.position_tolerance_mm + options.spacing_tolerance * spacing;
  for (size_t k = 0; k + 1 < positions.size(); ++k) {
    const SliceHeader& a = slices[positions[k].front()];
    const SliceHeader& b = slices[positions[k + 1].front()];
    const Vector3 step = Difference(*b.position, *a.position);
    const double along = Dot(step, normal);
    const Vector3 in_plane = {step[0] - along * normal[0], step[1] - along * normal[1], step[2] - along * normal[2]};
    if (Norm(in_plane) > tolerance) {
      return absl::UnimplementedError(absl::StrFormat(
          "%s and %s are shifted by %.4g mm within the image plane (gantry tilt or a sheared stack); segrel reads "
          "stacks whose slices follow the slice normal",
          a.path, b.path, Norm(in_plane)));
    }
  }
  return absl::OkStatus();
}

// The spacing of a one-slice series, which positions cannot give.
double SingleSliceSpacing(const SliceHeader& s, std::vector<std::string>& notes) {
  if (s.spacing_between_slices.has_value() && *s.spacing_between_slices > 0) {
    notes.push_back("one slice: slice spacing from SpacingBetweenSlices");
    return *s.spacing_between_slices;
  }
  if (s.slice_thickness.has_value() && *s.slice_thickness > 0) {
    notes.push_back("one slice: slice spacing from SliceThickness");
    return *s.slice_thickness;
  }
  notes.push_back("one slice without SliceThickness: slice spacing taken as 1 mm");
  return 1.0;
}

Matrix4 MakeAffine(const SliceHeader& first, const SliceHeader& last, int64_t slices, double spacing,
                   const Vector3& normal) {
  const Vector3 row = Row(first), column = Column(first);
  const double row_spacing = (*first.pixel_spacing)[0];     // between rows, along the column direction
  const double column_spacing = (*first.pixel_spacing)[1];  // between columns, along the row direction
  Vector3 slice_step;
  for (int a = 0; a < 3; ++a) {
    slice_step[a] = slices > 1 ? ((*last.position)[a] - (*first.position)[a]) / static_cast<double>(slices - 1)
                               : normal[a] * spacing;
  }
  // LPS columns: i along the row direction, j against the column direction (rows reversed), k along the stack.
  Matrix4 affine{};
  for (int a = 0; a < 3; ++a) {
    const double lps_to_ras = a < 2 ? -1.0 : 1.0;
    affine[a][0] = lps_to_ras * row[a] * column_spacing;
    affine[a][1] = lps_to_ras * -column[a] * row_spacing;
    affine[a][2] = lps_to_ras * slice_step[a];
    affine[a][3] = lps_to_ras * ((*first.position)[a] + static_cast<double>(first.rows - 1) * row_spacing * column[a]);
  }
  affine[3][3] = 1.0;
  return affine;
}

}  // namespace

absl::StatusOr<SeriesLayout> PlanSeries(const std::vector<SliceHeader>& slices, const LayoutOptions& options) {
  if (slices.empty()) return absl::InvalidArgumentError("a series without images");
  for (const SliceHeader& s : slices) SEGREL_RETURN_IF_ERROR(CheckEachImage(s));
  SEGREL_RETURN_IF_ERROR(CheckSameImageGeometry(slices, options));

  const SliceHeader& first = slices.front();
  const Vector3 normal = Cross(Row(first), Column(first));
  std::vector<double> distance;
  for (const SliceHeader& s : slices) {
    distance.push_back(Dot(*s.position, normal));
    if (!std::isfinite(distance.back())) {
      return absl::InvalidArgumentError(
          absl::StrCat(s.path, ": ImagePositionPatient ", FormatVector(*s.position), " is out of range"));
    }
  }
  const std::vector<Position> positions = GroupByPosition(slices, distance, options);
  SEGREL_ASSIGN_OR_RETURN(const int64_t volumes, CountVolumes(slices, positions, distance));

  SeriesLayout layout;
  if (positions.size() > 1) {
    SEGREL_ASSIGN_OR_RETURN(layout.slice_spacing, CheckSpacing(slices, positions, distance, options));
    SEGREL_RETURN_IF_ERROR(CheckStack(slices, positions, normal, layout.slice_spacing, options));
  } else {
    layout.slice_spacing = SingleSliceSpacing(first, layout.notes);
  }
  layout.columns = first.columns;
  layout.rows = first.rows;
  layout.slices = static_cast<int64_t>(positions.size());
  layout.volumes = volumes;
  layout.order.resize(layout.slices * volumes);
  for (int64_t k = 0; k < layout.slices; ++k) {
    for (int64_t t = 0; t < volumes; ++t) layout.order[t * layout.slices + k] = positions[k][t];
  }
  layout.affine = MakeAffine(slices[positions.front().front()], slices[positions.back().front()], layout.slices,
                             layout.slice_spacing, normal);
  return layout;
}

}  // namespace segrel::io::dicom
