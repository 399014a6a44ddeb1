// AuditLog: the line format, escaping that keeps one event on one line, and errors that name the file.
#include "server/audit_log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "tests/test_util.h"

namespace segrel::server {
namespace {

using segrel::testing::ReadFile;
using segrel::testing::StatusIs;
using segrel::testing::TestTempDir;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

Job MakeJob(const std::string& owner, const std::string& model) {
  JobSpec spec;
  spec.id = "job-1";
  spec.owner = owner;
  spec.model_name = model;
  spec.model_version = "1.0";
  spec.bytes = 4096;
  spec.directory = "/spool/job-1.x.0";
  spec.input_files = {"/spool/job-1.x.0/input/T2.nii.gz"};
  return Job(std::move(spec));
}

TEST(AuditLog, OneLinePerEventWithItsFieldsAndNothingElse) {
  const std::string path = TestTempDir() + "/audit.log";
  std::unique_ptr<AuditLog> log = AuditLog::Open(path).value();
  const Job job = MakeJob("radiology", "ms-flair4");
  log->Record(AuditEvent::kSubmitted, job);
  AuditDetails ended;
  ended.code = absl::StatusCode::kResourceExhausted;
  log->Record(AuditEvent::kEnded, job, ended);
  AuditDetails delivered;
  delivered.by = "research";
  delivered.bytes_out = 777;
  log->Record(AuditEvent::kDelivered, job, delivered);
  log.reset();

  const std::vector<std::string> lines = absl::StrSplit(ReadFile(path), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  const std::string time = R"(20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\.[0-9]{6}Z)";
  EXPECT_THAT(lines[0], MatchesRegex(time + " segrel-audit event=submitted job=job-1 client=radiology "
                                            "model=ms-flair4@1\\.0 bytes_in=4096"));
  EXPECT_THAT(lines[1], MatchesRegex(time + " segrel-audit event=ended job=job-1 client=radiology "
                                            "model=ms-flair4@1\\.0 code=RESOURCE_EXHAUSTED"));
  EXPECT_THAT(lines[2], MatchesRegex(time + " segrel-audit event=delivered job=job-1 client=radiology "
                                            "model=ms-flair4@1\\.0 by=research bytes_out=777"));
  EXPECT_EQ(ReadFile(path).find("/spool"), std::string::npos) << "no paths";
}

TEST(AuditLog, ValuesThatCouldBreakTheLineAreEscaped) {
  const std::string path = TestTempDir() + "/audit.log";
  std::unique_ptr<AuditLog> log = AuditLog::Open(path).value();
  log->Record(AuditEvent::kStarted, MakeJob("", "model with spaces\nevent=deleted %"));
  log.reset();
  EXPECT_EQ(ReadFile(path).substr(28),
            "segrel-audit event=started job=job-1 client=- model=model%20with%20spaces%0Aevent%3Ddeleted%20%25@1.0\n");
}

TEST(AuditLog, ConcurrentEventsDoNotInterleave) {
  const std::string path = TestTempDir() + "/audit.log";
  std::unique_ptr<AuditLog> log = AuditLog::Open(path).value();
  const Job job = MakeJob("a", std::string(5000, 'm'));  // a line longer than stdio's buffer comes out whole too
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) log->Record(AuditEvent::kStarted, job);
    });
  }
  for (std::thread& thread : threads) thread.join();
  log.reset();
  const std::vector<std::string> lines = absl::StrSplit(ReadFile(path), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 800u);
  for (const std::string& line : lines) ASSERT_THAT(line, HasSubstr(" segrel-audit event=started job=job-1 client=a"));
}

TEST(AuditLog, AFileThatCannotBeOpenedIsNamed) {
  EXPECT_THAT(AuditLog::Open(TestTempDir() + "/no/such/folder/audit.log"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("no/such/folder/audit.log")));
  EXPECT_TRUE(AuditLog::Open("-").ok());
}

}  // namespace
}  // namespace segrel::server
