// The job queue and job-state store that many segrel-server replicas share, on NATS JetStream: the distributed
// counterpart of server/job_queue.h for scale-out (issue 13; docs/scale-out.md). Nothing here is home-made
// distribution: JetStream keeps the jobs (file storage, so a NATS restart loses none) and decides who runs what.
//
// The queue is a work-queue stream with one subject per priority class (segrel.jobs.high|normal|low) and one durable
// pull consumer per class. A worker asks for a job only when it has a free device (Take), so work goes to idle
// replicas: it pulls from the highest class the consumers report jobs waiting in (JetStream's pull API with a short
// expiry; NATS 2.9 answers a no-wait pull, or one that lost a job to another replica, only sometimes, and the C
// client's fetch cannot ask without waiting); it holds the job as a JobLease, renews it while the job runs (an
// in-progress ack), and completes it only once the results are stored. A lease that is neither renewed nor completed
// within `ack_wait` (the worker was killed) is redelivered to another worker; after `max_deliveries` deliveries the
// next taker is told to fail it (JobLease::exhausted) instead of running it again.
//
// Job states live in a JetStream key-value bucket (NatsJobStates), which every replica reads and watches: Submit on
// one replica, Watch on a second and Cancel on a third see the same job.
#ifndef SEGREL_SERVER_NATS_JOB_QUEUE_H_
#define SEGREL_SERVER_NATS_JOB_QUEUE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

// The C client's types, declared here so that only nats_job_queue.cc sees its header.
typedef struct __natsConnection natsConnection;
typedef struct __jsCtx jsCtx;
typedef struct __natsSubscription natsSubscription;
typedef struct __natsMsg natsMsg;
typedef struct __kvStore kvStore;

namespace segrel::server {

// One connection to a NATS server with JetStream, shared by a replica's queue and state store. Thread-safe.
class NatsConnection {
 public:
  // Connects to `url` (nats://host:port), waiting up to `timeout`; reconnects by itself when the link drops (calls
  // made meanwhile fail with Unavailable). Errors: Unavailable when nobody answers at `url` or it has no JetStream.
  static absl::StatusOr<std::shared_ptr<NatsConnection>> Connect(const std::string& url,
                                                                 absl::Duration timeout = absl::Seconds(5));
  ~NatsConnection();
  NatsConnection(const NatsConnection&) = delete;
  NatsConnection& operator=(const NatsConnection&) = delete;

  natsConnection* connection() const { return connection_; }
  jsCtx* jetstream() const { return jetstream_; }
  // How long a JetStream request may wait for its answer.
  absl::Duration timeout() const { return timeout_; }
  // How often the connection was made again after NATS went away: watches started before must start again (a
  // JetStream watch does not always survive a NATS restart).
  uint64_t reconnects() const { return reconnects_->load(); }

 private:
  NatsConnection(natsConnection* connection, jsCtx* jetstream, absl::Duration timeout,
                 std::unique_ptr<std::atomic<uint64_t>> reconnects)
      : connection_(connection), jetstream_(jetstream), timeout_(timeout), reconnects_(std::move(reconnects)) {}
  natsConnection* const connection_;
  jsCtx* const jetstream_;
  const absl::Duration timeout_;
  const std::unique_ptr<std::atomic<uint64_t>> reconnects_;  // counted by the client's reconnected callback
};

struct NatsQueueOptions {
  std::string stream = "SEGREL_JOBS";  // the stream's name; its subjects are "segrel.jobs.<class>"
  int64_t capacity = 16;               // jobs queued or running in the whole cluster; beyond it Publish refuses
  absl::Duration ack_wait = absl::Seconds(30);  // a lease not renewed for this long is redelivered to another worker
  int max_deliveries = 3;  // deliveries of one job before its next taker fails it; 0: no bound (the taker's own)
  absl::Duration duplicate_window = absl::Hours(1);  // a job id published again within it is queued once
};

// The three priority classes of the stream, highest first; a job's int32 priority maps to one (PriorityClass).
enum class PriorityClass { kHigh = 0, kNormal = 1, kLow = 2 };
PriorityClass PriorityClassOf(int32_t priority);  // > 0 high, 0 normal, < 0 low
const char* PriorityClassName(PriorityClass priority_class);

// One job taken from the queue by one worker. Not thread-safe, except that the renewal thread (KeepRenewing) runs
// beside the owner's calls. Destroying a lease that was not ended leaves the job to be redelivered after ack_wait.
class JobLease {
 public:
  ~JobLease();
  JobLease(const JobLease&) = delete;
  JobLease& operator=(const JobLease&) = delete;

