// What the server tests share (server_test.cc, hostile_client_test.cc): a real segrel-server on a free loopback
// port (ServerTest), the fixture study as client options and as raw Submit messages, and a /metrics scrape.
#ifndef SEGREL_TESTS_SERVER_SERVER_TEST_FIXTURE_H_
#define SEGREL_TESTS_SERVER_SERVER_TEST_FIXTURE_H_

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "proto/checksums.h"
#include "server/server.h"
#include "tests/test_util.h"

namespace segrel::server::server_testing {

namespace fs = std::filesystem;
using client::SegrelClient;
using client::SubmitOptions;
using nlohmann::json;
using segrel::testing::FixturePath;
using segrel::testing::ReadFile;
using segrel::testing::TestTempDir;

inline constexpr char kModel[] = "unet-bn-test";  // tests/fixtures/data/bundle
inline const std::vector<std::string> kSequences = {"T1", "T2", "FLAIR"};

inline SubmitOptions StudyOptions(const std::string& job_id) {
  SubmitOptions options;
  options.job_id = job_id;
  options.model = kModel;
  for (const std::string& name : kSequences) options.inputs.push_back({name, FixturePath("study/" + name + ".nii.gz")});
  options.analysis.set_no_pictures(true);
  options.chunk_bytes = 512;  // several chunks per file even for the small fixture
  return options;
}

// GET http://127.0.0.1:PORT/metrics: the body, or "" on failure.
inline std::string Scrape(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return "";
  }
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return "";
  }
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) response.append(buffer, static_cast<size_t>(n));
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  return response.rfind("HTTP/1.1 200", 0) == 0 && body != std::string::npos ? response.substr(body + 4) : "";
}

// The value of one series line "NAME{LABELS} VALUE" in an exposition, or -1 when absent.
inline double SeriesValue(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

// Where the current test's server writes its audit trail: into $SEGREL_TEST_LOG_DIR (ctest sets it), whose files
// the log privacy test searches for the fixtures' patient data, as SUITE.TEST.audit.log; else `fallback_dir`.
inline std::string TestAuditLogPath(const std::string& fallback_dir) {
  const char* log_dir = std::getenv("SEGREL_TEST_LOG_DIR");
  if (log_dir == nullptr) return fallback_dir + "/audit.log";
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::create_directories(log_dir);
  return absl::StrCat(log_dir, "/", test->test_suite_name(), ".", test->name(), ".audit.log");
}

class ServerTest : public ::testing::Test {
 protected:
  void StartServer(size_t queue_capacity = 4, int workers = 1, UploadLimits limits = {},
                   const std::string& model_repository = FixturePath("")) {
    if (temp_.empty()) {
      temp_ = TestTempDir();
      fs::remove(AuditLogPath());  // an earlier run's
    }
    ServerOptions options;
    options.address = "127.0.0.1:0";
    options.metrics_address = "127.0.0.1:0";
    options.model_repository = model_repository;
    options.spool_dir = temp_ + "/spool";
    options.workers = workers;
    options.queue_capacity = queue_capacity;
    options.limits = limits;
    options.min_free_bytes = 0;  // the test machine's disk may be nearly full; the watermark has its own test
    options.streams = streams_;
    options.audit_log = AuditLogPath();
    absl::StatusOr<std::unique_ptr<SegrelServer>> server = SegrelServer::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = SegrelClient::Connect(absl::StrCat("127.0.0.1:", server_->port()));
    client_ = std::make_unique<SegrelClient>(channel_);
  }

  std::string AuditLogPath() const { return TestAuditLogPath(temp_); }

  // The audit lines whose event is `event`, without their time stamps.
  std::vector<std::string> AuditLines(const std::string& event) const {
    std::vector<std::string> lines;
    std::istringstream log(ReadFile(AuditLogPath()));
    for (std::string line; std::getline(log, line);) {
      const size_t fields = line.find(" segrel-audit event=" + event + " ");
      if (fields != std::string::npos) lines.push_back(line.substr(fields + 1));
    }
    return lines;
  }

  // Submits the fixture study and follows it into `out`; returns the final status.
  v1::JobStatus SubmitAndWatch(const SubmitOptions& options, const std::string& out) {
    absl::StatusOr<v1::SubmitResponse> response = client_->Submit(options);
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return {};
    absl::StatusOr<v1::JobStatus> status = client_->Watch(options.job_id, out);
    EXPECT_TRUE(status.ok()) << status.status();
    return status.ok() ? *status : v1::JobStatus();
  }

  // One raw Submit stream of `messages`; the call's status.
  grpc::Status RawSubmit(const std::vector<v1::SubmitRequest>& messages) {
    auto stub = v1::Segrel::NewStub(channel_);
    grpc::ClientContext context;
    v1::SubmitResponse response;
    auto writer = stub->Submit(&context, &response);
    for (const v1::SubmitRequest& message : messages) {
      if (!writer->Write(message)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  // The valid messages for the fixture study (one chunk per file).
  std::vector<v1::SubmitRequest> StudyMessages(const std::string& job_id) {
    std::vector<v1::SubmitRequest> messages(1);
    v1::JobMetadata* metadata = messages[0].mutable_metadata();
    metadata->set_job_id(job_id);
    metadata->set_model(kModel);
    for (size_t s = 0; s < kSequences.size(); ++s) {
      const std::string bytes = ReadFile(FixturePath("study/" + kSequences[s] + ".nii.gz"));
      v1::UploadFile* sequence = metadata->add_files();
      sequence->set_name(kSequences[s]);
      sequence->set_format(v1::NIFTI);
      sequence->set_size_bytes(bytes.size());
      sequence->set_sha256(proto::Sha256OfFile(FixturePath("study/" + kSequences[s] + ".nii.gz")));
      v1::Chunk* chunk = messages.emplace_back().mutable_chunk();
      chunk->set_file_index(static_cast<uint32_t>(s));
      chunk->set_data(bytes);
      chunk->set_crc32(proto::Crc32(bytes));
    }
    return messages;
  }

  void ExpectStillServing() {
    absl::StatusOr<v1::ListModelsResponse> models = client_->ListModels();
    ASSERT_TRUE(models.ok()) << models.status();
    EXPECT_EQ(models->models_size(), 1);
  }

  std::string temp_;
  StreamLimits streams_;
  std::unique_ptr<SegrelServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<SegrelClient> client_;
};

}  // namespace segrel::server::server_testing

#endif  // SEGREL_TESTS_SERVER_SERVER_TEST_FIXTURE_H_
