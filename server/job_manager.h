// The job lifecycle in one place, free of gRPC: the job table, idempotent resubmission, the spool's job folders,
// admission into the queue, cancellation, retention, and the one way a job ends (Finish), which records the
// end-of-job metrics and deletes the job's inputs. Frontends (the gRPC service) translate their protocol into calls
// of a JobManager; workers take jobs from it and hand them back through Finish.
//
// Who ends a job: whoever takes it out of the queue. A worker that took it (NextJob) calls Finish once; a job
// cancelled while queued, or still queued at Shutdown, is finished here. So every job is finished exactly once, and
// its input/ folder (which may hold DICOM files with patient data) is gone when its clients see it end.
//
// Durability (JobManagerOptions::durable): a job's record (server/job_record.h) is on disk before Accept returns and
// is rewritten with the job's ending before the job is seen to end. Create recovers the spool from the records:
// queued jobs and jobs that were running go back into the queue in the order they arrived, ended jobs stay
// watchable until the retention time. A job the server stops before it ended (Shutdown, or the grace time ran out)
// keeps its inputs and its queued record, so the next process on the spool runs it. Nothing of a job stays on disk
// past the retention time or Delete.
//
// In a cluster (JobManagerOptions::cluster) the queue is the cluster's (server/cluster_jobs.h): Accept queues there,
// NextJob takes from there (and holds the job's lease until Finish), and every change of a job is written to its
// shared state, from which the other replicas' copies of the job follow. A job another replica accepted or runs
// becomes known here when asked for (Find). The replica that finishes a job deletes its inputs; ended jobs' folders are
// deleted after the retention time by whichever replica sweeps first.
#ifndef SEGREL_SERVER_JOB_MANAGER_H_
#define SEGREL_SERVER_JOB_MANAGER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/report/summary.h"
#include "server/audit_log.h"
#include "server/cluster_jobs.h"
#include "server/job.h"
#include "server/job_queue.h"
#include "server/job_record.h"
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
  absl::Duration retention = absl::Hours(24);   // an ended job is forgotten and deleted this long after it ended
  uint64_t min_free_bytes = uint64_t{1} << 30;  // storage watermark: uploads that would leave less free are refused
  bool durable = true;  // record accepted jobs and recover them at start-up (the file comment); off: jobs live in
                        // memory only and Create removes the job folders an earlier process left
  std::vector<std::string> reserved_entries;  // spool entries other parts own (the DICOM node's): left alone
  // A replica of a cluster (server/cluster_jobs.h): jobs are queued in the cluster's NATS and taken from it, their
  // states shared; the spool is the cluster's (every replica mounts it), so Create neither recovers nor cleans it.
  // None: the in-process queue.
  std::optional<ClusterOptions> cluster;
  bool accepts_uploads = true;  // false: a cluster replica that only runs jobs; CheckAdmission answers Unavailable
};

// What Create found in the spool.
struct SpoolRecovery {
  size_t queued = 0;             // jobs queued or running when the earlier process stopped: queued again
  size_t ended = 0;              // ended jobs, watchable until their retention time
  size_t incomplete = 0;         // queued jobs whose inputs were gone: failed (UNAVAILABLE, submit again)
  size_t removed = 0;            // job folders without a readable record (uploads that never completed): removed
  size_t expired = 0;            // ended jobs past the retention time: removed
  size_t unknown_kept = 0;       // entries that are not job folders: left alone
  uint64_t free_bytes = 0;       // free space on the spool after the recovery
  bool below_watermark = false;  // less than `min_free_bytes`: uploads are refused until space frees up
};

// Thread-safe.
class JobManager {
 public:
  // Makes the spool folder, or recovers the one an earlier process left (the file comment; not durable: its job
  // folders are removed). Entries that are not job folders are left alone. `metrics` and `audit` (may be null: no
  // audit trail) must outlive the manager; it records the lifecycle events of server/audit_log.h on `audit`.
  // Errors: InvalidArgument for options out of range; Internal when the spool cannot be made or read;
  // FailedPrecondition when, after the recovery, it cannot be written (read-only, full, over a quota). Less free space
  // than `min_free_bytes` is not an error (recovery().below_watermark): uploads wait for space, as later on. In a
  // cluster: those of ClusterJobs::Connect (Unavailable when its NATS cannot be reached).
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(JobManagerOptions options, Metrics* metrics,
                                                            AuditLog* audit);
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  const SpoolRecovery& recovery() const { return recovery_; }
  const std::string& spool_dir() const { return options_.spool_dir; }

