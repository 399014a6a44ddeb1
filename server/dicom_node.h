// segrel as a DICOM node: studies arrive by C-STORE (server/dicom_receiver.h), are complete once quiet
// (server/study_collector.h), are routed to a model and become jobs through the same JobManager path as a gRPC
// Submit (queue, priorities, deadlines, metrics, audit, Watch and Cancel by job id).
//
// Routing: a called AE title that a route names (e.g. SEGREL_MS=ms-flair4) picks its model; the node's own AE title
// picks the first model (repository order) whose series rules the study satisfies. A study no model takes is not
// analysed (counted; its files leave with the retention time). The job id is "dicom-" and the first 16 hex digits
// of the SHA-256 of the Study Instance UID, then "-" and the number of instances: derived from the study without
// showing it, and new for a grown study. The job's owner is "dicom:" and the calling AE title.
//
// Files: instances are stored under the spool's `dicom-incoming` folder by UID and hard-linked into the job's
// input folder, so the job deletes its inputs as any job does while the received study stays for instances that
// arrive later; received studies are deleted `retention` after their last instance. A study the job manager cannot
// take now (queue full, storage watermark) waits and is offered again: an instance acknowledged is never dropped.
// A study received but not yet a job when the process stopped (or crashed) becomes one when the next process starts
// (the AE titles that sent it are kept with it).
#ifndef SEGREL_SERVER_DICOM_NODE_H_
#define SEGREL_SERVER_DICOM_NODE_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/dicom_receiver.h"
#include "server/instance_store.h"
#include "server/job_manager.h"
#include "server/model_repository.h"
#include "server/result_sender.h"
#include "server/study_collector.h"
#include "server/upload.h"

namespace segrel::server {

// The spool entry that holds received instances (JobManagerOptions::reserved_entries).
inline constexpr char kDicomIncomingFolder[] = "dicom-incoming";

struct DicomRoute {
  std::string ae_title;  // a called AE title
  std::string model;     // NAME or NAME@VERSION
};

// Parses "AE=MODEL". Errors: InvalidArgument naming the text.
absl::StatusOr<DicomRoute> ParseDicomRoute(const std::string& text);

struct DicomNodeOptions {
  DicomReceiverOptions receiver;  // port, the node's own AE title, peers, association limits and timeouts
  std::vector<DicomRoute> routes;
  absl::Duration study_quiet = absl::Seconds(5);  // a study is complete this long after its last instance
  absl::Duration retention = absl::Hours(24);     // received studies are deleted this long after their last instance
  absl::Duration retry = absl::Seconds(5);        // a study the job manager refused is offered again after this
  UploadLimits limits;                            // the default deadline of the jobs
  // A done job's DICOM SEG goes back to the peer that sent the study, tried again after each of these when it fails.
  std::vector<absl::Duration> result_backoff = {absl::Seconds(10), absl::Minutes(1), absl::Minutes(5),
                                                absl::Minutes(30)};
};

// How the node fared; the job of a dispatched study is the job manager's.
struct DicomNodeCounts {
  size_t studies_completed = 0;
  size_t studies_dispatched = 0;  // became jobs (or were one already: sent again unchanged)
  size_t studies_unrouted = 0;    // no model takes them
  size_t studies_waiting = 0;     // refused by the job manager for now, offered again
};

// Thread-safe.
class DicomNode {
 public:
  // Starts receiving. `models`, `jobs`, `metrics` and `audit` (may be null) must outlive the node. Errors:
  // InvalidArgument for a route to an unknown model or one without series rules, or an AE title routed twice; those of
  // InstanceStore::Create and DicomReceiver::Start.
  static absl::StatusOr<std::unique_ptr<DicomNode>> Start(DicomNodeOptions options, const ModelRepository* models,
                                                          JobManager* jobs, Metrics* metrics, AuditLog* audit);
  ~DicomNode();  // Stop()
  DicomNode(const DicomNode&) = delete;
  DicomNode& operator=(const DicomNode&) = delete;

  int port() const { return receiver_->port(); }
  DicomNodeCounts counts() const;
  // Receives nothing more; studies not yet complete stay on disk for the next process's retention sweep.
  void Stop();

 private:
  DicomNode(DicomNodeOptions options, const ModelRepository* models, JobManager* jobs, Metrics* metrics,
            std::unique_ptr<InstanceStore> store);
  void OnComplete(const CollectedStudy& study);
  // The model for `study`, or nothing. Errors: none; an unreadable study takes no model.
  std::optional<model::Bundle> Route(const CollectedStudy& study) const;
  // Makes the job of `study` for `bundle`. Errors: those of JobManager::Accept (the study waits then).
  absl::Status Dispatch(const CollectedStudy& study, const model::Bundle& bundle);
  void SweepUntilStopped();  // waiting studies offered again; received studies past retention removed
  class ResultsWhenDone;
  void SendResultsWhenDone(const std::shared_ptr<Job>& job, const std::string& peer_ae_title);
  void Forget(const JobObserver* observer);
  // Hands `delivery` to the sender, unless the node has stopped.
  void Deliver(ResultDelivery delivery);
  // At start: the done jobs of an earlier process whose results were neither sent nor given up are sent.
  void ResumeDeliveries();
  // Notes which AE titles brought the study's first instance (kept in its folder, synced).
  void RememberOrigin(const ReceivedInstance& instance);
  // At start: the received studies an earlier process did not make jobs of are taken as complete now.
  void RecoverIncoming();

  const DicomNodeOptions options_;
  const ModelRepository* const models_;
  JobManager* const jobs_;
  Metrics* const metrics_;
  std::unique_ptr<InstanceStore> store_;
  std::unique_ptr<ResultSender> sender_;
  std::unique_ptr<StudyCollector> collector_;
  // Until their job ends: what sends each DICOM job's results back (held here; the job holds them weakly).
  absl::Mutex observers_mutex_;
  std::vector<std::shared_ptr<JobObserver>> observers_ ABSL_GUARDED_BY(observers_mutex_);
  bool delivering_ ABSL_GUARDED_BY(observers_mutex_) = true;  // false once stopped: sender_ goes
  std::unique_ptr<DicomReceiver> receiver_;
  absl::Mutex origin_mutex_;  // one writer of a study's origin at a time
  mutable absl::Mutex mutex_;
  DicomNodeCounts counts_ ABSL_GUARDED_BY(mutex_);
  std::vector<std::pair<CollectedStudy, model::Bundle>> waiting_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread sweeper_;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_DICOM_NODE_H_
