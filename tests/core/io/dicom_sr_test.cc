// The TID 1500 relevance report: written for two synthetic series and their SEG, then read back with pydicom
// (check_dicom_sr.py: every group, segment reference, source series and value against what the test put in),
// rendered by DCMTK's dsrdump, and checked by dciodvfy (dicom3tools) for the Comprehensive SR IOD. Each outside
// tool is skipped with the reason when it is missing.
#include "core/io/dicom_sr.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/io/dicom_seg.h"
#include "core/io/dicom_series.h"
#include "tests/core/io/dicom_test_util.h"
#include "tests/core/io/synthetic_dicom.h"
#include "tests/test_util.h"

namespace segrel::io {
namespace {

namespace fs = std::filesystem;
using segrel::testing::GetTag;
using segrel::testing::ReadFile;
using segrel::testing::ShellQuote;
using segrel::testing::StatusIs;
using segrel::testing::SyntheticSeries;
using segrel::testing::TestTempDir;
using segrel::testing::WriteSyntheticSeries;

// Runs `command` with its output into `log`; returns the exit code (-1 when it did not exit).
int RunCommand(const std::string& command, const std::string& log) {
  const int result = std::system(absl::StrCat(command, " > ", ShellQuote(log), " 2>&1").c_str());
  return WIFEXITED(result) ? WEXITSTATUS(result) : -1;
}

bool HasProgram(const std::string& name) {
  return std::system(absl::StrCat("command -v ", name, " > /dev/null 2>&1").c_str()) == 0;
}

class DicomSr : public ::testing::Test {
 protected:
  void SetUp() override {
    temp_ = TestTempDir();
    // Two sequences from two series of one study and frame of reference, on the same grid.
    SyntheticSeries t2;
    WriteSyntheticSeries(t2, temp_ + "/t2");
    SyntheticSeries flair = t2;
    flair.series_number = 8;
    flair.series_description = "synthetic flair";
    flair.series_instance_uid.clear();
    WriteSyntheticSeries(flair, temp_ + "/flair");
    for (const char* dir : {"t2", "flair"}) {
      absl::StatusOr<DicomSeries> series = ReadDicomSeries(temp_ + "/" + dir);
      ASSERT_TRUE(series.ok()) << series.status();
      series_.push_back(series->info);
    }
    ASSERT_NE(series_[0].series_instance_uid, series_[1].series_instance_uid);
    const DicomSeriesInfo& reference = series_[1];
    labels_ = at::zeros({reference.columns, reference.rows, reference.slices}, at::kLong);
    labels_.index_put_({at::indexing::Slice(1, 3), at::indexing::Slice(2, 4), 1}, 1);
    labels_.index_put_({4, 5, 3}, 2);
    seg_path_ = temp_ + "/segmentation.dcm";
    ASSERT_TRUE(WriteDicomSeg(seg_path_, labels_, {"background", "lesion", "oedema"}, reference).ok());

    content_.model = "ms-test";
    content_.model_version = "2.1.0";
    content_.composite = "epsilon-plus";
    content_.seed = 7;
    content_.tau = 1e-6;
    content_.region_kind = "balanced";
    content_.sequences = {"T2", "FLAIR"};
    content_.series = series_;
    ExplainedRegion lesion{"lesion", {1}, 4, 9, 1, std::nullopt, {0.25, 0.75}, {0.125, 0.375}};
    ExplainedRegion oedema{
        "oedema", {2}, 1, 3, 1, std::nullopt, {0.6180339887498949, 0.3819660112501051}, {1.234567890123e-7, -2.5e-9}};
    ExplainedRegion all{"all classes", {1, 2}, 5, 60, 2, 0.8125, {0.4, 0.6}, {3.0, 4.5}};
    content_.regions = {lesion, oedema, all};
    report_path_ = temp_ + "/relevance_report.dcm";
  }

  void Write() {
    const absl::Status status = WriteDicomRelevanceReport(report_path_, content_, seg_path_);
    ASSERT_TRUE(status.ok()) << status;
  }

  // What check_dicom_sr.py should find: one group per region and sequence, in that order.
  nlohmann::json Expected() const {
    nlohmann::json expected;
    expected["study"] = series_[0].study_instance_uid;
    expected["seg_sop_instance"] = GetTag(seg_path_, "SOPInstanceUID");
    std::vector<std::string> evidence = {expected["seg_sop_instance"]};
    for (const DicomSeriesInfo& series : series_) {
      evidence.insert(evidence.end(), series.sop_instance_uids.begin(), series.sop_instance_uids.end());
    }
    expected["evidence"] = evidence;
    // The synthetic grid's voxel: 0.75 x 0.5 mm pixels, 2.5 mm slices.
    const double voxel_mm3 = 0.75 * 0.5 * 2.5;
    for (const ExplainedRegion& region : content_.regions) {
      for (size_t s = 0; s < content_.sequences.size(); ++s) {
        nlohmann::json group;
        group["tracking_id"] = region.name;
        group["segments"] = region.segments;
        // A region of one segment is a TID 1411 group with the sequence's series as its source; one of several is a
        // TID 1501 group, which has no source series.
        if (region.segments.size() == 1) group["source_series"] = series_[s].series_instance_uid;
        nlohmann::json& values = group["measurements"];
        values["RSHARE/" + content_.sequences[s]] = region.shares[s];
        values["RSUM/" + content_.sequences[s]] = region.raw[s];
        values["VOXELS"] = region.voxels;
        values["EXPLVOXELS"] = region.explained_voxels;
        values["118565006"] = region.voxels * voxel_mm3;
        if (region.lesions) values["LESIONS"] = *region.lesions;
        if (region.dice) values["DICE"] = *region.dice;
        expected["groups"].push_back(group);
      }
    }
    return expected;
  }

