// segrel-server end to end: a real server on a free loopback port, the real client library, no gRPC mocks.
// Results are compared with the in-process pipeline (RunAnalysis + WriteAnalysis) on the same files.
#include "server/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "core/pipeline/pipeline.h"
#include "proto/checksums.h"
#include "server/job_record.h"
#include "tests/test_util.h"
#include "tests/tools/dicom_study_writer.h"

namespace segrel::server {
namespace {

namespace fs = std::filesystem;
using client::SegrelClient;
using client::SubmitOptions;
using nlohmann::json;
using segrel::testing::FixturePath;
using segrel::testing::ReadFile;
using segrel::testing::TestTempDir;

constexpr char kModel[] = "unet-bn-test";  // tests/fixtures/data/bundle
const std::vector<std::string> kSequences = {"T1", "T2", "FLAIR"};

SubmitOptions StudyOptions(const std::string& job_id) {
  SubmitOptions options;
  options.job_id = job_id;
  options.model = kModel;
  for (const std::string& name : kSequences) options.inputs.push_back({name, FixturePath("study/" + name + ".nii.gz")});
  options.analysis.set_no_pictures(true);
  options.chunk_bytes = 512;  // several chunks per file even for the small fixture
  return options;
}

// GET http://127.0.0.1:PORT/metrics: the body, or "" on failure.
std::string Scrape(int port) {
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
double SeriesValue(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
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

  // Where the server's audit trail goes: into $SEGREL_TEST_LOG_DIR (ctest sets it), whose files the log privacy test
  // searches for the fixtures' patient data, else the test's folder.
  std::string AuditLogPath() const {
    const char* log_dir = std::getenv("SEGREL_TEST_LOG_DIR");
    if (log_dir == nullptr) return temp_ + "/audit.log";
    const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
    fs::create_directories(log_dir);
    return absl::StrCat(log_dir, "/server_tests.", test->name(), ".audit.log");
  }

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

TEST_F(ServerTest, ListModelsNamesTheBundleAndItsSequences) {
  StartServer();
  absl::StatusOr<v1::ListModelsResponse> models = client_->ListModels();
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->models_size(), 1);
  const v1::ModelInfo& model = models->models(0);
  EXPECT_EQ(model.name(), kModel);
  EXPECT_EQ(model.version(), "0.0.1");
  ASSERT_EQ(model.sequences_size(), 3);
  for (int s = 0; s < 3; ++s) EXPECT_EQ(model.sequences(s).name(), kSequences[s]);
  EXPECT_EQ(model.default_composite(), "epsilon-plus");
}

TEST_F(ServerTest, RoundTripEqualsTheInProcessPipelineBitForBit) {
  StartServer();
  SubmitOptions options = StudyOptions("round-trip");
  options.inputs = {options.inputs[2], options.inputs[0], options.inputs[1]};  // any order, as segrel analyze
  options.analysis.set_seed(7);
  options.analysis.set_maps(true);
  const std::string out = temp_ + "/server";
  const v1::JobStatus status = SubmitAndWatch(options, out);
  ASSERT_EQ(status.state(), v1::DONE) << status.message();

  pipeline::AnalysisRequest request;
  request.model = FixturePath("bundle");
  for (const std::string& name : kSequences) request.inputs.push_back({name, FixturePath("study/" + name + ".nii.gz")});
  request.seed = 7;
  absl::StatusOr<pipeline::AnalysisResult> expected = pipeline::RunAnalysis(request);
  ASSERT_TRUE(expected.ok()) << expected.status();
  const std::string reference = temp_ + "/in_process";
  absl::StatusOr<std::vector<std::string>> written = pipeline::WriteAnalysis(*expected, reference, true, false);
  ASSERT_TRUE(written.ok()) << written.status();

  EXPECT_EQ(std::vector<std::string>(status.results().begin(), status.results().end()), *written);
  for (const std::string& name : *written) {
    ASSERT_TRUE(fs::exists(out + "/" + name)) << name;
    if (name == "relevance.json") continue;
    EXPECT_EQ(ReadFile(out + "/" + name), ReadFile(reference + "/" + name)) << name << " differs";
  }
  json served = json::parse(ReadFile(out + "/relevance.json"));
  json local = json::parse(ReadFile(reference + "/relevance.json"));
  EXPECT_TRUE(served["seconds"].is_object());
  // Workers use every core (LibTorch's default would be one thread).
  EXPECT_EQ(served["threads"], static_cast<int>(std::thread::hardware_concurrency()));
  served.erase("seconds");
  local.erase("seconds");
  EXPECT_EQ(served, local);

  uint64_t bytes_out = 0;
  for (const std::string& name : *written) bytes_out += fs::file_size(out + "/" + name);
  EXPECT_EQ(AuditLines("delivered"),
            std::vector<std::string>{absl::StrCat("segrel-audit event=delivered job=round-trip client=- model=", kModel,
                                                  "@0.0.1 by=- bytes_out=", bytes_out)});
}

TEST_F(ServerTest, CorruptOrMalformedUploadsGetTheirCodeAndTheServerGoesOn) {
  StartServer();
  struct Case {
    std::string what;
    std::function<void(std::vector<v1::SubmitRequest>&)> corrupt;
    grpc::StatusCode code;
  };
  const std::vector<Case> cases = {
      {"wrong file checksum",
       [](auto& m) { m[0].mutable_metadata()->mutable_files(1)->set_sha256(std::string(64, '0')); },
       grpc::StatusCode::DATA_LOSS},
      {"corrupted chunk", [](auto& m) { (*m[2].mutable_chunk()->mutable_data())[10] ^= 1; },
       grpc::StatusCode::DATA_LOSS},
      {"unknown model", [](auto& m) { m[0].mutable_metadata()->set_model("no-such-model"); },
       grpc::StatusCode::NOT_FOUND},
      {"missing sequence",
       [](auto& m) {
         m[0].mutable_metadata()->mutable_files()->RemoveLast();
         m.pop_back();
       },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"wrong chunk order", [](auto& m) { std::swap(m[1], m[2]); }, grpc::StatusCode::INVALID_ARGUMENT},
      {"wrong offset", [](auto& m) { m[3].mutable_chunk()->set_offset(1); }, grpc::StatusCode::INVALID_ARGUMENT},
      {"incomplete upload", [](auto& m) { m.pop_back(); }, grpc::StatusCode::INVALID_ARGUMENT},
      {"chunk before metadata", [](auto& m) { std::swap(m[0], m[1]); }, grpc::StatusCode::INVALID_ARGUMENT},
      {"bad job id", [](auto& m) { m[0].mutable_metadata()->set_job_id("../x"); }, grpc::StatusCode::INVALID_ARGUMENT},
      {"NIfTI and DICOM mixed", [](auto& m) { m[0].mutable_metadata()->mutable_files(0)->set_format(v1::DICOM); },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"DICOM for a model without series rules",
       [](auto& m) {
         for (v1::UploadFile& file : *m[0].mutable_metadata()->mutable_files()) file.set_format(v1::DICOM);
       },
       grpc::StatusCode::FAILED_PRECONDITION},
      {"two references",
       [](auto& m) {
         for (int copy = 0; copy < 2; ++copy) {
           v1::UploadFile* reference = m[0].mutable_metadata()->add_files();
           *reference = m[0].metadata().files(0);
           reference->set_role(v1::REFERENCE);
         }
       },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"region of a class the model lacks",
       [](auto& m) {
         v1::UploadFile* region = m[0].mutable_metadata()->add_files();
         *region = m[0].metadata().files(0);
         region->set_role(v1::REGION);
         region->set_class_index(2);  // the bundle has background and lesion
       },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"mask as DICOM",
       [](auto& m) {
         v1::UploadFile* reference = m[0].mutable_metadata()->add_files();
         *reference = m[0].metadata().files(0);
         reference->set_role(v1::REFERENCE);
         reference->set_format(v1::DICOM);
       },
       grpc::StatusCode::INVALID_ARGUMENT},
  };
  for (const Case& c : cases) {
    std::vector<v1::SubmitRequest> messages = StudyMessages("bad");
    c.corrupt(messages);
    const grpc::Status status = RawSubmit(messages);
    EXPECT_EQ(status.error_code(), c.code) << c.what << ": " << status.error_message();
    ExpectStillServing();
  }
  // Nothing was accepted, nothing is left on disk, and the same id still works.
  EXPECT_EQ(client_->Watch("bad", "").status().code(), absl::StatusCode::kNotFound);
  const std::string exposition = Scrape(server_->metrics_port());
  EXPECT_EQ(SeriesValue(exposition, "segrel_jobs_rejected_total{code=\"DATA_LOSS\"}"), 2);
  EXPECT_EQ(SeriesValue(exposition, "segrel_jobs_rejected_total{code=\"INVALID_ARGUMENT\"}"), 10);
  EXPECT_EQ(SeriesValue(exposition, "segrel_jobs_rejected_total{code=\"FAILED_PRECONDITION\"}"), 1);
  EXPECT_EQ(SeriesValue(exposition, "segrel_jobs_received_total"), 0);
  EXPECT_TRUE(fs::is_empty(temp_ + "/spool"));
  EXPECT_EQ(SubmitAndWatch(StudyOptions("bad"), temp_ + "/out").state(), v1::DONE);
}

TEST_F(ServerTest, HostileMetadataGetsItsCodeLeavesNothingAndPrioritiesMayBeExtreme) {
  StartServer();
  struct Case {
    std::string what;
    std::function<void(v1::JobMetadata&)> change;
    grpc::StatusCode code;
  };
  const auto job_id = [](std::string id) { return [id](v1::JobMetadata& m) { m.set_job_id(id); }; };
  const auto sequence_name = [](std::string name) {
    return [name](v1::JobMetadata& m) { m.mutable_files(0)->set_name(name); };
  };
  const auto region_of = [](int32_t class_index) {
    return [class_index](v1::JobMetadata& m) {
      v1::UploadFile* region = m.add_files();
      *region = m.files(0);
      region->set_role(v1::REGION);
      region->set_class_index(class_index);
    };
  };
  const std::vector<Case> cases = {
      {"id with a separator", job_id("a/b"), grpc::StatusCode::INVALID_ARGUMENT},
      {"id ..", job_id(".."), grpc::StatusCode::INVALID_ARGUMENT},
      {"id with NUL", job_id(std::string("a\0b", 3)), grpc::StatusCode::INVALID_ARGUMENT},
      {"non-ASCII id",
       job_id("j\xC3\xB6"
              "b"),
       grpc::StatusCode::INVALID_ARGUMENT},
      {"id of 65 characters", job_id(std::string(65, 'a')), grpc::StatusCode::INVALID_ARGUMENT},
      {"empty id", job_id(""), grpc::StatusCode::INVALID_ARGUMENT},
      {"name climbing out", sequence_name("../T1"), grpc::StatusCode::INVALID_ARGUMENT},
      {"name with a separator", sequence_name("T1/x"), grpc::StatusCode::INVALID_ARGUMENT},
      {"name with NUL", sequence_name(std::string("T1\0", 3)), grpc::StatusCode::INVALID_ARGUMENT},
      {"non-ASCII name", sequence_name("T1\xE2\x80\xAE"), grpc::StatusCode::INVALID_ARGUMENT},
      {"unknown format", [](auto& m) { m.mutable_files(0)->set_format(static_cast<v1::Format>(77)); },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"unknown role", [](auto& m) { m.mutable_files(0)->set_role(static_cast<v1::FileRole>(77)); },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"negative class", region_of(-1), grpc::StatusCode::INVALID_ARGUMENT},
      {"largest class", region_of(std::numeric_limits<int32_t>::max()), grpc::StatusCode::INVALID_ARGUMENT},
      {"size 2^63", [](auto& m) { m.mutable_files(0)->set_size_bytes(uint64_t{1} << 63); },
       grpc::StatusCode::RESOURCE_EXHAUSTED},
      {"sizes summing past 2^64",
       [](auto& m) {
         for (v1::UploadFile& file : *m.mutable_files()) file.set_size_bytes(UINT64_MAX / 2);
       },
       grpc::StatusCode::RESOURCE_EXHAUSTED},
      {"checksum not hex", [](auto& m) { m.mutable_files(0)->set_sha256(std::string(64, 'z')); },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"model climbing out", [](auto& m) { m.set_model("../bundle"); }, grpc::StatusCode::NOT_FOUND},
  };
  for (const Case& c : cases) {
    std::vector<v1::SubmitRequest> messages = StudyMessages("hostile");
    c.change(*messages[0].mutable_metadata());
    const grpc::Status status = RawSubmit(messages);
    EXPECT_EQ(status.error_code(), c.code) << c.what << ": " << status.error_message();
    EXPECT_FALSE(status.error_message().empty()) << c.what;
    EXPECT_TRUE(fs::is_empty(temp_ + "/spool")) << c.what << " left files";
    ExpectStillServing();
  }

  // The extremes of the priority are ordinary priorities: highest first.
  server_->HoldQueue(true);
  std::vector<SubmitOptions> jobs;
  for (const auto& [id, priority] :
       std::vector<std::pair<std::string, int32_t>>{{"lowest", std::numeric_limits<int32_t>::min()},
                                                    {"usual", 5},
                                                    {"highest", std::numeric_limits<int32_t>::max()}}) {
    jobs.push_back(StudyOptions(id));
    jobs.back().priority = priority;
    ASSERT_TRUE(client_->Submit(jobs.back()).ok()) << id;
  }
  std::vector<std::string> order;  // a resubmission answers with the job's place in the queue
  for (const SubmitOptions& job : jobs) {
    order.push_back(absl::StrCat(job.job_id, "@", client_->Submit(job).value().status().queue_position()));
  }
  EXPECT_EQ(order, (std::vector<std::string>{"lowest@2", "usual@1", "highest@0"}));
  server_->HoldQueue(false);
}

TEST_F(ServerTest, TwoHundredWatchesOnOneJobGetASlotOrAClearRefusal) {
  StartServer();  // 64 Watch streams per job
  server_->HoldQueue(true);
  ASSERT_TRUE(client_->Submit(StudyOptions("popular")).ok());
  std::atomic<int> done{0};
  std::atomic<int> refused{0};
  std::atomic<int> other{0};
  std::vector<std::thread> watchers;
  for (int w = 0; w < 200; ++w) {
    watchers.emplace_back([&] {
      absl::StatusOr<v1::JobStatus> status = client_->Watch("popular", "");
      if (status.ok() && status->state() == v1::DONE) {
        ++done;
      } else if (absl::IsResourceExhausted(status.status()) &&
                 status.status().message().find("too many Watch calls") != absl::string_view::npos) {
        ++refused;
      } else {
        ++other;
      }
    });
  }
  for (int i = 0; i < 400 && refused + other < 136; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  EXPECT_EQ(refused.load(), 136) << "the 64 admitted are still waiting for the job";
  ExpectStillServing();
  server_->HoldQueue(false);
  for (std::thread& watcher : watchers) watcher.join();
  EXPECT_EQ(done.load(), 64);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(client_->Watch("popular", temp_ + "/popular").value().state(), v1::DONE) << "every slot came back";
}

TEST_F(ServerTest, TricklingUploadsAtTheLimitAreEndedWhileOtherClientsAreServed) {
  streams_.max_uploads = 2;
  streams_.upload_idle_timeout = absl::Milliseconds(400);
  streams_.min_upload_bytes_per_second = 4096;
  StartServer();
  ASSERT_EQ(SubmitAndWatch(StudyOptions("before"), temp_ + "/before").state(), v1::DONE);
  // Two clients send a byte every 50 ms: never idle, far below the minimum rate. They hold both upload slots.
  grpc::Status trickled[2];
  std::vector<std::thread> tricklers;
  for (int t = 0; t < 2; ++t) {
    tricklers.emplace_back([&, t] {
      auto stub = v1::Segrel::NewStub(channel_);
      grpc::ClientContext context;
      v1::SubmitResponse response;
      std::vector<v1::SubmitRequest> study = StudyMessages(absl::StrCat("trickle-", t));
      auto writer = stub->Submit(&context, &response);
      bool writing = writer->Write(study[0]);
      const std::string& bytes = study[1].chunk().data();
      for (uint64_t offset = 0; writing && offset < 100; ++offset) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        v1::SubmitRequest request;
        request.mutable_chunk()->set_offset(offset);
        request.mutable_chunk()->set_data(bytes.substr(offset, 1));
        request.mutable_chunk()->set_crc32(proto::Crc32(bytes.substr(offset, 1)));
        writing = writer->Write(request);
      }
      trickled[t] = writer->Finish();
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const grpc::Status third = RawSubmit(StudyMessages("third"));
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << third.error_message();
  ExpectStillServing();
  EXPECT_EQ(client_->Watch("before", temp_ + "/again").value().state(), v1::DONE) << "Watch is served meanwhile";
  for (std::thread& trickler : tricklers) trickler.join();
  for (const grpc::Status& status : trickled) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
    EXPECT_NE(status.error_message().find("bytes/s"), std::string::npos) << status.error_message();
  }
  EXPECT_EQ(SubmitAndWatch(StudyOptions("after"), temp_ + "/after").state(), v1::DONE) << "the slots came back";
  EXPECT_EQ(std::distance(fs::directory_iterator(temp_ + "/spool"), fs::directory_iterator()), 2)
      << "the trickled uploads left nothing";
}

TEST_F(ServerTest, FullQueueIsResourceExhaustedWithARetryHint) {
  StartServer(/*queue_capacity=*/1);
  server_->HoldQueue(true);
  ASSERT_TRUE(client_->Submit(StudyOptions("first")).ok());
  auto stub = v1::Segrel::NewStub(channel_);
  grpc::ClientContext context;
  v1::SubmitResponse response;
  auto writer = stub->Submit(&context, &response);
  for (const v1::SubmitRequest& message : StudyMessages("second")) writer->Write(message);
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  const auto hint = context.GetServerTrailingMetadata().find("segrel-retry-after-ms");
  ASSERT_NE(hint, context.GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(hint->second.data(), hint->second.size()), "5000");
  EXPECT_EQ(SeriesValue(Scrape(server_->metrics_port()), "segrel_queue_length"), 1);
  // Once the queue moves, the refused job is accepted.
  server_->HoldQueue(false);
  EXPECT_EQ(client_->Watch("first", "").value().state(), v1::DONE);
  EXPECT_EQ(SubmitAndWatch(StudyOptions("second"), temp_ + "/out").state(), v1::DONE);
}

TEST_F(ServerTest, StudiesBeyondTheLimitsAreResourceExhausted) {
  UploadLimits limits;
  limits.max_study_bytes = 5000;  // the fixture study has 3 files of about 2 KB
  limits.max_files = 3;
  StartServer(4, 1, limits);
  EXPECT_EQ(client_->Submit(StudyOptions("big")).status().code(), absl::StatusCode::kResourceExhausted);
  std::vector<v1::SubmitRequest> messages = StudyMessages("many");
  v1::UploadFile* extra = messages[0].mutable_metadata()->add_files();
  *extra = messages[0].metadata().files(0);
  extra->set_name("T1c");
  extra->set_size_bytes(1);
  EXPECT_EQ(RawSubmit(messages).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  ExpectStillServing();
}

TEST_F(ServerTest, LimitsThatRetryingCannotHelpComeWithoutARetryHint) {
  UploadLimits limits;
  limits.max_study_bytes = 5000;  // the fixture study has 3 files of about 2 KB
  StartServer(4, 1, limits);
  auto stub = v1::Segrel::NewStub(channel_);
  grpc::ClientContext context;
  v1::SubmitResponse response;
  auto writer = stub->Submit(&context, &response);
  for (const v1::SubmitRequest& message : StudyMessages("big")) writer->Write(message);
  writer->WritesDone();
  EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(context.GetServerTrailingMetadata().count("segrel-retry-after-ms"), 0u);
}

TEST_F(ServerTest, DeadlinesThatNeverExpireOrAreNotNumbersAreRefused) {
  StartServer();
  for (const double deadline : {std::nan(""), std::numeric_limits<double>::infinity(), 1e308, -1.0, 8.0 * 86400}) {
    SubmitOptions options = StudyOptions("deadline");
    options.deadline_seconds = deadline;
    const absl::StatusOr<v1::SubmitResponse> response = client_->Submit(options);
    EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument) << deadline;
  }
  SubmitOptions week = StudyOptions("deadline");
  week.deadline_seconds = 7.0 * 86400;
  EXPECT_TRUE(client_->Submit(week).ok()) << "a week is the longest deadline";
  ExpectStillServing();
}

TEST_F(ServerTest, AJobQueuedPastItsDeadlineFailsWithDeadlineExceeded) {
  StartServer();
  server_->HoldQueue(true);
  SubmitOptions options = StudyOptions("late");
  options.deadline_seconds = 0.05;
  ASSERT_TRUE(client_->Submit(options).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  server_->HoldQueue(false);
  absl::StatusOr<v1::JobStatus> status = client_->Watch("late", temp_ + "/out");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->state(), v1::FAILED);
  EXPECT_EQ(status->code(), static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED));
  EXPECT_EQ(SeriesValue(Scrape(server_->metrics_port()),
                        absl::StrCat("segrel_jobs_failed_total{model=\"", kModel, "\",reason=\"DEADLINE_EXCEEDED\"}")),
            1);
}

TEST_F(ServerTest, CancelAQueuedJob) {
  StartServer();
  server_->HoldQueue(true);
  ASSERT_TRUE(client_->Submit(StudyOptions("a")).ok());
  absl::StatusOr<v1::SubmitResponse> b = client_->Submit(StudyOptions("b"));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->status().state(), v1::QUEUED);
  EXPECT_EQ(b->status().queue_position(), 1u);
  absl::StatusOr<v1::JobStatus> cancelled = client_->Cancel("a");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), v1::CANCELLED);
  EXPECT_EQ(cancelled->code(), static_cast<int>(grpc::StatusCode::CANCELLED));
  // b moved up; watching the cancelled job replays its end.
  EXPECT_EQ(client_->Watch("a", temp_ + "/a").value().state(), v1::CANCELLED);
  EXPECT_FALSE(fs::exists(temp_ + "/a/relevance.json"));
  std::vector<v1::JobStatus> seen;
  server_->HoldQueue(false);
  absl::StatusOr<v1::JobStatus> done =
      client_->Watch("b", temp_ + "/b", [&](const v1::JobStatus& status) { seen.push_back(status); });
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::DONE);
  EXPECT_EQ(client_->Cancel("no-such-job").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(SeriesValue(Scrape(server_->metrics_port()),
                        absl::StrCat("segrel_jobs_failed_total{model=\"", kModel, "\",reason=\"CANCELLED\"}")),
            1);
  EXPECT_EQ(AuditLines("cancelled"),
            std::vector<std::string>{absl::StrCat("segrel-audit event=cancelled job=a client=- "
                                                  "model=",
                                                  kModel, "@0.0.1 by=-")});
  EXPECT_EQ(AuditLines("delivered").size(), 1u) << "b's results; a cancelled job delivers nothing";
}

TEST_F(ServerTest, WatchReportsQueuePositionThenStagesThenDone) {
  StartServer();
  server_->HoldQueue(true);
  ASSERT_TRUE(client_->Submit(StudyOptions("a")).ok());
  ASSERT_TRUE(client_->Submit(StudyOptions("b")).ok());
  std::vector<v1::JobStatus> seen;
  std::thread watcher(
      [&] { client_->Watch("b", "", [&](const v1::JobStatus& status) { seen.push_back(status); }).IgnoreError(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  server_->HoldQueue(false);
  watcher.join();
  ASSERT_GE(seen.size(), 3u);
  EXPECT_EQ(seen.front().state(), v1::QUEUED);
  EXPECT_EQ(seen.front().queue_position(), 1u);
  bool running = false;
  for (const v1::JobStatus& status : seen) running |= status.state() == v1::RUNNING && !status.stage().empty();
  EXPECT_TRUE(running);
  EXPECT_EQ(seen.back().state(), v1::DONE);
}

TEST_F(ServerTest, ResubmittingTheSameJobIdIsIdempotent) {
  StartServer();
  server_->HoldQueue(true);
  // A broken first attempt (the connection drops mid-upload) leaves nothing behind.
  std::vector<v1::SubmitRequest> partial = StudyMessages("retry");
  partial.pop_back();
  EXPECT_EQ(RawSubmit(partial).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  absl::StatusOr<v1::SubmitResponse> first = client_->Submit(StudyOptions("retry"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->already_submitted());
  absl::StatusOr<v1::SubmitResponse> again = client_->Submit(StudyOptions("retry"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->already_submitted());
  EXPECT_EQ(again->status().state(), v1::QUEUED);
  SubmitOptions other = StudyOptions("retry");
  other.analysis.set_seed(99);
  EXPECT_EQ(client_->Submit(other).status().code(), absl::StatusCode::kAlreadyExists);
  server_->HoldQueue(false);
  EXPECT_EQ(client_->Watch("retry", temp_ + "/out").value().state(), v1::DONE);
  const std::string exposition = Scrape(server_->metrics_port());
  EXPECT_EQ(SeriesValue(exposition, "segrel_jobs_received_total"), 1);
  EXPECT_EQ(SeriesValue(exposition, absl::StrCat("segrel_jobs_succeeded_total{model=\"", kModel, "\"}")), 1);
}

TEST_F(ServerTest, ClientDisconnectMidUploadLeavesNothing) {
  StartServer();
  auto stub = v1::Segrel::NewStub(channel_);
  {
    grpc::ClientContext context;
    v1::SubmitResponse response;
    auto writer = stub->Submit(&context, &response);
    std::vector<v1::SubmitRequest> messages = StudyMessages("gone");
    ASSERT_TRUE(writer->Write(messages[0]));
    ASSERT_TRUE(writer->Write(messages[1]));
    context.TryCancel();
    EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  for (int i = 0; i < 50 && !fs::is_empty(temp_ + "/spool"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(fs::is_empty(temp_ + "/spool"));
  EXPECT_EQ(client_->Watch("gone", "").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(SubmitAndWatch(StudyOptions("gone"), temp_ + "/out").state(), v1::DONE);
}

TEST_F(ServerTest, ClientDisconnectMidJobLeavesTheJobRunning) {
  StartServer();
  server_->HoldQueue(true);
  ASSERT_TRUE(client_->Submit(StudyOptions("left")).ok());
  {
    auto stub = v1::Segrel::NewStub(channel_);
    grpc::ClientContext context;
    v1::WatchRequest request;
    request.set_job_id("left");
    auto reader = stub->Watch(&context, request);
    v1::WatchResponse first;
    ASSERT_TRUE(reader->Read(&first));
    EXPECT_EQ(first.status().state(), v1::QUEUED);
    context.TryCancel();
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  server_->HoldQueue(false);
  // The job runs to its end regardless, and a new Watch fetches its results.
  EXPECT_EQ(client_->Watch("left", temp_ + "/out").value().state(), v1::DONE);
  EXPECT_TRUE(fs::exists(temp_ + "/out/segmentation.nii.gz"));
  ExpectStillServing();
}

TEST_F(ServerTest, UploadLargerThan64MBIsSpooledIntact) {
  StartServer();
  server_->HoldQueue(true);  // the bytes are not NIfTI: the job must not run
  SubmitOptions options = StudyOptions("large");
  options.chunk_bytes = size_t{4} << 20;
  std::mt19937_64 random(1);
  for (client::SequenceInput& input : options.inputs) {
    input.path = temp_ + "/" + input.name + ".bin";
    std::vector<uint64_t> words((size_t{23} << 20) / 8);
    for (uint64_t& word : words) word = random();
    std::ofstream(input.path, std::ios::binary).write(reinterpret_cast<const char*>(words.data()), words.size() * 8);
  }
  uint64_t last_sent = 0, total = 0;
  absl::StatusOr<v1::SubmitResponse> response =
      client_->Submit(options, [&](uint64_t sent, uint64_t all) { last_sent = sent, total = all; });
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status().state(), v1::QUEUED);
  EXPECT_EQ(total, 3 * (uint64_t{23} << 20));
  EXPECT_EQ(last_sent, total);
  // The spooled files hold exactly the bytes sent.
  int found = 0;
  for (const auto& entry : fs::recursive_directory_iterator(temp_ + "/spool")) {
    if (!entry.is_regular_file() || entry.path().filename() == kJobRecordName) continue;
    const std::string name = entry.path().stem().string();
    EXPECT_EQ(proto::Sha256OfFile(entry.path().string()), proto::Sha256OfFile(temp_ + "/" + name + ".bin")) << name;
    ++found;
  }
  EXPECT_EQ(found, 3);
  EXPECT_EQ(SeriesValue(Scrape(server_->metrics_port()), "segrel_bytes_received_total"), total);
  EXPECT_EQ(client_->Cancel("large").value().state(), v1::CANCELLED);
}

TEST_F(ServerTest, ManyConcurrentClientsWithASmallQueueLoseNoJob) {
  StartServer(/*queue_capacity=*/4, /*workers=*/2);
  constexpr int kClients = 32;
  std::atomic<int> accepted{0}, refused{0}, done{0}, other{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      SegrelClient client(channel_);
      const std::string id = absl::StrCat("c", c);
      absl::StatusOr<v1::SubmitResponse> response = client.Submit(StudyOptions(id));
      if (!response.ok()) {
        (response.status().code() == absl::StatusCode::kResourceExhausted ? refused : other)++;
        return;
      }
      accepted++;
      absl::StatusOr<v1::JobStatus> status = client.Watch(id, "");
      (status.ok() && status->state() == v1::DONE ? done : other)++;
    });
  }
  for (std::thread& thread : clients) thread.join();
  EXPECT_EQ(other, 0);
  EXPECT_EQ(accepted + refused, kClients);
  EXPECT_EQ(done, accepted);
  EXPECT_GE(accepted, 4);
  const std::string exposition = Scrape(server_->metrics_port());
  EXPECT_EQ(SeriesValue(exposition, "segrel_jobs_received_total"), accepted);
  EXPECT_EQ(SeriesValue(exposition, absl::StrCat("segrel_jobs_succeeded_total{model=\"", kModel, "\"}")), accepted);
  EXPECT_EQ(SeriesValue(exposition, "segrel_jobs_rejected_total{code=\"RESOURCE_EXHAUSTED\"}"),
            refused > 0 ? refused.load() : -1);
  EXPECT_EQ(SeriesValue(exposition, "segrel_queue_length"), 0);
}

TEST_F(ServerTest, MetricsCountJobsBytesStagesAndRelevance) {
  StartServer();
  SubmitOptions options = StudyOptions("metrics");
  ASSERT_EQ(SubmitAndWatch(options, temp_ + "/out").state(), v1::DONE);
  const json report = json::parse(ReadFile(temp_ + "/out/relevance.json"));
  uint64_t bytes = 0;
  for (const client::SequenceInput& input : options.inputs) bytes += fs::file_size(input.path);

  const std::string exposition = Scrape(server_->metrics_port());
  ASSERT_FALSE(exposition.empty());
  const std::string model = absl::StrCat("model=\"", kModel, "\"");
  EXPECT_EQ(SeriesValue(exposition, "segrel_jobs_received_total"), 1);
  EXPECT_EQ(SeriesValue(exposition, absl::StrCat("segrel_jobs_succeeded_total{", model, "}")), 1);
  EXPECT_EQ(SeriesValue(exposition, "segrel_bytes_received_total"), bytes);
  EXPECT_EQ(SeriesValue(exposition, "segrel_queue_length"), 0);
  EXPECT_EQ(SeriesValue(exposition, "segrel_queue_time_seconds_count"), 1);
  EXPECT_EQ(SeriesValue(exposition, "segrel_workers{device=\"cpu\"}"), 1);
  EXPECT_EQ(SeriesValue(exposition, "segrel_active_workers{device=\"cpu\"}"), 0);
  EXPECT_EQ(SeriesValue(exposition, absl::StrCat("segrel_model_loaded{", model, ",version=\"0.0.1\"}")), 1);
  for (const std::string stage : {"read", "load_model", "inference", "transpose", "relevance", "write", "total"}) {
    EXPECT_EQ(SeriesValue(exposition, absl::StrCat("segrel_stage_seconds_count{", model, ",stage=\"", stage, "\"}")), 1)
        << stage;
  }
  for (const std::string& sequence : kSequences) {
    const std::string labels = absl::StrCat("{", model, ",sequence=\"", sequence, "\"}");
    EXPECT_EQ(SeriesValue(exposition, "segrel_sequence_relevance_share_count" + labels), 1);
    EXPECT_NEAR(SeriesValue(exposition, "segrel_sequence_relevance_share_sum" + labels),
                report["sequence_relevance"][sequence].get<double>(), 1e-12);
  }
  for (const json& entry : report["classes"]) {
    const std::string labels = absl::StrCat("{", model, ",class=\"", entry["name"].get<std::string>(), "\"}");
    EXPECT_NEAR(SeriesValue(exposition, "segrel_relevance_bias_share_sum" + labels),
                1.0 - entry["mean_normaliser"].get<double>(), 1e-12);
  }
}

TEST_F(ServerTest, ShutdownWhileBusyHandsBackQueuedJobsAndRefusesNewOnes) {
  StartServer();
  server_->HoldQueue(true);
  ASSERT_TRUE(client_->Submit(StudyOptions("queued")).ok());
  absl::StatusOr<v1::JobStatus> watched;
  std::thread watcher([&] { watched = client_->Watch("queued", ""); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  server_->Shutdown(absl::Now() + absl::Seconds(10));
  watcher.join();
  ASSERT_TRUE(watched.ok()) << watched.status();
  EXPECT_EQ(watched->state(), v1::FAILED);
  EXPECT_EQ(watched->code(), static_cast<int>(grpc::StatusCode::UNAVAILABLE));
  EXPECT_EQ(client_->Submit(StudyOptions("late")).status().code(), absl::StatusCode::kUnavailable);
}

// The input/ folders still in `spool` (each job's uploaded study, until the job ends).
std::vector<std::string> InputFolders(const std::string& spool) {
  std::vector<std::string> folders;
  for (const auto& entry : fs::directory_iterator(spool)) {
    if (fs::exists(entry.path() / "input")) folders.push_back((entry.path() / "input").string());
  }
  return folders;
}

TEST_F(ServerTest, InputsAreDeletedWhenTheJobEndsHoweverItEnds) {
  StartServer();
  const std::string spool = temp_ + "/spool";
  server_->HoldQueue(true);
  SubmitOptions late = StudyOptions("deadline");
  late.deadline_seconds = 0.05;
  ASSERT_TRUE(client_->Submit(late).ok());
  ASSERT_TRUE(client_->Submit(StudyOptions("cancelled")).ok());
  ASSERT_TRUE(client_->Submit(StudyOptions("done")).ok());
  std::vector<v1::SubmitRequest> garbage = StudyMessages("failed");  // valid checksums, bytes no NIfTI reader takes
  for (size_t f = 0; f < kSequences.size(); ++f) {
    std::string bytes(garbage[f + 1].chunk().data().size(), 'x');
    proto::Sha256 sha256;
    sha256.Update(bytes);
    garbage[0].mutable_metadata()->mutable_files(static_cast<int>(f))->set_sha256(sha256.HexDigest());
    garbage[f + 1].mutable_chunk()->set_crc32(proto::Crc32(bytes));
    garbage[f + 1].mutable_chunk()->set_data(bytes);
  }
  ASSERT_TRUE(RawSubmit(garbage).ok());
  EXPECT_EQ(InputFolders(spool).size(), 4u);

  EXPECT_EQ(client_->Cancel("cancelled").value().state(), v1::CANCELLED);
  EXPECT_EQ(InputFolders(spool).size(), 3u) << "a job cancelled while queued keeps its inputs";
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server_->HoldQueue(false);
  EXPECT_EQ(client_->Watch("deadline", "").value().code(), static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED));
  EXPECT_EQ(client_->Watch("done", temp_ + "/done").value().state(), v1::DONE);
  EXPECT_EQ(client_->Watch("failed", "").value().state(), v1::FAILED);
  EXPECT_TRUE(InputFolders(spool).empty());

  // Still queued at shutdown: the job is durable, so it keeps its inputs until the restarted server has run it.
  server_->HoldQueue(true);
  ASSERT_TRUE(client_->Submit(StudyOptions("at-shutdown")).ok());
  EXPECT_EQ(InputFolders(spool).size(), 1u);
  server_->Shutdown(absl::Now() + absl::Seconds(10));
  EXPECT_EQ(InputFolders(spool).size(), 1u);
  StartServer();
  EXPECT_EQ(client_->Watch("at-shutdown", "").value().state(), v1::DONE);
  EXPECT_TRUE(InputFolders(spool).empty());
}

TEST_F(ServerTest, ARestartedServerRunsTheJobsAnEarlierOneLeftAndReusesNoFolder) {
  StartServer();
  ASSERT_EQ(SubmitAndWatch(StudyOptions("done"), temp_ + "/done").state(), v1::DONE);
  server_->HoldQueue(true);
  ASSERT_TRUE(client_->Submit(StudyOptions("left")).ok());
  std::vector<std::string> left = InputFolders(temp_ + "/spool");
  ASSERT_EQ(left.size(), 1u);
  const std::string folder = fs::path(left[0]).parent_path().string();
  client_.reset();
  server_.reset();  // stopped with the job still queued
  StartServer();
  EXPECT_EQ(client_->Watch("left", temp_ + "/left").value().state(), v1::DONE);
  EXPECT_EQ(client_->Watch("done", temp_ + "/done-again").value().state(), v1::DONE) << "results outlive the process";
  EXPECT_EQ(ReadFile(temp_ + "/done-again/relevance.json"), ReadFile(temp_ + "/done/relevance.json"));
  ASSERT_TRUE(client_->Submit(StudyOptions("new")).ok());
  ASSERT_TRUE(client_->Watch("new", "").ok());
  std::set<std::string> folders;
  for (const auto& entry : fs::directory_iterator(temp_ + "/spool")) folders.insert(entry.path().string());
  EXPECT_EQ(folders.size(), 3u) << "one folder per job";
  EXPECT_TRUE(folders.count(folder));
  EXPECT_TRUE(client_->Delete("left").ok());
  EXPECT_FALSE(fs::exists(folder));
  EXPECT_EQ(client_->Watch("left", "").status().code(), absl::StatusCode::kNotFound);
  const std::string left_job = absl::StrCat("job=left client=- model=", kModel, "@0.0.1");
  EXPECT_EQ(AuditLines("interrupted"), std::vector<std::string>{"segrel-audit event=interrupted " + left_job});
  EXPECT_EQ(AuditLines("recovered").size(), 2u);  // "done" and "left"
  EXPECT_EQ(AuditLines("deleted"), std::vector<std::string>{"segrel-audit event=deleted " + left_job + " by=-"});
}

TEST_F(ServerTest, StalledUploadsAreEndedAndTheUploadLimitRefusesMore) {
  streams_.max_uploads = 2;
  streams_.upload_idle_timeout = absl::Milliseconds(500);
  StartServer();
  // Two uploads send their metadata and stall: they hold both upload slots.
  std::vector<v1::SubmitRequest> study = StudyMessages("stalled-0");
  auto stub = v1::Segrel::NewStub(channel_);
  grpc::ClientContext contexts[2];
  v1::SubmitResponse responses[2];
  std::unique_ptr<grpc::ClientWriter<v1::SubmitRequest>> writers[2];
  for (int i = 0; i < 2; ++i) {
    v1::SubmitRequest metadata = study[0];
    metadata.mutable_metadata()->set_job_id(absl::StrCat("stalled-", i));
    writers[i] = stub->Submit(&contexts[i], &responses[i]);
    ASSERT_TRUE(writers[i]->Write(metadata));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const grpc::Status third = RawSubmit(StudyMessages("third"));
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << third.error_message();
  EXPECT_NE(third.error_message().find("uploads at once"), std::string::npos);
  for (int i = 0; i < 2; ++i) {
    const grpc::Status ended = writers[i]->Finish();  // the server ends them after the idle timeout
    EXPECT_EQ(ended.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << ended.error_message();
  }
  size_t entries = 0;
  for (const auto& entry : fs::directory_iterator(temp_ + "/spool")) entries += entry.is_directory();
  EXPECT_EQ(entries, 0u) << "a stalled upload's partial files are removed";
  EXPECT_TRUE(RawSubmit(StudyMessages("after")).ok()) << "the slots are free again";
}

TEST_F(ServerTest, BelowTheStorageWatermarkUploadsAreRefusedBeforeTheyAreReceived) {
  StartServer();
  server_.reset();
  ServerOptions options;
  options.address = "127.0.0.1:0";
  options.metrics_address = "";
  options.model_repository = FixturePath("");
  options.spool_dir = temp_ + "/spool";
  options.min_free_bytes = uint64_t{1} << 62;  // more than any disk has
  absl::StatusOr<std::unique_ptr<SegrelServer>> server = SegrelServer::Create(options);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  channel_ = SegrelClient::Connect(absl::StrCat("127.0.0.1:", server_->port()));
  grpc::ClientContext context;
  v1::SubmitResponse response;
  auto writer = v1::Segrel::NewStub(channel_)->Submit(&context, &response);
  ASSERT_TRUE(writer->Write(StudyMessages("full")[0]));
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_NE(status.error_message().find("storage is nearly full"), std::string::npos) << status.error_message();
  bool hinted = false;
  for (const auto& [key, value] : context.GetServerTrailingMetadata()) hinted |= key == "segrel-retry-after-ms";
  EXPECT_TRUE(hinted) << "space frees up with time: the client may retry";
  EXPECT_TRUE(fs::is_empty(temp_ + "/spool"));
}

TEST_F(ServerTest, AHugeClientStringGetsItsOwnErrorNotAnOversizedMessage) {
  StartServer();
  std::vector<v1::SubmitRequest> study = StudyMessages("huge-model");
  study[0].mutable_metadata()->set_model(std::string(1 << 20, 'm'));
  const grpc::Status status = RawSubmit(study);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message().substr(0, 200);
  EXPECT_LT(status.error_message().size(), 1024u);
}

// The in-process pipeline's outputs for `request` (no pictures, as the server jobs below ask), in `out`.
std::vector<std::string> WriteInProcess(const pipeline::AnalysisRequest& request, const std::string& out) {
  absl::StatusOr<pipeline::AnalysisResult> expected = pipeline::RunAnalysis(request);
  EXPECT_TRUE(expected.ok()) << expected.status();
  if (!expected.ok()) return {};
  absl::StatusOr<std::vector<std::string>> written = pipeline::WriteAnalysis(*expected, out, false, false);
  EXPECT_TRUE(written.ok()) << written.status();
  return written.ok() ? *written : std::vector<std::string>();
}

// relevance.json without its timings.
json RelevanceWithoutSeconds(const std::string& dir) {
  json report = json::parse(ReadFile(dir + "/relevance.json"));
  report.erase("seconds");
  return report;
}

TEST_F(ServerTest, ReferenceAndRegionMasksGiveWhatThePipelineGives) {
  StartServer();
  SubmitOptions options = StudyOptions("masks");
  options.reference = FixturePath("study/region_fg.nii.gz");
  options.regions = {{1, FixturePath("study/region_fg.nii.gz")}, {0, FixturePath("study/region_bg.nii.gz")}};
  options.analysis.set_no_pictures(true);
  const std::string out = temp_ + "/server";
  const v1::JobStatus status = SubmitAndWatch(options, out);
  ASSERT_EQ(status.state(), v1::DONE) << status.message();

  pipeline::AnalysisRequest request;
  request.model = FixturePath("bundle");
  request.study_dir = FixturePath("study");
  request.reference = options.reference;
  request.regions = {{1, FixturePath("study/region_fg.nii.gz")}, {0, FixturePath("study/region_bg.nii.gz")}};
  const std::vector<std::string> written = WriteInProcess(request, temp_ + "/in_process");
  EXPECT_EQ(std::vector<std::string>(status.results().begin(), status.results().end()), written);
  EXPECT_EQ(ReadFile(out + "/segmentation.nii.gz"), ReadFile(temp_ + "/in_process/segmentation.nii.gz"));
  const json served = RelevanceWithoutSeconds(out);
  EXPECT_EQ(served, RelevanceWithoutSeconds(temp_ + "/in_process"));
  // The masks were used: regions from the files, and the reference's Dice and error regions.
  EXPECT_EQ(served["classes"][0]["region"], "mask");
  EXPECT_EQ(served["classes"][1]["region"], "mask");
  EXPECT_TRUE(served["reference"].contains("dice"));
}

TEST_F(ServerTest, DicomStudyGivesWhatThePipelineGivesAndADicomSeg) {
  temp_ = TestTempDir();
  const std::string bundle = segrel::testing::BundleWithRules(temp_ + "/repository/unet");
  segrel::testing::WriteStudy(temp_ + "/dicom", /*t1_on_other_grid=*/true);
  StartServer(4, 1, {}, temp_ + "/repository");
  absl::StatusOr<v1::ListModelsResponse> models = client_->ListModels();
  ASSERT_TRUE(models.ok() && models->models_size() == 1);
  EXPECT_TRUE(models->models(0).reads_dicom());

  SubmitOptions options;
  options.job_id = "dicom";
  options.model = kModel;
  options.dicom_dir = temp_ + "/dicom";
  options.analysis.set_no_pictures(true);
  const std::string out = temp_ + "/server";
  const v1::JobStatus status = SubmitAndWatch(options, out);
  ASSERT_EQ(status.state(), v1::DONE) << status.message();

  pipeline::AnalysisRequest request;
  request.model = bundle;
  request.study_dir = temp_ + "/dicom";
  const std::vector<std::string> written = WriteInProcess(request, temp_ + "/in_process");
  ASSERT_NE(std::find(written.begin(), written.end(), "segmentation.dcm"), written.end());
  EXPECT_EQ(std::vector<std::string>(status.results().begin(), status.results().end()), written);
  EXPECT_EQ(ReadFile(out + "/segmentation.nii.gz"), ReadFile(temp_ + "/in_process/segmentation.nii.gz"));
  EXPECT_EQ(RelevanceWithoutSeconds(out), RelevanceWithoutSeconds(temp_ + "/in_process"));
  // The DICOM SEG (new UIDs each time, so not byte-equal) checked frame by frame by pydicom and nibabel.
  const std::string command = absl::StrCat(
      "/usr/bin/python3 ", segrel::testing::ShellQuote(SEGREL_SOURCE_DIR "/tests/tools/check_analyze_seg.py"), " ",
      segrel::testing::ShellQuote(out + "/segmentation.dcm"), " ",
      segrel::testing::ShellQuote(out + "/segmentation.nii.gz"), " ", segrel::testing::ShellQuote(temp_ + "/dicom/3"));
  const int result = std::system(command.c_str());
  if (!(WIFEXITED(result) && WEXITSTATUS(result) == 77)) {
    EXPECT_TRUE(WIFEXITED(result) && WEXITSTATUS(result) == 0) << command;
  }
  // The uploaded DICOM files (patient data) are gone from the server once the job ended.
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(temp_ + "/spool")) {
    EXPECT_NE(entry.path().filename(), "input") << entry.path();
    if (entry.path().extension() == ".dcm") {
      EXPECT_EQ(entry.path().filename(), "segmentation.dcm") << entry.path();
    }
    files += entry.is_regular_file() && entry.path().filename() != kJobRecordName;
  }
  EXPECT_EQ(files, static_cast<int>(written.size()));  // the results, kept for Watch
}

TEST(ModelRepository, ServesSeveralVersionsAndNamesTheUnknown) {
  const std::string repository = TestTempDir();
  const json bundle = segrel::testing::ReadJson("bundle/segrel.json");
  for (const std::string version : {"0.9", "0.10", "0.2"}) {
    json copy = bundle;
    copy["version"] = version;
    copy["model"] = FixturePath("unet_bn.pt");
    fs::create_directories(repository + "/unet/" + version);
    std::ofstream(repository + "/unet/" + version + "/segrel.json") << copy.dump();
  }
  fs::create_directories(repository + "/broken");
  std::ofstream(repository + "/broken/segrel.json") << "{";
  absl::StatusOr<std::unique_ptr<ModelRepository>> models = ModelRepository::Create(repository);
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_EQ((*models)->models().size(), 3u);
  ASSERT_EQ((*models)->failed().size(), 1u);
  EXPECT_EQ((*models)->Find(kModel).value().version, "0.10");
  EXPECT_EQ((*models)->Find(absl::StrCat(kModel, "@0.2")).value().version, "0.2");
  const absl::Status unknown = (*models)->Find(absl::StrCat(kModel, "@7")).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(unknown.message().find("unet-bn-test@0.10"), std::string::npos) << unknown.message();
  EXPECT_EQ(ModelRepository::Create(repository + "/none").status().code(), absl::StatusCode::kNotFound);
}

TEST(RunJob, ACancelledJobStopsBeforeItsFirstStage) {
  JobSpec spec;
  spec.directory = TestTempDir();
  spec.deadline = absl::InfiniteFuture();
  Job job(spec);
  job.RequestCancel();
  EXPECT_EQ(RunJob(job).status().code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(fs::exists(spec.OutputDirectory()));
}

// Stops the job with `reason` when it reaches `stage`.
class StopAtStage final : public JobObserver {
 public:
  StopAtStage(Job* job, std::string stage, absl::Status reason)
      : job_(job), stage_(std::move(stage)), reason_(std::move(reason)) {}
  void OnJobChanged() override {
    if (job_->Get().stage == stage_) job_->RequestCancel(reason_);
  }

 private:
  Job* const job_;
  const std::string stage_;
  const absl::Status reason_;
};

// A job on the fixture study with 8x4x4 windows (9 windows), so that its stages take several steps.
JobSpec WindowedJob(const std::string& dir) {
  json bundle = segrel::testing::ReadJson("bundle/segrel.json");
  bundle["model"] = FixturePath("unet_bn.pt");
  bundle["patch_size"] = {8, 4, 4};
  fs::create_directories(dir + "/bundle");
  std::ofstream(dir + "/bundle/segrel.json") << bundle.dump();
  JobSpec spec;
  spec.directory = dir + "/job";
  spec.bundle_path = dir + "/bundle/segrel.json";
  for (const std::string& name : kSequences) {
    spec.sequences.push_back(name);
    spec.input_files.push_back(FixturePath("study/" + name + ".nii.gz"));
  }
  spec.ablation = true;
  spec.pictures = false;
  return spec;
}

TEST(RunJob, ReportsEveryStageWithProgressThatNeverGoesBack) {
  Job job(WindowedJob(TestTempDir()));
  struct Recorder final : JobObserver {
    explicit Recorder(Job* watched) : job(watched) {}
    void OnJobChanged() override { seen.push_back(job->Get()); }
    Job* job;
    std::vector<Job::Snapshot> seen;
  };
  auto recorder = std::make_shared<Recorder>(&job);
  job.AddObserver(recorder);
  ASSERT_TRUE(RunJob(job).ok());
  std::vector<std::string> stages;
  double progress = 0;
  for (const Job::Snapshot& snapshot : recorder->seen) {
    EXPECT_GE(snapshot.progress, progress) << snapshot.stage;
    EXPECT_LE(snapshot.progress, 1.0);
    progress = snapshot.progress;
    if (stages.empty() || stages.back() != snapshot.stage) stages.push_back(snapshot.stage);
  }
  EXPECT_EQ(stages,
            (std::vector<std::string>{"read", "import", "inference", "transpose", "relevance", "ablation", "write"}));
  EXPECT_GT(recorder->seen.size(), 9u * 3);  // every window of inference, transpose and relevance
}

TEST(RunJob, CancellationStopsARunningJobAtTheNextWindow) {
  for (const std::string stage : {"inference", "transpose", "relevance", "ablation"}) {
    for (const absl::Status& reason :
         {absl::CancelledError("cancelled by request"), absl::UnavailableError("the server stopped")}) {
      Job job(WindowedJob(TestTempDir()));
      auto stopper = std::make_shared<StopAtStage>(&job, stage, reason);
      job.AddObserver(stopper);
      EXPECT_EQ(RunJob(job).status(), reason) << stage;
      EXPECT_EQ(job.Get().stage, stage) << "the job went on to another stage";
      EXPECT_FALSE(fs::exists(job.spec().OutputDirectory() + "/relevance.json")) << stage;
    }
  }
}

TEST(WorkerDevices, CpuWorkersThenOnePerCudaDevice) {
  const int cuda = at::hasCUDA() ? static_cast<int>(torch::cuda::device_count()) : 0;
  const absl::StatusOr<std::vector<at::Device>> all = WorkerDevices(2, -1);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), static_cast<size_t>(2 + cuda));
  EXPECT_TRUE((*all)[0].is_cpu() && (*all)[1].is_cpu());
  for (int d = 0; d < cuda; ++d) EXPECT_EQ((*all)[2 + d], at::Device(at::kCUDA, static_cast<at::DeviceIndex>(d)));
  EXPECT_EQ(WorkerDevices(1, 0).value(), std::vector<at::Device>{at::Device(at::kCPU)});
  const absl::Status too_many = WorkerDevices(1, cuda + 1).status();
  EXPECT_EQ(too_many.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_many.message().find(absl::StrCat("sees ", cuda, " CUDA devices")), std::string::npos) << too_many;
  EXPECT_EQ(WorkerDevices(0, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WorkerDevices(-1, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RunJob, AJobPastItsDeadlineDoesNotRun) {
  JobSpec spec;
  spec.directory = TestTempDir();
  spec.deadline = absl::Now() - absl::Seconds(1);
  Job job(spec);
  EXPECT_EQ(RunJob(job).status().code(), absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace segrel::server
