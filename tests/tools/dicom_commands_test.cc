// `segrel inspect`, `segrel convert` and `segrel analyze --study DICOM_DIR`, the real binary end to end:
// convert's files against dcm2niix's conversion of the same series (affine to 1e-3 mm, values exactly), inspect's
// lines against the series' tags, analyze on a DICOM study against analyze on the same voxels given as NIfTI,
// and one-line errors for bad arguments.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/io/nifti.h"
#include "tests/core/io/dicom_test_util.h"
#include "tests/test_util.h"
#include "tests/tools/dicom_study_writer.h"
#include "tests/tools/run_segrel.h"

namespace segrel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using segrel::testing::FixturePath;
using segrel::testing::SharedDataDir;
using segrel::testing::ShellQuote;
using segrel::testing::TestTempDir;

using segrel::testing::ReadFile;
using segrel::testing::RunResult;
using segrel::testing::RunSegrel;

std::string ProstateCase() { return (fs::path(SharedDataDir()) / "prostatex-dicom" / "ProstateX-0218").string(); }

std::string ProstateRules() { return std::string(SEGREL_SOURCE_DIR) + "/tools/series_rules/prostatex.json"; }

double MaxAffineDifference(const volume::Affine& a, const volume::Affine& b) {
  double difference = 0;
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) difference = std::max(difference, std::abs(a[r][c] - b[r][c]));
  }
  return difference;
}

// The one line of `text` starting with `prefix` (after leading spaces), or "".
std::string LineStartingWith(const std::string& text, const std::string& prefix) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    const size_t start = line.find_first_not_of(' ');
    if (start != absl::string_view::npos && absl::StartsWith(line.substr(start), prefix)) return std::string(line);
  }
  return "";
}

TEST(Convert, EverySeriesOfProstateX0218AgreesWithDcm2niix) {
  SKIP_WITHOUT_SHARED_DATA();
  const std::string out = TestTempDir();
  const RunResult run = RunSegrel(absl::StrCat("convert ", ShellQuote(ProstateCase()), " --out ", out, "/segrel"));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("14 series written to"), std::string::npos) << run.out;
  EXPECT_EQ(run.out.find("ProstateX-0218"), std::string::npos) << "the patient's folder name is printed";
  int compared = 0;
  for (const std::string& series_dir : segrel::testing::AllProstateXSeries()) {
    if (series_dir.find("ProstateX-0218") == std::string::npos) continue;
    SCOPED_TRACE(series_dir);
    // "5.000000-t2tsetra320p2-09906" is series 5: its file starts with "5_".
    const std::string folder = fs::path(series_dir).filename().string();
    const std::string number = folder.substr(0, folder.find('.'));
    std::vector<std::string> ours;
    for (const std::string& file : segrel::testing::FilesIn(out + "/segrel")) {
      if (absl::StartsWith(fs::path(file).filename().string(), number + "_")) ours.push_back(file);
    }
    ASSERT_EQ(ours.size(), 1u) << "files for series " << number;
    EXPECT_TRUE(absl::EndsWith(ours.front(), ".nii.gz"));
    const std::vector<std::string> reference = segrel::testing::RunDcm2niix(
        series_dir, absl::StrCat(out, "/dcm2niix/", number), "-x i -b n -z n -f reference");
    ASSERT_EQ(reference.size(), 1u);
    const absl::StatusOr<volume::Volume> mine = io::ReadNifti(ours.front());
    const absl::StatusOr<volume::Volume> theirs = io::ReadNifti(reference.front());
    ASSERT_TRUE(mine.ok()) << mine.status();
    ASSERT_TRUE(theirs.ok()) << theirs.status();
    ASSERT_EQ(mine->data.sizes(), theirs->data.sizes());
    EXPECT_LE(MaxAffineDifference(mine->affine, theirs->affine), 1e-3);
    EXPECT_TRUE(at::equal(mine->data, theirs->data));
    ++compared;
  }
  EXPECT_EQ(compared, 14);
  // The description is sanitised: "Twist_dynamic_Wip576_TT=8.0s" has '=' replaced.
  EXPECT_TRUE(fs::exists(out + "/segrel/27_Twist_dynamic_Wip576_TT_8.0s.nii.gz"));
  EXPECT_TRUE(fs::exists(out + "/segrel/5_t2_tse_tra_320_p2.nii.gz"));
  EXPECT_NE(run.out.find("wrote 5_t2_tse_tra_320_p2.nii.gz (320x320x20, 0.625x0.625x3.6 mm, int16)"), std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("wrote 8_ep2d-advdiff-3Scan-4bval_spair_511b.nii.gz (160x130x20x4"), std::string::npos)
      << run.out;
}

