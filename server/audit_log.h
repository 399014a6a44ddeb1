// The audit trail: one line per job event, naming who did what to which job with which result, for a site's
// security officer and its log collector. It never names files, paths, DICOM attributes or any client text beyond
// the job id (which IsValidJobId limits to letters, digits, '.', '_' and '-'), so it can be kept and shipped
// without patient data in it; failure messages, which may quote a series description, stay out too.
//
// A line: "TIME segrel-audit event=EVENT job=ID client=OWNER model=NAME@VERSION [by=CALLER] [code=CODE]
// [bytes_in=N] [bytes_out=N]", TIME in RFC 3339 UTC with microseconds; OWNER and CALLER are names from the tokens
// file ("-" when access is open). Values outside [A-Za-z0-9._@:/+-] are written as %XX, so a line stays one line.
#ifndef SEGREL_SERVER_AUDIT_LOG_H_
#define SEGREL_SERVER_AUDIT_LOG_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/job.h"

namespace segrel::server {

enum class AuditEvent {
  // Recorded by the job manager, wherever the job came from:
  kSubmitted,    // accepted into the queue (bytes_in: the study's size)
  kRecovered,    // taken back from the spool at start-up (queued again, or ended and watchable)
  kStarted,      // a worker took it
  kEnded,        // done, failed or cancelled (code)
  kInterrupted,  // stopped by the server's shutdown before it ended: kept for the next process on the spool
  kExpired,      // forgotten at its retention time (or beyond the jobs kept) and deleted
  // Recorded by the frontend that served the client's request:
  kCancelled,  // a client asked to cancel it (by)
  kDelivered,  // a Watch stream sent all its result files (by, bytes_out)
  kDeleted,    // a client deleted it (by)
};

const char* AuditEventName(AuditEvent event);

// What some events add to the job's own fields.
struct AuditDetails {
  std::optional<std::string> by;         // the client that asked (cancelled, delivered, deleted)
  std::optional<absl::StatusCode> code;  // ended: how
  std::optional<uint64_t> bytes_out;     // delivered: result bytes sent
};

// Thread-safe: lines from concurrent events do not interleave.
class AuditLog {
 public:
  // "-": standard error; otherwise the file at `path`, appended to (created 0600). Errors: Internal naming the file.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& path);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Writes and flushes one line (the file comment). A failed write is counted, never thrown at the job.
  void Record(AuditEvent event, const Job& job, const AuditDetails& details = {});

  uint64_t failed_writes() const;

 private:
  AuditLog(std::FILE* file, bool owned) : file_(file), owned_(owned) {}

  std::FILE* const file_;
  const bool owned_;
  mutable absl::Mutex mutex_;
  uint64_t failed_writes_ ABSL_GUARDED_BY(mutex_) = 0;
};

// Record on `log` when it is not null (the job manager and the service run without an audit trail in some tests).
inline void Audit(AuditLog* log, AuditEvent event, const Job& job, const AuditDetails& details = {}) {
  if (log != nullptr) log->Record(event, job, details);
}

}  // namespace segrel::server

#endif  // SEGREL_SERVER_AUDIT_LOG_H_
