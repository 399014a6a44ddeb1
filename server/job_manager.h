// The job lifecycle in one place, free of gRPC: the job table, idempotent resubmission, the spool's job folders,
// admission into the queue, cancellation, retention, and the one way a job ends (Finish), which records the
// end-of-job metrics and deletes the job's inputs. Frontends (the gRPC service) translate their protocol into calls
// of a JobManager; workers take jobs from it and hand them back through Finish.
//
// Who ends a job: whoever takes it out of the queue. A worker that took it (NextJob) calls Finish once; a job
// cancelled while queued, or still queued at Shutdown, is finished here. So every job is finished exactly once, and
// its input/ folder (which may hold DICOM files with patient data) is gone when its clients see it end.
#ifndef SEGREL_SERVER_JOB_MANAGER_H_
#define SEGREL_SERVER_JOB_MANAGER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/report/summary.h"
#include "server/job.h"
#include "server/job_queue.h"
#include "server/metrics.h"

namespace segrel::server {

// What a job that ran produced.
struct JobResults {
  std::vector<std::string> files;   // the output files, names in the job's output folder
  report::AnalysisSummary summary;  // as relevance.json has it: the end-of-job metrics come from it
};

// Whether a submission with `fingerprint` is `job`'s own (a resubmission, answered with the job). Errors:
// AlreadyExists when the job's id was submitted before with another model, study or options.
absl::Status CheckResubmission(const Job& job, const std::string& fingerprint);

struct JobManagerOptions {
  std::string spool_dir;        // one folder per job; required (created when missing)
  size_t queue_capacity = 16;   // jobs waiting; beyond it Accept answers RESOURCE_EXHAUSTED. REQUIRES: > 0
  size_t max_jobs_kept = 1000;  // ended jobs kept for Watch; beyond it the oldest are forgotten and deleted
};

// Thread-safe.
class JobManager {
 public:
  // Makes the spool folder, or cleans the one an earlier process left: its job folders are removed (this process
  // cannot resume their jobs), anything else in it is left alone. `metrics` must outlive the manager.
  // Errors: InvalidArgument for options out of range; Internal when the spool cannot be made or read.
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(JobManagerOptions options, Metrics* metrics);
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // What Create found in the spool: job folders of an earlier process it removed, other entries it left alone.
  size_t stale_jobs_removed() const { return stale_jobs_removed_; }
  size_t unknown_entries_kept() const { return unknown_entries_kept_; }
  const std::string& spool_dir() const { return options_.spool_dir; }

  // Whether new jobs are taken now. Errors: Unavailable once shutting down.
  absl::Status CheckAdmission() const;

  // The job with client id `id`, or null when there is none (never submitted, or forgotten).
  std::shared_ptr<Job> Find(const std::string& id) const;

  // Makes a new, empty folder for an upload of job `id`: unique among this process's folders and those an earlier
  // process left. REQUIRES: `id` is a valid job id (IsValidJobId). Errors: Internal when it cannot be made.
  absl::StatusOr<std::string> NewJobDirectory(const std::string& id);

  struct Accepted {
    std::shared_ptr<Job> job;
    bool already_submitted = false;  // an earlier submission with the same id and fingerprint was returned
  };
  // Registers and queues an uploaded job, which then owns spec.directory. When a job with the same id exists, the
  // new folder is deleted and that job is returned if its fingerprint is the same. Errors (the folder is deleted):
  // AlreadyExists for the same id with another fingerprint; Unavailable when shutting down; those of
  // JobQueue::Enqueue (ResourceExhausted for a full queue).
  absl::StatusOr<Accepted> Accept(JobSpec spec);

  // Cancels job `id`: a queued job ends at once (CANCELLED); a running one is asked to stop at its next stage or
  // window (its worker finishes it). Returns the job. Errors: NotFound for an unknown id.
  absl::StatusOr<std::shared_ptr<Job>> Cancel(const std::string& id);

  // Jobs ahead of `job` in the queue (0: next), or nothing when it is not queued.
  std::optional<size_t> QueuePosition(const Job& job) const;

  // For workers: waits for the next job and hands it over (the caller must Finish it); null once shut down.
  std::shared_ptr<Job> NextJob();
  // While held, NextJob hands out no job (JobQueue::SetHeld).
  void SetHeld(bool held);

  // Ends `job`: done with `results` when `status` is OK, cancelled or failed otherwise. Deletes the job's inputs,
  // records the end-of-job metrics (for a done job also its stage times and explanation telemetry), then ends the
  // job, so a client that sees the end sees the metrics counting it.
  // REQUIRES: called once per job, by whoever took it out of the queue (see the file comment).
  void Finish(Job& job, const absl::Status& status, JobResults results = {});

  // From now on Accept and CheckAdmission answer Unavailable, NextJob returns null, and the jobs still queued are
  // finished with UNAVAILABLE (their clients submit again). Running jobs are the workers' to finish. Idempotent.
  void Shutdown();

 private:
  JobManager(JobManagerOptions options, Metrics* metrics);
  // Removes the job folders left in the spool by an earlier process; counts what it removed and kept.
  absl::Status CleanSpool();
  void ForgetOldJobs() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const JobManagerOptions options_;
  Metrics* const metrics_;
  JobQueue queue_;
  // Part of every folder name this process makes: folders stay unique when an earlier process's were kept.
  const std::string folder_token_;
  size_t stale_jobs_removed_ = 0;
  size_t unknown_entries_kept_ = 0;
  mutable absl::Mutex mutex_;
  absl::flat_hash_map<std::string, std::shared_ptr<Job>> jobs_ ABSL_GUARDED_BY(mutex_);
  std::deque<std::string> job_order_ ABSL_GUARDED_BY(mutex_);  // ids, oldest first
  uint64_t next_folder_ ABSL_GUARDED_BY(mutex_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_JOB_MANAGER_H_
