#include "server/nats_job_queue.h"

#include <nats/nats.h>

#include <algorithm>
#include <array>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/job_queue.h"

namespace segrel::server {
namespace {

constexpr std::array<PriorityClass, 3> kClasses = {PriorityClass::kHigh, PriorityClass::kNormal, PriorityClass::kLow};
constexpr char kIdHeader[] = "Nats-Msg-Id";  // JetStream's de-duplication header: the job id
// Heard by every waiting Take with the job subjects, and no subject of the stream: a job was given back.
constexpr char kReleasedSubject[] = "segrel.jobs.released";

int64_t Millis(absl::Duration d) { return std::max<int64_t>(1, absl::ToInt64Milliseconds(d)); }

// The client's last error text for `status`: it says more than the status name (e.g. the server's JetStream error).
std::string LastError(natsStatus status) {
  natsStatus last = NATS_OK;
  const char* text = nats_GetLastError(&last);
  if (text != nullptr && last == status && *text != '\0') return text;
  return natsStatus_GetText(status);
}

absl::Status NatsError(natsStatus status, absl::string_view what) {
  return absl::UnavailableError(absl::StrCat("NATS: ", what, ": ", LastError(status)));
}

// Frees a C client object at the end of a scope.
template <typename T, void (*Destroy)(T*)>
struct Owned {
  T* p = nullptr;
  ~Owned() {
    if (p != nullptr) Destroy(p);
  }
};

jsOptions RequestOptions(const NatsConnection& connection) {
  jsOptions options;
  jsOptions_Init(&options);
  options.Wait = Millis(connection.timeout());
  return options;
}

}  // namespace

PriorityClass PriorityClassOf(int32_t priority) {
  if (priority > 0) return PriorityClass::kHigh;
  return priority == 0 ? PriorityClass::kNormal : PriorityClass::kLow;
}

const char* PriorityClassName(PriorityClass priority_class) {
  switch (priority_class) {
    case PriorityClass::kHigh:
      return "high";
    case PriorityClass::kNormal:
      return "normal";
    case PriorityClass::kLow:
      return "low";
  }
  return "normal";
}

// --- NatsConnection ---

absl::StatusOr<std::shared_ptr<NatsConnection>> NatsConnection::Connect(const std::string& url,
                                                                        absl::Duration timeout) {
  Owned<natsOptions, natsOptions_Destroy> options;
  natsStatus status = natsOptions_Create(&options.p);
  if (status == NATS_OK) status = natsOptions_SetURL(options.p, url.c_str());
  if (status == NATS_OK) status = natsOptions_SetTimeout(options.p, Millis(timeout));
  // Reconnect for ever, every 250 ms: a NATS restart must not end a replica; calls fail meanwhile.
  if (status == NATS_OK) status = natsOptions_SetMaxReconnect(options.p, -1);
  if (status == NATS_OK) status = natsOptions_SetReconnectWait(options.p, 250);
  auto reconnects = std::make_unique<std::atomic<uint64_t>>(0);
  if (status == NATS_OK) {
    status = natsOptions_SetReconnectedCB(
        options.p, [](natsConnection*, void* count) { ++*static_cast<std::atomic<uint64_t>*>(count); },
        reconnects.get());
  }
  if (status != NATS_OK) return absl::InvalidArgumentError(absl::StrCat("NATS URL ", url, ": ", LastError(status)));
  natsConnection* connection = nullptr;
  status = natsConnection_Connect(&connection, options.p);
  if (status != NATS_OK) return NatsError(status, absl::StrCat("cannot connect to ", url));
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = Millis(timeout);
  jsCtx* jetstream = nullptr;
  status = natsConnection_JetStream(&jetstream, connection, &js_options);
  jsAccountInfo* account = nullptr;
  if (status == NATS_OK) status = js_GetAccountInfo(&account, jetstream, nullptr, nullptr);
  if (account != nullptr) jsAccountInfo_Destroy(account);
  if (status != NATS_OK) {
    const absl::Status error = NatsError(status, absl::StrCat(url, " has no JetStream (start nats-server with -js)"));
    if (jetstream != nullptr) jsCtx_Destroy(jetstream);
    natsConnection_Destroy(connection);
    return error;
  }
  return std::shared_ptr<NatsConnection>(new NatsConnection(connection, jetstream, timeout, std::move(reconnects)));
}

NatsConnection::~NatsConnection() {
  jsCtx_Destroy(jetstream_);
  natsConnection_Destroy(connection_);
}

// --- JobLease ---

absl::StatusOr<std::unique_ptr<JobLease>> JobLease::FromDelivery(std::shared_ptr<NatsConnection> connection,
                                                                 natsMsg* message, PriorityClass priority_class,
                                                                 int max_deliveries) {
  std::unique_ptr<JobLease> lease(new JobLease(std::move(connection), priority_class));
  const char* reply = natsMsg_GetReply(message);
  if (reply != nullptr) lease->ack_subject_ = reply;
  // $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time ns>.<pending> (NATS 2.9 also sends a
  // form with <domain>.<account hash> before the stream and a random token after the pending count).
  std::vector<absl::string_view> tokens = absl::StrSplit(lease->ack_subject_, '.');
  const size_t first = tokens.size() == 9 ? 2 : 4;
  int64_t delivered = 0, nanos = 0;
  if (tokens.size() < 9 || tokens[0] != "$JS" || tokens[1] != "ACK" ||
      !absl::SimpleAtoi(tokens[first + 2], &delivered) || !absl::SimpleAtoi(tokens[first + 5], &nanos)) {
    return absl::InternalError(absl::StrCat("NATS: not a JetStream delivery: '", lease->ack_subject_, "'"));
  }
  lease->deliveries_ = static_cast<int>(delivered);
  lease->published_ = absl::FromUnixNanos(nanos);
  lease->exhausted_ = max_deliveries > 0 && delivered > max_deliveries;
  lease->payload_.assign(natsMsg_GetData(message), natsMsg_GetDataLength(message));
  const char* id = nullptr;
  if (natsMsgHeader_Get(message, kIdHeader, &id) == NATS_OK && id != nullptr) lease->id_ = id;
  return lease;
}

JobLease::~JobLease() { StopRenewing(); }

absl::Status JobLease::Acknowledge(const char* acknowledgement, bool confirmed, absl::string_view what) {
  natsStatus status;
  if (confirmed) {
    natsMsg* answer = nullptr;
    status = natsConnection_RequestString(&answer, connection_->connection(), ack_subject_.c_str(), acknowledgement,
                                          Millis(connection_->timeout()));
    if (answer != nullptr) natsMsg_Destroy(answer);
  } else {
    status = natsConnection_PublishString(connection_->connection(), ack_subject_.c_str(), acknowledgement);
  }
  return status == NATS_OK ? absl::OkStatus() : NatsError(status, absl::StrCat("cannot ", what, " job ", id_));
}

absl::Status JobLease::Renew() { return Acknowledge("+WPI", /*confirmed=*/false, "renew"); }

void JobLease::KeepRenewing(absl::Duration interval) {
  if (renewer_.joinable()) return;
  renewer_ = std::thread([this, interval] {
    // A failed renewal (NATS away for a moment) is retried at the next interval; a long outage lets the job be
    // redelivered, which is the broker's promise to the other replicas.
    while (!stop_renewing_.WaitForNotificationWithTimeout(interval)) Renew().IgnoreError();
  });
}

void JobLease::StopRenewing() {
  if (!renewer_.joinable()) return;
  stop_renewing_.Notify();
  renewer_.join();
}

absl::Status JobLease::Complete() {
  StopRenewing();
  // Confirmed: once this returns, the job is out of the stream and is never redelivered.
  return Acknowledge("+ACK", /*confirmed=*/true, "complete");
}

absl::Status JobLease::Release() {
  StopRenewing();
  if (absl::Status given = Acknowledge("-NAK", /*confirmed=*/false, "give back"); !given.ok()) return given;
  // A job given back does not count as waiting in its consumer: tell the idle workers to look for it.
  natsConnection_PublishString(connection_->connection(), kReleasedSubject, id_.c_str());
  return absl::OkStatus();
}

// --- NatsJobQueue ---

std::string NatsJobQueue::Subject(PriorityClass priority_class) const {
  return absl::StrCat("segrel.jobs.", PriorityClassName(priority_class));
}

std::string NatsJobQueue::ConsumerName(PriorityClass priority_class) const {
  return absl::StrCat("segrel-workers-", PriorityClassName(priority_class));
}

absl::StatusOr<std::unique_ptr<NatsJobQueue>> NatsJobQueue::Create(std::shared_ptr<NatsConnection> connection,
                                                                   NatsQueueOptions options) {
  if (options.capacity < 1) return absl::InvalidArgumentError("the queue capacity must be at least 1");
  if (options.max_deliveries < 0) return absl::InvalidArgumentError("max_deliveries must not be negative");
  if (options.ack_wait < absl::Seconds(1)) return absl::InvalidArgumentError("ack_wait must be at least 1 s");
  std::unique_ptr<NatsJobQueue> queue(new NatsJobQueue(std::move(connection), std::move(options)));
  const NatsQueueOptions& o = queue->options_;
  jsOptions request = RequestOptions(*queue->connection_);

  std::array<std::string, 3> subjects;
  std::array<const char*, 3> subject_names;
  for (PriorityClass c : kClasses) {
    subjects[static_cast<int>(c)] = queue->Subject(c);
    subject_names[static_cast<int>(c)] = subjects[static_cast<int>(c)].c_str();
  }
  jsStreamConfig stream;
  jsStreamConfig_Init(&stream);
  stream.Name = o.stream.c_str();
  stream.Subjects = subject_names.data();
  stream.SubjectsLen = static_cast<int>(subject_names.size());
  stream.Retention = js_WorkQueuePolicy;  // a completed job leaves the stream
  stream.Storage = js_FileStorage;        // and a queued one survives a NATS restart
  stream.MaxMsgs = o.capacity;
  stream.Discard = js_DiscardNew;  // a full queue refuses the newcomer, it does not drop the oldest job
  stream.Duplicates = absl::ToInt64Nanoseconds(o.duplicate_window);
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status = js_AddStream(&info, queue->connection_->jetstream(), &stream, &request, &code);
  if (status != NATS_OK && code == JSStreamNameExistErr) {  // another replica made it: take its settings over
    status = js_UpdateStream(&info, queue->connection_->jetstream(), &stream, &request, &code);
  }
  if (info != nullptr) jsStreamInfo_Destroy(info);
  if (status != NATS_OK) return NatsError(status, absl::StrCat("cannot make the stream ", o.stream));

  for (PriorityClass c : kClasses) {
    const std::string name = queue->ConsumerName(c);
    const std::string& subject = subjects[static_cast<int>(c)];
    jsConsumerConfig consumer;
    jsConsumerConfig_Init(&consumer);
    consumer.Durable = name.c_str();
    consumer.AckPolicy = js_AckExplicit;
    consumer.AckWait = absl::ToInt64Nanoseconds(o.ack_wait);
    // The extra delivery is the one that fails the job (exhausted); without a bound, JetStream's -1.
    consumer.MaxDeliver = o.max_deliveries > 0 ? o.max_deliveries + 1 : -1;
    consumer.FilterSubject = subject.c_str();
    consumer.MaxAckPending = -1;
    jsConsumerInfo* consumer_info = nullptr;
    status =
        js_AddConsumer(&consumer_info, queue->connection_->jetstream(), o.stream.c_str(), &consumer, &request, &code);
    if (status != NATS_OK && code == JSConsumerNameExistErr) {
      status = js_UpdateConsumer(&consumer_info, queue->connection_->jetstream(), o.stream.c_str(), &consumer, &request,
                                 &code);
    }
    if (consumer_info != nullptr) jsConsumerInfo_Destroy(consumer_info);
    if (status != NATS_OK) return NatsError(status, absl::StrCat("cannot make the consumer ", name));
  }
  if (absl::Status subscribed = queue->Subscribe(); !subscribed.ok()) return subscribed;
  return queue;
}

absl::Status NatsJobQueue::Subscribe() {
  natsConnection* connection = connection_->connection();
  for (PriorityClass c : kClasses) {
    Inbox& inbox = inboxes_[static_cast<int>(c)];
    inbox.queue = this;
    inbox.priority_class = c;
    natsInbox* name = nullptr;
    natsStatus status = natsInbox_Create(&name);
    if (status == NATS_OK) inbox.subject = name;
    natsInbox_Destroy(name);
    if (status == NATS_OK) {
      status = natsConnection_Subscribe(&inbox.subscription, connection, inbox.subject.c_str(), OnAnswer, &inbox);
    }
    if (status != NATS_OK) return NatsError(status, "cannot listen for jobs");
  }
  const natsStatus status = natsConnection_Subscribe(&arrivals_, connection, "segrel.jobs.*", OnArrival, this);
  return status == NATS_OK ? absl::OkStatus() : NatsError(status, "cannot listen for new jobs");
}

NatsJobQueue::~NatsJobQueue() {
  // Drained, so no callback runs once they are destroyed.
  std::vector<natsSubscription*> subscriptions = {arrivals_};
  for (Inbox& inbox : inboxes_) subscriptions.push_back(inbox.subscription);
  for (natsSubscription* subscription : subscriptions) {
    if (subscription == nullptr) continue;
    if (natsSubscription_Drain(subscription) == NATS_OK) natsSubscription_WaitForDrainCompletion(subscription, 2000);
    natsSubscription_Destroy(subscription);
  }
  absl::MutexLock lock(&mutex_);
  if (handed_ != nullptr) {  // nobody took it: back to the queue
    natsConnection_PublishString(connection_->connection(), natsMsg_GetReply(handed_), "-NAK");
    natsMsg_Destroy(handed_);
  }
}

void NatsJobQueue::OnAnswer(natsConnection* connection, natsSubscription*, natsMsg* message, void* closure) {
  Inbox& inbox = *static_cast<Inbox*>(closure);
  NatsJobQueue& queue = *inbox.queue;
  const char* code = nullptr;
  const bool job = natsMsgHeader_Get(message, "Status", &code) != NATS_OK;  // else 404, 408: no job this time
  {
    absl::MutexLock lock(&queue.mutex_);
    inbox.asking = false;  // a request for one job is answered once
    queue.woken_ = true;
    if (!job) {
      natsMsg_Destroy(message);
      return;
    }
    if (queue.taking_ && queue.handed_ == nullptr) {
      queue.handed_ = message;
      queue.handed_class_ = inbox.priority_class;
      return;
    }
  }
  // Answered after its taker went on (NATS 2.9 holds a request that lost a job to another replica past its expiry
  // and may answer it with the next job): back to the queue at once, and the waiting workers told.
  natsConnection_PublishString(connection, natsMsg_GetReply(message), "-NAK");
  natsConnection_PublishString(connection, kReleasedSubject, "");
  natsMsg_Destroy(message);
}

void NatsJobQueue::OnArrival(natsConnection*, natsSubscription*, natsMsg* message, void* closure) {
  NatsJobQueue& queue = *static_cast<NatsJobQueue*>(closure);
  const bool released = std::string_view(natsMsg_GetSubject(message)) == kReleasedSubject;
  natsMsg_Destroy(message);
  absl::MutexLock lock(&queue.mutex_);
  queue.woken_ = true;
  queue.released_ |= released;
}

absl::StatusOr<bool> NatsJobQueue::Publish(const std::string& id, int32_t priority, const std::string& payload) {
  Owned<natsMsg, natsMsg_Destroy> message;
  const std::string subject = Subject(PriorityClassOf(priority));
  natsStatus status =
      natsMsg_Create(&message.p, subject.c_str(), nullptr, payload.data(), static_cast<int>(payload.size()));
  if (status == NATS_OK) status = natsMsgHeader_Set(message.p, kIdHeader, id.c_str());
  if (status != NATS_OK) return absl::InternalError(absl::StrCat("job ", id, ": ", LastError(status)));
  jsPubOptions publish;
  jsPubOptions_Init(&publish);
  publish.MaxWait = Millis(connection_->timeout());
  jsPubAck* ack = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  status = js_PublishMsg(&ack, connection_->jetstream(), message.p, &publish, &code);
  if (status != NATS_OK) {
    const std::string text = LastError(status);
    if (code == JSStreamStoreFailedErr || absl::StrContains(text, "maximum messages")) {
      return RetryLater(absl::ResourceExhaustedError(
          absl::StrCat("the cluster's queue is full (", options_.capacity, " jobs queued or running)")));
    }
    return absl::UnavailableError(absl::StrCat("NATS: cannot queue job ", id, ": ", text));
  }
  const bool duplicate = ack->Duplicate;
  jsPubAck_Destroy(ack);
  return !duplicate;
}

absl::StatusOr<std::optional<PriorityClass>> NatsJobQueue::ClassToAsk(bool redeliveries) const {
  jsOptions request = RequestOptions(*connection_);
  for (PriorityClass c : kClasses) {
    jsConsumerInfo* consumer = nullptr;
    const natsStatus status = js_GetConsumerInfo(&consumer, connection_->jetstream(), options_.stream.c_str(),
                                                 ConsumerName(c).c_str(), &request, nullptr);
    if (status != NATS_OK) return NatsError(status, absl::StrCat("cannot read the consumer ", ConsumerName(c)));
    const bool waiting = consumer->NumPending > 0;
    const bool taken = consumer->NumAckPending > 0;
    jsConsumerInfo_Destroy(consumer);
    if (waiting || (redeliveries && taken)) return std::optional<PriorityClass>(c);
  }
  return std::optional<PriorityClass>();
}

absl::Status NatsJobQueue::Ask(Inbox& inbox) {
  constexpr absl::Duration kExpiry = absl::Milliseconds(250);
  {
    absl::MutexLock lock(&mutex_);
    // One request out per class; one the server never answered is asked again after a while.
    if (inbox.asking && absl::Now() - inbox.asked < kExpiry + absl::Seconds(1)) return absl::OkStatus();
    inbox.asking = true;
    inbox.asked = absl::Now();
  }
  const std::string next =
      absl::StrCat("$JS.API.CONSUMER.MSG.NEXT.", options_.stream, ".", ConsumerName(inbox.priority_class));
  const std::string body = absl::StrCat(R"({"batch":1,"expires":)", absl::ToInt64Nanoseconds(kExpiry), "}");
  const natsStatus status =
      natsConnection_PublishRequestString(connection_->connection(), next.c_str(), inbox.subject.c_str(), body.c_str());
  if (status == NATS_OK) return absl::OkStatus();
  absl::MutexLock lock(&mutex_);
  inbox.asking = false;
  return NatsError(status, "cannot ask for a job");
}

absl::StatusOr<std::unique_ptr<JobLease>> NatsJobQueue::Take(absl::Duration timeout) {
  absl::MutexLock take(&take_mutex_);
  const absl::Time deadline = absl::Now() + timeout;
  {
    absl::MutexLock lock(&mutex_);
    taking_ = true;
  }
  absl::Status failed;
  natsMsg* message = nullptr;
  PriorityClass priority_class = PriorityClass::kNormal;
  while (true) {
    bool redeliveries;
    {
      absl::MutexLock lock(&mutex_);
      if (handed_ != nullptr) break;
      redeliveries = released_ || absl::Now() - redeliveries_looked_for_ > absl::Seconds(1);
      released_ = false;
      woken_ = false;  // what happens from here on wakes the wait below
    }
    if (redeliveries) redeliveries_looked_for_ = absl::Now();
    absl::StatusOr<std::optional<PriorityClass>> ask = ClassToAsk(redeliveries);
    failed = ask.ok() && ask->has_value() ? Ask(inboxes_[static_cast<int>(**ask)]) : ask.status();
    if (!failed.ok()) break;
    // Woken by an answer, a publish or a job given back; looks again at least every 250 ms (redeliveries are not
    // published again, so they are not heard).
    absl::MutexLock lock(&mutex_);
    mutex_.AwaitWithDeadline(absl::Condition(this, &NatsJobQueue::HandedOrWoken),
                             std::min(deadline, absl::Now() + absl::Milliseconds(250)));
    if (handed_ != nullptr || absl::Now() >= deadline) break;
  }
  {
    absl::MutexLock lock(&mutex_);
    taking_ = false;
    message = handed_;
    priority_class = handed_class_;
    handed_ = nullptr;
  }
  if (message != nullptr) {
    Owned<natsMsg, natsMsg_Destroy> delivery{message};
    return JobLease::FromDelivery(connection_, message, priority_class, options_.max_deliveries);
  }
  if (!failed.ok()) return failed;
  return std::unique_ptr<JobLease>();
}

absl::StatusOr<NatsJobQueue::Depth> NatsJobQueue::Measure() const {
  jsOptions request = RequestOptions(*connection_);
  Depth depth;
  jsStreamInfo* stream = nullptr;
  natsStatus status = js_GetStreamInfo(&stream, connection_->jetstream(), options_.stream.c_str(), &request, nullptr);
  if (status != NATS_OK) return NatsError(status, absl::StrCat("cannot read the stream ", options_.stream));
  if (stream->State.Msgs > 0) {
    depth.oldest_age = std::max(absl::ZeroDuration(), absl::Now() - absl::FromUnixNanos(stream->State.FirstTime));
  }
  jsStreamInfo_Destroy(stream);
  for (PriorityClass c : kClasses) {
    jsConsumerInfo* consumer = nullptr;
    status = js_GetConsumerInfo(&consumer, connection_->jetstream(), options_.stream.c_str(), ConsumerName(c).c_str(),
                                &request, nullptr);
    if (status != NATS_OK) return NatsError(status, absl::StrCat("cannot read the consumer ", ConsumerName(c)));
    depth.waiting += consumer->NumPending;
    depth.taken += static_cast<uint64_t>(consumer->NumAckPending);
    depth.redelivered += static_cast<uint64_t>(consumer->NumRedelivered);
    jsConsumerInfo_Destroy(consumer);
  }
  return depth;
}

// --- NatsJobStates ---

absl::StatusOr<std::unique_ptr<NatsJobStates>> NatsJobStates::Create(std::shared_ptr<NatsConnection> connection,
                                                                     const std::string& bucket, absl::Duration ttl) {
  kvConfig config;
  kvConfig_Init(&config);
  config.Bucket = bucket.c_str();
  config.History = 1;
  config.TTL = absl::ToInt64Nanoseconds(ttl);
  config.StorageType = js_FileStorage;
  kvStore* store = nullptr;
  natsStatus status = js_CreateKeyValue(&store, connection->jetstream(), &config);
  if (status != NATS_OK) {  // made by another replica already
    status = js_KeyValue(&store, connection->jetstream(), bucket.c_str());
  }
  if (status != NATS_OK) return NatsError(status, absl::StrCat("cannot open the job-state bucket ", bucket));
  return std::unique_ptr<NatsJobStates>(new NatsJobStates(std::move(connection), store));
}

NatsJobStates::~NatsJobStates() {
  destroying_.Notify();
  if (listener_.joinable()) listener_.join();
  kvStore_Destroy(store_);
}

void NatsJobStates::Listen(std::function<void(const std::string& id, const Entry& entry)> listener) {
  listener_ = std::thread([this, listener = std::move(listener)] { ListenUntilDestroyed(listener); });
}

void NatsJobStates::ListenUntilDestroyed(const std::function<void(const std::string&, const Entry&)>& listener) {
  uint64_t seen = 0;  // the newest revision given: after watching again, older entries are not given twice
  while (!destroying_.HasBeenNotified()) {
    kvWatchOptions options;
    kvWatchOptions_Init(&options);
    options.IgnoreDeletes = true;
    options.Timeout = Millis(connection_->timeout());
    Owned<kvWatcher, kvWatcher_Destroy> watcher;
    const uint64_t connected = connection_->reconnects();
    if (kvStore_WatchAll(&watcher.p, store_, &options) != NATS_OK) {
      destroying_.WaitForNotificationWithTimeout(absl::Milliseconds(250));  // NATS away: try again
      continue;
    }
    while (!destroying_.HasBeenNotified() && connection_->reconnects() == connected) {
      kvEntry* entry = nullptr;
      const natsStatus status = kvWatcher_Next(&entry, watcher.p, 250);
      if (status == NATS_TIMEOUT) continue;
      if (status != NATS_OK) break;    // watch again
      if (entry == nullptr) continue;  // the marker after the entries that existed
      Entry value;
      value.value.assign(static_cast<const char*>(kvEntry_Value(entry)), kvEntry_ValueLen(entry));
      value.revision = kvEntry_Revision(entry);
      const std::string id = kvEntry_Key(entry);
      kvEntry_Destroy(entry);
      if (value.revision <= seen) continue;
      seen = value.revision;
      listener(id, value);
    }
  }
}

absl::StatusOr<uint64_t> NatsJobStates::Update(const std::string& id, const std::string& value, uint64_t revision) {
  uint64_t written = 0;
  const natsStatus status =
      revision == 0
          ? kvStore_Create(&written, store_, id.c_str(), value.data(), static_cast<int>(value.size()))
          : kvStore_Update(&written, store_, id.c_str(), value.data(), static_cast<int>(value.size()), revision);
  if (status == NATS_OK) return written;
  const std::string text = LastError(status);
  if (absl::StrContains(text, "wrong last sequence") || absl::StrContains(text, "key exists")) {
    return absl::FailedPreconditionError(absl::StrCat("the state of job ", id, " changed since revision ", revision));
  }
  return absl::UnavailableError(absl::StrCat("NATS: cannot record the state of job ", id, ": ", text));
}

absl::Status NatsJobStates::Remove(const std::string& id) {
  const natsStatus status = kvStore_Delete(store_, id.c_str());
  return status == NATS_OK ? absl::OkStatus() : NatsError(status, absl::StrCat("cannot remove the state of job ", id));
}

absl::StatusOr<NatsJobStates::Entry> NatsJobStates::Get(const std::string& id) const {
  kvEntry* entry = nullptr;
  const natsStatus status = kvStore_Get(&entry, store_, id.c_str());
  if (status == NATS_NOT_FOUND) return absl::NotFoundError(absl::StrCat("no job ", id));
  if (status != NATS_OK) return NatsError(status, absl::StrCat("cannot read the state of job ", id));
  Entry result;
  result.value.assign(static_cast<const char*>(kvEntry_Value(entry)), kvEntry_ValueLen(entry));
  result.revision = kvEntry_Revision(entry);
  kvEntry_Destroy(entry);
  return result;
}

}  // namespace segrel::server
