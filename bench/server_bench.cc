// Server benchmark (issue 5): loopback upload throughput of segrel-server for a study of 4 sequences of
// 182×218×182 float32 voxels (uncompressed NIfTI-sized files of random bytes, 4 × 28.9 MB; the queue is held, so
// only the upload is measured), and the end-to-end time of a small job through the server (submit, run, fetch)
// divided by the same analysis in process (RunAnalysis + WriteAnalysis), and jobs per second with 16 concurrent
// clients against 1 and 2 workers.
//
//   server_bench [--repeats 5] [--e2e-model-repository tests/fixtures/data] [--e2e-study tests/fixtures/data/study]
//                [--e2e-model NAME] [--parts upload,e2e,concurrency] [--work out/server_bench]
// Full size, end to end only: --e2e-model-repository models --e2e-model ms-flair4
//                             --e2e-study data/ms-lesjak/patient19 --parts e2e --repeats 1
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "core/common/allocator.h"
#include "core/pipeline/pipeline.h"
#include "server/server.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "server_bench: %s\n", message.c_str());
  std::exit(1);
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::unique_ptr<segrel::server::SegrelServer> StartServer(const std::string& repository, const std::string& spool,
                                                          int workers = 1) {
  segrel::server::ServerOptions options;
  options.workers = workers;
  options.queue_capacity = 64;
  options.address = "127.0.0.1:0";
  options.metrics_address = "";
  options.model_repository = repository;
  options.spool_dir = spool;
  absl::StatusOr<std::unique_ptr<segrel::server::SegrelServer>> server = segrel::server::SegrelServer::Create(options);
  if (!server.ok()) Die(std::string(server.status().message()));
  return *std::move(server);
}

// A repository with one 4-sequence bundle (never run: the upload benchmark holds the queue).
std::string UploadRepository(const std::string& work, const std::string& fixture_model) {
  const std::string folder = work + "/repository/upload4";
  fs::create_directories(folder);
  // The fixture bundle with four sequences.
  nlohmann::json bundle =
      nlohmann::json::parse(std::ifstream(fs::path(fixture_model).parent_path() / "bundle/segrel.json"));
  bundle["name"] = "upload4";
  bundle["model"] = fs::absolute(fixture_model).string();
  bundle["sequences"] = nlohmann::json::array();
  for (const char* name : {"T1", "T1c", "T2", "FLAIR"}) {
    bundle["sequences"].push_back({{"name", name}, {"normalisation", "none"}});
  }
  std::ofstream(folder + "/segrel.json") << bundle.dump(2);
  return work + "/repository";
}

void UploadThroughput(const std::string& work, const std::string& fixture_model, int repeats) {
  const std::string repository = UploadRepository(work, fixture_model);
  segrel::client::SubmitOptions options;
  options.model = "upload4";
  options.chunk_bytes = size_t{4} << 20;
  const size_t bytes_per_sequence = size_t{182} * 218 * 182 * 4 + 352;
  std::mt19937_64 random(1);
  for (const char* name : {"T1", "T1c", "T2", "FLAIR"}) {
    const std::string path = absl::StrCat(work, "/", name, ".nii");
    std::vector<uint64_t> words(bytes_per_sequence / 8 + 1);
    for (uint64_t& word : words) word = random();
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(words.data()), bytes_per_sequence);
    options.inputs.push_back({name, path});
  }
  std::unique_ptr<segrel::server::SegrelServer> server = StartServer(repository, work + "/spool");
  for (const segrel::server::FailedModel& failed : server->models().failed()) Die(std::string(failed.status.message()));
  server->HoldQueue(true);
  segrel::client::SegrelClient client(
      segrel::client::SegrelClient::Connect(absl::StrCat("127.0.0.1:", server->port())));
  std::vector<double> seconds;
  for (int r = 0; r < repeats; ++r) {
    options.job_id = absl::StrCat("upload-", r);
    const auto start = Clock::now();
    absl::StatusOr<segrel::v1::SubmitResponse> response = client.Submit(options);
    seconds.push_back(SecondsSince(start));
    if (!response.ok()) Die(std::string(response.status().message()));
    client.Cancel(options.job_id).IgnoreError();
  }
  const double megabytes = 4.0 * bytes_per_sequence / 1e6;
  std::printf(
      "upload: 4 x 182x218x182 float32 (%.1f MB) in %.3f s (median of %d, client SHA-256 included): "
      "%.0f MB/s\n",
      megabytes, Median(seconds), repeats, megabytes / Median(seconds));
}

