#include "core/report/pictures.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"
#include "core/report/gnuplot.h"

namespace segrel::report {
namespace {

constexpr char kBarsFile[] = "relevance_bars.png";
constexpr char kOverlayFile[] = "relevance_overlay.png";
constexpr int64_t kHeaderPixels = 24;     // the strip with the sequence names
constexpr int64_t kGapPixels = 4;         // around and between panels
constexpr int64_t kMinPanelPixels = 256;  // small slices are scaled up by a whole factor to about this size

struct Rgb {
  uint8_t red, green, blue;
};
constexpr Rgb kPositive{255, 0, 0};
constexpr Rgb kNegative{0, 0, 255};
constexpr Rgb kOutline{255, 255, 0};

// Where the overlay's panels and voxels lie.
struct Layout {
  int64_t size_i, size_j, scale;

  int64_t PanelLeft(int64_t channel) const { return kGapPixels + channel * (size_i * scale + kGapPixels); }
  int64_t Width(int64_t channels) const { return PanelLeft(channels); }
  int64_t Height() const { return kHeaderPixels + size_j * scale + kGapPixels; }
  // Top-left pixel (row, column) of voxel (i, j)'s square: i across, j upwards.
  std::pair<int64_t, int64_t> Corner(int64_t channel, int64_t i, int64_t j) const {
    return {kHeaderPixels + (size_j - 1 - j) * scale, PanelLeft(channel) + i * scale};
  }
};

Layout MakeLayout(int64_t size_i, int64_t size_j) {
  return {size_i, size_j, std::max<int64_t>(1, kMinPanelPixels / std::max<int64_t>(1, std::max(size_i, size_j)))};
}

// An RGB image in memory, row 0 at the top, black to start with.
class Canvas {
 public:
  Canvas(int64_t height, int64_t width) : height_(height), width_(width), pixels_(height * width * 3, 0) {}

  void FillSquare(std::pair<int64_t, int64_t> corner, int64_t size, Rgb colour) {
    for (int64_t row = corner.first; row < corner.first + size; ++row) {
      for (int64_t column = corner.second; column < corner.second + size; ++column) {
        uint8_t* pixel = &pixels_[(row * width_ + column) * 3];
        pixel[0] = colour.red;
        pixel[1] = colour.green;
        pixel[2] = colour.blue;
      }
    }
  }
  // Copies `rows` full rows of RGB pixels to the top of the canvas.
  void PasteTop(const std::vector<uint8_t>& rgb, int64_t rows) {
    std::copy(rgb.begin(), rgb.begin() + rows * width_ * 3, pixels_.begin());
  }
  int64_t height() const { return height_; }
  int64_t width() const { return width_; }
  const uint8_t* data() const { return pixels_.data(); }

 private:
  int64_t height_, width_;
  std::vector<uint8_t> pixels_;
};

// The shown slice of the study in plain memory: images and relevance [C, i, j], labels [i, j].
struct SliceData {
  int64_t channels = 0, size_i = 0, size_j = 0;
  std::vector<float> images, relevance;
  std::vector<int64_t> labels;

