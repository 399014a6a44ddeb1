#include "server/cluster_jobs.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/job_queue.h"

namespace segrel::server {
namespace {

absl::StatusOr<ClusterJobState> Decode(const std::string& id, const NatsJobStates::Entry& entry) {
  ClusterJobState state;
  if (!state.ParseFromString(entry.value)) {
    return absl::DataLossError(absl::StrCat("the shared state of job ", id, " cannot be read"));
  }
  return state;
}

}  // namespace

JobState LocalState(ClusterJobState::State state) {
  switch (state) {
    case ClusterJobState::RUNNING:
      return JobState::kRunning;
    case ClusterJobState::DONE:
      return JobState::kDone;
    case ClusterJobState::FAILED:
      return JobState::kFailed;
    case ClusterJobState::CANCELLED:
      return JobState::kCancelled;
    default:
      return JobState::kQueued;
  }
}

ClusterJobState::State SharedState(JobState state) {
  switch (state) {
    case JobState::kRunning:
      return ClusterJobState::RUNNING;
    case JobState::kDone:
      return ClusterJobState::DONE;
    case JobState::kFailed:
      return ClusterJobState::FAILED;
    case JobState::kCancelled:
      return ClusterJobState::CANCELLED;
    case JobState::kQueued:
      return ClusterJobState::QUEUED;
  }
  return ClusterJobState::QUEUED;
}

absl::Status SharedStatus(const ClusterJobState& state) {
  return absl::Status(static_cast<absl::StatusCode>(state.status_code()), state.status_message());
}

absl::StatusOr<std::unique_ptr<ClusterJobs>> ClusterJobs::Connect(ClusterOptions options) {
  if (options.replica.empty()) return absl::InvalidArgumentError("a cluster replica needs a name");
  absl::StatusOr<std::shared_ptr<NatsConnection>> connection = NatsConnection::Connect(options.url);
  if (!connection.ok()) return connection.status();
  // Runs are bounded by the job's state (ClusterJobState::runs), not by deliveries: a job handed to a busy replica
  // is given back and delivered again without running.
  NatsQueueOptions queue_options = options.queue;
  queue_options.max_deliveries = 0;
  absl::StatusOr<std::unique_ptr<NatsJobQueue>> queue = NatsJobQueue::Create(*connection, queue_options);
  if (!queue.ok()) return queue.status();
  absl::StatusOr<std::unique_ptr<NatsJobStates>> states =
      NatsJobStates::Create(*connection, options.bucket, options.retention);
  if (!states.ok()) return states.status();
  return std::unique_ptr<ClusterJobs>(
      new ClusterJobs(std::move(options), *std::move(connection), *std::move(queue), *std::move(states)));
}

ClusterJobs::~ClusterJobs() {
  destroying_.Notify();
  if (measurer_.joinable()) measurer_.join();
}

absl::Status ClusterJobs::CheckRoom() const {
  absl::StatusOr<NatsJobQueue::Depth> depth = queue_->Measure();
  if (!depth.ok()) return depth.status();
  if (depth->waiting + depth->taken >= static_cast<uint64_t>(options_.queue.capacity)) {
    return RetryLater(absl::ResourceExhaustedError(
        absl::StrCat("the cluster's queue is full (", options_.queue.capacity, " jobs queued or running)")));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<ClusterJobState>> ClusterJobs::Enqueue(const JobSpec& spec) {
  ClusterJobState state;
  state.set_state(ClusterJobState::QUEUED);
  state.set_directory(spec.directory);
  state.set_fingerprint(spec.fingerprint);
  absl::StatusOr<uint64_t> created = states_->Update(spec.id, state.SerializeAsString(), /*revision=*/0);
  if (absl::IsFailedPrecondition(created.status())) {  // submitted before, to this replica or another
    absl::StatusOr<ClusterJobState> earlier = Get(spec.id);
    if (!earlier.ok()) return earlier.status();
    return std::optional<ClusterJobState>(*std::move(earlier));
  }
  if (!created.ok()) return created.status();
  absl::StatusOr<bool> published = queue_->Publish(spec.id, spec.priority, spec.directory);
  if (!published.ok()) {
    states_->Remove(spec.id).IgnoreError();  // refused: the id may be submitted again
    return published.status();
  }
  return std::optional<ClusterJobState>();
}

absl::StatusOr<std::unique_ptr<JobLease>> ClusterJobs::Take(absl::Duration timeout) { return queue_->Take(timeout); }

absl::StatusOr<ClusterJobState> ClusterJobs::Change(const std::string& id,
                                                    const std::function<bool(ClusterJobState&)>& change) {
  for (int attempt = 0; attempt < 100; ++attempt) {  // each retry means another replica wrote: bounded, not endless
    absl::StatusOr<NatsJobStates::Entry> entry = states_->Get(id);
    if (!entry.ok()) return entry.status();
    absl::StatusOr<ClusterJobState> state = Decode(id, *entry);
    if (!state.ok()) return state.status();
    if (!change(*state)) return state;
    absl::StatusOr<uint64_t> written = states_->Update(id, state->SerializeAsString(), entry->revision);
    if (written.ok()) return state;
    if (!absl::IsFailedPrecondition(written.status())) return written.status();
  }
  return absl::AbortedError(absl::StrCat("the shared state of job ", id, " kept changing; try again"));
}

absl::StatusOr<ClusterJobState> ClusterJobs::Get(const std::string& id) const {
  absl::StatusOr<NatsJobStates::Entry> entry = states_->Get(id);
  if (!entry.ok()) return entry.status();
  return Decode(id, *entry);
}

void ClusterJobs::Listen(std::function<void(const std::string& id, const ClusterJobState& state)> listener) {
  states_->Listen([listener = std::move(listener)](const std::string& id, const NatsJobStates::Entry& entry) {
    absl::StatusOr<ClusterJobState> state = Decode(id, entry);
    if (state.ok()) listener(id, *state);
  });
}

void ClusterJobs::Measure(absl::Duration period, std::function<void(const NatsJobQueue::Depth&)> measured) {
  measurer_ = std::thread([this, period, measured = std::move(measured)] {
    do {
      absl::StatusOr<NatsJobQueue::Depth> depth = queue_->Measure();
      if (depth.ok()) measured(*depth);  // NATS away: the gauges keep their last values
    } while (!destroying_.WaitForNotificationWithTimeout(period));
  });
}

}  // namespace segrel::server