  // Whether a new job of `incoming_bytes` is taken now (asked before its upload starts, so a refused study is not
  // received first). Errors: Unavailable once shutting down; ResourceExhausted (RetryLater) when the queue is full
  // or the spool's free space would fall below the watermark.
  absl::Status CheckAdmission(uint64_t incoming_bytes = 0) const;

  // The job with client id `id`, or null when there is none (never submitted, or forgotten). In a cluster also a job
  // another replica accepted: from then on it follows the shared state.
  std::shared_ptr<Job> Find(const std::string& id);

  // Makes a new, empty folder for an upload of job `id`: unique among this process's folders and those an earlier
  // process left. REQUIRES: `id` is a valid job id (IsValidJobId). Errors: Internal when it cannot be made.
  absl::StatusOr<std::string> NewJobDirectory(const std::string& id);

  struct Accepted {
    std::shared_ptr<Job> job;
    bool already_submitted = false;  // an earlier submission with the same id and fingerprint was returned
  };
  // Registers and queues an uploaded job, which then owns spec.directory; durable: its record is on disk first.
  // When a job with the same id exists, the new folder is deleted and that job is returned if its fingerprint is the
  // same. Errors (the folder is deleted): AlreadyExists for the same id with another fingerprint; Unavailable when
  // shutting down; those of JobQueue::Enqueue (ResourceExhausted for a full queue); Internal when the record cannot
  // be written.
  absl::StatusOr<Accepted> Accept(JobSpec spec);

  // Cancels job `id`: a queued job ends at once (CANCELLED); a running one is asked to stop at its next stage or
  // window (its worker finishes it). Returns the job. Errors: NotFound for an unknown id.
  absl::StatusOr<std::shared_ptr<Job>> Cancel(const std::string& id);

  // Forgets ended job `id` and deletes its folder. Errors: NotFound for an unknown id; FailedPrecondition when the
  // job has not ended.
  absl::Status Delete(const std::string& id);

  // Every job known now (queued, running, ended and kept), newest first.
  std::vector<std::shared_ptr<Job>> Jobs() const;

  // Jobs ahead of `job` in the queue (0: next), or nothing when it is not queued.
  std::optional<size_t> QueuePosition(const Job& job) const;

  // For workers: waits for the next job and hands it over (the caller must Finish it); null once shut down.
  std::shared_ptr<Job> NextJob();
  // While held, NextJob hands out no job (JobQueue::SetHeld).
  void SetHeld(bool held);

  // Ends `job`: done with `results` when `status` is OK, cancelled or failed otherwise. Deletes the job's inputs,
  // records the ending durably and the end-of-job metrics (for a done job also its stage times and explanation
  // telemetry), then ends the job, so a client that sees the end sees the metrics counting it. A job ended with
  // Interrupted() after Shutdown keeps its inputs and queued record instead (durable: the next process runs it).
  // REQUIRES: called once per job, by whoever took it out of the queue (see the file comment).
  void Finish(Job& job, const absl::Status& status, JobResults results = {});

  // From now on Accept and CheckAdmission answer Unavailable, NextJob returns null, and the jobs still queued are
  // finished with Interrupted(). Running jobs are the workers' to finish. Idempotent.
  void Shutdown();
  // Why a job the server stopped before it ended ends (UNAVAILABLE; the message tells the client what happens to it).
  absl::Status Interrupted() const;

