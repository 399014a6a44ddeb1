// Job records: every field of a spec and its ending survives the write and the read, paths inside the job's folder
// follow the folder, and what is not a record is refused with the right code.
#include "server/job_record.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/test_util.h"

namespace segrel::server {
namespace {

namespace fs = std::filesystem;
using segrel::testing::StatusIs;
using segrel::testing::TestTempDir;

JobSpec FullSpec(const std::string& dir) {
  JobSpec spec;
  spec.id = "job-1";
  spec.owner = "radiology-research";
  spec.model_name = "prostate";
  spec.model_version = "2";
  spec.bundle_path = "/models/prostate/segrel.json";
  spec.directory = dir;
  spec.sequences = {"T2", "ADC"};
  spec.input_files = {dir + "/input/T2.nii.gz", dir + "/input/ADC.nii"};
  spec.reference_file = dir + "/input/masks/reference.nii.gz";
  spec.region_files = {{1, dir + "/input/masks/region_1.nii"}, {3, dir + "/input/masks/region_3.nii"}};
  spec.composite = "epsilon-plus";
  spec.seed = 1234567890123ULL;
  spec.maps = true;
  spec.lesions = true;
  spec.ablation = false;
  spec.pictures = false;
  spec.priority = -7;
  spec.received = absl::FromUnixMicros(1764000000123456);
  spec.deadline = absl::FromUnixMicros(1764003600123456);
  spec.bytes = 5ULL << 32;
  spec.fingerprint = "abc123";
  return spec;
}

TEST(JobRecordTest, EveryFieldRoundTripsAndPathsFollowTheFolder) {
  const std::string temp = TestTempDir();
  const std::string dir = temp + "/job-1.x.0";
  fs::create_directories(dir);
  JobRecord record{FullSpec(dir), JobEnding{absl::DataLossError("sequence T2: SHA-256 does not match"),
                                            {"a.nii.gz", "relevance.json"},
                                            absl::FromUnixMicros(1764000009000000)}};
  ASSERT_TRUE(WriteJobRecord(record).ok());
  EXPECT_FALSE(fs::exists(dir + "/job.record.new"));
  const std::string moved = temp + "/elsewhere";
  fs::rename(dir, moved);

  absl::StatusOr<JobRecord> read = ReadJobRecord(moved);
  ASSERT_TRUE(read.ok()) << read.status();
  const JobSpec& spec = read->spec;
  const JobSpec expected = FullSpec(moved);
  EXPECT_EQ(spec.id, expected.id);
  EXPECT_EQ(spec.owner, expected.owner);
  EXPECT_EQ(spec.model_name, expected.model_name);
  EXPECT_EQ(spec.model_version, expected.model_version);
  EXPECT_EQ(spec.bundle_path, expected.bundle_path) << "outside the folder: kept as it is";
  EXPECT_EQ(spec.directory, moved);
  EXPECT_EQ(spec.sequences, expected.sequences);
  EXPECT_EQ(spec.input_files, expected.input_files);
  EXPECT_EQ(spec.dicom_dir, "");
  EXPECT_EQ(spec.reference_file, expected.reference_file);
  EXPECT_EQ(spec.region_files, expected.region_files);
  EXPECT_EQ(spec.composite, expected.composite);
  EXPECT_EQ(spec.seed, expected.seed);
  EXPECT_EQ(spec.maps, expected.maps);
  EXPECT_EQ(spec.lesions, expected.lesions);
  EXPECT_EQ(spec.ablation, expected.ablation);
  EXPECT_EQ(spec.pictures, expected.pictures);
  EXPECT_EQ(spec.priority, expected.priority);
  EXPECT_EQ(spec.received, expected.received);
  EXPECT_EQ(spec.deadline, expected.deadline);
  EXPECT_EQ(spec.bytes, expected.bytes);
  EXPECT_EQ(spec.fingerprint, expected.fingerprint);
  ASSERT_TRUE(read->ending.has_value());
  EXPECT_EQ(read->ending->status, record.ending->status);
  EXPECT_EQ(read->ending->results, record.ending->results);
  EXPECT_EQ(read->ending->ended, record.ending->ended);
}

TEST(JobRecordTest, AQueuedJobHasNoEndingAndNoDeadlineStaysNone) {
  const std::string dir = TestTempDir() + "/queued";
  fs::create_directories(dir);
  JobSpec spec = FullSpec(dir);
  spec.deadline = absl::InfiniteFuture();
  spec.input_files.clear();
  spec.dicom_dir = dir + "/input/dicom";
  ASSERT_TRUE(WriteJobRecord(JobRecord{spec, std::nullopt}).ok());
  absl::StatusOr<JobRecord> read = ReadJobRecord(dir);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_FALSE(read->ending.has_value());
  EXPECT_EQ(read->spec.deadline, absl::InfiniteFuture());
  EXPECT_EQ(read->spec.dicom_dir, dir + "/input/dicom");

  // A later record replaces it whole.
  ASSERT_TRUE(WriteJobRecord(JobRecord{spec, JobEnding{absl::OkStatus(), {"x"}, absl::Now()}}).ok());
  read = ReadJobRecord(dir);
  ASSERT_TRUE(read.ok());
  ASSERT_TRUE(read->ending.has_value());
  EXPECT_TRUE(read->ending->status.ok());
}

TEST(JobRecordTest, WhatIsNotARecordIsRefused) {
  const std::string temp = TestTempDir();
  const std::string dir = temp + "/broken";
  fs::create_directories(dir);
  EXPECT_THAT(ReadJobRecord(dir), StatusIs(absl::StatusCode::kNotFound));
  std::ofstream(dir + "/job.record") << "\xff\xff\xff not a protocol buffer";
  EXPECT_THAT(ReadJobRecord(dir), StatusIs(absl::StatusCode::kDataLoss, ::testing::HasSubstr("not a job record")));
  std::ofstream(dir + "/job.record", std::ios::trunc);  // empty: parses, but names no job
  EXPECT_THAT(ReadJobRecord(dir), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(WriteJobRecord(JobRecord{FullSpec(temp + "/missing/folder"), std::nullopt}),
              StatusIs(absl::StatusCode::kInternal, ::testing::HasSubstr("cannot create")));
}

}  // namespace
}  // namespace segrel::server
