// The shared job queue and job states against a real nats-server with JetStream on loopback (a temporary store,
// started and stopped by PID here). Skips, saying so, where nats-server is not installed.
#include "server/nats_job_queue.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/job_manager.h"
#include "server/job_queue.h"
#include "server/metrics.h"
#include "tests/test_util.h"

namespace segrel::server {
namespace {

using ::segrel::testing::StatusIs;
using ::segrel::testing::TestTempDir;

constexpr char kNatsServer[] = "/usr/sbin/nats-server";  // where Debian puts it

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

// One nats-server on 127.0.0.1, its JetStream files in `store`; stopped by PID.
class NatsServer {
 public:
  NatsServer(std::string store, bool jetstream) : store_(std::move(store)), jetstream_(jetstream) {}
  ~NatsServer() { Stop(); }

  void Start() {
    if (port_ == 0) port_ = FreeLoopbackPort();
    const std::string port = std::to_string(port_);
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<const char*> argv = {kNatsServer, "-a", "127.0.0.1", "-p", port.c_str()};
      if (jetstream_) {
        argv.insert(argv.end(), {"-js", "-sd", store_.c_str()});
      }
      argv.push_back(nullptr);
      const int log = open((store_ + ".log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);  // its banner, not ours
      dup2(log, STDOUT_FILENO);
      dup2(log, STDERR_FILENO);
      execv(kNatsServer, const_cast<char* const*>(argv.data()));
      _exit(127);
    }
    // Ready when it accepts connections (bounded).
    for (int i = 0; i < 100; ++i) {
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      address.sin_port = htons(port_);
      const bool up = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
      close(fd);
      if (up) return;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ADD_FAILURE() << "nats-server did not listen on " << port_ << " within 10 s";
  }

  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100 && waitpid(pid_, &status, WNOHANG) == 0; ++i) absl::SleepFor(absl::Milliseconds(100));
    if (waitpid(pid_, &status, WNOHANG) == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    pid_ = -1;
  }

  std::string url() const { return absl::StrCat("nats://127.0.0.1:", port_); }

 private:
  const std::string store_;
  const bool jetstream_;
  int port_ = 0;
  pid_t pid_ = -1;
};

class NatsJobQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kNatsServer, X_OK) != 0) {
      GTEST_SKIP() << kNatsServer << " is not installed (Debian's nats-server; scripts/install-deps): not run";
    }
    temp_ = TestTempDir();
    nats_ = std::make_unique<NatsServer>(temp_ + "/jetstream", /*jetstream=*/true);
    nats_->Start();
  }

  // A replica's connection and queue.
  struct Replica {
    std::shared_ptr<NatsConnection> connection;
    std::unique_ptr<NatsJobQueue> queue;
  };
  Replica Join(NatsQueueOptions options = {}) {
    absl::StatusOr<std::shared_ptr<NatsConnection>> connection = NatsConnection::Connect(nats_->url());
    EXPECT_TRUE(connection.ok()) << connection.status();
    if (!connection.ok()) return {};
    absl::StatusOr<std::unique_ptr<NatsJobQueue>> queue = NatsJobQueue::Create(*connection, std::move(options));
    EXPECT_TRUE(queue.ok()) << queue.status();
    if (!queue.ok()) return {};
    return {*connection, *std::move(queue)};
  }

  static std::unique_ptr<JobLease> Take(NatsJobQueue& queue, absl::Duration timeout = absl::Seconds(5)) {
    absl::StatusOr<std::unique_ptr<JobLease>> lease = queue.Take(timeout);
    EXPECT_TRUE(lease.ok()) << lease.status();
    return lease.ok() ? *std::move(lease) : nullptr;
  }

  std::string temp_;
  std::unique_ptr<NatsServer> nats_;
};

