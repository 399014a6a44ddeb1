#include "client/client.h"

#include <grpcpp/generic/generic_stub.h>

#include <algorithm>
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

// Whether `path` is a DICOM Part 10 file: "DICM" after the 128-byte preamble.
bool IsDicomFile(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  char magic[4] = {};
  return file.seekg(128) && file.read(magic, 4) && std::string(magic, 4) == "DICM";
}

// The files of a DICOM study folder, in a stable order.
absl::StatusOr<std::vector<std::string>> DicomFiles(const std::string& dir) {
  std::error_code error;
  std::vector<std::string> files;
  for (std::filesystem::recursive_directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    if (it->is_regular_file(error) && IsDicomFile(it->path())) files.push_back(it->path().string());
  }
  if (error) return absl::NotFoundError(absl::StrCat(dir, ": cannot list (", error.message(), ")"));
  if (files.empty()) return absl::InvalidArgumentError(absl::StrCat(dir, ": no DICOM files (DICM at byte 128)"));
  std::sort(files.begin(), files.end());
  return files;
}

// The job's metadata and, in the same order as its files, their paths.
struct Upload {
  v1::JobMetadata metadata;
  std::vector<std::string> paths;
};

absl::Status AddFile(Upload& upload, const std::string& path, v1::FileRole role, const std::string& name,
                     v1::Format format, int class_index = 0) {
  std::error_code error;
  const uint64_t size = std::filesystem::file_size(path, error);
  if (error) return absl::NotFoundError(absl::StrCat(path, ": cannot read (", error.message(), ")"));
  const std::string sha256 = proto::Sha256OfFile(path);
  if (sha256.empty()) return absl::InternalError(absl::StrCat(path, ": cannot read"));
  v1::UploadFile* file = upload.metadata.add_files();
  file->set_role(role);
  file->set_name(name);
  file->set_format(format);
  file->set_size_bytes(size);
  file->set_sha256(sha256);
  file->set_class_index(class_index);
  upload.paths.push_back(path);
  return absl::OkStatus();
}

absl::StatusOr<Upload> Prepare(const SubmitOptions& options) {
  Upload upload;
  v1::JobMetadata& metadata = upload.metadata;
  metadata.set_job_id(options.job_id);
  metadata.set_model(options.model);
  *metadata.mutable_options() = options.analysis;
  metadata.set_priority(options.priority);
  metadata.set_deadline_seconds(options.deadline_seconds);
  if (!options.dicom_dir.empty() && !options.inputs.empty()) {
    return absl::InvalidArgumentError("give NIfTI sequences or a DICOM folder, not both");
  }
  for (const SequenceInput& input : options.inputs) {
    if (absl::Status status = AddFile(upload, input.path, v1::SEQUENCE, input.name, v1::NIFTI); !status.ok()) {
      return status;
    }
  }
  if (!options.dicom_dir.empty()) {
    absl::StatusOr<std::vector<std::string>> files = DicomFiles(options.dicom_dir);
    if (!files.ok()) return files.status();
    for (size_t f = 0; f < files->size(); ++f) {
      // Labelled by number: file names may identify the patient.
      const std::string label = absl::StrCat("dicom-", f);
      if (absl::Status status = AddFile(upload, (*files)[f], v1::SEQUENCE, label, v1::DICOM); !status.ok()) {
        return status;
      }
    }
  }
  if (!options.reference.empty()) {
    if (absl::Status status = AddFile(upload, options.reference, v1::REFERENCE, "reference", v1::NIFTI); !status.ok()) {
      return status;
    }
  }
  for (const auto& [class_index, path] : options.regions) {
    if (absl::Status status =
            AddFile(upload, path, v1::REGION, absl::StrCat("region-", class_index), v1::NIFTI, class_index);
        !status.ok()) {
      return status;
    }
  }
  return upload;
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

std::shared_ptr<grpc::Channel> SegrelClient::Connect(const std::string& address, const ChannelSecurity& security) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(kMaxMessageBytes);
  arguments.SetMaxSendMessageSize(kMaxMessageBytes);
  if (!security.tls()) return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), arguments);
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = security.ca_pem;  // empty: the system's CAs
  ssl.pem_cert_chain = security.cert_pem;
  ssl.pem_private_key = security.key_pem;
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(ssl), arguments);
}

