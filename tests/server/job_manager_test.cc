// JobManager: every way a job ends deletes its inputs, job folders never collide (also across restarts), a job id
// names one submission, accepted jobs survive the process (durable) or the spool is cleaned (not durable), and ended
// jobs leave the disk at their retention time or on Delete.
#include "server/job_manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "tests/test_util.h"

namespace segrel::server {
namespace {

namespace fs = std::filesystem;
using segrel::testing::StatusIs;
using segrel::testing::TestTempDir;

class JobManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spool_ = TestTempDir() + "/spool";
    audit_path_ = TestTempDir() + "/audit.log";
    audit_ = AuditLog::Open(audit_path_).value();
  }

  std::unique_ptr<JobManager> Create(size_t queue_capacity = 8, size_t max_jobs_kept = 1000) {
    JobManagerOptions options;
    options.spool_dir = spool_;
    options.queue_capacity = queue_capacity;
    options.max_jobs_kept = max_jobs_kept;
    options.durable = durable_;
    options.retention = retention_;
    options.min_free_bytes = 0;  // the tests do not depend on the machine's free disk space
    absl::StatusOr<std::unique_ptr<JobManager>> manager = JobManager::Create(options, &metrics_, audit_.get());
    EXPECT_TRUE(manager.ok()) << manager.status();
    return manager.ok() ? *std::move(manager) : nullptr;
  }

  // What an upload leaves: the job's folder with one input file (as if it were DICOM with patient data).
  JobSpec Uploaded(JobManager& manager, const std::string& id, const std::string& fingerprint = "f") {
    JobSpec spec;
    spec.id = id;
    spec.owner = "alice";
    spec.model_name = "m";
    spec.model_version = "2";
    spec.bytes = 12;
    spec.fingerprint = fingerprint;
    spec.received = absl::Now();
    spec.directory = manager.NewJobDirectory(id).value();
    spec.dicom_dir = spec.InputDirectory() + "/dicom";
    fs::create_directories(spec.dicom_dir);
    std::ofstream(spec.dicom_dir + "/0.dcm") << "patient data";
    return spec;
  }

  std::shared_ptr<Job> Accept(JobManager& manager, const std::string& id) {
    absl::StatusOr<JobManager::Accepted> accepted = manager.Accept(Uploaded(manager, id));
    EXPECT_TRUE(accepted.ok()) << accepted.status();
    return accepted.ok() ? accepted->job : nullptr;
  }

  // Finishes `job` as a worker that wrote one result file would.
  void FinishDone(JobManager& manager, Job& job) {
    fs::create_directories(job.spec().OutputDirectory());
    std::ofstream(job.spec().OutputDirectory() + "/segmentation.nii.gz") << "result";
    manager.Finish(job, absl::OkStatus(), JobResults{{"segmentation.nii.gz"}, {}});
  }

  // The audit lines so far, without their time stamps.
  std::vector<std::string> AuditLines() const {
    std::vector<std::string> lines;
    for (absl::string_view line : absl::StrSplit(segrel::testing::ReadFile(audit_path_), '\n', absl::SkipEmpty())) {
      const size_t space = line.find(' ');
      EXPECT_NE(space, absl::string_view::npos) << line;
      lines.emplace_back(line.substr(space + 1));
    }
    return lines;
  }

  Metrics metrics_;
  std::string audit_path_;
  std::unique_ptr<AuditLog> audit_;
  std::string spool_;
  bool durable_ = true;
  absl::Duration retention_ = absl::Hours(1);
};