TEST_F(NatsJobQueueTest, JobsComeOutHighestClassFirstThenInOrderAndLeaveOnceCompleted) {
  Replica replica = Join();
  ASSERT_NE(replica.queue, nullptr);
  for (const auto& [id, priority] : std::vector<std::pair<std::string, int>>{
           {"normal-1", 0}, {"low-1", -5}, {"high-1", 7}, {"normal-2", 0}, {"high-2", 1}}) {
    absl::StatusOr<bool> queued = replica.queue->Publish(id, priority, "payload of " + id);
    ASSERT_TRUE(queued.ok()) << queued.status();
    EXPECT_TRUE(*queued);
  }
  absl::StatusOr<bool> again = replica.queue->Publish("normal-1", 0, "payload of normal-1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(*again) << "a job id published twice is queued once";

  absl::StatusOr<NatsJobQueue::Depth> depth = replica.queue->Measure();
  ASSERT_TRUE(depth.ok()) << depth.status();
  EXPECT_EQ(depth->waiting, 5u);
  EXPECT_GT(depth->oldest_age, absl::ZeroDuration());

  std::vector<std::string> order;
  for (int i = 0; i < 5; ++i) {
    std::unique_ptr<JobLease> lease = Take(*replica.queue);
    ASSERT_NE(lease, nullptr) << "job " << i;
    EXPECT_EQ(lease->payload(), "payload of " + lease->id());
    EXPECT_EQ(lease->deliveries(), 1);
    EXPECT_FALSE(lease->exhausted());
    order.push_back(lease->id());
    EXPECT_TRUE(lease->Complete().ok());
  }
  EXPECT_THAT(order, ::testing::ElementsAre("high-1", "high-2", "normal-1", "normal-2", "low-1"));
  EXPECT_EQ(Take(*replica.queue, absl::Milliseconds(300)), nullptr) << "completed jobs are gone";
  depth = replica.queue->Measure();
  ASSERT_TRUE(depth.ok());
  EXPECT_EQ(depth->waiting + depth->taken, 0u);
  EXPECT_EQ(depth->oldest_age, absl::ZeroDuration());
}

TEST_F(NatsJobQueueTest, AWaitingTakeWakesWhenAnotherReplicaPublishes) {
  Replica worker = Join();
  Replica front = Join();
  ASSERT_NE(worker.queue, nullptr);
  ASSERT_NE(front.queue, nullptr);
  absl::Time published;
  std::thread publisher([&] {
    absl::SleepFor(absl::Milliseconds(400));
    published = absl::Now();
    EXPECT_TRUE(front.queue->Publish("late", 0, "x").ok());
  });
  std::unique_ptr<JobLease> lease = Take(*worker.queue, absl::Seconds(10));
  const absl::Time taken = absl::Now();
  publisher.join();
  ASSERT_NE(lease, nullptr);
  EXPECT_EQ(lease->id(), "late");
  // Woken by the publish itself, not by the 250 ms look-again: well under it.
  EXPECT_LT(taken - published, absl::Milliseconds(200));
  absl::StatusOr<NatsJobQueue::Depth> seen_by_worker = worker.queue->Measure();
  absl::StatusOr<NatsJobQueue::Depth> seen_by_front = front.queue->Measure();
  ASSERT_TRUE(seen_by_worker.ok() && seen_by_front.ok());
  EXPECT_EQ(seen_by_worker->taken, 1u);
  EXPECT_EQ(seen_by_front->taken, 1u) << "every replica sees the cluster's queue";
  EXPECT_TRUE(lease->Complete().ok());
}

TEST_F(NatsJobQueueTest, AFullClusterQueueRefusesWithARetryHint) {
  NatsQueueOptions options;
  options.capacity = 2;
  Replica replica = Join(options);
  ASSERT_NE(replica.queue, nullptr);
  ASSERT_TRUE(replica.queue->Publish("a", 0, "x").ok());
  ASSERT_TRUE(replica.queue->Publish("b", 0, "x").ok());
  absl::StatusOr<bool> refused = replica.queue->Publish("c", 0, "x");
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted, ::testing::HasSubstr("queue is full")));
  EXPECT_TRUE(IsRetryLater(refused.status()));
  std::unique_ptr<JobLease> lease = Take(*replica.queue);
  ASSERT_NE(lease, nullptr);
  ASSERT_TRUE(lease->Complete().ok());
  EXPECT_TRUE(replica.queue->Publish("c", 0, "x").ok()) << "room again once a job completed";
}