TEST(Inspect, ListsProstateXSeriesWithTheirSequences) {
  SKIP_WITHOUT_SHARED_DATA();
  const RunResult run = RunSegrel(absl::StrCat("inspect ", ShellQuote(ProstateCase()), " --rules ", ProstateRules()));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("DICOM folder: 340 files, 14 series read, 0 failed, 0 files skipped"), std::string::npos)
      << run.out;
  // Series 5: 320 columns x 320 rows x 20 slices of 0.625 x 0.625 x 3.6 mm.
  const std::string t2 = LineStartingWith(run.out, "5  t2_tse_tra_320_p2");
  EXPECT_NE(t2.find(" T2 "), std::string::npos) << t2;
  EXPECT_NE(t2.find("320x320x20"), std::string::npos) << t2;
  EXPECT_NE(t2.find("0.625x0.625x3.6"), std::string::npos) << t2;
  EXPECT_NE(t2.find("Little Endian Explicit"), std::string::npos) << t2;
  const std::string adc = LineStartingWith(run.out, "9  ep2d-advdiff-3Scan-4bval_spair_511b_ADC");
  EXPECT_NE(adc.find(" ADC "), std::string::npos) << adc;
  EXPECT_NE(adc.find("160x130x20"), std::string::npos) << adc;
  const std::string dwi = LineStartingWith(run.out, "8  ep2d-advdiff-3Scan-4bval_spair_511b ");
  EXPECT_NE(dwi.find("160x130x20x4"), std::string::npos) << dwi;
  EXPECT_NE(dwi.find(" - "), std::string::npos) << dwi;  // mapped to no sequence
  EXPECT_NE(LineStartingWith(run.out, "96  Twist_dynamic_Wip576_TT=298.9s").find(" DCE6 "), std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("sequences (complete, rules "), std::string::npos) << run.out;
  EXPECT_NE(LineStartingWith(run.out, "DCE3").find("series 40 Twist_dynamic_Wip576_TT=62.8s (match 2 (from 0) of 6)"),
            std::string::npos)
      << run.out;
  EXPECT_EQ(run.out.find("ProstateX-0218"), std::string::npos) << "the patient's folder name is printed";
}

TEST(Inspect, OrientationCodesAgreeWithNibabelOnDcm2niixOutput) {
  SKIP_WITHOUT_SHARED_DATA();
  // nibabel 5.0's aff2axcodes of dcm2niix's NIfTI (dcm2niix -x i) of series 5, 9 and 27 is ('L', 'A', 'S'),
  // written here by hand.
  const RunResult run = RunSegrel(absl::StrCat("inspect ", ShellQuote(ProstateCase())));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  for (const char* prefix :
       {"5  t2_tse_tra_320_p2", "9  ep2d-advdiff-3Scan-4bval_spair_511b_ADC", "27  Twist_dynamic_Wip576_TT=8.0s"}) {
    const std::string line = LineStartingWith(run.out, prefix);
    EXPECT_NE(line.find(" LAS "), std::string::npos) << line;
  }
}

TEST(Inspect, NiftiFolderAndFile) {
  const RunResult folder =
      RunSegrel(absl::StrCat("inspect ", FixturePath("study"), " --model ", FixturePath("bundle")));
  ASSERT_EQ(folder.exit_code, 0) << folder.err;
  // The fixture study: 8x8x8 voxels of 1.5 x 1.5 x 2 mm, x flipped (LAS), per make_fixtures.py.
  const std::string flair = LineStartingWith(folder.out, "-  FLAIR.nii.gz");
  EXPECT_NE(flair.find(" FLAIR "), std::string::npos) << flair;  // the bundle's sequence
  EXPECT_NE(flair.find("8x8x8"), std::string::npos) << flair;
  EXPECT_NE(flair.find("1.5x1.5x2"), std::string::npos) << flair;
  EXPECT_NE(flair.find("LAS"), std::string::npos) << flair;
  const RunResult file = RunSegrel(absl::StrCat("inspect ", FixturePath("study/T1.nii.gz")));
  ASSERT_EQ(file.exit_code, 0) << file.err;
  EXPECT_NE(file.out.find("NIfTI: 1 file"), std::string::npos) << file.out;
}