// Polls `done` for up to 10 s.
bool Eventually(const std::function<bool()>& done) {
  for (int i = 0; i < 200 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return done();
}

TEST_F(JobManagerTest, EveryWayAJobEndsDeletesItsInputs) {
  durable_ = false;  // durable: a job queued at shutdown keeps its inputs for the next process (a test below)
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

TEST_F(JobManagerTest, ASpoolThatCannotBeWrittenIsRefusedAtStartUpAndOneWithoutRoomIsReported) {
  JobManagerOptions options;
  options.spool_dir = spool_;
  options.min_free_bytes = uint64_t{1} << 62;  // more than any disk has free
  absl::StatusOr<std::unique_ptr<JobManager>> low = JobManager::Create(options, &metrics_, audit_.get());
  ASSERT_TRUE(low.ok()) << "space may be freed later: uploads wait for it, the server serves";
  EXPECT_TRUE((*low)->recovery().below_watermark);
  EXPECT_GT((*low)->recovery().free_bytes, 0u);
  EXPECT_FALSE((*low)->CheckAdmission(1).ok()) << "below the watermark, uploads are refused";
  low->reset();
  options.min_free_bytes = 0;
  absl::StatusOr<std::unique_ptr<JobManager>> roomy = JobManager::Create(options, &metrics_, audit_.get());
  ASSERT_TRUE(roomy.ok());
  EXPECT_FALSE((*roomy)->recovery().below_watermark);
  EXPECT_EQ(std::distance(fs::directory_iterator(spool_), fs::directory_iterator()), 0) << "the write check is gone";
  roomy->reset();
  if (geteuid() != 0) {  // root writes regardless of permissions (deploy_test mounts a read-only spool as root)
    fs::permissions(spool_, fs::perms::owner_read | fs::perms::owner_exec);
    EXPECT_THAT(JobManager::Create(options, &metrics_, audit_.get()),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         ::testing::AllOf(::testing::HasSubstr(spool_), ::testing::HasSubstr("cannot be written"))));
    fs::permissions(spool_, fs::perms::owner_all);
  }
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

TEST_F(JobManagerTest, WithoutRecordsStartUpRemovesTheJobFoldersAnEarlierProcessLeftAndNothingElse) {
  durable_ = false;
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
  EXPECT_EQ(manager->recovery().removed, 2u);
  EXPECT_EQ(manager->recovery().unknown_kept, 2u);
  EXPECT_EQ(manager->recovery().queued + manager->recovery().ended, 0u);
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

TEST_F(JobManagerTest, AcceptedJobsSurviveTheProcess) {
  std::string done_folder, upload_folder;
  JobSpec queued_spec;
  {
    std::unique_ptr<JobManager> earlier = Create();
    const std::shared_ptr<Job> done = Accept(*earlier, "done");
    const std::shared_ptr<Job> failed = Accept(*earlier, "failed");
    Accept(*earlier, "running");
    queued_spec = Uploaded(*earlier, "queued", "queued's fingerprint");
    ASSERT_TRUE(earlier->Accept(queued_spec).ok());
    Accept(*earlier, "last");
    upload_folder = Uploaded(*earlier, "never-completed").directory;  // an upload the process died in
    FinishDone(*earlier, *earlier->NextJob());
    earlier->Finish(*earlier->NextJob(), absl::InvalidArgumentError("sequence T1 is not a NIfTI file"));
    const std::shared_ptr<Job> running = earlier->NextJob();
    ASSERT_EQ(running->spec().id, "running");
    fs::create_directories(running->spec().OutputDirectory());
    std::ofstream(running->spec().OutputDirectory() + "/half-written.nii.gz") << "partial";
    done_folder = done->spec().directory;
  }  // the process dies: nobody finishes "running", "queued" or "last"

  std::unique_ptr<JobManager> manager = Create();
  EXPECT_EQ(manager->recovery().queued, 3u);
  EXPECT_EQ(manager->recovery().ended, 2u);
  EXPECT_EQ(manager->recovery().removed, 1u);
  EXPECT_FALSE(fs::exists(upload_folder)) << "an upload that never completed is not a job";

  const std::shared_ptr<Job> done = manager->Find("done");
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->Get().state, JobState::kDone);
  EXPECT_THAT(done->Get().results, ::testing::ElementsAre("segmentation.nii.gz"));
  EXPECT_EQ(done->spec().directory, done_folder);
  EXPECT_TRUE(fs::exists(done->spec().OutputDirectory() + "/segmentation.nii.gz"));
  const std::shared_ptr<Job> failed = manager->Find("failed");
  ASSERT_NE(failed, nullptr);
  EXPECT_THAT(failed->Get().status,
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("is not a NIfTI file")));

  // A resubmission finds the recovered job; another study under its id is refused.
  JobSpec again = Uploaded(*manager, "queued", "queued's fingerprint");
  absl::StatusOr<JobManager::Accepted> resubmitted = manager->Accept(again);
  ASSERT_TRUE(resubmitted.ok()) << resubmitted.status();
  EXPECT_TRUE(resubmitted->already_submitted);
  EXPECT_FALSE(fs::exists(again.directory));
  EXPECT_THAT(manager->Accept(Uploaded(*manager, "queued", "another study")),
              StatusIs(absl::StatusCode::kAlreadyExists));

  // The running job runs again from a clean output folder, then the queued ones, in the order they arrived.
  const std::shared_ptr<Job> running = manager->NextJob();
  ASSERT_EQ(running->spec().id, "running");
  EXPECT_FALSE(fs::exists(running->spec().OutputDirectory() + "/half-written.nii.gz"));
  EXPECT_TRUE(fs::exists(running->spec().InputDirectory() + "/dicom/0.dcm"));
  const std::shared_ptr<Job> queued = manager->NextJob();
  EXPECT_EQ(queued->spec().id, "queued");
  EXPECT_EQ(queued.get(), resubmitted->job.get());
  EXPECT_EQ(queued->spec().fingerprint, queued_spec.fingerprint);
  EXPECT_EQ(absl::ToUnixMicros(queued->spec().received), absl::ToUnixMicros(queued_spec.received));
  EXPECT_EQ(manager->NextJob()->spec().id, "last");
  EXPECT_EQ(manager->QueuePosition(*running), std::nullopt);
}

TEST_F(JobManagerTest, AJobWhoseInputsAreGoneFailsAndStaysFailed) {
  {
    std::unique_ptr<JobManager> earlier = Create();
    const std::shared_ptr<Job> job = Accept(*earlier, "lost");
    fs::remove_all(job->spec().InputDirectory() + "/dicom");
    fs::create_directories(job->spec().InputDirectory() + "/dicom");  // empty: the study is gone
  }
  for (int process = 0; process < 2; ++process) {
    std::unique_ptr<JobManager> manager = Create();
    const std::shared_ptr<Job> job = manager->Find("lost");
    ASSERT_NE(job, nullptr);
    EXPECT_THAT(job->Get().status, StatusIs(absl::StatusCode::kUnavailable, ::testing::HasSubstr("submit it again")));
    EXPECT_EQ(manager->recovery().incomplete, process == 0 ? 1u : 0u);
    EXPECT_EQ(manager->recovery().ended, process == 0 ? 0u : 1u) << "the failure was recorded";
    EXPECT_FALSE(fs::exists(job->spec().InputDirectory()));
  }
}

TEST_F(JobManagerTest, JobsTheServerStoppedBeforeTheyEndedRunInTheNextProcess) {
  {
    std::unique_ptr<JobManager> earlier = Create();
    Accept(*earlier, "running");
    Accept(*earlier, "queued");
    const std::shared_ptr<Job> running = earlier->NextJob();
    earlier->Shutdown();  // finishes "queued"; the grace time runs out for "running"
    earlier->Finish(*running, earlier->Interrupted());
    for (const char* id : {"running", "queued"}) {
      const std::shared_ptr<Job> job = earlier->Find(id);
      EXPECT_THAT(job->Get().status, StatusIs(absl::StatusCode::kUnavailable, ::testing::HasSubstr("runs again")));
      EXPECT_TRUE(fs::exists(job->spec().InputDirectory() + "/dicom/0.dcm")) << id;
    }
  }
  std::unique_ptr<JobManager> manager = Create();
  EXPECT_EQ(manager->recovery().queued, 2u);
  EXPECT_EQ(manager->NextJob()->spec().id, "running");
  EXPECT_EQ(manager->NextJob()->spec().id, "queued");
}

TEST_F(JobManagerTest, EndedJobsLeaveTheDiskAtTheirRetentionTime) {
  std::string recovered_folder;
  {
    std::unique_ptr<JobManager> earlier = Create();
    const std::shared_ptr<Job> job = Accept(*earlier, "old");
    FinishDone(*earlier, *earlier->NextJob());
    recovered_folder = job->spec().directory;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  retention_ = absl::Milliseconds(10);
  std::unique_ptr<JobManager> manager = Create();
  EXPECT_EQ(manager->recovery().expired, 1u);
  EXPECT_FALSE(fs::exists(recovered_folder));

  retention_ = absl::Milliseconds(300);
  manager = Create();
  const std::shared_ptr<Job> job = Accept(*manager, "fresh");
  const std::shared_ptr<Job> waiting = Accept(*manager, "waiting");
  FinishDone(*manager, *manager->NextJob());
  EXPECT_NE(manager->Find("fresh"), nullptr) << "kept for its retention time";
  EXPECT_TRUE(Eventually([&] { return manager->Find("fresh") == nullptr; }));
  EXPECT_FALSE(fs::exists(job->spec().directory));
  EXPECT_NE(manager->Find("waiting"), nullptr) << "a queued job never expires";
  EXPECT_TRUE(fs::exists(waiting->spec().InputDirectory()));
}

TEST_F(JobManagerTest, DeleteRemovesAnEndedJobAndRefusesOneThatHasNot) {
  std::unique_ptr<JobManager> manager = Create();
  const std::shared_ptr<Job> job = Accept(*manager, "job");
  EXPECT_THAT(manager->Delete("job"), StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::HasSubstr("cancel")));
  EXPECT_THAT(manager->Delete("nobody"), StatusIs(absl::StatusCode::kNotFound));
  FinishDone(*manager, *manager->NextJob());
  EXPECT_TRUE(manager->Delete("job").ok());
  EXPECT_EQ(manager->Find("job"), nullptr);
  EXPECT_FALSE(fs::exists(job->spec().directory));
  manager = Create();
  EXPECT_EQ(manager->recovery().ended + manager->recovery().removed, 0u) << "nothing of it is left to recover";
}

TEST_F(JobManagerTest, TheAuditTrailHasALinePerLifecycleEventAndNothingOfTheStudy) {
  std::string job_folder;
  {
    std::unique_ptr<JobManager> earlier = Create();
    Accept(*earlier, "done");
    FinishDone(*earlier, *earlier->NextJob());
    Accept(*earlier, "cancelled");
    ASSERT_TRUE(earlier->Cancel("cancelled").ok());
    Accept(*earlier, "failed");
    earlier->Finish(*earlier->NextJob(), absl::NotFoundError("series 'AX T2 Doe^Jane' not found in input/dicom"));
    Accept(*earlier, "left-queued");
    job_folder = earlier->Find("done")->spec().directory;
  }
  Create();  // recovers all four
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  retention_ = absl::Milliseconds(10);
  Create();  // the three ended ones are past their retention time now

  const std::string job = " client=alice model=m@2";
  EXPECT_EQ(AuditLines(), (std::vector<std::string>{
                              "segrel-audit event=submitted job=done" + job + " bytes_in=12",
                              "segrel-audit event=started job=done" + job,
                              "segrel-audit event=ended job=done" + job + " code=OK",
                              "segrel-audit event=submitted job=cancelled" + job + " bytes_in=12",
                              "segrel-audit event=ended job=cancelled" + job + " code=CANCELLED",
                              "segrel-audit event=submitted job=failed" + job + " bytes_in=12",
                              "segrel-audit event=started job=failed" + job,
                              "segrel-audit event=ended job=failed" + job + " code=NOT_FOUND",
                              "segrel-audit event=submitted job=left-queued" + job + " bytes_in=12",
                              // The next process, in the order the jobs arrived:
                              "segrel-audit event=recovered job=done" + job,
                              "segrel-audit event=recovered job=cancelled" + job,
                              "segrel-audit event=recovered job=failed" + job,
                              "segrel-audit event=recovered job=left-queued" + job,
                              // And the one after it:
                              "segrel-audit event=expired job=done" + job,
                              "segrel-audit event=expired job=cancelled" + job,
                              "segrel-audit event=expired job=failed" + job,
                              "segrel-audit event=recovered job=left-queued" + job,
                          }));
  const std::string all = segrel::testing::ReadFile(audit_path_);
  for (const std::string& secret : {std::string("Doe"), std::string("series"), std::string("dicom"), spool_, job_folder,
                                    std::string("patient data")}) {
    EXPECT_EQ(all.find(secret), std::string::npos) << "the audit trail names " << secret;
  }
}

TEST_F(JobManagerTest, CancellingAnUnknownJobIsNotFound) {
  std::unique_ptr<JobManager> manager = Create();
  EXPECT_THAT(manager->Cancel("nobody"), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace segrel::server
