// Multi-sequence DICOM studies: ProstateX-0218 and -0000 mapped with tools/series_rules/prostatex.json (expected
// series written out by hand from their tags) and assembled onto the reference grid; the resampled voxels are
// checked against dcm2niix's volumes interpolated here by a separate trilinear formula.
#include "core/io/dicom_study.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/io/nifti.h"
#include "tests/core/io/dicom_test_util.h"
#include "tests/test_util.h"

namespace segrel::io {
namespace {

namespace fs = std::filesystem;
using segrel::testing::ProstateXSeries;
using segrel::testing::RunDcm2niix;
using segrel::testing::SharedDataDir;
using segrel::testing::TestTempDir;

const std::vector<std::string> kProstateSequences = {"T2", "ADC", "DCE1", "DCE2", "DCE3", "DCE4", "DCE5", "DCE6"};

std::string CaseDir(const std::string& case_id) {
  return (fs::path(SharedDataDir()) / "prostatex-dicom" / case_id).string();
}

SeriesRules ProstateRules() {
  absl::StatusOr<SeriesRules> rules =
      ReadSeriesRules(std::string(SEGREL_SOURCE_DIR) + "/tools/series_rules/prostatex.json");
  EXPECT_TRUE(rules.ok()) << rules.status();
  return rules.ok() ? *std::move(rules) : SeriesRules{};
}

std::vector<DicomSeriesInfo> Infos(const DicomFolder& folder) {
  std::vector<DicomSeriesInfo> infos;
  for (const DicomSeries& series : folder.series) infos.push_back(series.info);
  return infos;
}

std::map<std::string, int64_t> ChosenNumbers(const SequenceMapping& mapping, const DicomFolder& folder) {
  std::map<std::string, int64_t> numbers;
  for (const SequenceMatch& match : mapping.matches) {
    if (match.chosen) numbers[match.sequence] = *folder.series[*match.chosen].info.series_number;
  }
  return numbers;
}

TEST(DicomStudy, ProstateXRulesMapT2AdcAndTheSixContrastPhases) {
  SKIP_WITHOUT_SHARED_DATA();
  const absl::StatusOr<DicomFolder> folder = ReadDicomFolder(CaseDir("ProstateX-0218"));
  ASSERT_TRUE(folder.ok()) << folder.status();
  const SeriesRules rules = ProstateRules();
  const SequenceMapping mapping = MapSeries(rules, Infos(*folder));
  EXPECT_TRUE(mapping.Complete()) << CheckMapping(mapping, rules, Infos(*folder));
  // Series 5 t2_tse_tra_320_p2, 9 ..._ADC; the TWIST phases TT = 8.0, 20.6, 62.8, 121.8, 197.7, 298.9 s.
  const std::map<std::string, int64_t> expected = {{"T2", 5},    {"ADC", 9},   {"DCE1", 27}, {"DCE2", 30},
                                                   {"DCE3", 40}, {"DCE4", 54}, {"DCE5", 72}, {"DCE6", 96}};
  EXPECT_EQ(ChosenNumbers(mapping, *folder), expected);
  EXPECT_EQ(mapping.Find("DCE3")->candidates.size(), 6u);
}

TEST(DicomStudy, ProstateXWithoutContrastPhasesReportsThemMissing) {
  SKIP_WITHOUT_SHARED_DATA();
  const absl::StatusOr<DicomFolder> folder = ReadDicomFolder(CaseDir("ProstateX-0000"));
  ASSERT_TRUE(folder.ok()) << folder.status();
  const SeriesRules rules = ProstateRules();
  const SequenceMapping mapping = MapSeries(rules, Infos(*folder));
  // t2_tse_tra is series 4 (sag 3 and cor 5 do not match), the ADC map series 7.
  EXPECT_EQ(ChosenNumbers(mapping, *folder), (std::map<std::string, int64_t>{{"T2", 4}, {"ADC", 7}}));
  EXPECT_EQ(mapping.missing, (std::vector<std::string>{"DCE1", "DCE2", "DCE3", "DCE4", "DCE5", "DCE6"}));
  const absl::StatusOr<AssembledStudy> study = AssembleStudy(*folder, rules, mapping, kProstateSequences, "T2");
  EXPECT_EQ(study.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(study.status().message().find("no series for DCE1"), absl::string_view::npos) << study.status();
  EXPECT_NE(study.status().message().find("found 7 series: 3 t2_tse_sag; 4 t2_tse_tra"), absl::string_view::npos)
      << study.status();
}

// dcm2niix stores affines as float32 (~1e-5 mm): continuous indices computed from them are off by up to ~1e-4
// voxel. Indices this close to a voxel centre are taken as on it (ProstateX's series share slice positions).
constexpr double kIndexSnap = 1e-3;

// Trilinear interpolation of `volume` at world point `world` (RAS mm), or nullopt outside the voxel centres.
std::optional<double> Trilinear(const volume::Volume& volume, const at::Tensor& world) {
  const at::Tensor affine = at::empty({4, 4}, at::kDouble);
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) affine[r][c] = volume.affine[r][c];
  }
  const at::Tensor index = at::linalg_solve(affine, world);
  std::array<int64_t, 3> low{};
  std::array<double, 3> weight{};
  for (int a = 0; a < 3; ++a) {
    double x = index[a].item<double>();
    if (std::abs(x - std::round(x)) < kIndexSnap) x = std::round(x);
    const int64_t n = volume.data.size(a);
    if (x < 0 || x > n - 1) return std::nullopt;
    low[a] = std::min<int64_t>(static_cast<int64_t>(std::floor(std::max(x, 0.0))), n - 2);
    weight[a] = x - static_cast<double>(low[a]);
  }
  double value = 0;
  for (int di = 0; di < 2; ++di) {
    for (int dj = 0; dj < 2; ++dj) {
      for (int dk = 0; dk < 2; ++dk) {
        const double w =
            (di ? weight[0] : 1 - weight[0]) * (dj ? weight[1] : 1 - weight[1]) * (dk ? weight[2] : 1 - weight[2]);
        value += w * volume.data[low[0] + di][low[1] + dj][low[2] + dk].item<double>();
      }
    }
  }
  return value;
}

volume::Volume Dcm2niixVolume(int series_number, const std::string& out_dir) {
  const std::vector<std::string> written =
      RunDcm2niix(ProstateXSeries("ProstateX-0218", series_number), out_dir, "-x i -b n -z n -f reference");
  EXPECT_EQ(written.size(), 1u);
  absl::StatusOr<volume::Volume> read = ReadNifti(written.front());
  EXPECT_TRUE(read.ok()) << read.status();
  return *std::move(read);
}

TEST(DicomStudy, AssemblesEverySequenceOntoTheT2GridAsDcm2niixVolumesInterpolateThere) {
  SKIP_WITHOUT_SHARED_DATA();
  const absl::StatusOr<AssembledStudy> study =
      ReadDicomStudy(CaseDir("ProstateX-0218"), ProstateRules(), kProstateSequences, "T2");
  ASSERT_TRUE(study.ok()) << study.status();
  ASSERT_EQ(study->study.names, kProstateSequences);
  ASSERT_EQ(study->sequences.size(), 8u);
  const std::string temp = TestTempDir();
  const volume::Volume t2 = Dcm2niixVolume(5, temp + "/t2");
  for (const volume::Volume& v : study->study.volumes) {
    EXPECT_EQ(v.data.sizes(), at::IntArrayRef({320, 320, 20}));
    EXPECT_TRUE(volume::SameGrid(v, t2)) << v.source;
  }
  EXPECT_TRUE(at::equal(study->study.volumes[0].data, t2.data));
  EXPECT_FALSE(study->sequences[0].resampled);
  EXPECT_EQ(study->sequences[0].displacement_mm, 0.0);
  for (size_t s = 1; s < 8; ++s) {
    EXPECT_TRUE(study->sequences[s].resampled) << kProstateSequences[s];
    // ADC (160x130 of 2 mm) and DCE (160x160 of 1.625 mm) cover other fields of view than T2 (320x320 of 0.625 mm).
    EXPECT_GT(study->sequences[s].displacement_mm, 1.0) << kProstateSequences[s];
    EXPECT_GT(study->sequences[s].inside_fraction, 0.5) << kProstateSequences[s];
    EXPECT_LE(study->sequences[s].inside_fraction, 1.0) << kProstateSequences[s];
  }
  EXPECT_EQ(study->sequences[2].series, "27 Twist_dynamic_Wip576_TT=8.0s");
  EXPECT_EQ(study->sequences[2].how, "match 0 (from 0) of 6");

  // ADC (series 9) and the first phase (series 27) at random T2 voxels against dcm2niix's volumes interpolated
  // here. The indices differ by up to ~1e-4 voxel (float32 affines, above); times gradients up to ~500 per voxel
  // that allows 0.05, plus 1e-4 relative for float32 values (ADC values are ~1000, so a wrong voxel shows).
  const std::map<size_t, int> checked = {{1, 9}, {2, 27}};
  std::mt19937 random(3);
  for (const auto& [sequence, series_number] : checked) {
    const volume::Volume source = Dcm2niixVolume(series_number, temp + "/" + std::to_string(series_number));
    const at::Tensor resampled = study->study.volumes[sequence].data;
    int inside = 0;
    for (int n = 0; n < 300; ++n) {
      const int64_t i = random() % 320, j = random() % 320, k = random() % 20;
      const at::Tensor world = at::empty({4}, at::kDouble);
      for (int r = 0; r < 4; ++r) {
        world[r] = t2.affine[r][0] * i + t2.affine[r][1] * j + t2.affine[r][2] * k + t2.affine[r][3];
      }
      const std::optional<double> expected = Trilinear(source, world);
      const double ours = resampled[i][j][k].item<double>();
      if (!expected.has_value()) {
        EXPECT_EQ(ours, 0.0) << "outside voxel " << i << " " << j << " " << k;
        continue;
      }
      ++inside;
      EXPECT_NEAR(ours, *expected, 0.05 + 1e-4 * std::abs(*expected))
          << kProstateSequences[sequence] << " at T2 voxel " << i << " " << j << " " << k;
    }
    EXPECT_GT(inside, 150) << kProstateSequences[sequence];
  }
}

TEST(DicomStudy, SequencesOnTheReferenceGridAreNotResampled) {
  SKIP_WITHOUT_SHARED_DATA();
  const absl::StatusOr<AssembledStudy> study =
      ReadDicomStudy(CaseDir("ProstateX-0218"), ProstateRules(), {"DCE1", "DCE6", "T2"}, "DCE1");
  ASSERT_TRUE(study.ok()) << study.status();
  EXPECT_FALSE(study->sequences[0].resampled);
  EXPECT_FALSE(study->sequences[1].resampled);  // every phase shares one 160x160x20 grid
  EXPECT_EQ(study->sequences[1].displacement_mm, 0.0);
  EXPECT_TRUE(study->sequences[2].resampled);
  const volume::Volume dce6 = Dcm2niixVolume(96, TestTempDir());
  EXPECT_TRUE(at::equal(study->study.volumes[1].data, dce6.data));
  const std::vector<std::string> lines = DescribeAssembly(*study);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "DCE1 <- series 27 Twist_dynamic_Wip576_TT=8.0s (match 0 (from 0) of 6): reference grid");
  EXPECT_EQ(lines[1],
            "DCE6 <- series 96 Twist_dynamic_Wip576_TT=298.9s (match 5 (from 0) of 6): on the reference grid");
  EXPECT_EQ(lines[2].rfind("T2 <- series 5 t2_tse_tra_320_p2: resampled onto the reference grid (fields of view", 0),
            0u)
      << lines[2];
}

TEST(DicomStudy, FourDimensionalSeriesCannotBeASequence) {
  SKIP_WITHOUT_SHARED_DATA();
  const absl::StatusOr<SeriesRules> rules = ParseSeriesRules(
      R"({"sequences": [{"name": "DWI", "conditions": {"SeriesDescription": "_511b$"}}]})", "dwi rules");
  ASSERT_TRUE(rules.ok()) << rules.status();
  const absl::StatusOr<AssembledStudy> study = ReadDicomStudy(CaseDir("ProstateX-0218"), *rules, {"DWI"}, "DWI");
  EXPECT_EQ(study.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(study.status().message().find("is mapped to DWI but holds 4 volumes"), absl::string_view::npos)
      << study.status();
}

}  // namespace
}  // namespace segrel::io