  int64_t Index(int64_t channel, int64_t i, int64_t j) const { return (channel * size_i + i) * size_j + j; }
};

absl::Status CheckPictures(const StudyPictures& pictures) {
  if (!pictures.images.defined() || !pictures.relevance.defined() || !pictures.segmentation.defined()) {
    return absl::InvalidArgumentError("pictures: images, relevance and segmentation must all be given");
  }
  const at::IntArrayRef sizes = pictures.images.sizes();
  if (sizes.size() != 4 || pictures.images.numel() == 0) {
    return absl::InvalidArgumentError("pictures: images must be [C, i, j, k] and not empty");
  }
  if (pictures.relevance.sizes() != sizes) {
    return absl::InvalidArgumentError("pictures: the relevance map must have the images' shape [C, i, j, k]");
  }
  if (pictures.segmentation.sizes() != sizes.slice(1)) {
    return absl::InvalidArgumentError("pictures: the segmentation must be [i, j, k] on the images' grid");
  }
  const size_t channels = static_cast<size_t>(sizes[0]);
  if (pictures.sequences.size() != channels || pictures.shares.size() != channels) {
    return absl::InvalidArgumentError(
        absl::StrCat("pictures: ", channels, " channels need as many sequence names and shares"));
  }
  for (const auto& [name, shares] : pictures.class_shares) {
    if (shares.size() != channels) {
      return absl::InvalidArgumentError(
          absl::StrCat("pictures: class ", name, " has ", shares.size(), " shares for ", channels, " sequences"));
    }
  }
  return absl::OkStatus();
}

template <typename T>
std::vector<T> ToVector(const at::Tensor& contiguous) {
  const T* data = contiguous.data_ptr<T>();
  return std::vector<T>(data, data + contiguous.numel());
}

absl::StatusOr<SliceData> ReadSlice(const StudyPictures& pictures, int64_t k) {
  return CatchTorch("pictures: reading the shown slice", [&]() -> absl::StatusOr<SliceData> {
    SliceData slice;
    slice.channels = pictures.images.size(0);
    slice.size_i = pictures.images.size(1);
    slice.size_j = pictures.images.size(2);
    slice.images = ToVector<float>(pictures.images.select(3, k).to(at::kCPU, at::kFloat).contiguous());
    slice.relevance = ToVector<float>(pictures.relevance.select(3, k).to(at::kCPU, at::kFloat).contiguous());
    slice.labels = ToVector<int64_t>(pictures.segmentation.select(2, k).to(at::kCPU, at::kLong).contiguous());
    return slice;
  });
}

// The q-quantile (q in [0, 1]) of `values`, interpolated linearly between order statistics. REQUIRES: not empty.
double Percentile(std::vector<float> values, double q) {
  const double position = q * static_cast<double>(values.size() - 1);
  const size_t below = static_cast<size_t>(std::floor(position));
  std::nth_element(values.begin(), values.begin() + below, values.end());
  const double low = values[below];
  if (below + 1 >= values.size()) return low;
  const double high = *std::min_element(values.begin() + below + 1, values.end());
  return low + (position - static_cast<double>(below)) * (high - low);
}

// r: the 99th percentile of |M| over the slice, or its maximum when that is 0.
double RelevanceReference(const std::vector<float>& relevance) {
  std::vector<float> magnitude(relevance.size());
  std::transform(relevance.begin(), relevance.end(), magnitude.begin(), [](float r) { return std::fabs(r); });
  const double reference = Percentile(magnitude, 0.99);
  return reference > 0 ? reference : *std::max_element(magnitude.begin(), magnitude.end());
}

uint8_t Blend(double grey, double opacity, uint8_t target) {
  return static_cast<uint8_t>(std::lround(255.0 * grey * (1.0 - opacity) + target * opacity));
}

// The colour of a voxel with grey value `grey` (in [0, 1]) under relevance `relevance`.
Rgb VoxelColour(double grey, double relevance, double reference) {
  const double opacity = reference > 0 ? std::min(1.0, std::fabs(relevance) / reference) : 0.0;
  if (opacity < kOverlayThreshold) return {Blend(grey, 0, 0), Blend(grey, 0, 0), Blend(grey, 0, 0)};
  const Rgb target = relevance > 0 ? kPositive : kNegative;
  return {Blend(grey, opacity, target.red), Blend(grey, opacity, target.green), Blend(grey, opacity, target.blue)};
}

bool OnOutline(const SliceData& slice, int64_t i, int64_t j) {
  const int64_t label = slice.labels[i * slice.size_j + j];
  if (label <= 0) return false;
  const int64_t neighbours[4][2] = {{i - 1, j}, {i + 1, j}, {i, j - 1}, {i, j + 1}};
  for (const auto& [ni, nj] : neighbours) {
    if (ni < 0 || nj < 0 || ni >= slice.size_i || nj >= slice.size_j) return true;
    if (slice.labels[ni * slice.size_j + nj] != label) return true;
  }
  return false;
}

void DrawPanel(const SliceData& slice, int64_t channel, double reference, const Layout& layout, Canvas& canvas) {
  const auto first = slice.images.begin() + slice.Index(channel, 0, 0);
  const std::vector<float> values(first, first + slice.size_i * slice.size_j);
  const double low = Percentile(values, 0.01);
  const double high = Percentile(values, 0.99);
  for (int64_t i = 0; i < slice.size_i; ++i) {
    for (int64_t j = 0; j < slice.size_j; ++j) {
      const int64_t index = slice.Index(channel, i, j);
      const double grey = high > low ? std::clamp((slice.images[index] - low) / (high - low), 0.0, 1.0) : 0.0;
      const Rgb colour = OnOutline(slice, i, j) ? kOutline : VoxelColour(grey, slice.relevance[index], reference);
      canvas.FillSquare(layout.Corner(channel, i, j), layout.scale, colour);
    }
  }
}

absl::Status WriteRgb(const std::string& path, int64_t height, int64_t width, const uint8_t* rgb) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = PNG_FORMAT_RGB;
  if (png_image_write_to_file(&image, path.c_str(), 0, rgb, static_cast<png_int_32>(width * 3), nullptr) == 0) {
    const std::string message = image.message;
    png_image_free(&image);
    return absl::InternalError(absl::StrCat(path, ": cannot write the PNG: ", message));
  }
  return absl::OkStatus();
}

// Reads the PNG `path` as RGB; it must be `width` x `height` pixels.
absl::StatusOr<std::vector<uint8_t>> ReadRgb(const std::string& path, int64_t height, int64_t width) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  if (png_image_begin_read_from_file(&image, path.c_str()) == 0) {
    const std::string message = image.message;
    png_image_free(&image);
    return absl::InternalError(absl::StrCat(path, ": cannot read the PNG gnuplot wrote: ", message));
  }
  if (image.width != width || image.height != height) {
    png_image_free(&image);
    return absl::InternalError(
        absl::StrCat(path, ": gnuplot drew ", image.width, " x ", image.height, " pixels, not ", width, " x ", height));
  }
  image.format = PNG_FORMAT_RGB;
  std::vector<uint8_t> rgb(PNG_IMAGE_SIZE(image));
  if (png_image_finish_read(&image, nullptr, rgb.data(), 0, nullptr) == 0) {
    const std::string message = image.message;
    png_image_free(&image);
    return absl::InternalError(absl::StrCat(path, ": cannot read the PNG gnuplot wrote: ", message));
  }
  return rgb;
}