TEST(DicomCommands, BadArgumentsGiveOneLineErrors) {
  const std::string temp = TestTempDir();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"inspect", "segrel inspect: error: give the PATH to inspect"},
      {"inspect /nonexistent/folder", "segrel inspect: error: /nonexistent/folder: no such file or folder"},
      {"inspect a b", "segrel inspect: error: give one PATH, not 2"},
      {"inspect . --rules a.json --model b", "segrel inspect: error: give --rules or --model, not both"},
      {"inspect . --colour red", "segrel inspect: error: unknown option --colour"},
      {absl::StrCat("inspect ", temp, " --rules /nonexistent/rules.json"),
       "segrel inspect: error: /nonexistent/rules.json: cannot read the series rules file"},
      {"convert", "segrel convert: error: give the DICOM_DIR to convert"},
      {absl::StrCat("convert ", temp), "segrel convert: error: --out DIR is required"},
      {absl::StrCat("convert ", temp, " --out ", temp, "/out"), "segrel convert: error: "},
      {"convert /nonexistent/dicom --out x", "segrel convert: error: /nonexistent/dicom: no such folder"},
  };
  for (const auto& [arguments, expected] : cases) {
    const RunResult run = RunSegrel(arguments);
    EXPECT_EQ(run.exit_code, 1) << arguments;
    EXPECT_TRUE(absl::StartsWith(run.err, expected)) << arguments << ": " << run.err;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << arguments << ": " << run.err;
  }
}

// --- segrel analyze on a DICOM study ---

const std::vector<std::string> kSequences = {"T1", "T2", "FLAIR"};

using segrel::testing::BundleWithRules;
using segrel::testing::WriteStudy;

TEST(AnalyzeDicom, SameResultAsTheSameVoxelsGivenAsNifti) {
  const std::string temp = TestTempDir();
  const std::string bundle = BundleWithRules(temp + "/bundle");
  const std::map<std::string, at::Tensor> voxels = WriteStudy(temp + "/dicom", /*t1_on_other_grid=*/false);
  // The same (quantised) voxels as NIfTI on the fixture's grid.
  const absl::StatusOr<volume::Volume> grid = io::ReadNifti(FixturePath("study/FLAIR.nii.gz"));
  ASSERT_TRUE(grid.ok());
  fs::create_directories(temp + "/nifti");
  std::string inputs;
  for (const auto& [name, data] : voxels) {
    const std::string path = absl::StrCat(temp, "/nifti/", name, ".nii.gz");
    ASSERT_TRUE(io::WriteNifti(path, data, io::NiftiDataType::kFloat32, *grid).ok());
    absl::StrAppend(&inputs, " --input ", name, "=", path);
  }

  const RunResult dicom = RunSegrel(
      absl::StrCat("analyze --model ", bundle, " --study ", temp, "/dicom --no-pictures --out ", temp, "/from_dicom"));
  ASSERT_EQ(dicom.exit_code, 0) << dicom.err;
  const RunResult nifti =
      RunSegrel(absl::StrCat("analyze --model ", bundle, inputs, " --no-pictures --out ", temp, "/from_nifti"));
  ASSERT_EQ(nifti.exit_code, 0) << nifti.err;

  const json a = json::parse(ReadFile(temp + "/from_dicom/relevance.json"));
  const json b = json::parse(ReadFile(temp + "/from_nifti/relevance.json"));
  // Same voxels, same channels, same code after reading: bit-for-bit the same numbers.
  EXPECT_EQ(a["sequence_relevance_raw"], b["sequence_relevance_raw"]);
  EXPECT_EQ(a["classes"], b["classes"]);
  const absl::StatusOr<volume::Volume> seg_dicom = io::ReadNifti(temp + "/from_dicom/segmentation.nii.gz");
  const absl::StatusOr<volume::Volume> seg_nifti = io::ReadNifti(temp + "/from_nifti/segmentation.nii.gz");
  ASSERT_TRUE(seg_dicom.ok() && seg_nifti.ok());
  EXPECT_TRUE(at::equal(seg_dicom->data, seg_nifti->data));
  // The segmentation lies on the reference (FLAIR) series' grid.
  segrel::testing::SeriesToWrite flair;
  flair.voxels = voxels.at("FLAIR");
  flair.origin = {-20, 10, 30};
  flair.spacing = {1.5, 1.5, 2};
  EXPECT_LE(MaxAffineDifference(seg_dicom->affine, segrel::testing::ExpectedAffine(flair)), 1e-4);

  EXPECT_NE(dicom.out.find("DICOM series used:"), std::string::npos) << dicom.out;
  EXPECT_NE(dicom.out.find("T1 <- series 11 t1_mprage_tra: on the reference grid"), std::string::npos) << dicom.out;
  EXPECT_NE(dicom.out.find("FLAIR <- series 3 ax flair: reference grid"), std::string::npos) << dicom.out;
}

