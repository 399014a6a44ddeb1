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
#include <cstring>
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
#include "tests/server/server_test_fixture.h"
#include "tests/test_util.h"
#include "tests/tools/dicom_study_writer.h"

namespace segrel::server::server_testing {
namespace {

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
  EXPECT_EQ(model.format(), "torchscript");
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

TEST_F(ServerTest, ListJobsShowsEveryJobNewestFirstUpToTheLimit) {
  StartServer();
  server_->HoldQueue(true);
  ASSERT_TRUE(client_->Submit(StudyOptions("older")).ok());
  ASSERT_TRUE(client_->Submit(StudyOptions("newer")).ok());
  absl::StatusOr<v1::ListJobsResponse> jobs = client_->ListJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->jobs_size(), 2);
  EXPECT_EQ(jobs->jobs(0).status().job_id(), "newer");
  EXPECT_EQ(jobs->jobs(1).status().job_id(), "older");
  EXPECT_EQ(jobs->jobs(1).status().state(), v1::QUEUED);
  EXPECT_EQ(jobs->jobs(1).status().queue_position(), 0u);
  EXPECT_EQ(jobs->jobs(0).model(), absl::StrCat(kModel, "@0.0.1"));
  EXPECT_EQ(jobs->jobs(0).owner(), "") << "access is open";
  EXPECT_LE(jobs->jobs(1).received_unix_micros(), jobs->jobs(0).received_unix_micros());
  EXPECT_EQ(client_->ListJobs(/*limit=*/1).value().jobs_size(), 1);
  server_->HoldQueue(false);
  EXPECT_EQ(client_->Watch("older", "").value().state(), v1::DONE);
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
    if (entry.path().extension() == ".dcm") {  // only segrel's own DICOM results
      EXPECT_THAT(entry.path().filename().string(), ::testing::AnyOf("segmentation.dcm", "relevance_report.dcm"))
          << entry.path();
    }
    files += entry.is_regular_file() && entry.path().filename() != kJobRecordName;
  }
  EXPECT_EQ(files, static_cast<int>(written.size()));  // the results, kept for Watch
}

// Numbers equal to `tolerance`, everything else equal.
void ExpectJsonNear(const json& a, const json& b, double tolerance, const std::string& where = "") {
  if (a.is_number() && b.is_number()) {
    EXPECT_NEAR(a.get<double>(), b.get<double>(), tolerance) << where;
  } else if (a.is_object() && b.is_object()) {
    ASSERT_EQ(a.size(), b.size()) << where;
    for (const auto& [key, value] : a.items()) {
      ASSERT_TRUE(b.contains(key)) << where << "/" << key;
      ExpectJsonNear(value, b[key], tolerance, where + "/" + key);
    }
  } else if (a.is_array() && b.is_array()) {
    ASSERT_EQ(a.size(), b.size()) << where;
    for (size_t i = 0; i < a.size(); ++i) ExpectJsonNear(a[i], b[i], tolerance, absl::StrCat(where, "/", i));
  } else {
    EXPECT_EQ(a, b) << where;
  }
}

// The same network as ONNX in a bundle: listed as such, and its analysis is the TorchScript bundle's (the same
// segmentation, shares and every other number of relevance.json to 1e-6).
TEST_F(ServerTest, AnOnnxBundleIsServedAsItsTorchScriptTwin) {
  temp_ = TestTempDir();
  json bundle = segrel::testing::ReadJson("bundle/segrel.json");
  bundle["model"] = FixturePath("onnx/unet_bn.onnx");
  fs::create_directories(temp_ + "/repository/unet");
  std::ofstream(temp_ + "/repository/unet/segrel.json") << bundle.dump();
  StartServer(4, 1, {}, temp_ + "/repository");
  absl::StatusOr<v1::ListModelsResponse> models = client_->ListModels();
  ASSERT_TRUE(models.ok() && models->models_size() == 1);
  EXPECT_EQ(models->models(0).format(), "onnx");

  const std::string out = temp_ + "/server";
  const v1::JobStatus status = SubmitAndWatch(StudyOptions("onnx"), out);
  ASSERT_EQ(status.state(), v1::DONE) << status.message();
  pipeline::AnalysisRequest request;
  request.model = FixturePath("bundle");
  for (const std::string& name : kSequences) request.inputs.push_back({name, FixturePath("study/" + name + ".nii.gz")});
  const std::vector<std::string> written = WriteInProcess(request, temp_ + "/in_process");
  EXPECT_EQ(std::vector<std::string>(status.results().begin(), status.results().end()), written);
  EXPECT_EQ(ReadFile(out + "/segmentation.nii.gz"), ReadFile(temp_ + "/in_process/segmentation.nii.gz"));
  ExpectJsonNear(RelevanceWithoutSeconds(out), RelevanceWithoutSeconds(temp_ + "/in_process"), 1e-6);
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
}  // namespace segrel::server::server_testing
