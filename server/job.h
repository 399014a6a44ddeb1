// A job: one submitted study and the state of its analysis, shared by the service (Submit, Watch, Cancel), the
// queue and the worker that runs it.
#ifndef SEGREL_SERVER_JOB_H_
#define SEGREL_SERVER_JOB_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace segrel::server {

// What was submitted: everything a worker needs to run the job.
struct JobSpec {
  std::string id;     // client-chosen
  std::string owner;  // the client that submitted it (server/access.h); empty when access is open
  std::string model_name;
  std::string model_version;
  std::string bundle_path;  // the bundle's segrel.json
  std::string directory;    // the job's folder: input/ (deleted when the job ends), out/
  // The study: NIfTI, one file per sequence (input/NAME.nii[.gz]), or a DICOM folder (input/dicom/).
  std::vector<std::string> sequences;    // NIfTI: sequence names, as uploaded
  std::vector<std::string> input_files;  // NIfTI: input/..., one per sequence, in `sequences` order
  std::string dicom_dir;                 // DICOM: the folder of the study's files
  std::string reference_file;            // optional reference segmentation
  std::vector<std::pair<int64_t, std::string>> region_files;  // optional region masks, class -> file
  std::string composite;                                      // empty: the bundle's
  uint64_t seed = 0;
  bool maps = false;
  bool lesions = false;
  bool ablation = false;
  bool pictures = true;
  int priority = 0;
  absl::Time received;                           // when the upload was accepted
  absl::Time deadline = absl::InfiniteFuture();  // a job still queued then fails with DEADLINE_EXCEEDED
  uint64_t bytes = 0;                            // uploaded
  std::string fingerprint;                       // identifies the submission (model, sequences' SHA-256, options)

  std::string InputDirectory() const { return directory + "/input"; }
  std::string OutputDirectory() const { return directory + "/out"; }
};

// Notified whenever a job's state changes. Implementations must be thread-safe and return quickly: they run on
// whichever thread changed the job (a worker, a gRPC thread).
class JobObserver {
 public:
  virtual ~JobObserver() = default;
  virtual void OnJobChanged() = 0;
};

enum class JobState { kQueued, kRunning, kDone, kFailed, kCancelled };

bool IsFinal(JobState state);

// Thread-safe. The state only moves forward: queued → running → done | failed | cancelled (or queued → failed |
// cancelled); once final it does not change.
class Job {
 public:
  struct Snapshot {
    JobState state = JobState::kQueued;
    std::string stage;                 // running: the stage
    double progress = 0;               // running: 0 to 1
    absl::Status status;               // failed, cancelled: why
    std::vector<std::string> results;  // done: the output files (names in OutputDirectory())
    absl::Time ended;                  // final: when the job ended
    uint64_t version = 0;              // increases with every change
  };

  explicit Job(JobSpec spec) : spec_(std::move(spec)) {}
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  const JobSpec& spec() const { return spec_; }
  Snapshot Get() const;

  // Moves a queued job to running, or a running one on (stage, progress of the whole job; progress never goes
  // back). Returns false (and changes nothing) when the job has ended.
  bool SetStage(const std::string& stage, double progress);
  // Ends the job: done with `results` when `status` is OK, cancelled when its code is CANCELLED, else failed.
  // `ended`: when (a job recovered from the spool ended before this process started). Returns false when the job
  // had already ended.
  bool End(const absl::Status& status, std::vector<std::string> results = {}, absl::Time ended = absl::Now());

  // Asks the job to stop with `reason` (the first reason asked for stays): the worker checks stop_reason() at
  // every stage and window. Returns the state at the call.
  JobState RequestCancel(absl::Status reason = absl::CancelledError("cancelled by request"));
  bool cancel_requested() const { return !stop_reason().ok(); }
  absl::Status stop_reason() const;  // OK unless a stop was asked for

  // Observers are held weakly: one that is destroyed is dropped.
  void AddObserver(std::weak_ptr<JobObserver> observer);
  // Notifies every observer (also used by the queue when the job's position changes).
  void Notify();

 private:
  const JobSpec spec_;
  mutable absl::Mutex mutex_;
  Snapshot snapshot_ ABSL_GUARDED_BY(mutex_);
  absl::Status stop_reason_ ABSL_GUARDED_BY(mutex_);
  std::vector<std::weak_ptr<JobObserver>> observers_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_JOB_H_
