#include "client/client.h"

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "proto/checksums.h"

namespace segrel::client {
namespace {

constexpr int kMaxMessageBytes = (4 << 20) + (64 << 10);

// Result names come from the server: accept plain file names only.
bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos;
}

absl::StatusOr<v1::JobMetadata> Metadata(const SubmitOptions& options) {
  v1::JobMetadata metadata;
  metadata.set_job_id(options.job_id);
  metadata.set_model(options.model);
  *metadata.mutable_options() = options.analysis;
  metadata.set_priority(options.priority);
  metadata.set_deadline_seconds(options.deadline_seconds);
  for (const SequenceInput& input : options.inputs) {
    std::error_code error;
    const uint64_t size = std::filesystem::file_size(input.path, error);
    if (error) return absl::NotFoundError(absl::StrCat(input.path, ": cannot read (", error.message(), ")"));
    const std::string sha256 = proto::Sha256OfFile(input.path);
    if (sha256.empty()) return absl::InternalError(absl::StrCat(input.path, ": cannot read"));
    v1::SequenceUpload* sequence = metadata.add_sequences();
    sequence->set_name(input.name);
    sequence->set_format(v1::NIFTI);
    sequence->set_size_bytes(size);
    sequence->set_sha256(sha256);
  }
  return metadata;
}

}  // namespace

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::string NewJobId() {
  std::random_device random;
  return absl::StrFormat("job-%08x%08x", random(), random());
}

std::shared_ptr<grpc::Channel> SegrelClient::Connect(const std::string& address) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(kMaxMessageBytes);
  arguments.SetMaxSendMessageSize(kMaxMessageBytes);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), arguments);
}

absl::StatusOr<v1::SubmitResponse> SegrelClient::Submit(const SubmitOptions& options,
                                                        const UploadProgress& progress) {
  if (options.chunk_bytes == 0 || options.chunk_bytes > (size_t{4} << 20)) {
    return absl::InvalidArgumentError("chunk size must be 1 byte to 4 MiB");
  }
  absl::StatusOr<v1::JobMetadata> metadata = Metadata(options);
  if (!metadata.ok()) return metadata.status();
  uint64_t total = 0;
  for (const v1::SequenceUpload& sequence : metadata->sequences()) total += sequence.size_bytes();

  grpc::ClientContext context;
  v1::SubmitResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::SubmitRequest>> writer = stub_->Submit(&context, &response);
  v1::SubmitRequest request;
  *request.mutable_metadata() = *metadata;
  bool open = writer->Write(request);
  uint64_t sent = 0;
  std::string buffer(options.chunk_bytes, '\0');
  for (size_t s = 0; open && s < options.inputs.size(); ++s) {
    std::ifstream file(options.inputs[s].path, std::ios::binary);
    for (uint64_t offset = 0; open && file;) {
      file.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      const size_t length = static_cast<size_t>(file.gcount());
      if (length == 0) break;
      request.Clear();
      v1::Chunk* chunk = request.mutable_chunk();
      chunk->set_sequence_index(static_cast<uint32_t>(s));
      chunk->set_offset(offset);
      chunk->set_data(buffer.data(), length);
      chunk->set_crc32(proto::Crc32(chunk->data()));
      // The server stops reading early when it refuses the upload or already holds the job: Write then fails
      // and Finish below says why.
      open = writer->Write(request);
      offset += length;
      sent += length;
      if (progress) progress(sent, total);
    }
  }
  if (open) writer->WritesDone();
  if (absl::Status status = FromGrpcStatus(writer->Finish()); !status.ok()) return status;
  return response;
}

absl::StatusOr<v1::JobStatus> SegrelClient::Watch(const std::string& job_id, const std::string& out_dir,
                                                  const StatusCallback& on_status) {
  grpc::ClientContext context;
  v1::WatchRequest request;
  request.set_job_id(job_id);
  request.set_skip_results(out_dir.empty());
  std::unique_ptr<grpc::ClientReader<v1::WatchResponse>> reader = stub_->Watch(&context, request);
  v1::WatchResponse message;
  v1::JobStatus last;
  std::ofstream file;
  std::string open_name;
  std::set<std::string> complete;
  if (!out_dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(out_dir, error);
    if (error) return absl::InternalError(absl::StrCat(out_dir, ": cannot create: ", error.message()));
  }
  while (reader->Read(&message)) {
    if (message.has_status()) {
      last = message.status();
      if (on_status) on_status(last);
      continue;
    }
    const v1::ResultChunk& chunk = message.result();
    if (!IsPlainFileName(chunk.name())) {
      context.TryCancel();
      return absl::DataLossError(absl::StrCat("the server sent a result named '", chunk.name(), "'"));
    }
    if (chunk.name() != open_name) {
      file.close();
      open_name = chunk.name();
      file.open(out_dir + "/" + open_name, std::ios::binary | std::ios::trunc);
    }
    file.seekp(static_cast<std::streamoff>(chunk.offset()));
    file.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    if (!file) {
      context.TryCancel();
      return absl::InternalError(absl::StrCat(out_dir, "/", open_name, ": cannot write"));
    }
    if (chunk.last()) {
      file.close();
      complete.insert(open_name);
      open_name.clear();
    }
  }
  if (absl::Status status = FromGrpcStatus(reader->Finish()); !status.ok()) return status;
  if (last.state() == v1::DONE && !out_dir.empty()) {
    for (const std::string& name : last.results()) {
      if (!complete.count(name)) return absl::DataLossError(absl::StrCat("result ", name, " did not arrive whole"));
    }
  }
  if (last.state() != v1::DONE && last.state() != v1::FAILED && last.state() != v1::CANCELLED) {
    return absl::DataLossError("the job's stream ended before the job did");
  }
  return last;
}

absl::StatusOr<v1::JobStatus> SegrelClient::Cancel(const std::string& job_id) {
  grpc::ClientContext context;
  v1::CancelRequest request;
  request.set_job_id(job_id);
  v1::CancelResponse response;
  if (absl::Status status = FromGrpcStatus(stub_->Cancel(&context, request, &response)); !status.ok()) return status;
  return response.status();
}

absl::StatusOr<v1::ListModelsResponse> SegrelClient::ListModels() {
  grpc::ClientContext context;
  v1::ListModelsResponse response;
  if (absl::Status status = FromGrpcStatus(stub_->ListModels(&context, v1::ListModelsRequest(), &response));
      !status.ok()) {
    return status;
  }
  return response;
}

}  // namespace segrel::client
