#include "server/service.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/grpc_status.h"
#include "server/result_sender.h"

namespace segrel::server {
namespace {

constexpr size_t kResultChunkBytes = size_t{1} << 20;

v1::JobState ToProtoState(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return v1::QUEUED;
    case JobState::kRunning:
      return v1::RUNNING;
    case JobState::kDone:
      return v1::DONE;
    case JobState::kFailed:
      return v1::FAILED;
    case JobState::kCancelled:
      return v1::CANCELLED;
  }
  return v1::JOB_STATE_UNSPECIFIED;
}

// The study's size as the metadata declares it (saturating: 2^63 twice is still too large, not small).
uint64_t DeclaredBytes(const v1::JobMetadata& metadata) {
  uint64_t total = 0;
  for (const v1::UploadFile& file : metadata.files()) {
    total = file.size_bytes() > UINT64_MAX - total ? UINT64_MAX : total + file.size_bytes();
  }
  return total;
}

// The service parses its requests itself: gRPC's own parsing answers a request that does not parse with
// UNIMPLEMENTED and no message, which tells a client nothing.
template <typename Request>
absl::StatusOr<Request> ParseRequest(const grpc::ByteBuffer& bytes) {
  grpc::ByteBuffer copy(bytes);  // deserialising consumes the buffer; a copy shares its slices
  Request request;
  if (!grpc::SerializationTraits<Request>::Deserialize(&copy, &request).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request is not a valid ", Request::descriptor()->full_name(), " message"));
  }
  return request;
}

}  // namespace

v1::JobStatus ToJobStatus(const Job& job, const Job::Snapshot& snapshot, std::optional<size_t> queue_position) {
  v1::JobStatus status;
  status.set_job_id(job.spec().id);
  status.set_state(ToProtoState(snapshot.state));
  if (snapshot.state == JobState::kQueued && queue_position) status.set_queue_position(*queue_position);
  if (snapshot.state == JobState::kRunning) {
    status.set_stage(snapshot.stage);
    status.set_progress(snapshot.progress);
  }
  if (snapshot.state == JobState::kFailed || snapshot.state == JobState::kCancelled) {
    status.set_code(static_cast<int>(snapshot.status.code()));
    status.set_message(std::string(snapshot.status.message()));
  }
  for (const std::string& result : snapshot.results) status.add_results(result);
  return status;
}

// ---------------------------------------------------------------------------------------------------------------
// Submit: metadata, then chunks spooled to disk as they arrive; the job is queued when the client half-closes.
//
// The idle timer may end the call from its own thread: every step of the reactor runs under its Guard's mutex, and
// the guard forgets the reactor once gRPC is done with it (as Watch's Relay does).

class SubmitReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  SubmitReactor(SegrelServiceImpl* service, grpc::CallbackServerContext* context, grpc::ByteBuffer* response)
      : service_(service), context_(context), raw_response_(response), guard_(std::make_shared<Guard>(this)) {
    absl::MutexLock lock(&guard_->mutex);
    if (absl::Status slot = service_->TakeUploadSlot(); !slot.ok()) {
      Reject(slot);
      return;
    }
    holds_slot_ = true;
    timer_id_ = service_->upload_timer_.Add(guard_);
    started_ = absl::Now();
    StartRead(&raw_request_);
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&guard_->mutex);
    if (answered_) return;  // the idle timer ended the call
    service_->upload_timer_.Touch(timer_id_);
    if (!ok) {  // the client half-closed (or went away: then nobody reads the answer)
      Complete();
      return;
    }
    if (absl::Status status = Handle(); !status.ok()) {
      Reject(status);
      return;
    }
    if (!answered_) StartRead(&raw_request_);
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&guard_->mutex);
      guard_->reactor = nullptr;
    }
    if (holds_slot_) {
      service_->upload_timer_.Remove(timer_id_);
      service_->ReleaseUploadSlot();
    }
    delete this;  // an unfinished upload removes its folder
  }

 private:
  struct Guard final : Expirable {
    explicit Guard(SubmitReactor* submit) : reactor(submit) {}
    void Expire() override {
      absl::MutexLock lock(&mutex);
      if (reactor != nullptr) reactor->ExpireLocked();
    }
    absl::Mutex mutex;
    SubmitReactor* reactor ABSL_GUARDED_BY(mutex);
  };

  void ExpireLocked() {
    if (answered_) return;
    Reject(absl::DeadlineExceededError(absl::StrCat("the upload sent nothing for ",
                                                    absl::FormatDuration(service_->upload_timer_.timeout()),
                                                    " and was ended; its partial files are removed, submit again")));
  }

  absl::Status Handle() {
    absl::StatusOr<v1::SubmitRequest> parsed = ParseRequest<v1::SubmitRequest>(raw_request_);
    if (!parsed.ok()) return parsed.status();
    request_ = *std::move(parsed);
    if (upload_ == nullptr) {
      if (!request_.has_metadata()) return absl::InvalidArgumentError("the first message must be the job metadata");
      return Begin(request_.metadata());
    }
    if (!request_.has_chunk()) return absl::InvalidArgumentError("only the first message may be the job metadata");
    service_->metrics_->bytes_received.Add({}, static_cast<double>(request_.chunk().data().size()));
    received_ += request_.chunk().data().size();
    if (absl::Status fast_enough = CheckRate(); !fast_enough.ok()) return fast_enough;
    return upload_->Append(request_.chunk());
  }

  // The idle timer catches a stream that stalls; this one catches a stream that trickles.
  absl::Status CheckRate() const {
    const StreamLimits& limits = service_->options_.streams;
    const absl::Duration elapsed = absl::Now() - started_;
    if (limits.min_upload_bytes_per_second == 0 || elapsed <= limits.upload_idle_timeout) return absl::OkStatus();
    const double rate = static_cast<double>(received_) / absl::ToDoubleSeconds(elapsed);
    if (rate >= static_cast<double>(limits.min_upload_bytes_per_second)) return absl::OkStatus();
    return absl::DeadlineExceededError(absl::StrFormat(
        "the upload averaged %.0f bytes/s, below this server's minimum of %d; it was ended and its partial files "
        "removed, submit again",
        rate, limits.min_upload_bytes_per_second));
  }

  absl::Status Begin(const v1::JobMetadata& metadata) {
    absl::StatusOr<Caller> caller = service_->options_.access.Admit(*context_, Right::kSubmit);
    if (!caller.ok()) return caller.status();
    owner_ = caller->name;
    if (metadata.ByteSizeLong() > service_->options_.streams.max_metadata_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("the job metadata is larger than this server's limit of ",
                                                       service_->options_.streams.max_metadata_bytes, " bytes"));
    }
    if (std::shared_ptr<Job> existing = service_->jobs_->Find(metadata.job_id())) {
      return AnswerExisting(*existing, OwnedFingerprint(Fingerprint(metadata)));
    }
    if (!IsValidJobId(metadata.job_id())) {
      return absl::InvalidArgumentError("job_id: 1 to 64 letters, digits, '.', '_' or '-'");
    }
    absl::StatusOr<std::string> directory = service_->jobs_->NewJobDirectory(metadata.job_id());
    if (!directory.ok()) return directory.status();
    absl::StatusOr<std::unique_ptr<Upload>> upload =
        Upload::Start(metadata, *service_->models_, service_->options_.limits, *directory);
    if (!upload.ok()) return upload.status();
    // Before a byte of the study is received: a full queue or spool refuses it now, not after 4 GiB. After the
    // metadata's checks, so that a study no retry can help is told so rather than to retry later.
    if (absl::Status admitted = service_->jobs_->CheckAdmission(DeclaredBytes(metadata)); !admitted.ok()) {
      return admitted;  // the upload goes with its folder
    }
    upload_ = *std::move(upload);
    return absl::OkStatus();
  }

  // Idempotent resubmission: answer with the job accepted earlier, without reading the chunks.
  absl::Status AnswerExisting(const Job& job, const std::string& fingerprint) {
    if (absl::Status same = CheckResubmission(job, fingerprint); !same.ok()) return same;
    Answer(job, /*already_submitted=*/true);
    return absl::OkStatus();
  }

  void Complete() {
    if (answered_) return;
    if (upload_ == nullptr) {
      Reject(absl::InvalidArgumentError("no job metadata received"));
      return;
    }
    absl::StatusOr<JobSpec> spec = upload_->Finish();
    if (!spec.ok()) {
      Reject(spec.status());
      return;
    }
    spec->owner = owner_;
    spec->fingerprint = OwnedFingerprint(spec->fingerprint);
    absl::StatusOr<JobManager::Accepted> accepted = service_->jobs_->Accept(*std::move(spec));
    if (!accepted.ok()) {
      Reject(accepted.status());
      return;
    }
    Answer(*accepted->job, accepted->already_submitted);
  }

  void Answer(const Job& job, bool already_submitted) {
    v1::SubmitResponse response;
    response.set_job_id(job.spec().id);
    *response.mutable_status() = service_->StatusOf(job);
    response.set_already_submitted(already_submitted);
    bool own_buffer = false;
    grpc::SerializationTraits<v1::SubmitResponse>::Serialize(response, raw_response_, &own_buffer);
    answered_ = true;
    Finish(grpc::Status::OK);
  }

  void Reject(const absl::Status& status) {
    service_->metrics_->jobs_rejected.Add({CodeName(status.code())});
    if (IsRetryLater(status)) {  // only what empties with time comes with a retry hint
      context_->AddTrailingMetadata("segrel-retry-after-ms",
                                    absl::StrCat(absl::ToInt64Milliseconds(service_->options_.retry_hint)));
    }
    upload_.reset();
    answered_ = true;
    Finish(ToGrpcStatus(status));
  }

  // One job id is one client's submission: another client's upload under it is a conflict, not a resubmission.
  std::string OwnedFingerprint(const std::string& fingerprint) const { return absl::StrCat(owner_, "\n", fingerprint); }

  SegrelServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;
  grpc::ByteBuffer* const raw_response_;
  grpc::ByteBuffer raw_request_;
  v1::SubmitRequest request_;  // raw_request_, parsed
  // Guarded by guard_->mutex once constructed:
  std::unique_ptr<Upload> upload_;
  absl::Time started_;
  uint64_t received_ = 0;  // chunk bytes
  std::string owner_;
  bool answered_ = false;
  const std::shared_ptr<Guard> guard_;
  bool holds_slot_ = false;
  IdleTimer::Id timer_id_ = 0;
};