// The gnuplot script for the strip of sequence names over the panels (white on black).
std::string NameStripScript(const std::vector<std::string>& names, const Layout& layout, const std::string& output) {
  const int64_t width = layout.Width(static_cast<int64_t>(names.size()));
  std::string script =
      GnuplotPngHeader(output, static_cast<int>(width), static_cast<int>(kHeaderPixels), "background rgb 'black'");
  absl::StrAppend(&script,
                  "unset border\nunset tics\nunset key\nset margins 0, 0, 0, 0\n"
                  "set xrange [0:1]\nset yrange [0:1]\n");
  for (size_t c = 0; c < names.size(); ++c) {
    const double centre = static_cast<double>(layout.PanelLeft(c)) + layout.size_i * layout.scale / 2.0;
    absl::StrAppendFormat(&script, "set label %d %s at screen %.6f, screen 0.5 center textcolor rgb 'white'\n", c + 1,
                          GnuplotQuote(names[c]), centre / static_cast<double>(width));
  }
  absl::StrAppend(&script, "plot -1 notitle\n");
  return script;
}

absl::Status WriteOverlay(const StudyPictures& pictures, const std::string& path) {
  SEGREL_ASSIGN_OR_RETURN(const int64_t k, OverlaySlice(pictures.segmentation));
  SEGREL_ASSIGN_OR_RETURN(const SliceData slice, ReadSlice(pictures, k));
  const Layout layout = MakeLayout(slice.size_i, slice.size_j);
  Canvas canvas(layout.Height(), layout.Width(slice.channels));
  // gnuplot draws the names into `path` first; the finished picture then replaces it.
  SEGREL_RETURN_IF_ERROR(RunGnuplot(NameStripScript(pictures.sequences, layout, path), path));
  SEGREL_ASSIGN_OR_RETURN(const std::vector<uint8_t> strip, ReadRgb(path, kHeaderPixels, canvas.width()));
  canvas.PasteTop(strip, kHeaderPixels);
  const double reference = RelevanceReference(slice.relevance);
  for (int64_t channel = 0; channel < slice.channels; ++channel) DrawPanel(slice, channel, reference, layout, canvas);
  return WriteRgb(path, canvas.height(), canvas.width(), canvas.data());
}

