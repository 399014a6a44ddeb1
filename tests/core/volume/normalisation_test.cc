// Intensity normalisation as bundles declare it.
#include "core/volume/normalisation.h"

#include <gtest/gtest.h>

#include <cmath>

namespace segrel::volume {
namespace {

TEST(Normalisation, ZScoreOverNonZeroVoxelsLeavesTheRestZero) {
  const at::Tensor volume = at::tensor({0.0f, 2.0f, 4.0f, 0.0f, 6.0f, 8.0f}).view({1, 2, 3});
  const at::Tensor normalised = Normalise(volume, Normalisation::kZScoreNonzero);
  // Non-zero values 2, 4, 6, 8: mean 5, population standard deviation sqrt(5).
  const double sd = std::sqrt(5.0);
  const std::vector<double> expected = {0.0, -3 / sd, -1 / sd, 0.0, 1 / sd, 3 / sd};
  for (int64_t i = 0; i < 6; ++i) EXPECT_NEAR(normalised.flatten()[i].item<double>(), expected[i], 1e-6);
  EXPECT_EQ(normalised.scalar_type(), at::kFloat);
}

TEST(Normalisation, NoneKeepsTheValues) {
  const at::Tensor volume = at::randn({3, 4, 5});
  EXPECT_TRUE(at::equal(Normalise(volume, Normalisation::kNone), volume));
}

TEST(Normalisation, ConstantOrEmptyForegroundBecomesZero) {
  EXPECT_TRUE(at::equal(Normalise(at::zeros({2, 2, 2}), Normalisation::kZScoreNonzero), at::zeros({2, 2, 2})));
  EXPECT_TRUE(at::equal(Normalise(at::full({2, 2, 2}, 3.0), Normalisation::kZScoreNonzero), at::zeros({2, 2, 2})));
}

TEST(Normalisation, ParsesTheBundleNames) {
  EXPECT_EQ(*ParseNormalisation("none"), Normalisation::kNone);
  EXPECT_EQ(*ParseNormalisation("zscore-nonzero"), Normalisation::kZScoreNonzero);
  EXPECT_EQ(ParseNormalisation("minmax").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace segrel::volume
