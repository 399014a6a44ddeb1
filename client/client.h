// The segrel client library: submits studies to segrel-server, follows jobs and fetches their results
// (proto/segrel/v1/segrel.proto). Used by segrel-client and the server's tests.
#ifndef SEGREL_CLIENT_CLIENT_H_
#define SEGREL_CLIENT_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "segrel/v1/segrel.grpc.pb.h"

namespace segrel::client {

struct SequenceInput {
  std::string name;  // the model's sequence name
  std::string path;  // a NIfTI file (.nii or .nii.gz)
};

struct SubmitOptions {
  std::string job_id;  // required: 1 to 64 of [A-Za-z0-9._-]; reuse it to retry a submission
  std::string model;   // NAME or NAME@VERSION
  // The study: NIfTI sequences, or a folder holding a DICOM study (every file in it and below that is DICOM
  // Part 10, "DICM" at byte 128, is sent; the model's series rules pick the series).
  std::vector<SequenceInput> inputs;
  std::string dicom_dir;
  std::string reference;                             // optional reference segmentation (NIfTI)
  std::vector<std::pair<int, std::string>> regions;  // optional region masks (NIfTI), class -> file
  v1::AnalysisOptions analysis;
  int priority = 0;
  double deadline_seconds = 0;           // 0: the server's default
  size_t chunk_bytes = size_t{1} << 20;  // at most 4 MiB
};

// Called with the bytes sent so far and the study's total.
using UploadProgress = std::function<void(uint64_t sent, uint64_t total)>;
// Called with every status the server reports.
using StatusCallback = std::function<void(const v1::JobStatus&)>;

// The absl::Status of a finished gRPC call (same code and message).
absl::Status FromGrpcStatus(const grpc::Status& status);

// A random job id ("job-" and 16 hex digits).
std::string NewJobId();

// How the channel is secured; the PEM contents, not file names.
struct ChannelSecurity {
  std::string ca_pem;    // CA certificates that signed the server's certificate: the channel speaks TLS
  std::string cert_pem;  // the client's certificate chain and key, for servers that ask for one (mutual TLS)
  std::string key_pem;
  bool tls() const { return !ca_pem.empty() || !cert_pem.empty(); }
};

// Thread-safe (one stub; every call has its own context).
class SegrelClient {
 public:
  // A channel to `address` (HOST:PORT) that accepts the protocol's message sizes: plaintext, or TLS as `security`
  // says.
  static std::shared_ptr<grpc::Channel> Connect(const std::string& address, const ChannelSecurity& security = {});
  // `token`: the bearer token sent with every call (servers with a tokens file ask for one); empty: none.
  explicit SegrelClient(std::shared_ptr<grpc::Channel> channel, std::string token = "")
      : stub_(v1::Segrel::NewStub(std::move(channel))), token_(std::move(token)) {}

  // Uploads the study (SHA-256 per file, CRC-32 per chunk) and returns the server's answer. Errors: NotFound or
  // Internal for input files that cannot be read, InvalidArgument for a DICOM folder without DICOM files or both
  // NIfTI inputs and a DICOM folder; the server's status otherwise (RESOURCE_EXHAUSTED when the queue is full,
  // ...).
  absl::StatusOr<v1::SubmitResponse> Submit(const SubmitOptions& options, const UploadProgress& progress = nullptr);

  // Follows the job until it ends; after DONE writes its result files into `out_dir` (created) unless it is empty.
  // Returns the final status (DONE, FAILED or CANCELLED: a failed job is not an error of Watch). Errors: the
  // server's (NOT_FOUND for an unknown job); DataLoss when the result stream is incomplete; Internal when a file
  // cannot be written.
  absl::StatusOr<v1::JobStatus> Watch(const std::string& job_id, const std::string& out_dir,
                                      const StatusCallback& on_status = nullptr);

  absl::StatusOr<v1::JobStatus> Cancel(const std::string& job_id);
  // Deletes an ended job's results on the server.
  absl::Status Delete(const std::string& job_id);
  absl::StatusOr<v1::ListModelsResponse> ListModels();
  // The jobs this client may watch, newest first, at most `limit` (0: the server's default of 100).
  absl::StatusOr<v1::ListJobsResponse> ListJobs(uint32_t limit = 0);

 private:
  void Authorize(grpc::ClientContext& context) const;

  std::unique_ptr<v1::Segrel::Stub> stub_;
  const std::string token_;
};

// The answer of the standard gRPC health service (grpc.health.v1) about `service` ("" for the server as a
// whole, "liveness" for whether segrel-server runs at all): "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN" or
// "UNKNOWN". What a container HEALTHCHECK or an exec probe runs (segrel-client health). Errors: the call's status
// (UNAVAILABLE when nothing answers, NOT_FOUND for a service the server does not know); Internal for an answer
// that is not a HealthCheckResponse.
absl::StatusOr<std::string> CheckHealth(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                                        absl::Duration timeout);

}  // namespace segrel::client

#endif  // SEGREL_CLIENT_CLIENT_H_