// The y range of the bar chart: all bars and 0, with some room above and below.
std::pair<double, double> BarRange(const StudyPictures& pictures) {
  double low = 0, high = 0;
  auto extend = [&](const std::vector<double>& shares) {
    for (double share : shares) {
      low = std::min(low, share);
      high = std::max(high, share);
    }
  };
  extend(pictures.shares);
  for (const auto& [name, shares] : pictures.class_shares) extend(shares);
  const double room = high > low ? 0.1 * (high - low) : 0.1;
  return {low < 0 ? low - room : 0.0, high + room};
}

std::string BarsScript(const StudyPictures& pictures, const std::string& output) {
  std::string script = GnuplotPngHeader(output, 800, 480);
  absl::StrAppend(&script, "$shares << EOD\n");
  for (size_t s = 0; s < pictures.sequences.size(); ++s) {
    absl::StrAppend(&script, GnuplotDataString(pictures.sequences[s]), " ",
                    absl::StrFormat("%.9g", pictures.shares[s]));
    for (const auto& [name, shares] : pictures.class_shares) absl::StrAppendFormat(&script, " %.9g", shares[s]);
    absl::StrAppend(&script, "\n");
  }
  const auto [low, high] = BarRange(pictures);
  absl::StrAppendFormat(&script,
                        "EOD\n"
                        "set title 'Share of relevance per input sequence'\n"
                        "set xlabel 'input sequence'\nset ylabel 'share of relevance'\n"
                        "set yrange [%.9g:%.9g]\nset grid ytics\nset key outside right top\n"
                        "set style data histograms\nset style histogram clustered gap 1\n"
                        "set style fill solid 0.85 border -1\nset xzeroaxis\n"
                        "plot $shares using 2:xtic(1) title 'combined' lc rgb '#404040'",
                        low, high);
  for (size_t c = 0; c < pictures.class_shares.size(); ++c) {
    absl::StrAppend(&script, ", '' using ", c + 3, " title ", GnuplotQuote(pictures.class_shares[c].first));
  }
  absl::StrAppend(&script, "\n");
  return script;
}

}  // namespace

absl::StatusOr<int64_t> OverlaySlice(const at::Tensor& segmentation) {
  if (!segmentation.defined() || segmentation.dim() != 3 || segmentation.numel() == 0) {
    return absl::InvalidArgumentError("pictures: the segmentation must be [i, j, k] and not empty");
  }
  return CatchTorch("pictures: choosing the slice", [&]() -> absl::StatusOr<int64_t> {
    const at::Tensor foreground = segmentation.gt(0).sum(at::IntArrayRef{0, 1});
    if (foreground.max().item<int64_t>() == 0) return segmentation.size(2) / 2;
    return foreground.argmax().item<int64_t>();
  });
}

std::pair<int64_t, int64_t> OverlayPixel(int64_t size_i, int64_t size_j, int64_t channel, int64_t i, int64_t j) {
  const Layout layout = MakeLayout(size_i, size_j);
  const auto [row, column] = layout.Corner(channel, i, j);
  return {row + layout.scale / 2, column + layout.scale / 2};
}

absl::Status WritePng(const std::string& path, const at::Tensor& rgb) {
  if (!rgb.defined() || rgb.scalar_type() != at::kByte || rgb.dim() != 3 || rgb.size(2) != 3 || rgb.numel() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": the image must be a non-empty uint8 tensor [H, W, 3]"));
  }
  SEGREL_ASSIGN_OR_RETURN(const at::Tensor pixels, CatchTorch(path, [&]() -> absl::StatusOr<at::Tensor> {
                            return rgb.to(at::kCPU).contiguous();
                          }));
  return WriteRgb(path, pixels.size(0), pixels.size(1), pixels.data_ptr<uint8_t>());
}

absl::StatusOr<std::vector<std::string>> WriteStudyPictures(const StudyPictures& pictures, const std::string& dir) {
  SEGREL_RETURN_IF_ERROR(CheckPictures(pictures));
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return absl::InternalError(absl::StrCat(dir, ": cannot create the folder: ", error.message()));
  SEGREL_RETURN_IF_ERROR(RunGnuplot(BarsScript(pictures, dir + "/" + kBarsFile), dir + "/" + kBarsFile));
  SEGREL_RETURN_IF_ERROR(WriteOverlay(pictures, dir + "/" + kOverlayFile));
  return std::vector<std::string>{kBarsFile, kOverlayFile};
}

}  // namespace segrel::report
