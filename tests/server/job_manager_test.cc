// JobManager: every way a job ends deletes its inputs, job folders never collide (also across restarts), the spool an
// earlier process left is cleaned, and a job id names one submission.
#include "server/job_manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "tests/test_util.h"

namespace segrel::server {
namespace {

namespace fs = std::filesystem;
using segrel::testing::StatusIs;
using segrel::testing::TestTempDir;

class JobManagerTest : public ::testing::Test {
 protected:
  void SetUp() override { spool_ = TestTempDir() + "/spool"; }

  std::unique_ptr<JobManager> Create(size_t queue_capacity = 8, size_t max_jobs_kept = 1000) {
    JobManagerOptions options;
    options.spool_dir = spool_;
    options.queue_capacity = queue_capacity;
    options.max_jobs_kept = max_jobs_kept;
    absl::StatusOr<std::unique_ptr<JobManager>> manager = JobManager::Create(options, &metrics_);
    EXPECT_TRUE(manager.ok()) << manager.status();
    return manager.ok() ? *std::move(manager) : nullptr;
  }

  // What an upload leaves: the job's folder with one input file (as if it were DICOM with patient data).
  JobSpec Uploaded(JobManager& manager, const std::string& id, const std::string& fingerprint = "f") {
    JobSpec spec;
    spec.id = id;
    spec.model_name = "m";
    spec.fingerprint = fingerprint;
    spec.received = absl::Now();
    spec.directory = manager.NewJobDirectory(id).value();
    fs::create_directories(spec.InputDirectory() + "/dicom");
    std::ofstream(spec.InputDirectory() + "/dicom/0.dcm") << "patient data";
    return spec;
  }

  std::shared_ptr<Job> Accept(JobManager& manager, const std::string& id) {
    absl::StatusOr<JobManager::Accepted> accepted = manager.Accept(Uploaded(manager, id));
    EXPECT_TRUE(accepted.ok()) << accepted.status();
    return accepted.ok() ? accepted->job : nullptr;
  }

