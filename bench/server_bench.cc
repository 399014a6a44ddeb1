// Server benchmark (issue 5): loopback upload throughput of segrel-server for a study of 4 sequences of
// 182×218×182 float32 voxels (uncompressed NIfTI-sized files of random bytes, 4 × 28.9 MB; the queue is held, so
// only the upload is measured), and the end-to-end time of a small job through the server (submit, run, fetch)
// divided by the same analysis in process (RunAnalysis + WriteAnalysis), and jobs per second with 16 concurrent
// clients against 1 and 2 workers. Issue 10: the cost of the job journal, TLS and mutual TLS with a token (jobs per
// second, 16 clients), and the start-up recovery of a spool with 1,000 finished and 16 queued jobs.
//
//   server_bench [--repeats 5] [--e2e-model-repository tests/fixtures/data] [--e2e-study tests/fixtures/data/study]
//                [--e2e-model NAME] [--parts upload,e2e,concurrency,security,recovery] [--work out/server_bench]
// Full size, end to end only: --e2e-model-repository models --e2e-model ms-flair4
//                             --e2e-study data/ms-lesjak/patient19 --parts e2e --repeats 1
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
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
#include "server/job_record.h"
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

// ---------------------------------------------------------------------------------------------------------------
// The cost of durability and transport security (issue 10): jobs per second with `clients` clients submitting and
// watching at once, for each configuration, in interleaved rounds (so drift of the machine hits every one alike).

struct Configuration {
  const char* name;
  bool durable;
  bool tls;
  bool mutual_tls_and_token;
};

void RunOrDie(const std::string& command) {
  if (std::system((command + " > /dev/null 2>&1").c_str()) != 0) Die("failed: " + command);
}

