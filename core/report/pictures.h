// Pictures of one study's explanation, for people: a bar chart of the relevance shares per input sequence and an
// overlay of the relevance map on one axial slice of each sequence.
//
// relevance_overlay.png shows the slice k = OverlaySlice(segmentation) of each sequence, one panel per sequence in
// channel order, left to right, under a strip with the sequence names. A panel shows the slice [i, j] in voxel
// order with i across (left to right) and j upwards (bottom to top); it is not turned into a radiological view.
// Each voxel is a square of pixels (OverlayPixel says where). In a panel:
//   - the sequence in grey, windowed to its 1st..99th percentile over the slice;
//   - the combined relevance map M over it, positive red and negative blue, with opacity |M| / r (at most 1), where
//     r is the 99th percentile of |M| over the slice and all sequences (its maximum when that is 0); voxels with
//     opacity below kOverlayThreshold stay transparent;
//   - the segmentation's outline in yellow: voxels of a class > 0 with a 4-neighbour in the slice of another class
//     or outside the slice.
// relevance_bars.png is drawn by gnuplot (core/report/gnuplot.h); the overlay's pixels are segrel's own and only its
// name strip comes from gnuplot. PNGs are encoded with libpng. The functions are thread-safe.
#ifndef SEGREL_CORE_REPORT_PICTURES_H_
#define SEGREL_CORE_REPORT_PICTURES_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace segrel::report {

// What the pictures show.
struct StudyPictures {
  std::vector<std::string> sequences;  // names, channel order
  at::Tensor images;                   // [C, i, j, k] float32, the network input (normalised)
  at::Tensor relevance;                // [C, i, j, k] float32, the combined relevance map M
  at::Tensor segmentation;             // [i, j, k] int64, predicted class per voxel
  std::vector<double> shares;          // combined share per sequence (sums to 1)
  std::vector<std::pair<std::string, std::vector<double>>> class_shares;  // per explained class: name, shares
};

// Opacity below which the relevance overlay leaves a voxel transparent.
inline constexpr double kOverlayThreshold = 0.05;

// Writes DIR/relevance_bars.png (the shares per sequence, for the combined map and each class, with a legend and
// axis labels) and DIR/relevance_overlay.png (see above) into `dir` (created). Returns the file names written.
// Errors: InvalidArgument when the tensors' shapes or the numbers of names and shares do not fit together;
// FailedPrecondition when gnuplot is not installed; Internal naming the file that could not be made (with
// gnuplot's first error line where gnuplot failed).
absl::StatusOr<std::vector<std::string>> WriteStudyPictures(const StudyPictures& pictures, const std::string& dir);

// Encodes an 8-bit RGB image [H, W, 3] (uint8 tensor, row 0 at the top) as the PNG file `path`.
// Errors: InvalidArgument for another dtype or shape; Internal naming `path` when it cannot be written.
absl::Status WritePng(const std::string& path, const at::Tensor& rgb);

// The slice the overlay shows: the k with the most foreground voxels (class > 0), the first such k on ties, the
// middle slice (size / 2) when there is no foreground. Errors: InvalidArgument unless `segmentation` is [i, j, k].
absl::StatusOr<int64_t> OverlaySlice(const at::Tensor& segmentation);

// Where relevance_overlay.png draws voxel (i, j) of the panel of `channel`, for a volume of `size_i` x `size_j`
// voxels per slice: the (row, column) of the centre pixel of the voxel's square.
std::pair<int64_t, int64_t> OverlayPixel(int64_t size_i, int64_t size_j, int64_t channel, int64_t i, int64_t j);

}  // namespace segrel::report

#endif  // SEGREL_CORE_REPORT_PICTURES_H_
