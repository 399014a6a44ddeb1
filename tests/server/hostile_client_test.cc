// segrel-server against hostile and careless clients (label "security"): malformed and hostile metadata, studies
// beyond the limits, a NIfTI that declares a trillion voxels, races of one job id, Watch storms, stalled and
// trickling uploads, a nearly full spool, huge client strings. Each gets its exact code, leaves nothing on disk, and
// the server goes on serving.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "proto/checksums.h"
#include "server/server.h"
#include "tests/server/server_test_fixture.h"
#include "tests/test_util.h"

namespace segrel::server::server_testing {
namespace {

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

// A NIfTI-1 header that declares 10,000³ float32 voxels (4 TB) and holds none of them.
std::string HugeNiftiHeader() {
  std::string header(352, '\0');
  const int32_t header_size = 348;
  const int16_t dim[8] = {3, 10000, 10000, 10000, 1, 1, 1, 1};
  const int16_t datatype = 16;  // float32
  const int16_t bitpix = 32;
  const float pixdim[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  const float vox_offset = 352;
  std::memcpy(&header[0], &header_size, 4);
  std::memcpy(&header[40], dim, sizeof(dim));
  std::memcpy(&header[70], &datatype, 2);
  std::memcpy(&header[72], &bitpix, 2);
  std::memcpy(&header[76], pixdim, sizeof(pixdim));
  std::memcpy(&header[108], &vox_offset, 4);
  std::memcpy(&header[344], "n+1", 4);
  return header;
}

TEST_F(ServerTest, ANiftiDeclaringATrillionVoxelsFailsItsJobAndTheServerGoesOn) {
  StartServer();
  std::vector<v1::SubmitRequest> messages = StudyMessages("huge");
  const std::string header = HugeNiftiHeader();
  v1::UploadFile& t1 = *messages[0].mutable_metadata()->mutable_files(0);
  t1.set_size_bytes(header.size());
  proto::Sha256 sha256;
  sha256.Update(header);
  t1.set_sha256(sha256.HexDigest());
  messages[1].mutable_chunk()->set_data(header);
  messages[1].mutable_chunk()->set_crc32(proto::Crc32(header));
  ASSERT_TRUE(RawSubmit(messages).ok()) << "the upload itself is valid";
  const v1::JobStatus ended = client_->Watch("huge", "").value();
  EXPECT_EQ(ended.state(), v1::FAILED);
  EXPECT_TRUE(ended.code() == static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT) ||
              ended.code() == static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED))
      << ended.code() << ": " << ended.message();
  EXPECT_NE(ended.message().find("T1"), std::string::npos) << "names the sequence: " << ended.message();
  EXPECT_EQ(SubmitAndWatch(StudyOptions("after"), temp_ + "/after").state(), v1::DONE);
}

TEST_F(ServerTest, TwentyConcurrentSubmissionsOfOneIdMakeOneJob) {
  StartServer(/*queue_capacity=*/4);
  server_->HoldQueue(true);
  // The same study twenty times at once: one job, nineteen answers that it was submitted already.
  std::atomic<int> accepted{0};
  std::atomic<int> already{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 20; ++c) {
    clients.emplace_back([&] {
      absl::StatusOr<v1::SubmitResponse> response = client_->Submit(StudyOptions("same"));
      if (response.ok()) ++(response->already_submitted() ? already : accepted);
    });
  }
  for (std::thread& client : clients) client.join();
  EXPECT_EQ(accepted.load(), 1);
  EXPECT_EQ(already.load(), 19);
  // Twenty different studies under one id at once (other seeds): one is the job, the others ALREADY_EXISTS.
  std::atomic<int> conflicts{0};
  std::atomic<int> other{0};
  accepted = 0;
  clients.clear();
  for (int c = 0; c < 20; ++c) {
    clients.emplace_back([&, c] {
      SubmitOptions options = StudyOptions("contested");
      options.analysis.set_seed(static_cast<uint64_t>(c) + 1);
      absl::StatusOr<v1::SubmitResponse> response = client_->Submit(options);
      if (response.ok() && !response->already_submitted()) {
        ++accepted;
      } else if (absl::IsAlreadyExists(response.status())) {
        ++conflicts;
      } else {
        ++other;
      }
    });
  }
  for (std::thread& client : clients) client.join();
  EXPECT_EQ(accepted.load(), 1);
  EXPECT_EQ(conflicts.load(), 19);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(std::distance(fs::directory_iterator(temp_ + "/spool"), fs::directory_iterator()), 2)
      << "one folder per job: the losing uploads are gone";
  server_->HoldQueue(false);
  EXPECT_EQ(client_->Watch("same", "").value().state(), v1::DONE);
  EXPECT_EQ(client_->Watch("contested", "").value().state(), v1::DONE);
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

}  // namespace
}  // namespace segrel::server::server_testing