  const std::string& id() const { return id_; }
  const std::string& payload() const { return payload_; }
  PriorityClass priority_class() const { return priority_class_; }
  int deliveries() const { return deliveries_; }  // 1 the first time
  // Whether the job was delivered more than max_deliveries times (its earlier takers died): fail it, do not run it.
  bool exhausted() const { return exhausted_; }
  // When the job was published.
  absl::Time published() const { return published_; }

  // Keeps the job from being redelivered for another ack_wait.
  absl::Status Renew();
  // Renews every `interval` on a thread of its own until the lease ends. REQUIRES: interval < ack_wait.
  void KeepRenewing(absl::Duration interval);
  // The job is done with (its results stored, or it failed or was cancelled for good): it leaves the queue. Waits for
  // the server's confirmation, so a job completed is never redelivered.
  absl::Status Complete();
  // Gives the job back to be taken again at once (this replica is stopping and did not run it).
  absl::Status Release();

 private:
  friend class NatsJobQueue;
  // From the message a pull request got. Errors: Internal when it is not a JetStream delivery.
  static absl::StatusOr<std::unique_ptr<JobLease>> FromDelivery(std::shared_ptr<NatsConnection> connection,
                                                                natsMsg* message, PriorityClass priority_class,
                                                                int max_deliveries);
  JobLease(std::shared_ptr<NatsConnection> connection, PriorityClass priority_class)
      : connection_(std::move(connection)), priority_class_(priority_class) {}
  // Sends `acknowledgement` (JetStream's "+ACK", "+WPI", "-NAK") for the job, waiting for the server's answer if
  // `confirmed`.
  absl::Status Acknowledge(const char* acknowledgement, bool confirmed, absl::string_view what);
  void StopRenewing();

  const std::shared_ptr<NatsConnection> connection_;
  std::string ack_subject_;  // $JS.ACK.<stream>.<consumer>.<deliveries>.<sequences>.<time>.<pending>
  std::string id_;
  std::string payload_;
  PriorityClass priority_class_;
  int deliveries_ = 1;
  bool exhausted_ = false;
  absl::Time published_;
  bool ended_ = false;
  absl::Notification stop_renewing_;
  std::thread renewer_;
};

// Thread-safe.
class NatsJobQueue {
 public:
  // Makes the stream and its consumers, or takes the ones another replica made (updating the capacity). Errors:
  // InvalidArgument for options out of range; Unavailable when the server cannot be asked.
  static absl::StatusOr<std::unique_ptr<NatsJobQueue>> Create(std::shared_ptr<NatsConnection> connection,
                                                              NatsQueueOptions options);
  ~NatsJobQueue();
  NatsJobQueue(const NatsJobQueue&) = delete;
  NatsJobQueue& operator=(const NatsJobQueue&) = delete;

  // Queues job `id` with `payload`. Returns false when the id was published before within the duplicate window
  // (queued once). Errors: ResourceExhausted (RetryLater) when the cluster's queue holds `capacity` jobs;
  // Unavailable when the server cannot be reached.
  absl::StatusOr<bool> Publish(const std::string& id, int32_t priority, const std::string& payload);

  // The next job, highest class first and first come first served within one, waiting up to `timeout` for one
  // to arrive; null when none came. Errors: Unavailable when the server cannot be reached.
  absl::StatusOr<std::unique_ptr<JobLease>> Take(absl::Duration timeout);

  struct Depth {
    uint64_t waiting = 0;       // published, not yet taken (or given back, or due for redelivery)
    uint64_t taken = 0;         // taken, not yet completed
    uint64_t redelivered = 0;   // taken jobs that had been delivered before
    absl::Duration oldest_age;  // since the oldest job not completed was published (0 when none)
  };
  // The cluster's queue as the stream has it: the same for every replica that asks.
  absl::StatusOr<Depth> Measure() const;