void SegrelClient::Authorize(grpc::ClientContext& context) const {
  if (!token_.empty()) context.AddMetadata("authorization", "Bearer " + token_);
}

absl::StatusOr<v1::SubmitResponse> SegrelClient::Submit(const SubmitOptions& options, const UploadProgress& progress) {
  if (options.chunk_bytes == 0 || options.chunk_bytes > (size_t{4} << 20)) {
    return absl::InvalidArgumentError("chunk size must be 1 byte to 4 MiB");
  }
  absl::StatusOr<Upload> upload = Prepare(options);
  if (!upload.ok()) return upload.status();
  uint64_t total = 0;
  for (const v1::UploadFile& file : upload->metadata.files()) total += file.size_bytes();

  grpc::ClientContext context;
  Authorize(context);
  v1::SubmitResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::SubmitRequest>> writer = stub_->Submit(&context, &response);
  v1::SubmitRequest request;
  *request.mutable_metadata() = upload->metadata;
  bool open = writer->Write(request);
  uint64_t sent = 0;
  std::string buffer(options.chunk_bytes, '\0');
  for (size_t f = 0; open && f < upload->paths.size(); ++f) {
    std::ifstream file(upload->paths[f], std::ios::binary);
    for (uint64_t offset = 0; open && file;) {
      file.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      const size_t length = static_cast<size_t>(file.gcount());
      if (length == 0) break;
      request.Clear();
      v1::Chunk* chunk = request.mutable_chunk();
      chunk->set_file_index(static_cast<uint32_t>(f));
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
  Authorize(context);
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
  Authorize(context);
  v1::CancelRequest request;
  request.set_job_id(job_id);
  v1::CancelResponse response;
  if (absl::Status status = FromGrpcStatus(stub_->Cancel(&context, request, &response)); !status.ok()) return status;
  return response.status();
}

absl::Status SegrelClient::Delete(const std::string& job_id) {
  grpc::ClientContext context;
  Authorize(context);
  v1::DeleteRequest request;
  request.set_job_id(job_id);
  v1::DeleteResponse response;
  return FromGrpcStatus(stub_->Delete(&context, request, &response));
}

absl::StatusOr<v1::ListModelsResponse> SegrelClient::ListModels() {
  grpc::ClientContext context;
  Authorize(context);
  v1::ListModelsResponse response;
  if (absl::Status status = FromGrpcStatus(stub_->ListModels(&context, v1::ListModelsRequest(), &response));
      !status.ok()) {
    return status;
  }
  return response;
}

absl::StatusOr<v1::ListJobsResponse> SegrelClient::ListJobs(uint32_t limit) {
  grpc::ClientContext context;
  Authorize(context);
  v1::ListJobsRequest request;
  request.set_limit(limit);
  v1::ListJobsResponse response;
  if (absl::Status status = FromGrpcStatus(stub_->ListJobs(&context, request, &response)); !status.ok()) {
    return status;
  }
  return response;
}

absl::StatusOr<std::string> CheckHealth(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                                        absl::Duration timeout) {
  // HealthCheckRequest{service}: field 1, length-delimited (a service name is far shorter than 128 bytes).
  if (service.size() > 127) return absl::InvalidArgumentError("the health service name is too long");
  const std::string request_bytes =
      service.empty() ? std::string() : std::string("\x0a", 1) + static_cast<char>(service.size()) + service;
  grpc::Slice request_slice(request_bytes);
  grpc::ByteBuffer request(&request_slice, 1);
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue queue;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
      stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request, &queue);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, nullptr);
  void* tag = nullptr;
  bool ok = false;
  queue.Next(&tag, &ok);
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
  if (!status.ok()) return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return absl::InternalError("the health answer cannot be read");
  std::string bytes;
  for (const grpc::Slice& slice : slices) bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  // HealthCheckResponse{status}: field 1, a varint; absent means 0 (UNKNOWN).
  int value = 0;
  if (bytes.size() == 2 && bytes[0] == '\x08') {
    value = static_cast<unsigned char>(bytes[1]);
  } else if (!bytes.empty()) {
    return absl::InternalError("the health answer is not a grpc.health.v1.HealthCheckResponse");
  }
  switch (value) {
    case 1:
      return std::string("SERVING");
    case 2:
      return std::string("NOT_SERVING");
    case 3:
      return std::string("SERVICE_UNKNOWN");
    default:
      return std::string("UNKNOWN");
  }
}

}  // namespace segrel::client