TEST_F(NatsJobQueueTest, AnAbandonedLeaseGoesToAnotherWorkerAndARenewedOneDoesNot) {
  NatsQueueOptions options;
  options.ack_wait = absl::Seconds(1);
  options.max_deliveries = 2;
  Replica dying = Join(options);
  Replica other = Join(options);
  ASSERT_NE(dying.queue, nullptr);
  ASSERT_NE(other.queue, nullptr);
  ASSERT_TRUE(dying.queue->Publish("job", 0, "x").ok());

  std::unique_ptr<JobLease> first = Take(*dying.queue);
  ASSERT_NE(first, nullptr);
  first.reset();  // the worker died: neither renewed nor completed
  dying.queue.reset();
  dying.connection.reset();
  std::unique_ptr<JobLease> second = Take(*other.queue, absl::Seconds(5));
  ASSERT_NE(second, nullptr) << "redelivered after ack_wait";
  EXPECT_EQ(second->id(), "job");
  EXPECT_EQ(second->deliveries(), 2);
  EXPECT_FALSE(second->exhausted());

  // Renewed every 300 ms for 2.5 ack_waits: nobody else gets it.
  second->KeepRenewing(absl::Milliseconds(300));
  EXPECT_EQ(Take(*other.queue, absl::Milliseconds(2500)), nullptr);
  absl::StatusOr<NatsJobQueue::Depth> depth = other.queue->Measure();
  ASSERT_TRUE(depth.ok());
  EXPECT_EQ(depth->taken, 1u);
  EXPECT_EQ(depth->redelivered, 1u);

  // Abandoned again: the next delivery is past max_deliveries and tells its taker to fail the job.
  second.reset();
  std::unique_ptr<JobLease> third = Take(*other.queue, absl::Seconds(5));
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(third->deliveries(), 3);
  EXPECT_TRUE(third->exhausted());
  EXPECT_TRUE(third->Complete().ok());
  EXPECT_EQ(Take(*other.queue, absl::Milliseconds(1500)), nullptr) << "a completed job is never redelivered";
}

TEST_F(NatsJobQueueTest, AReleasedJobIsTakenAgainAtOnce) {
  Replica replica = Join();
  ASSERT_NE(replica.queue, nullptr);
  ASSERT_TRUE(replica.queue->Publish("job", 0, "x").ok());
  std::unique_ptr<JobLease> lease = Take(*replica.queue);
  ASSERT_NE(lease, nullptr);
  ASSERT_TRUE(lease->Release().ok());
  const absl::Time released = absl::Now();
  std::unique_ptr<JobLease> again = Take(*replica.queue, absl::Seconds(5));
  ASSERT_NE(again, nullptr);
  EXPECT_LT(absl::Now() - released, absl::Seconds(1)) << "not after ack_wait (30 s)";
  EXPECT_EQ(again->deliveries(), 2);
  EXPECT_TRUE(again->Complete().ok());
}

TEST_F(NatsJobQueueTest, QueuedJobsSurviveANatsRestart) {
  Replica replica = Join();
  ASSERT_NE(replica.queue, nullptr);
  for (const std::string id : {"a", "b", "c"}) ASSERT_TRUE(replica.queue->Publish(id, 0, "x").ok());
  nats_->Stop();
  absl::StatusOr<std::unique_ptr<JobLease>> away = replica.queue->Take(absl::Milliseconds(300));
  EXPECT_TRUE(!away.ok() || *away == nullptr) << "nothing to take while NATS is down";
  nats_->Start();  // same port, same store
  std::vector<std::string> taken;
  for (int attempt = 0; attempt < 40 && taken.size() < 3; ++attempt) {  // the client reconnects within ~250 ms
    absl::StatusOr<std::unique_ptr<JobLease>> lease = replica.queue->Take(absl::Milliseconds(500));
    if (!lease.ok() || *lease == nullptr) continue;
    taken.push_back((*lease)->id());
    EXPECT_TRUE((*lease)->Complete().ok());
  }
  EXPECT_THAT(taken, ::testing::ElementsAre("a", "b", "c"));
}

TEST_F(NatsJobQueueTest, JobStatesAreSharedAndRacingWritersCannotOverwriteUnseen) {
  std::vector<std::unique_ptr<NatsJobStates>> replicas;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::shared_ptr<NatsConnection>> connection = NatsConnection::Connect(nats_->url());
    ASSERT_TRUE(connection.ok()) << connection.status();
    absl::StatusOr<std::unique_ptr<NatsJobStates>> states =
        NatsJobStates::Create(*connection, "segrel-test-jobs", absl::Hours(1));
    ASSERT_TRUE(states.ok()) << states.status();
    replicas.push_back(*std::move(states));
  }
  NatsJobStates& accepting = *replicas[0];
  NatsJobStates& watching = *replicas[1];
  NatsJobStates& cancelling = *replicas[2];

  EXPECT_THAT(watching.Get("job"), StatusIs(absl::StatusCode::kNotFound));
  absl::StatusOr<uint64_t> queued = accepting.Update("job", "queued", 0);
  ASSERT_TRUE(queued.ok()) << queued.status();
  EXPECT_THAT(cancelling.Update("job", "queued", 0), StatusIs(absl::StatusCode::kFailedPrecondition)) << "created once";
  absl::StatusOr<NatsJobStates::Entry> seen = watching.Get("job");
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(seen->value, "queued");
  EXPECT_EQ(seen->revision, *queued);

  // The watching replica follows every write, as a job manager does (JobManager::Follow).
  absl::Mutex mutex;
  std::vector<std::string> heard;
  watching.Listen([&](const std::string& id, const NatsJobStates::Entry& entry) {
    absl::MutexLock lock(&mutex);
    heard.push_back(id + ": " + entry.value);
  });
  const auto last_heard = [&] {
    absl::MutexLock lock(&mutex);
    return heard.empty() ? std::string() : heard.back();
  };
  for (int i = 0; i < 100 && last_heard() != "job: queued"; ++i) absl::SleepFor(absl::Milliseconds(100));
  ASSERT_EQ(last_heard(), "job: queued") << "a listener first hears the entries there are";
  ASSERT_TRUE(cancelling.Update("job", "cancel requested", *queued).ok());
  for (int i = 0; i < 100 && last_heard() != "job: cancel requested"; ++i) absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(last_heard(), "job: cancel requested");
  // The worker still holds the revision it read before the cancel: its progress write is refused, it reads again.
  EXPECT_THAT(accepting.Update("job", "running 50%", *queued),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::HasSubstr("changed since revision")));
  absl::SleepFor(absl::Milliseconds(300));
  absl::MutexLock lock(&mutex);
  EXPECT_THAT(heard, ::testing::ElementsAre("job: queued", "job: cancel requested")) << "nothing else was written";
}