 private:
  NatsJobQueue(std::shared_ptr<NatsConnection> connection, NatsQueueOptions options)
      : connection_(std::move(connection)), options_(std::move(options)) {}
  // Where one class's pull requests are answered: a subscription of this replica for its whole life, so an answer
  // that comes late is still received (and given back when nobody takes it then).
  struct Inbox {
    NatsJobQueue* queue = nullptr;
    PriorityClass priority_class = PriorityClass::kNormal;
    std::string subject;
    natsSubscription* subscription = nullptr;
    bool asking = false;  // a pull request is out, unanswered
    absl::Time asked;
  };
  absl::Status Subscribe();
  // The class to ask for a job: the highest with jobs waiting (with `redeliveries` also one with jobs taken, which
  // may be due again); none when every class is empty.
  absl::StatusOr<std::optional<PriorityClass>> ClassToAsk(bool redeliveries) const;
  // Sends one pull request for `inbox`'s class, unless one is out already (and not overdue).
  absl::Status Ask(Inbox& inbox);
  // The subscriptions' callbacks (the C client's delivery threads).
  static void OnAnswer(natsConnection* connection, natsSubscription* subscription, natsMsg* message, void* inbox);
  static void OnArrival(natsConnection* connection, natsSubscription* subscription, natsMsg* message, void* queue);
  bool HandedOrWoken() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return handed_ != nullptr || woken_; }
  std::string Subject(PriorityClass priority_class) const;
  std::string ConsumerName(PriorityClass priority_class) const;

  const std::shared_ptr<NatsConnection> connection_;
  const NatsQueueOptions options_;
  absl::Mutex take_mutex_;  // one Take at a time
  absl::Time redeliveries_looked_for_ ABSL_GUARDED_BY(take_mutex_) = absl::InfinitePast();
  mutable absl::Mutex mutex_;     // between Take and the callbacks
  std::array<Inbox, 3> inboxes_;  // subject and subscription set once; asking and asked under mutex_
  // A plain subscription to the job subjects: it hears every publish, which wakes a waiting Take without polling.
  natsSubscription* arrivals_ = nullptr;
  bool taking_ ABSL_GUARDED_BY(mutex_) = false;        // a Take waits for a job
  natsMsg* handed_ ABSL_GUARDED_BY(mutex_) = nullptr;  // the job an answer brought it
  PriorityClass handed_class_ ABSL_GUARDED_BY(mutex_) = PriorityClass::kNormal;
  bool woken_ ABSL_GUARDED_BY(mutex_) = false;     // something happened since the taker last looked
  bool released_ ABSL_GUARDED_BY(mutex_) = false;  // a job was given back (not counted as waiting)
};

// Job states every replica reads: one key per job id in a JetStream key-value bucket (file storage). Thread-safe.
class NatsJobStates {
 public:
  // Makes the bucket, or opens the one another replica made. `ttl`: how long an entry lives after its last write
  // (the retention of ended jobs). Errors: Unavailable when the server cannot be asked.
  static absl::StatusOr<std::unique_ptr<NatsJobStates>> Create(std::shared_ptr<NatsConnection> connection,
                                                               const std::string& bucket, absl::Duration ttl);
  ~NatsJobStates();
  NatsJobStates(const NatsJobStates&) = delete;
  NatsJobStates& operator=(const NatsJobStates&) = delete;

  struct Entry {
    std::string value;
    uint64_t revision = 0;
  };
  // Writes `value` only if `id` is still at `revision` (0: only if it has no entry): a compare-and-set, so two
  // replicas that race on one job (a cancel and a worker's progress) cannot overwrite each other unseen. Errors:
  // FailedPrecondition when the entry moved on (read it again); Unavailable.
  absl::StatusOr<uint64_t> Update(const std::string& id, const std::string& value, uint64_t revision);
  // Removes `id`'s entry (Get answers NotFound, Update with revision 0 may write it again). Errors: Unavailable.
  absl::Status Remove(const std::string& id);
  // The entry of `id`. Errors: NotFound when it has none (never written, or expired); Unavailable.
  absl::StatusOr<Entry> Get(const std::string& id) const;
  // Calls `listener(id, entry)` for every entry written from now on, by any replica, on a thread of its own, until
  // the store is destroyed (watching again after NATS came back: the entries written meanwhile are given then).
  // REQUIRES: called once.
  void Listen(std::function<void(const std::string& id, const Entry& entry)> listener);

 private:
  NatsJobStates(std::shared_ptr<NatsConnection> connection, kvStore* store)
      : connection_(std::move(connection)), store_(store) {}
  void ListenUntilDestroyed(const std::function<void(const std::string&, const Entry&)>& listener);

  const std::shared_ptr<NatsConnection> connection_;
  kvStore* const store_;
  absl::Notification destroying_;
  std::thread listener_;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_NATS_JOB_QUEUE_H_