  Metrics metrics_;
  std::string spool_;
};

TEST_F(JobManagerTest, EveryWayAJobEndsDeletesItsInputs) {
  std::unique_ptr<JobManager> manager = Create();
  // done, failed and cancelled while running: a worker took them.
  const std::shared_ptr<Job> done = Accept(*manager, "done");
  const std::shared_ptr<Job> failed = Accept(*manager, "failed");
  const std::shared_ptr<Job> running = Accept(*manager, "running");
  const std::shared_ptr<Job> queued = Accept(*manager, "queued");
  const std::shared_ptr<Job> at_shutdown = Accept(*manager, "at-shutdown");
  for (const auto& job : {done, failed, running, queued, at_shutdown}) {
    ASSERT_TRUE(fs::exists(job->spec().InputDirectory() + "/dicom/0.dcm"));
  }

  ASSERT_EQ(manager->NextJob(), done);
  fs::create_directories(done->spec().OutputDirectory());
  std::ofstream(done->spec().OutputDirectory() + "/segmentation.nii.gz") << "result";
  manager->Finish(*done, absl::OkStatus(), JobResults{{"segmentation.nii.gz"}, {}});
  ASSERT_EQ(manager->NextJob(), failed);
  manager->Finish(*failed, absl::DeadlineExceededError("the job waited in the queue past its deadline"));
  ASSERT_EQ(manager->NextJob(), running);
  ASSERT_TRUE(manager->Cancel("running").ok());
  EXPECT_EQ(running->Get().state, JobState::kQueued) << "a running job ends when its worker stops";
  manager->Finish(*running, running->stop_reason());
  ASSERT_TRUE(manager->Cancel("queued").ok());
  manager->Shutdown();

  EXPECT_EQ(done->Get().state, JobState::kDone);
  EXPECT_EQ(failed->Get().status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(running->Get().state, JobState::kCancelled);
  EXPECT_EQ(queued->Get().state, JobState::kCancelled);
  EXPECT_EQ(at_shutdown->Get().status.code(), absl::StatusCode::kUnavailable);
  for (const auto& job : {done, failed, running, queued, at_shutdown}) {
    EXPECT_FALSE(fs::exists(job->spec().InputDirectory())) << job->spec().id << " kept its inputs";
  }
  EXPECT_TRUE(fs::exists(done->spec().OutputDirectory() + "/segmentation.nii.gz")) << "results stay for Watch";
  EXPECT_EQ(manager->NextJob(), nullptr);
  EXPECT_THAT(manager->CheckAdmission(), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(JobManagerTest, AnAcceptRefusedLeavesNoFolder) {
  std::unique_ptr<JobManager> manager = Create(/*queue_capacity=*/1);
  ASSERT_NE(Accept(*manager, "a"), nullptr);
  const JobSpec refused = Uploaded(*manager, "b");
  EXPECT_THAT(manager->Accept(refused), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_FALSE(fs::exists(refused.directory));
  manager->Shutdown();
  const JobSpec late = Uploaded(*manager, "c");
  EXPECT_THAT(manager->Accept(late), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(fs::exists(late.directory));
}

TEST_F(JobManagerTest, OneIdIsOneSubmissionEvenWhenUploadsRace) {
  std::unique_ptr<JobManager> manager = Create(/*queue_capacity=*/32);
  // 20 uploads of one id finish at once: 10 of the same study, 10 of others (another fingerprint each).
  std::vector<JobSpec> uploads;
  for (int i = 0; i < 20; ++i) uploads.push_back(Uploaded(*manager, "one", i < 10 ? "same" : absl::StrCat("other", i)));
  std::vector<absl::StatusOr<JobManager::Accepted>> answers(uploads.size(), absl::UnknownError(""));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < uploads.size(); ++i)
    threads.emplace_back([&, i] { answers[i] = manager->Accept(uploads[i]); });
  for (std::thread& thread : threads) thread.join();

  const std::shared_ptr<Job> job = manager->Find("one");
  ASSERT_NE(job, nullptr);
  int accepted = 0, resubmitted = 0, conflicts = 0;
  for (size_t i = 0; i < uploads.size(); ++i) {
    const bool same = uploads[i].fingerprint == job->spec().fingerprint;
    if (answers[i].ok()) {
      EXPECT_TRUE(same) << "upload " << i << " was answered with another submission's job";
      EXPECT_EQ(answers[i]->job, job);
      (answers[i]->already_submitted ? resubmitted : accepted) += 1;
    } else {
      EXPECT_FALSE(same);
      EXPECT_EQ(answers[i].status().code(), absl::StatusCode::kAlreadyExists);
      ++conflicts;
    }
    if (uploads[i].directory != job->spec().directory) {
      EXPECT_FALSE(fs::exists(uploads[i].directory)) << "upload " << i << " left its files";
    }
  }
  EXPECT_EQ(accepted, 1);
  EXPECT_EQ(accepted + resubmitted + conflicts, 20);
  EXPECT_EQ(conflicts, job->spec().fingerprint == "same" ? 10 : 19);
  EXPECT_TRUE(fs::exists(job->spec().InputDirectory() + "/dicom/0.dcm"));
}

TEST_F(JobManagerTest, StartUpRemovesTheJobFoldersAnEarlierProcessLeftAndNothingElse) {
  std::string left_input, left_results;
  {
    std::unique_ptr<JobManager> earlier = Create();
    left_input = Accept(*earlier, "queued")->spec().directory;  // the process dies: nothing ends these jobs
    const std::shared_ptr<Job> done = Accept(*earlier, "done");
    left_results = done->spec().directory;
    ASSERT_EQ(earlier->NextJob()->spec().id, "queued");
  }
  fs::create_directories(left_results + "/out");
  fs::create_directories(spool_ + "/not-a-job/notes");
  std::ofstream(spool_ + "/README") << "an operator's file";
  ASSERT_TRUE(fs::exists(left_input + "/input/dicom/0.dcm"));

  std::unique_ptr<JobManager> manager = Create();
  EXPECT_EQ(manager->stale_jobs_removed(), 2u);
  EXPECT_EQ(manager->unknown_entries_kept(), 2u);
  EXPECT_FALSE(fs::exists(left_input));
  EXPECT_FALSE(fs::exists(left_results));
  EXPECT_TRUE(fs::exists(spool_ + "/not-a-job/notes"));
  EXPECT_TRUE(fs::exists(spool_ + "/README"));
  EXPECT_EQ(manager->Find("queued"), nullptr);
}

TEST_F(JobManagerTest, JobFoldersAreUniqueAcrossRestarts) {
  std::set<std::string> folders;
  for (int process = 0; process < 3; ++process) {
    std::unique_ptr<JobManager> manager = Create();
    for (int i = 0; i < 5; ++i) {
      const std::string folder = manager->NewJobDirectory("same-id").value();
      EXPECT_TRUE(folders.insert(folder).second) << folder << " made twice";
      // Not a job folder any more: the next process keeps it, and must not make it again.
      fs::create_directories(folder + "/kept");
      EXPECT_TRUE(fs::is_empty(folder + "/kept"));
    }
  }
  EXPECT_EQ(folders.size(), 15u);
}

TEST_F(JobManagerTest, ForgottenJobsTakeTheirFoldersWithThem) {
  std::unique_ptr<JobManager> manager = Create(/*queue_capacity=*/8, /*max_jobs_kept=*/2);
  const std::shared_ptr<Job> first = Accept(*manager, "first");
  manager->Finish(*manager->NextJob(), absl::InternalError("failed"));
  ASSERT_NE(Accept(*manager, "second"), nullptr);
  ASSERT_NE(Accept(*manager, "third"), nullptr);  // three jobs, two kept: the oldest ended one goes
  EXPECT_EQ(manager->Find("first"), nullptr);
  EXPECT_FALSE(fs::exists(first->spec().directory));
  EXPECT_NE(manager->Find("second"), nullptr) << "queued jobs are never forgotten";
  EXPECT_NE(manager->Find("third"), nullptr);
}

TEST_F(JobManagerTest, CancellingAnUnknownJobIsNotFound) {
  std::unique_ptr<JobManager> manager = Create();
  EXPECT_THAT(manager->Cancel("nobody"), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace segrel::server