 private:
  JobManager(JobManagerOptions options, Metrics* metrics, AuditLog* audit);
  // Recovers (durable) or removes the job folders an earlier process left; counts what it found.
  absl::Status RecoverSpool();
  // Takes the recovered job in `folder` back: ended, queued again, or failed when its inputs are gone.
  void Recover(JobRecord record, absl::Time now);
  // Forgets the oldest ended jobs beyond max_jobs_kept and those past the retention time; returns them (for the
  // caller to Remove outside the lock).
  std::vector<std::shared_ptr<Job>> ForgetOldJobs(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Accept's part under the lock.
  absl::StatusOr<Accepted> Register(JobSpec spec, std::vector<std::shared_ptr<Job>>& forgotten);
  // Deletes the folders of forgotten jobs (the expired event).
  void Remove(const std::vector<std::shared_ptr<Job>>& forgotten);
  void SweepUntilDestroyed();  // the sweeper thread: ForgetOldJobs now and then

  // The cluster's side (JobManagerOptions::cluster; the file comment).
  struct Lease;
  // Accept's queueing in a cluster: the job is new to the cluster, or the earlier submission of its id (returned).
  absl::StatusOr<Accepted> EnqueueInCluster(std::shared_ptr<Job> job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // This replica's copy of the cluster's job `state`, made from the record in its folder and brought to its state.
  absl::StatusOr<std::shared_ptr<Job>> CopyOf(const std::string& id, const ClusterJobState& state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Takes a job from the cluster's queue for a worker; null when none came or it must not run (the lease is ended).
  std::shared_ptr<Job> TakeFromCluster();
  std::shared_ptr<Job> Claim(std::unique_ptr<JobLease> lease);
  // This replica's copy of the job of `spec` (the one it has, or a new one).
  std::shared_ptr<Job> LocalCopy(JobSpec spec);
  // Marks the job to run here: RUNNING in its shared state, the lease renewed and held, progress shared. Null when
  // it must not run (ended meanwhile; NATS away: given back).
  std::shared_ptr<Job> StartRunning(std::shared_ptr<Job> job, std::unique_ptr<JobLease> lease);
  // Keeps `lease` (and the observer that shares the job's progress) until the job ends here (EndLease).
  void Hold(Job& job, std::unique_ptr<JobLease> lease, std::shared_ptr<JobObserver> sharer = nullptr);
  // Follows a state another replica wrote (ClusterJobs::Listen).
  void Follow(const std::string& id, const ClusterJobState& state);
  // Writes a running job's stage and progress to its shared state (the replica running it).
  void ShareProgress(const Job& job);
  // Finish's part in a cluster, after the record: the ending to the shared state, then the lease completed.
  void ShareEnding(Job& job, const absl::Status& status, const std::vector<std::string>& results, absl::Time ended);
  // Finish's part for a job this replica stops running (shutdown): back into the cluster's queue, inputs kept.
  void RequeueInCluster(Job& job);
  // Forgets the lease of job `id` this replica runs, returning it (null when it runs none).
  std::shared_ptr<Lease> EndLease(const std::string& id);
  // Deletes the folders of jobs that ended past the retention time on the shared spool.
  void SweepSharedSpool(absl::Time now);
  std::unique_ptr<ClusterJobs> cluster_;
  absl::flat_hash_map<std::string, std::shared_ptr<Lease>> leases_ ABSL_GUARDED_BY(mutex_);  // jobs running here
  bool held_ ABSL_GUARDED_BY(mutex_) = false;

  const JobManagerOptions options_;
  Metrics* const metrics_;
  AuditLog* const audit_;
  JobQueue queue_;
  // Part of every folder name this process makes: folders stay unique when an earlier process's were kept.
  const std::string folder_token_;
  SpoolRecovery recovery_;
  mutable absl::Mutex mutex_;
  absl::flat_hash_map<std::string, std::shared_ptr<Job>> jobs_ ABSL_GUARDED_BY(mutex_);
  std::deque<std::string> job_order_ ABSL_GUARDED_BY(mutex_);  // ids, oldest first
  uint64_t next_folder_ ABSL_GUARDED_BY(mutex_) = 0;
  bool shutting_down() const;

  bool shutting_down_ ABSL_GUARDED_BY(mutex_) = false;
  bool destroying_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread sweeper_;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_JOB_MANAGER_H_