TEST_F(NatsJobQueueTest, NoServerOrNoJetStreamIsUnavailableNamingTheUrl) {
  nats_->Stop();
  const std::string url = nats_->url();
  EXPECT_THAT(NatsConnection::Connect(url, absl::Milliseconds(500)),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::HasSubstr(url)));
  NatsServer plain(temp_ + "/plain", /*jetstream=*/false);
  plain.Start();
  EXPECT_THAT(NatsConnection::Connect(plain.url(), absl::Seconds(1)),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::HasSubstr("has no JetStream")));
}

// Two job managers as two replicas of one cluster: a job whose replicas keep dying while they run it is failed with
// the reason once it has been delivered more than --queue-max-deliveries times, not run for ever.
TEST_F(NatsJobQueueTest, AJobThatKeepsStoppingItsReplicasFailsWithTheReasonAfterTheDeliveryBound) {
  Metrics metrics;
  const std::string spool = temp_ + "/spool";
  const auto replica = [&](const std::string& name) {
    JobManagerOptions options;
    options.spool_dir = spool;
    options.min_free_bytes = 0;
    ClusterOptions cluster;
    cluster.url = nats_->url();
    cluster.replica = name;
    cluster.queue.ack_wait = absl::Seconds(1);
    cluster.queue.max_deliveries = 1;
    options.cluster = cluster;
    absl::StatusOr<std::unique_ptr<JobManager>> manager = JobManager::Create(options, &metrics, nullptr);
    EXPECT_TRUE(manager.ok()) << manager.status();
    return manager.ok() ? *std::move(manager) : nullptr;
  };
  std::unique_ptr<JobManager> dying = replica("dying");
  ASSERT_NE(dying, nullptr);
  JobSpec spec;
  spec.id = "deadly";
  spec.fingerprint = "f";
  spec.received = absl::Now();
  spec.directory = dying->NewJobDirectory(spec.id).value();
  spec.dicom_dir = spec.InputDirectory() + "/dicom";
  std::filesystem::create_directories(spec.dicom_dir);
  std::ofstream(spec.dicom_dir + "/0.dcm") << "patient data";
  ASSERT_TRUE(dying->Accept(spec).ok());
  std::shared_ptr<Job> taken = dying->NextJob();
  ASSERT_NE(taken, nullptr);
  taken.reset();
  dying.reset();  // the replica dies with the job: no renewal, no ending

  std::unique_ptr<JobManager> next = replica("next");
  ASSERT_NE(next, nullptr);
  std::thread worker([&] { EXPECT_EQ(next->NextJob(), nullptr) << "the second delivery is not run"; });
  std::shared_ptr<Job> watched;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline && (watched == nullptr || !IsFinal(watched->Get().state))) {
    watched = next->Find("deadly");
    absl::SleepFor(absl::Milliseconds(100));
  }
  next->Shutdown();
  worker.join();
  ASSERT_NE(watched, nullptr);
  const Job::Snapshot ended = watched->Get();
  EXPECT_EQ(ended.state, JobState::kFailed);
  EXPECT_EQ(ended.status.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(ended.status.message()),
              ::testing::HasSubstr("the job was started 1 time and each replica running it stopped"));
  EXPECT_FALSE(std::filesystem::exists(spec.InputDirectory())) << "its inputs are gone";
}

}  // namespace
}  // namespace segrel::server
