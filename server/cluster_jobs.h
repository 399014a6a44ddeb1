// The jobs of a cluster of segrel-server replicas (scale-out; docs/scale-out.md): the distributed counterpart of the
// job manager's in-process queue, over one NATS JetStream (server/nats_job_queue.h). A JobManager given a ClusterJobs
// queues its accepted jobs here instead of in memory, takes the next job for its workers from here, and keeps its
// local jobs in step with the states the other replicas write, so that Submit, Watch and Cancel work on any replica.
//
// Every job has one state in the shared bucket (internal::ClusterJobState, keyed by job id) and, while it waits or
// runs, one message in the queue. A state is only ever changed by compare-and-set (Change), so two replicas that race
// on a job (a Cancel here, a worker's progress there) never overwrite each other unseen. The job's files are on the
// spool every replica mounts; the message names the job's folder.
#ifndef SEGREL_SERVER_CLUSTER_JOBS_H_
#define SEGREL_SERVER_CLUSTER_JOBS_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "segrel/internal/job_record.pb.h"
#include "server/job.h"
#include "server/nats_job_queue.h"

namespace segrel::server {

using ClusterJobState = internal::ClusterJobState;

// The shared state's view of a job as a Job::Snapshot has it, and back.
JobState LocalState(ClusterJobState::State state);
ClusterJobState::State SharedState(JobState state);
absl::Status SharedStatus(const ClusterJobState& state);

struct ClusterOptions {
  std::string url;      // nats://HOST:PORT of the cluster's NATS with JetStream
  std::string replica;  // this replica's name in job states and logs (the pod's name)
  NatsQueueOptions queue;
  std::string bucket = "segrel-jobs";          // the job states' key-value bucket
  absl::Duration retention = absl::Hours(24);  // how long an ended job's state is kept
};

// Thread-safe.
class ClusterJobs {
 public:
  // Connects and makes (or joins) the stream, its consumers and the bucket. Errors: InvalidArgument for options out
  // of range; Unavailable when NATS cannot be reached or has no JetStream.
  static absl::StatusOr<std::unique_ptr<ClusterJobs>> Connect(ClusterOptions options);
  ~ClusterJobs();
  ClusterJobs(const ClusterJobs&) = delete;
  ClusterJobs& operator=(const ClusterJobs&) = delete;

  const ClusterOptions& options() const { return options_; }

  // Whether the cluster's queue has room for one more job. Errors: ResourceExhausted (RetryLater) when it is full;
  // Unavailable when NATS cannot be reached.
  absl::Status CheckRoom() const;

  // Queues job `spec` (its folder on the shared spool holds its record): its state first, then its message. Returns
  // the state of an earlier submission with the same id, when there is one (nothing was queued then; the caller
  // compares fingerprints). Errors: ResourceExhausted (RetryLater) when the queue is full (the state is removed
  // again); Unavailable.
  absl::StatusOr<std::optional<ClusterJobState>> Enqueue(const JobSpec& spec);

  // The next job for this replica's workers, waiting up to `timeout`; null when none came (NatsJobQueue::Take).
  absl::StatusOr<std::unique_ptr<JobLease>> Take(absl::Duration timeout);

  // Applies `change` to job `id`'s state by compare-and-set, reading and applying it again when another replica wrote
  // in between; `change` returns false to leave the state as it is. Returns the state after. Errors: NotFound for a
  // job the cluster does not know (never submitted, or expired); Unavailable.
  absl::StatusOr<ClusterJobState> Change(const std::string& id, const std::function<bool(ClusterJobState&)>& change);
  absl::StatusOr<ClusterJobState> Get(const std::string& id) const;

  // Calls `listener(id, state)` for every state any replica writes from now on, on a thread of its own, until
  // destroyed. REQUIRES: called once, before the first Enqueue.
  void Listen(std::function<void(const std::string& id, const ClusterJobState& state)> listener);

  // Calls `measured(depth)` with the cluster's queue about every `period`, on a thread of its own, until destroyed
  // (for the metrics every replica exports alike). REQUIRES: called once.
  void Measure(absl::Duration period, std::function<void(const NatsJobQueue::Depth&)> measured);

 private:
  ClusterJobs(ClusterOptions options, std::shared_ptr<NatsConnection> connection, std::unique_ptr<NatsJobQueue> queue,
              std::unique_ptr<NatsJobStates> states)
      : options_(std::move(options)),
        connection_(std::move(connection)),
        queue_(std::move(queue)),
        states_(std::move(states)) {}

  const ClusterOptions options_;
  const std::shared_ptr<NatsConnection> connection_;
  const std::unique_ptr<NatsJobQueue> queue_;
  const std::unique_ptr<NatsJobStates> states_;
  absl::Notification destroying_;
  std::thread measurer_;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_CLUSTER_JOBS_H_