// A DICOM study's segmentation also comes as DICOM SEG on the reference series; check_analyze_seg.py (pydicom and
// nibabel, no segrel code) compares every frame with segmentation.nii.gz at the slice of its plane position.
TEST(AnalyzeDicom, WritesTheSegmentationAsDicomSegOnTheReferenceSeries) {
  const std::string temp = TestTempDir();
  const std::string bundle = BundleWithRules(temp + "/bundle");
  WriteStudy(temp + "/dicom", /*t1_on_other_grid=*/false);
  const RunResult run = RunSegrel(
      absl::StrCat("analyze --model ", bundle, " --study ", temp, "/dicom --no-pictures --out ", temp, "/out"));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("segmentation.dcm"), std::string::npos) << run.out;
  const std::string command =
      absl::StrCat("/usr/bin/python3 ", ShellQuote(SEGREL_SOURCE_DIR "/tests/tools/check_analyze_seg.py"), " ",
                   ShellQuote(temp + "/out/segmentation.dcm"), " ", ShellQuote(temp + "/out/segmentation.nii.gz"), " ",
                   ShellQuote(temp + "/dicom/3"));  // FLAIR, the bundle's reference sequence: series 3
  const int result = std::system(command.c_str());
  if (WIFEXITED(result) && WEXITSTATUS(result) == 77) GTEST_SKIP() << "/usr/bin/python3 has no pydicom or nibabel";
  EXPECT_TRUE(WIFEXITED(result) && WEXITSTATUS(result) == 0) << command;
}

TEST(AnalyzeDicom, ResamplesASequenceOnAnotherGridAndSaysSo) {
  const std::string temp = TestTempDir();
  const std::string bundle = BundleWithRules(temp + "/bundle");
  WriteStudy(temp + "/dicom", /*t1_on_other_grid=*/true);
  const RunResult run = RunSegrel(
      absl::StrCat("analyze --model ", bundle, " --study ", temp, "/dicom --no-pictures --out ", temp, "/out"));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  // T1 moved by (-0.6, 0, 0.8) mm in LPS: every corner of its field of view moves by sqrt(0.36 + 0.64) = 1 mm.
  EXPECT_NE(run.out.find("T1 <- series 11 t1_mprage_tra: resampled onto the reference grid (fields of view differ "
                         "by up to 1.0 mm"),
            std::string::npos)
      << run.out;
}

TEST(AnalyzeDicom, MissingSequenceListsWhatTheBundleExpectsAndWhatWasFound) {
  const std::string temp = TestTempDir();
  const std::string bundle = BundleWithRules(temp + "/bundle");
  WriteStudy(temp + "/dicom", false);
  fs::remove_all(temp + "/dicom/7");  // T2
  const RunResult run = RunSegrel(
      absl::StrCat("analyze --model ", bundle, " --study ", temp, "/dicom --no-pictures --out ", temp, "/out"));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_TRUE(absl::StartsWith(run.err, "segrel analyze: error: ")) << run.err;
  EXPECT_NE(run.err.find("no series for T2"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("expect T1, T2, FLAIR"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("found 2 series: 3 ax flair; 11 t1_mprage_tra"), std::string::npos) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
}

TEST(AnalyzeDicom, BundleWithoutSeriesRulesCannotReadDicom) {
  const std::string temp = TestTempDir();
  WriteStudy(temp + "/dicom", false);
  const RunResult run = RunSegrel(absl::StrCat("analyze --model ", FixturePath("bundle"), " --study ", temp,
                                               "/dicom --no-pictures --out ", temp, "/out"));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("has no series_rules to map DICOM series; the bundle unet-bn-test expects T1, T2, FLAIR"),
            std::string::npos)
      << run.err;
}

}  // namespace
}  // namespace segrel