  std::string temp_;
  std::vector<DicomSeriesInfo> series_;
  at::Tensor labels_;
  std::string seg_path_;
  std::string report_path_;
  RelevanceReportContent content_;
};

TEST_F(DicomSr, PydicomReadsBackEveryGroupAndValue) {
  Write();
  const std::string expected_path = temp_ + "/expected.json";
  std::ofstream(expected_path) << Expected().dump(2);
  const std::string log = temp_ + "/check.log";
  const int code = RunCommand(absl::StrCat("/usr/bin/python3 ", ShellQuote(SEGREL_CHECK_DICOM_SR_SCRIPT), " ",
                                           ShellQuote(report_path_), " ", ShellQuote(expected_path)),
                              log);
  if (code == 77) GTEST_SKIP() << "/usr/bin/python3 has no pydicom";
  EXPECT_EQ(code, 0) << ReadFile(log);
  EXPECT_NE(ReadFile(log).find("OK 6 groups"), std::string::npos) << ReadFile(log);
}

TEST_F(DicomSr, JoinsTheStudyWithItsPatientAttributesVerbatim) {
  Write();
  for (const char* tag : {"PatientName", "PatientID", "PatientBirthDate", "StudyDate", "StudyTime", "AccessionNumber",
                          "StudyInstanceUID"}) {
    EXPECT_EQ(GetTag(report_path_, tag), GetTag(series_[0].files.front(), tag)) << tag;
  }
  EXPECT_EQ(GetTag(report_path_, "SeriesDescription"), "segrel relevance report");
  EXPECT_NE(GetTag(report_path_, "SeriesInstanceUID"), GetTag(seg_path_, "SeriesInstanceUID"));
  EXPECT_EQ(GetTag(report_path_, "CompletionFlag"), "COMPLETE");
}

TEST_F(DicomSr, DsrdumpRendersTheReport) {
  if (!HasProgram("dsrdump")) GTEST_SKIP() << "dsrdump (Debian dcmtk) is not installed";
  Write();
  const std::string log = temp_ + "/dsrdump.log";
  ASSERT_EQ(RunCommand(absl::StrCat("dsrdump ", ShellQuote(report_path_)), log), 0) << ReadFile(log);
  const std::string text = ReadFile(log);
  for (const char* expected : {"Imaging Measurement Report", "Relevance share", "Input sequence", "FLAIR",
                               "segrel ms-test 2.1.0", "composite=epsilon-plus", "0.618033988749"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << " is not in\n" << text;
  }
  EXPECT_EQ(text.find("Warning"), std::string::npos) << text;
}

// dciodvfy prints "Error - ..." for each violation of the IOD; warnings are listed, not failed.
TEST_F(DicomSr, DciodvfyFindsNoErrorsInTheReportOrTheSeg) {
  if (!HasProgram("dciodvfy")) GTEST_SKIP() << "dciodvfy (Debian dicom3tools) is not installed";
  Write();
  for (const std::string& path : {report_path_, seg_path_}) {
    const std::string log = path + ".dciodvfy.log";
    RunCommand(absl::StrCat("dciodvfy ", ShellQuote(path)), log);
    const std::string text = ReadFile(log);
    EXPECT_EQ(text.find("Error"), std::string::npos) << path << ":\n" << text;
    std::cout << fs::path(path).filename().string() << ":\n" << text;
  }
}

TEST_F(DicomSr, InconsistentContentIsRefusedWithTheReason) {
  RelevanceReportContent missing_series = content_;
  missing_series.series.pop_back();
  EXPECT_THAT(WriteDicomRelevanceReport(report_path_, missing_series, seg_path_),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("one series per sequence")));
  RelevanceReportContent short_shares = content_;
  short_shares.regions[1].shares.pop_back();
  EXPECT_THAT(WriteDicomRelevanceReport(report_path_, short_shares, seg_path_),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("region oedema")));
  RelevanceReportContent no_segment = content_;
  no_segment.regions[0].segments.clear();
  EXPECT_THAT(WriteDicomRelevanceReport(report_path_, no_segment, seg_path_),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("names no segment")));
  EXPECT_THAT(WriteDicomRelevanceReport(report_path_, content_, temp_ + "/absent.dcm"),
              StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("absent.dcm")));
  EXPECT_FALSE(fs::exists(report_path_));
}

}  // namespace
}  // namespace segrel::io