std::string ReadWhole(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl in `folder`.
void MakeCertificates(const std::string& folder) {
  fs::create_directories(folder);
  const std::string f = folder + "/";
  RunOrDie("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-CA -keyout " + f + "ca.key -out " + f +
           "ca.pem");
  for (const std::string name : {"server", "client"}) {
    RunOrDie("openssl req -newkey rsa:2048 -nodes -subj /CN=" + name + " -keyout " + f + name + ".key -out " + f +
             name + ".csr");
    std::ofstream(f + name + ".ext") << (name == "server" ? "subjectAltName=IP:127.0.0.1\n"
                                                          : "extendedKeyUsage=clientAuth\n");
    RunOrDie("openssl x509 -req -in " + f + name + ".csr -CA " + f + "ca.pem -CAkey " + f +
             "ca.key -CAcreateserial -days 2 -extfile " + f + name + ".ext -out " + f + name + ".pem");
  }
  std::ofstream(f + "tokens") << "bench all bench-token-0123456789abcdef\n";
}

// Each client submits and watches this many jobs one after the other (one connection, one TLS handshake).
constexpr int kJobsPerClient = 8;

double JobsPerSecond(const Configuration& configuration, const std::string& work, const std::string& repository,
                     const std::string& study, int clients, int round) {
  const std::string certificates = work + "/certificates/";
  segrel::server::ServerOptions options;
  options.workers = 1;
  options.queue_capacity = 64;
  options.address = "127.0.0.1:0";
  options.metrics_address = "";
  options.audit_log = "";
  options.min_free_bytes = 0;
  options.model_repository = repository;
  options.spool_dir = absl::StrCat(work, "/spool_", configuration.name, "_", round);
  options.durable = configuration.durable;
  segrel::client::ChannelSecurity security;
  std::string token;
  if (configuration.tls) {
    options.tls.cert_file = certificates + "server.pem";
    options.tls.key_file = certificates + "server.key";
    security.ca_pem = ReadWhole(certificates + "ca.pem");
  }
  if (configuration.mutual_tls_and_token) {
    options.tls.client_ca_file = certificates + "ca.pem";
    options.tokens_file = certificates + "tokens";
    security.cert_pem = ReadWhole(certificates + "client.pem");
    security.key_pem = ReadWhole(certificates + "client.key");
    token = "bench-token-0123456789abcdef";
  }
  absl::StatusOr<std::unique_ptr<segrel::server::SegrelServer>> server = segrel::server::SegrelServer::Create(options);
  if (!server.ok()) Die(std::string(server.status().message()));
  const std::string address = absl::StrCat("127.0.0.1:", (*server)->port());
  const segrel::model::Bundle& bundle = (*server)->models().models().front();
  std::atomic<int> failed{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {  // each client its own channel: its own connection and TLS handshake
      segrel::client::SegrelClient client(segrel::client::SegrelClient::Connect(address, security), token);
      segrel::client::SubmitOptions submit;
      submit.model = bundle.name;
      submit.analysis.set_no_pictures(true);
      for (const segrel::model::SequenceSpec& sequence : bundle.sequences) {
        submit.inputs.push_back({sequence.name, absl::StrCat(study, "/", sequence.name, ".nii.gz")});
      }
      for (int j = 0; j < kJobsPerClient; ++j) {
        submit.job_id = absl::StrCat("c", c, "-", j);
        absl::StatusOr<segrel::v1::SubmitResponse> submitted = client.Submit(submit);
        absl::StatusOr<segrel::v1::JobStatus> status =
            submitted.ok() ? client.Watch(submit.job_id, absl::StrCat(options.spool_dir, "-out/", submit.job_id))
                           : absl::StatusOr<segrel::v1::JobStatus>(submitted.status());
        if (!status.ok() || status->state() != segrel::v1::DONE) {
          std::fprintf(stderr, "server_bench: %s: %s\n", configuration.name,
                       status.ok() ? status->message().c_str() : std::string(status.status().message()).c_str());
          ++failed;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const double seconds = SecondsSince(start);
  if (failed > 0) Die(absl::StrCat(failed.load(), " jobs failed"));
  server->reset();
  fs::remove_all(options.spool_dir);
  fs::remove_all(options.spool_dir + "-out");
  return clients * kJobsPerClient / seconds;
}

void SecurityCost(const std::string& work, const std::string& repository, const std::string& study, int clients,
                  int repeats) {
  MakeCertificates(work + "/certificates");
  const std::vector<Configuration> configurations = {{"plaintext, no journal", false, false, false},
                                                     {"plaintext, journal", true, false, false},
                                                     {"TLS, journal", true, true, false},
                                                     {"mTLS + token, journal", true, true, true}};
  std::vector<std::vector<double>> rates(configurations.size());
  for (int round = 0; round < repeats; ++round) {
    for (size_t c = 0; c < configurations.size(); ++c) {
      rates[c].push_back(JobsPerSecond(configurations[c], work, repository, study, clients, round));
    }
  }
  std::printf(
      "security and durability: %d clients x %d jobs, 1 worker, fixture study, medians of %d interleaved rounds\n",
      clients, kJobsPerClient, repeats);
  const double journal_off = Median(rates[0]);
  const double journal_on = Median(rates[1]);
  for (size_t c = 0; c < configurations.size(); ++c) {
    const double rate = Median(rates[c]);
    std::printf(
        "  %-24s %6.2f jobs/s  (%+.1f %% vs plaintext with journal, %+.1f %% vs no journal; rounds %.1f to %.1f)\n",
        configurations[c].name, rate, 100 * (rate / journal_on - 1), 100 * (rate / journal_off - 1),
        *std::min_element(rates[c].begin(), rates[c].end()), *std::max_element(rates[c].begin(), rates[c].end()));
  }
}

// Start-up recovery: a spool with `ended` finished jobs (record, results) and `queued` queued ones (record, inputs),
// recovered by JobManager::Create; the median and the slowest of `repeats` start-ups.
void Recovery(const std::string& work, const std::string& study, int ended, int queued, int repeats) {
  const std::string spool = work + "/spool_recovery";
  fs::create_directories(spool);
  const absl::Time now = absl::Now();
  for (int j = 0; j < ended + queued; ++j) {
    segrel::server::JobSpec spec;
    spec.id = absl::StrCat(j < ended ? "ended-" : "queued-", j);
    spec.owner = "bench";
    spec.model_name = "unet-bn-test";
    spec.model_version = "0.0.1";
    spec.directory = absl::StrCat(spool, "/", spec.id, ".bench.", j);
    spec.received = now - absl::Minutes(10) + absl::Milliseconds(j);
    spec.fingerprint = absl::StrCat("bench\n", j);
    fs::create_directories(spec.directory);
    std::optional<segrel::server::JobEnding> ending;
    if (j < ended) {
      fs::create_directories(spec.OutputDirectory());
      std::ofstream(spec.OutputDirectory() + "/relevance.json") << "{}";
      std::ofstream(spec.OutputDirectory() + "/segmentation.nii.gz") << "segmentation";
      ending = segrel::server::JobEnding{absl::OkStatus(), {"relevance.json", "segmentation.nii.gz"}, now};
    } else {
      fs::create_directories(spec.InputDirectory());
      for (const char* name : {"T1", "T2", "FLAIR"}) {
        const std::string input = absl::StrCat(spec.InputDirectory(), "/", name, ".nii.gz");
        fs::copy_file(absl::StrCat(study, "/", name, ".nii.gz"), input);
        spec.sequences.push_back(name);
        spec.input_files.push_back(input);
      }
    }
    if (absl::Status written = segrel::server::WriteJobRecord({spec, ending}); !written.ok()) {
      Die(std::string(written.message()));
    }
  }
  // A node that restarts starts with a cold page cache: as root, the cache is dropped before every start-up.
  bool cold = true;
  std::vector<double> seconds;
  for (int r = 0; r < repeats; ++r) {
    sync();
    cold = cold && std::ofstream("/proc/sys/vm/drop_caches") << "3\n" << std::flush;
    segrel::server::Metrics metrics;
    segrel::server::JobManagerOptions options;
    options.spool_dir = spool;
    options.queue_capacity = queued;
    options.max_jobs_kept = ended + queued;
    const auto start = Clock::now();
    absl::StatusOr<std::unique_ptr<segrel::server::JobManager>> manager =
        segrel::server::JobManager::Create(options, &metrics, nullptr);
    seconds.push_back(SecondsSince(start));
    if (!manager.ok()) Die(std::string(manager.status().message()));
    const segrel::server::SpoolRecovery& found = (*manager)->recovery();
    if (found.ended != static_cast<size_t>(ended) || found.queued != static_cast<size_t>(queued)) {
      Die(absl::StrCat("recovered ", found.ended, " ended and ", found.queued, " queued jobs"));
    }
  }
  std::printf(
      "recovery: %d finished + %d queued jobs in the spool: start-up %.3f s (median of %d, slowest %.3f s; %s)\n",
      ended, queued, Median(seconds), repeats, *std::max_element(seconds.begin(), seconds.end()),
      cold ? "page cache dropped before each" : "page cache warm: not root");
}

}  // namespace

int main(int argc, char** argv) {
  segrel::ReuseFreedMemory();  // as segrel-server and segrel analyze do
  int repeats = 5;
  std::string repository = "tests/fixtures/data", study = "tests/fixtures/data/study", work = "out/server_bench";
  std::string fixture_model = "tests/fixtures/data/unet_bn.pt", model;
  std::string parts = "upload,e2e,concurrency,security,recovery";
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
  if (part("security")) SecurityCost(work, repository, study, 16, repeats);
  if (part("recovery")) Recovery(work, study, 1000, 16, repeats);
  fs::remove_all(work);
  return 0;
}