// ---------------------------------------------------------------------------------------------------------------
// Watch: a status message whenever the job (or its queue position) changes, then the result files.
//
// The job notifies a Relay (held weakly by the job); the relay serialises every step of the reactor under its mutex,
// and forgets the reactor once gRPC is done with it, so a late notification never touches a deleted reactor.

class WatchReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  WatchReactor(SegrelServiceImpl* service, const grpc::CallbackServerContext& context,
               const absl::StatusOr<v1::WatchRequest>& request)
      : service_(service),
        skip_results_(request.ok() && request->skip_results()),
        relay_(std::make_shared<Relay>(this)) {
    if (!request.ok()) {
      Finish(ToGrpcStatus(request.status()));
      return;
    }
    absl::StatusOr<SegrelServiceImpl::CallersJob> found = service->FindForCaller(context, request->job_id());
    if (!found.ok()) {
      Finish(ToGrpcStatus(found.status()));
      return;
    }
    if (absl::Status slot = service->TakeWatchSlot(request->job_id()); !slot.ok()) {
      Finish(ToGrpcStatus(slot));
      return;
    }
    holds_slot_ = true;
    caller_ = std::move(found->caller);
    job_ = std::move(found->job);
    job_->AddObserver(relay_);
    relay_->OnJobChanged();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&relay_->mutex);
    writing_ = false;
    if (!ok) {  // the client went away
      if (!finishing_) {
        finishing_ = true;
        Finish(grpc::Status::CANCELLED);
      }
      return;
    }
    PumpLocked();
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&relay_->mutex);
      relay_->reactor = nullptr;
    }
    if (holds_slot_) service_->ReleaseWatchSlot(job_->spec().id);
    delete this;
  }

 private:
  struct Relay final : JobObserver {
    explicit Relay(WatchReactor* watch) : reactor(watch) {}
    void OnJobChanged() override {
      absl::MutexLock lock(&mutex);
      if (reactor != nullptr) reactor->PumpLocked();
    }
    absl::Mutex mutex;
    WatchReactor* reactor ABSL_GUARDED_BY(mutex);
  };

  // Writes the next message if none is in flight: a changed status first, then (after DONE) result chunks.
  void PumpLocked() {
    if (writing_ || finishing_) return;
    const Job::Snapshot snapshot = job_->Get();
    const std::optional<size_t> position = service_->jobs_->QueuePosition(*job_);
    if (!sent_status_ || snapshot.version != sent_version_ || position != sent_position_) {
      sent_status_ = true;
      sent_version_ = snapshot.version;
      sent_position_ = position;
      final_ = IsFinal(snapshot.state);
      if (snapshot.state == JobState::kDone && !skip_results_) results_ = snapshot.results;
      message_.Clear();
      *message_.mutable_status() = ToJobStatus(*job_, snapshot, position);
      Write();
      return;
    }
    if (!final_) return;  // wait for the next change
    if (next_result_ < results_.size()) {
      absl::Status status = WriteResultChunk();
      if (status.ok()) return;
      finishing_ = true;
      Finish(ToGrpcStatus(status));
      return;
    }
    if (!results_.empty()) service_->AuditRequest(AuditEvent::kDelivered, caller_, *job_, bytes_sent_);
    finishing_ = true;
    Finish(grpc::Status::OK);
  }

  absl::Status WriteResultChunk() {
    const std::string& name = results_[next_result_];
    if (!file_.is_open()) {
      const std::string path = job_->spec().OutputDirectory() + "/" + name;
      file_.open(path, std::ios::binary);
      std::error_code error;
      file_size_ = std::filesystem::file_size(path, error);
      if (!file_ || error) return absl::DataLossError(absl::StrCat("result ", name, " is gone from the server"));
      offset_ = 0;
    }
    std::string data(std::min<uint64_t>(kResultChunkBytes, file_size_ - offset_), '\0');
    file_.read(data.data(), static_cast<std::streamsize>(data.size()));
    if (static_cast<size_t>(file_.gcount()) != data.size()) {
      return absl::DataLossError(absl::StrCat("result ", name, " cannot be read"));
    }
    message_.Clear();
    v1::ResultChunk* chunk = message_.mutable_result();
    chunk->set_name(name);
    chunk->set_offset(offset_);
    chunk->set_total_size(file_size_);
    offset_ += data.size();
    bytes_sent_ += data.size();
    chunk->set_last(offset_ == file_size_);
    chunk->set_data(std::move(data));
    if (chunk->last()) {
      file_.close();
      ++next_result_;
    }
    Write();
    return absl::OkStatus();
  }

  void Write() {
    writing_ = true;
    bool own_buffer = false;
    buffer_.Clear();  // the last message's, written
    grpc::SerializationTraits<v1::WatchResponse>::Serialize(message_, &buffer_, &own_buffer);
    StartWrite(&buffer_);
  }

  SegrelServiceImpl* const service_;
  const bool skip_results_;
  std::shared_ptr<Relay> relay_;
  Caller caller_;
  std::shared_ptr<Job> job_;
  bool holds_slot_ = false;
  // Guarded by relay_->mutex (after construction):
  v1::WatchResponse message_;
  grpc::ByteBuffer buffer_;  // message_, serialised
  bool writing_ = false;
  bool finishing_ = false;
  bool sent_status_ = false;
  uint64_t sent_version_ = 0;
  std::optional<size_t> sent_position_;
  bool final_ = false;
  std::vector<std::string> results_;
  size_t next_result_ = 0;
  std::ifstream file_;
  uint64_t file_size_ = 0;
  uint64_t offset_ = 0;
  uint64_t bytes_sent_ = 0;
};