void EndToEnd(const std::string& work, const std::string& repository, const std::string& model,
              const std::string& study, int repeats) {
  std::unique_ptr<segrel::server::SegrelServer> server = StartServer(repository, work + "/spool_e2e");
  segrel::client::SegrelClient client(
      segrel::client::SegrelClient::Connect(absl::StrCat("127.0.0.1:", server->port())));
  absl::StatusOr<segrel::model::Bundle> found =
      model.empty() ? server->models().models().front() : server->models().Find(model);
  if (!found.ok()) Die(std::string(found.status().message()));
  const std::string bundle = found->name;
  segrel::client::SubmitOptions options;
  options.model = bundle;
  segrel::pipeline::AnalysisRequest request;
  request.model = found->path;
  for (const segrel::model::SequenceSpec& sequence : found->sequences) {
    std::string path = absl::StrCat(study, "/", sequence.name, ".nii.gz");
    if (!fs::exists(path)) path = absl::StrCat(study, "/", sequence.name, ".nii");
    options.inputs.push_back({sequence.name, path});
    request.inputs.push_back({sequence.name, path});
  }
  std::vector<double> served, local;
  for (int r = 0; r < repeats; ++r) {
    options.job_id = absl::StrCat("e2e-", r);
    auto start = Clock::now();
    if (!client.Submit(options).ok()) Die("submit failed");
    absl::StatusOr<segrel::v1::JobStatus> status = client.Watch(options.job_id, absl::StrCat(work, "/e2e/", r));
    if (!status.ok() || status->state() != segrel::v1::DONE) Die("job failed");
    served.push_back(SecondsSince(start));
    start = Clock::now();
    absl::StatusOr<segrel::pipeline::AnalysisResult> result = segrel::pipeline::RunAnalysis(request);
    if (!result.ok()) Die(std::string(result.status().message()));
    if (!segrel::pipeline::WriteAnalysis(*result, absl::StrCat(work, "/local/", r), false).ok()) Die("write failed");
    local.push_back(SecondsSince(start));
  }
  std::printf("end to end (%s, %s): server %.3f s, in process %.3f s, ratio %.3f (medians of %d)\n", bundle.c_str(),
              study.c_str(), Median(served), Median(local), Median(served) / Median(local), repeats);
}

// Jobs per second with `clients` clients submitting and watching at once, for 1 and 2 workers.
void Concurrency(const std::string& work, const std::string& repository, const std::string& study, int clients) {
  for (int workers : {1, 2}) {
    std::unique_ptr<segrel::server::SegrelServer> server =
        StartServer(repository, absl::StrCat(work, "/spool_concurrency_", workers), workers);
    const std::string address = absl::StrCat("127.0.0.1:", server->port());
    const segrel::model::Bundle& bundle = server->models().models().front();
    std::atomic<int> failed{0};
    const auto start = Clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        segrel::client::SegrelClient client(segrel::client::SegrelClient::Connect(address));
        segrel::client::SubmitOptions options;
        options.model = bundle.name;
        options.job_id = absl::StrCat("c", c);
        for (const segrel::model::SequenceSpec& sequence : bundle.sequences) {
          options.inputs.push_back({sequence.name, absl::StrCat(study, "/", sequence.name, ".nii.gz")});
        }
        absl::StatusOr<segrel::v1::JobStatus> status =
            client.Submit(options).ok() ? client.Watch(options.job_id, "") : absl::InternalError("submit");
        if (!status.ok() || status->state() != segrel::v1::DONE) ++failed;
      });
    }
    for (std::thread& thread : threads) thread.join();
    const double seconds = SecondsSince(start);
    if (failed > 0) Die(absl::StrCat(failed.load(), " concurrent jobs failed"));
    std::printf("concurrency: %d clients, %d workers: %.2f s, %.1f jobs/s\n", clients, workers, seconds,
                clients / seconds);
  }
}

}  // namespace

int main(int argc, char** argv) {
  segrel::ReuseFreedMemory();  // as segrel-server and segrel analyze do
  int repeats = 5;
  std::string repository = "tests/fixtures/data", study = "tests/fixtures/data/study", work = "out/server_bench";
  std::string fixture_model = "tests/fixtures/data/unet_bn.pt", model, parts = "upload,e2e,concurrency";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string name = argv[i], value = argv[i + 1];
    if (name == "--repeats" && absl::SimpleAtoi(value, &repeats) && repeats > 0) continue;
    if (name == "--e2e-model-repository") {
      repository = value;
    } else if (name == "--e2e-study") {
      study = value;
    } else if (name == "--e2e-model") {
      model = value;
    } else if (name == "--parts") {
      parts = value;
    } else if (name == "--work") {
      work = value;
    } else {
      Die(absl::StrCat("unknown option ", name));
    }
  }
  fs::remove_all(work);
  fs::create_directories(work);
  const auto part = [&parts](const char* name) { return absl::StrContains(parts, name); };
  if (part("upload")) UploadThroughput(work, fixture_model, repeats);
  if (part("e2e")) EndToEnd(work, repository, model, study, repeats);
  if (part("concurrency")) Concurrency(work, repository, study, 16);
  fs::remove_all(work);
  return 0;
}
