// Region choice for Eq. 2: the paper's balanced regions (section 2.3), user masks, seeded sampling.
#include "core/analysis/regions.h"

#include <gtest/gtest.h>

#include <set>

#include "core/analysis/explanation.h"

namespace segrel::analysis {
namespace {

// Logits [1, K, 6, 6, 6] whose argmax is `labels` (int64 [6, 6, 6]).
at::Tensor LogitsFor(const at::Tensor& labels, int64_t classes) {
  return at::one_hot(labels, classes).permute({3, 0, 1, 2}).unsqueeze(0).to(at::kFloat) * 2.0 - 1.0;
}

at::Tensor Labels() {
  at::Tensor labels = at::zeros({6, 6, 6}, at::kLong);
  labels.slice(0, 0, 2).fill_(1);  // 72 voxels of class 1
  labels.slice(0, 2, 3).fill_(2);  // 36 voxels of class 2
  return labels;                   // 108 voxels of class 0
}

int64_t Count(const at::Tensor& mask) { return mask.sum().item<int64_t>(); }

TEST(SampleWithoutReplacement, DistinctSortedInRangeAndReproducible) {
  const std::vector<int64_t> a = SampleWithoutReplacement(1000, 100, 7);
  const std::vector<int64_t> b = SampleWithoutReplacement(1000, 100, 7);
  const std::vector<int64_t> c = SampleWithoutReplacement(1000, 100, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 100u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_GE(a.front(), 0);
  EXPECT_LT(a.back(), 1000);
  EXPECT_EQ(SampleWithoutReplacement(5, 5, 1), (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

// Every element is drawn with probability count / population: over 2,000 seeds each of 10 elements is drawn
// 2,000 * 3 / 10 = 600 times on average (binomial sd ~20); 100 is five standard deviations.
TEST(SampleWithoutReplacement, IsUniform) {
  std::vector<int> hits(10, 0);
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    for (int64_t i : SampleWithoutReplacement(10, 3, seed)) ++hits[i];
  }
  for (int h : hits) EXPECT_NEAR(h, 600, 100);
}

TEST(BalancedRegions, BackgroundAsLargeAsAllForegroundTogether) {
  const at::Tensor labels = Labels();
  const at::Tensor logits = LogitsFor(labels, 3);
  const at::Tensor normalisers = at::ones_like(logits);
  normalisers[0][1][0][0][0] = 0.0;  // one class-1 voxel cannot be normalised
  const BalancedRegions regions = ChooseBalancedRegions(Segment(logits), normalisers, LayoutOf(logits), {});
  ASSERT_EQ(regions.choices.size(), 3u);
  EXPECT_EQ(regions.choices[0].region.class_index, 0);
  EXPECT_EQ(Count(regions.choices[1].region.mask), 71);
  EXPECT_EQ(regions.choices[1].excluded_voxels, 1);
  EXPECT_EQ(Count(regions.choices[2].region.mask), 36);
  EXPECT_EQ(Count(regions.choices[0].region.mask), 71 + 36);
  EXPECT_EQ(regions.choices[0].predicted_voxels, 108);
  // The background region lies in the predicted background.
  EXPECT_EQ(Count(regions.choices[0].region.mask & (labels != 0)), 0);
  EXPECT_TRUE(regions.notes.empty());
}

TEST(BalancedRegions, OnlyBackgroundPredictedExplainsASampleOfIt) {
  const at::Tensor labels = at::zeros({6, 6, 6}, at::kLong);
  const at::Tensor logits = LogitsFor(labels, 2);
  BalancedRegionsOptions options;
  options.background_only_voxels = 50;
  const BalancedRegions regions =
      ChooseBalancedRegions(Segment(logits), at::ones_like(logits), LayoutOf(logits), options);
  EXPECT_EQ(Count(regions.choices[0].region.mask), 50);
  EXPECT_EQ(Count(regions.choices[1].region.mask), 0);
  ASSERT_EQ(regions.notes.size(), 1u);
  EXPECT_NE(regions.notes[0].find("no foreground"), std::string::npos);
}

TEST(BalancedRegions, FewerBackgroundThanForegroundTakesAllOfIt) {
  at::Tensor labels = at::ones({6, 6, 6}, at::kLong);
  labels[0][0][0] = 0;
  labels[0][0][1] = 0;
  const at::Tensor logits = LogitsFor(labels, 2);
  const BalancedRegions regions = ChooseBalancedRegions(Segment(logits), at::ones_like(logits), LayoutOf(logits), {});
  EXPECT_EQ(Count(regions.choices[0].region.mask), 2);
  ASSERT_EQ(regions.notes.size(), 1u);
}

// A network with one output channel (sigmoid): class 1 where the logit is positive; both classes explain that
// channel.
TEST(BalancedRegions, OneChannelNetworkExplainsItsChannelForBothClasses) {
  at::Tensor logits = at::full({1, 1, 6, 6, 6}, -1.0);
  logits[0][0].slice(0, 0, 1).fill_(2.0);  // 36 voxels of class 1
  const ClassLayout layout = LayoutOf(logits);
  EXPECT_EQ(layout.num_classes, 2);
  const at::Tensor segmentation = Segment(logits);
  EXPECT_EQ(Count(segmentation == 1), 36);
  const BalancedRegions regions = ChooseBalancedRegions(segmentation, at::ones_like(logits), layout, {});
  EXPECT_EQ(regions.choices[0].region.channel, 0);
  EXPECT_EQ(regions.choices[1].region.channel, 0);
  EXPECT_EQ(Count(regions.choices[0].region.mask), 36);
}

TEST(MaskRegions, UsesEligibleMaskVoxelsAndCountsTheOthers) {
  const at::Tensor labels = Labels();
  const at::Tensor logits = LogitsFor(labels, 3);
  at::Tensor normalisers = at::ones_like(logits);
  normalisers[0][2].slice(0, 5, 6).fill_(1e-9);  // below tau
  const at::Tensor mask = at::zeros({6, 6, 6}, at::kByte);
  mask.slice(0, 4, 6).fill_(3);  // any non-zero value is in the region
  absl::StatusOr<std::vector<RegionChoice>> choices =
      MaskRegions({{2, mask}}, Segment(logits), normalisers, LayoutOf(logits), 1e-6);
  ASSERT_TRUE(choices.ok()) << choices.status();
  ASSERT_EQ(choices->size(), 1u);
  EXPECT_EQ(Count((*choices)[0].region.mask), 36);
  EXPECT_EQ((*choices)[0].excluded_voxels, 36);
  EXPECT_EQ((*choices)[0].kind, "mask");
}

TEST(MaskRegions, RefusesUnknownClassesAndOtherShapes) {
  const at::Tensor logits = LogitsFor(Labels(), 3);
  absl::StatusOr<std::vector<RegionChoice>> unknown =
      MaskRegions({{3, at::ones({6, 6, 6})}}, Segment(logits), at::ones_like(logits), LayoutOf(logits), 1e-6);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::vector<RegionChoice>> shape =
      MaskRegions({{1, at::ones({6, 6, 5})}}, Segment(logits), at::ones_like(logits), LayoutOf(logits), 1e-6);
  ASSERT_FALSE(shape.ok());
  EXPECT_EQ(shape.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Shares, SumToOneAndKeepSigns) {
  const std::vector<double> shares = Shares({3.0, -1.0, 2.0});
  EXPECT_DOUBLE_EQ(shares[0], 0.75);
  EXPECT_DOUBLE_EQ(shares[1], -0.25);
  EXPECT_DOUBLE_EQ(shares[2], 0.5);
  EXPECT_EQ(Shares({0.0, 0.0}), (std::vector<double>{0.0, 0.0}));
}

}  // namespace
}  // namespace segrel::analysis