// ---------------------------------------------------------------------------------------------------------------

SegrelServiceImpl::SegrelServiceImpl(const ModelRepository* models, JobManager* jobs, Metrics* metrics,
                                     ServiceOptions options)
    : models_(models),
      jobs_(jobs),
      metrics_(metrics),
      options_(std::move(options)),
      upload_timer_(options_.streams.upload_idle_timeout) {}

absl::Status SegrelServiceImpl::TakeUploadSlot() {
  absl::MutexLock lock(&slots_mutex_);
  if (uploads_ >= options_.streams.max_uploads) {
    return RetryLater(absl::ResourceExhaustedError(
        absl::StrCat("this server takes ", options_.streams.max_uploads, " uploads at once; retry later")));
  }
  ++uploads_;
  return absl::OkStatus();
}

void SegrelServiceImpl::ReleaseUploadSlot() {
  absl::MutexLock lock(&slots_mutex_);
  --uploads_;
}

absl::Status SegrelServiceImpl::TakeWatchSlot(const std::string& job_id) {
  absl::MutexLock lock(&slots_mutex_);
  size_t& on_job = watches_per_job_[job_id];
  if (watches_ >= options_.streams.max_watches || on_job >= options_.streams.max_watches_per_job) {
    if (on_job == 0) watches_per_job_.erase(job_id);
    return RetryLater(absl::ResourceExhaustedError(
        absl::StrCat("too many Watch calls at once (", options_.streams.max_watches, " in all, ",
                     options_.streams.max_watches_per_job, " per job); retry later")));
  }
  ++on_job;
  ++watches_;
  return absl::OkStatus();
}

