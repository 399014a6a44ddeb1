// The study pictures: PNG encoding, the overlay's slice, colours and outline read back pixel by pixel, the bar
// chart's existence, and the errors for bad input and a missing or failing gnuplot.
#include "core/report/pictures.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/report/gnuplot.h"
#include "tests/core/report/png_reader.h"
#include "tests/test_util.h"

namespace segrel::report {
namespace {

using segrel::testing::ReadPngHeader;
using segrel::testing::ReadPngPixels;
using segrel::testing::RgbImage;
using segrel::testing::TestTempDir;
using Colour = std::array<int, 3>;

constexpr Colour kRed{255, 0, 0};
constexpr Colour kBlue{0, 0, 255};
constexpr Colour kYellow{255, 255, 0};
constexpr Colour kBlack{0, 0, 0};
constexpr Colour kWhite{255, 255, 255};

// The grid of the picture fixture: i = 16, j = 12, k = 3 (i and j differ so that a transposed picture shows).
constexpr int64_t kI = 16, kJ = 12, kK = 3;

// Two sequences; the lesion (class 1) is the square i 5..9, j 4..8 on k = 1 (the shown slice) and one voxel on
// k = 0. Relevance on k = 1: strongly positive at T1 (7, 6), strongly negative at FLAIR (2, 2), weak (below the
// transparency threshold) at T1 (12, 3). On k = 0 strong relevance at T1 (12, 9), which must not show.
StudyPictures PictureFixture() {
  StudyPictures pictures;
  pictures.sequences = {"T1", "FLAIR"};
  pictures.images = at::zeros({2, kI, kJ, kK}, at::kFloat);
  // T1: i * kJ + j on every slice (its minimum at (0, 0), its maximum at (15, 11)); FLAIR: constant 3.
  pictures.images[0] = at::arange(kI * kJ, at::kFloat).view({kI, kJ, 1}).expand({kI, kJ, kK});
  pictures.images[1].fill_(3.0);
  pictures.segmentation = at::zeros({kI, kJ, kK}, at::kLong);
  pictures.segmentation.slice(0, 5, 10).slice(1, 4, 9).select(2, 1).fill_(1);
  pictures.segmentation[3][3][0] = 1;
  pictures.relevance = at::zeros({2, kI, kJ, kK}, at::kFloat);
  pictures.relevance[0][7][6][1] = 10.0;
  pictures.relevance[1][2][2][1] = -10.0;
  pictures.relevance[0][12][3][1] = 0.1;  // 1% of the reference 10: transparent
  pictures.relevance[0][12][9][0] = 50.0;
  pictures.shares = {0.75, 0.25};
  pictures.class_shares = {{"lesion", {0.75, 0.25}}};
  return pictures;
}

Colour PixelOf(const RgbImage& image, int64_t channel, int64_t i, int64_t j) {
  const auto [row, column] = OverlayPixel(kI, kJ, channel, i, j);
  return image.At(row, column);
}

bool IsGrey(const Colour& colour) { return colour[0] == colour[1] && colour[1] == colour[2]; }

// Runs `body` with PATH set to an empty folder, so that no gnuplot can be found.
template <typename F>
void WithoutGnuplot(const std::string& empty_dir, F body) {
  const std::string saved = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
  setenv("PATH", empty_dir.c_str(), 1);
  body();
  setenv("PATH", saved.c_str(), 1);
}

TEST(WritePng, RoundTripsPixels) {
  const std::string path = TestTempDir() + "/image.png";
  at::Tensor rgb = at::zeros({2, 3, 3}, at::kByte);
  rgb[0][0] = at::tensor({255, 0, 0}, at::kByte);
  rgb[0][2] = at::tensor({10, 20, 30}, at::kByte);
  rgb[1][1] = at::tensor({0, 255, 255}, at::kByte);
  ASSERT_TRUE(WritePng(path, rgb).ok());

  const testing::PngHeader header = ReadPngHeader(path);
  EXPECT_TRUE(header.signature_ok);
  EXPECT_EQ(header.width, 3u);
  EXPECT_EQ(header.height, 2u);
  const RgbImage image = ReadPngPixels(path);
  ASSERT_EQ(image.width, 3u);
  EXPECT_EQ(image.At(0, 0), (Colour{255, 0, 0}));
  EXPECT_EQ(image.At(0, 2), (Colour{10, 20, 30}));
  EXPECT_EQ(image.At(1, 1), (Colour{0, 255, 255}));
  EXPECT_EQ(image.At(1, 2), kBlack);
}

TEST(WritePng, WritesANonContiguousImage) {
  const std::string path = TestTempDir() + "/transposed.png";
  at::Tensor rgb = at::zeros({3, 2, 3}, at::kByte);
  rgb[2][0] = at::tensor({1, 2, 3}, at::kByte);
  ASSERT_TRUE(WritePng(path, rgb.transpose(0, 1)).ok());  // [2, 3, 3]: the pixel moves to row 0, column 2
  const RgbImage image = ReadPngPixels(path);
  ASSERT_EQ(image.width, 3u);
  EXPECT_EQ(image.At(0, 2), (Colour{1, 2, 3}));
}

TEST(WritePng, RejectsOtherTypesAndShapes) {
  const std::string dir = TestTempDir();
  EXPECT_EQ(WritePng(dir + "/a.png", at::zeros({2, 2, 3}, at::kFloat)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WritePng(dir + "/b.png", at::zeros({2, 2, 4}, at::kByte)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WritePng(dir + "/c.png", at::zeros({2, 2}, at::kByte)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WritePng(dir + "/d.png", at::Tensor()).code(), absl::StatusCode::kInvalidArgument);
}

TEST(WritePng, NamesTheFileItCannotWrite) {
  const std::string path = TestTempDir() + "/no/such/folder/image.png";
  const absl::Status status = WritePng(path, at::zeros({2, 2, 3}, at::kByte));
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_NE(status.message().find(path), absl::string_view::npos) << status;
}

TEST(OverlaySlice, ChoosesTheSliceWithTheMostForeground) {
  at::Tensor segmentation = at::zeros({4, 4, 5}, at::kLong);
  segmentation.select(2, 1)[0][0] = 2;
  segmentation.select(2, 3).slice(0, 0, 2).fill_(1);  // 8 voxels
  segmentation.select(2, 4).slice(0, 0, 1).fill_(2);  // 4 voxels
  const absl::StatusOr<int64_t> k = OverlaySlice(segmentation);
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(*k, 3);
}

TEST(OverlaySlice, TakesTheMiddleSliceWithoutForeground) {
  const absl::StatusOr<int64_t> k = OverlaySlice(at::zeros({4, 4, 5}, at::kLong));
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(*k, 2);
}

TEST(OverlaySlice, RejectsAnythingButAVolume) {
  EXPECT_EQ(OverlaySlice(at::zeros({4, 4}, at::kLong)).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(OverlayPixel, ShowsIAcrossAndJUpwardsPanelsLeftToRight) {
  const auto origin = OverlayPixel(kI, kJ, 0, 0, 0);
  const auto right = OverlayPixel(kI, kJ, 0, 1, 0);
  const auto up = OverlayPixel(kI, kJ, 0, 0, 1);
  const auto next_panel = OverlayPixel(kI, kJ, 1, 0, 0);
  EXPECT_EQ(right.first, origin.first);
  EXPECT_GT(right.second, origin.second);
  EXPECT_LT(up.first, origin.first);
  EXPECT_EQ(up.second, origin.second);
  EXPECT_EQ(next_panel.first, origin.first);
  EXPECT_GT(next_panel.second, OverlayPixel(kI, kJ, 0, kI - 1, 0).second);
}

TEST(WriteStudyPictures, WritesTheBarChartAndTheOverlay) {
  const std::string dir = TestTempDir() + "/pictures";
  const absl::StatusOr<std::vector<std::string>> written = WriteStudyPictures(PictureFixture(), dir);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, (std::vector<std::string>{"relevance_bars.png", "relevance_overlay.png"}));
  const testing::PngHeader bars = ReadPngHeader(dir + "/relevance_bars.png");
  EXPECT_TRUE(bars.signature_ok);
  EXPECT_GT(bars.width, 0u);
  EXPECT_GT(bars.height, 0u);
  EXPECT_TRUE(ReadPngHeader(dir + "/relevance_overlay.png").signature_ok);
}

TEST(WriteStudyPictures, OverlayShowsRelevanceOutlineAndGreyOnTheLesionSlice) {
  const std::string dir = TestTempDir();
  ASSERT_TRUE(WriteStudyPictures(PictureFixture(), dir).ok());
  const RgbImage image = ReadPngPixels(dir + "/relevance_overlay.png");
  ASSERT_GT(image.width, 0u);
  const auto last = OverlayPixel(kI, kJ, 1, kI - 1, 0);
  ASSERT_GT(image.width, static_cast<uint32_t>(last.second));
  ASSERT_GT(image.height, static_cast<uint32_t>(last.first));

  EXPECT_EQ(PixelOf(image, 0, 7, 6), kRed);     // strong positive relevance inside the lesion
  EXPECT_EQ(PixelOf(image, 1, 2, 2), kBlue);    // strong negative relevance
  EXPECT_EQ(PixelOf(image, 0, 5, 6), kYellow);  // the lesion's border, in both panels
  EXPECT_EQ(PixelOf(image, 1, 9, 4), kYellow);
  EXPECT_TRUE(IsGrey(PixelOf(image, 1, 7, 6))) << "the lesion's inside without relevance is grey";
  EXPECT_TRUE(IsGrey(PixelOf(image, 0, 12, 3))) << "weak relevance is transparent";
  EXPECT_TRUE(IsGrey(PixelOf(image, 0, 12, 9))) << "relevance on another slice must not show";
  EXPECT_TRUE(IsGrey(PixelOf(image, 0, 3, 3))) << "the lesion of another slice must not show";
  // T1's window runs from its 1st to its 99th percentile: its minimum is black, its maximum white.
  EXPECT_EQ(PixelOf(image, 0, 0, 0), kBlack);
  EXPECT_EQ(PixelOf(image, 0, kI - 1, kJ - 1), kWhite);
}

TEST(WriteStudyPictures, OverlayHasTheSequenceNamesAboveThePanels) {
  const std::string dir = TestTempDir();
  ASSERT_TRUE(WriteStudyPictures(PictureFixture(), dir).ok());
  const RgbImage image = ReadPngPixels(dir + "/relevance_overlay.png");
  ASSERT_GT(image.width, 0u);
  const int64_t scale = OverlayPixel(kI, kJ, 0, 0, 0).first - OverlayPixel(kI, kJ, 0, 0, 1).first;
  const int64_t panels_top = OverlayPixel(kI, kJ, 0, 0, kJ - 1).first - scale / 2;  // the top voxel row's square
  ASSERT_GT(panels_top, 0);
  int lit = 0;
  for (int64_t row = 0; row < panels_top; ++row) {
    for (int64_t column = 0; column < image.width; ++column) lit += image.At(row, column) != kBlack;
  }
  EXPECT_GT(lit, 20) << "no text drawn above the panels";
}

TEST(WriteStudyPictures, RejectsShapesThatDoNotFit) {
  const std::string dir = TestTempDir();
  StudyPictures pictures = PictureFixture();
  pictures.relevance = at::zeros({2, kI, kJ, kK - 1}, at::kFloat);
  EXPECT_EQ(WriteStudyPictures(pictures, dir).status().code(), absl::StatusCode::kInvalidArgument);
  pictures = PictureFixture();
  pictures.segmentation = at::zeros({kI, kJ}, at::kLong);
  EXPECT_EQ(WriteStudyPictures(pictures, dir).status().code(), absl::StatusCode::kInvalidArgument);
  pictures = PictureFixture();
  pictures.sequences = {"T1"};
  EXPECT_EQ(WriteStudyPictures(pictures, dir).status().code(), absl::StatusCode::kInvalidArgument);
  pictures = PictureFixture();
  pictures.class_shares = {{"lesion", {1.0}}};
  EXPECT_EQ(WriteStudyPictures(pictures, dir).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WriteStudyPictures, SaysWhenGnuplotIsMissing) {
  const std::string dir = TestTempDir();
  absl::StatusOr<std::vector<std::string>> written;
  WithoutGnuplot(dir, [&] { written = WriteStudyPictures(PictureFixture(), dir + "/out"); });
  EXPECT_EQ(written.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(written.status().message().find("relevance_bars.png"), absl::string_view::npos) << written.status();
  EXPECT_NE(written.status().message().find("gnuplot-nox"), absl::string_view::npos) << written.status();
}

TEST(RunGnuplot, FailureNamesTheFileAndGnuplotsError) {
  const std::string output = TestTempDir() + "/chart.png";
  const absl::Status status = RunGnuplot(GnuplotPngHeader(output, 100, 100) + "plot $nosuchblock using 1:2\n", output);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_NE(status.message().find(output), absl::string_view::npos) << status;
  EXPECT_NE(status.message().find("exit status"), absl::string_view::npos) << status;
  EXPECT_NE(status.message().find("line 3"), absl::string_view::npos) << status;  // gnuplot's own error line
}

TEST(RunGnuplot, FailsWhenNoPictureIsWritten) {
  const std::string output = TestTempDir() + "/chart.png";
  EXPECT_EQ(RunGnuplot("print 1\n", output).code(), absl::StatusCode::kInternal);
}

TEST(GnuplotQuote, DoublesSingleQuotes) {
  EXPECT_EQ(GnuplotQuote("it's"), "'it''s'");
  EXPECT_EQ(GnuplotDataString("a\"b"), "\"a'b\"");
}

}  // namespace
}  // namespace segrel::report
