// Sends the DICOM results of a job (its DICOM SEG) back to the peer whose study it analysed, by C-STORE, on a
// thread of its own. A peer that cannot be reached, or that refuses an instance, is tried again after each of the
// back-off times; after the last one the delivery has failed. Counted in segrel_dicom_results_total{outcome}
// (sent, retried, failed) and, once sent, recorded on the audit trail as "delivered" (by dicom:PEER); the outcome
// is kept with the job (DeliveryState).
#ifndef SEGREL_SERVER_RESULT_SENDER_H_
#define SEGREL_SERVER_RESULT_SENDER_H_

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/audit_log.h"
#include "server/dicom_peers.h"
#include "server/job.h"
#include "server/metrics.h"

namespace segrel::server {

struct ResultDelivery {
  std::shared_ptr<Job> job;
  std::vector<std::string> files;  // the DICOM files to send (absolute paths)
  DicomPeer peer;
};

// Where a DICOM job's delivery stands: "sent" or "failed" (given up) once the sender has decided, kept in the job's
// output folder (durably, so a restarted server does not send twice or forever); "pending" for a done job of the
// DICOM node otherwise; "" for jobs without DICOM delivery (not done, or not from the DICOM node).
std::string DeliveryState(const Job& job);

// Thread-safe.
class ResultSender {
 public:
  // `metrics` and `audit` (may be null) must outlive the sender.
  ResultSender(std::string calling_ae_title, std::vector<absl::Duration> backoff, Metrics* metrics, AuditLog* audit);
  ~ResultSender();  // sends nothing more; deliveries not yet sent are dropped (their results stay in the spool)
  ResultSender(const ResultSender&) = delete;
  ResultSender& operator=(const ResultSender&) = delete;

  void Send(ResultDelivery delivery);
  size_t pending() const;

 private:
  struct Pending {
    ResultDelivery delivery;
    size_t attempts = 0;
    absl::Time next;
  };
  void Run();
  // One association to the peer sending every file. Errors: Unavailable when the peer cannot be reached or refuses.
  absl::Status Attempt(const ResultDelivery& delivery) const;

  const std::string calling_ae_title_;
  const std::vector<absl::Duration> backoff_;
  Metrics* const metrics_;
  AuditLog* const audit_;
  mutable absl::Mutex mutex_;
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_RESULT_SENDER_H_