void SegrelServiceImpl::ReleaseWatchSlot(const std::string& job_id) {
  absl::MutexLock lock(&slots_mutex_);
  --watches_;
  if (--watches_per_job_[job_id] == 0) watches_per_job_.erase(job_id);
}

grpc::ServerReadReactor<grpc::ByteBuffer>* SegrelServiceImpl::Submit(grpc::CallbackServerContext* context,
                                                                     grpc::ByteBuffer* response) {
  return new SubmitReactor(this, context, response);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* SegrelServiceImpl::Watch(grpc::CallbackServerContext* context,
                                                                     const grpc::ByteBuffer* request) {
  return new WatchReactor(this, *context, ParseRequest<v1::WatchRequest>(*request));
}

grpc::ServerUnaryReactor* SegrelServiceImpl::Cancel(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
  return ServeUnary<v1::CancelRequest, v1::CancelResponse>(*context, *request, *response,
                                                           &SegrelServiceImpl::CancelJob);
}

grpc::ServerUnaryReactor* SegrelServiceImpl::Delete(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
  return ServeUnary<v1::DeleteRequest, v1::DeleteResponse>(*context, *request, *response,
                                                           &SegrelServiceImpl::DeleteJob);
}

grpc::ServerUnaryReactor* SegrelServiceImpl::ListModels(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
  return ServeUnary<v1::ListModelsRequest, v1::ListModelsResponse>(*context, *request, *response,
                                                                   &SegrelServiceImpl::ListBundles);
}

grpc::ServerUnaryReactor* SegrelServiceImpl::ListJobs(grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
  return ServeUnary<v1::ListJobsRequest, v1::ListJobsResponse>(*context, *request, *response,
                                                               &SegrelServiceImpl::ListCallersJobs);
}

template <typename Request, typename Response>
grpc::ServerUnaryReactor* SegrelServiceImpl::ServeUnary(
    grpc::CallbackServerContext& context, const grpc::ByteBuffer& raw_request, grpc::ByteBuffer& raw_response,
    absl::Status (SegrelServiceImpl::*handle)(const grpc::ServerContextBase&, const Request&, Response&)) {
  grpc::ServerUnaryReactor* reactor = context.DefaultReactor();
  absl::StatusOr<Request> request = ParseRequest<Request>(raw_request);
  Response response;
  absl::Status status = request.ok() ? (this->*handle)(context, *request, response) : request.status();
  bool own_buffer = false;
  if (status.ok() && !grpc::SerializationTraits<Response>::Serialize(response, &raw_response, &own_buffer).ok()) {
    status = absl::InternalError("the response cannot be serialised");
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

absl::Status SegrelServiceImpl::CancelJob(const grpc::ServerContextBase& context, const v1::CancelRequest& request,
                                          v1::CancelResponse& response) {
  absl::StatusOr<CallersJob> found = FindForCaller(context, request.job_id());
  if (!found.ok()) return found.status();
  absl::StatusOr<std::shared_ptr<Job>> job = jobs_->Cancel(request.job_id());
  if (!job.ok()) return job.status();
  AuditRequest(AuditEvent::kCancelled, found->caller, **job);
  *response.mutable_status() = StatusOf(**job);
  return absl::OkStatus();
}

absl::Status SegrelServiceImpl::DeleteJob(const grpc::ServerContextBase& context, const v1::DeleteRequest& request,
                                          v1::DeleteResponse& /*response*/) {
  absl::StatusOr<CallersJob> found = FindForCaller(context, request.job_id());
  if (!found.ok()) return found.status();
  if (absl::Status deleted = jobs_->Delete(request.job_id()); !deleted.ok()) return deleted;
  AuditRequest(AuditEvent::kDeleted, found->caller, *found->job);
  return absl::OkStatus();
}

absl::Status SegrelServiceImpl::ListBundles(const grpc::ServerContextBase& context,
                                            const v1::ListModelsRequest& /*request*/,
                                            v1::ListModelsResponse& response) {
  if (absl::StatusOr<Caller> caller = options_.access.Admit(context, Right::kListModels); !caller.ok()) {
    return caller.status();
  }
  for (const model::Bundle& bundle : models_->models()) {
    v1::ModelInfo* info = response.add_models();
    info->set_name(bundle.name);
    info->set_version(bundle.version);
    info->set_description(bundle.description);
    for (const model::SequenceSpec& sequence : bundle.sequences) {
      v1::SequenceInfo* entry = info->add_sequences();
      entry->set_name(sequence.name);
      entry->set_description(sequence.description);
    }
    for (const std::string& name : bundle.classes) info->add_classes(name);
    info->set_default_composite(bundle.composite);
    info->set_license(bundle.license);
    info->set_reads_dicom(bundle.series_rules.has_value());
    info->set_format(bundle.model_format);
  }
  return absl::OkStatus();
}

absl::Status SegrelServiceImpl::ListCallersJobs(const grpc::ServerContextBase& context,
                                                const v1::ListJobsRequest& request, v1::ListJobsResponse& response) {
  absl::StatusOr<Caller> caller = options_.access.Admit(context, Right::kOwnJobs);
  if (!caller.ok()) return caller.status();
  const size_t limit = request.limit() == 0 ? 100 : std::min<size_t>(request.limit(), 1000);
  for (const std::shared_ptr<Job>& job : jobs_->Jobs()) {
    if (static_cast<size_t>(response.jobs_size()) >= limit) break;
    if (!AccessControl::MayAccess(*caller, *job).ok()) continue;
    v1::JobEntry* entry = response.add_jobs();
    *entry->mutable_status() = StatusOf(*job);
    entry->set_owner(job->spec().owner);
    entry->set_model(absl::StrCat(job->spec().model_name, "@", job->spec().model_version));
    entry->set_received_unix_micros(absl::ToUnixMicros(job->spec().received));
    entry->set_delivery(DeliveryState(*job));
  }
  return absl::OkStatus();
}

absl::StatusOr<SegrelServiceImpl::CallersJob> SegrelServiceImpl::FindForCaller(const grpc::ServerContextBase& context,
                                                                               const std::string& id) const {
  absl::StatusOr<Caller> caller = options_.access.Admit(context, Right::kOwnJobs);
  if (!caller.ok()) return caller.status();
  std::shared_ptr<Job> job = jobs_->Find(id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("unknown job '", id, "'"));
  if (absl::Status allowed = AccessControl::MayAccess(*caller, *job); !allowed.ok()) return allowed;
  return CallersJob{*std::move(caller), std::move(job)};
}

void SegrelServiceImpl::AuditRequest(AuditEvent event, const Caller& caller, const Job& job,
                                     std::optional<uint64_t> bytes_out) {
  AuditDetails details;
  details.by = caller.name;
  details.bytes_out = bytes_out;
  Audit(options_.audit, event, job, details);
}

v1::JobStatus SegrelServiceImpl::StatusOf(const Job& job) const {
  return ToJobStatus(job, job.Get(), jobs_->QueuePosition(job));
}

}  // namespace segrel::server
