// A job's durable record: its spec and, once it has ended, how it ended, in one file in the job's spool folder.
// Written atomically (temporary file, fsync, rename, fsync of the folder), so after a crash the record is either
// the old one or the new one, never a mix; the job manager writes it before it acknowledges a job and before a job
// is seen to end, and recovers the spool from the records at start-up.
#ifndef SEGREL_SERVER_JOB_RECORD_H_
#define SEGREL_SERVER_JOB_RECORD_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/job.h"

namespace segrel::server {

// The record's name in the job's folder.
inline constexpr char kJobRecordName[] = "job.record";

struct JobEnding {
  absl::Status status;               // OK: done
  std::vector<std::string> results;  // done: names in the output folder
  absl::Time ended;
};

struct JobRecord {
  JobSpec spec;
  std::optional<JobEnding> ending;  // none while queued or running
};

// Writes `record` to its job's folder (record.spec.directory), replacing the earlier record atomically. Errors:
// Internal naming the folder when the record cannot be written or synced.
absl::Status WriteJobRecord(const JobRecord& record);

// Reads the record in job folder `directory`; the spec's directory and paths are made absolute in `directory`.
// Errors: NotFound when there is no record (an upload that never completed); DataLoss when it cannot be parsed.
absl::StatusOr<JobRecord> ReadJobRecord(const std::string& directory);

}  // namespace segrel::server

#endif  // SEGREL_SERVER_JOB_RECORD_H_
