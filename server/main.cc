// segrel-server: serves segrel's analysis over gRPC (proto/segrel/v1/segrel.proto). Wiring only: flags → options →
// server (models, queue, workers, metrics, service) → wait for SIGTERM/SIGINT → graceful stop with a deadline.
#include <csignal>
#include <iostream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "core/common/allocator.h"
#include "server/server.h"

ABSL_FLAG(std::string, address, "0.0.0.0:50051", "gRPC address, HOST:PORT");
ABSL_FLAG(std::string, metrics_address, "9464", "Prometheus /metrics address, [HOST:]PORT; empty: none");
ABSL_FLAG(std::string, model_repository, "models", "folder of model bundles (NAME/segrel.json, NAME/VERSION/...)");
ABSL_FLAG(std::string, spool_dir, "/tmp/segrel-server", "folder for uploads and results");
ABSL_FLAG(int, workers, 1, "CPU workers: jobs run at once on the CPU (one model replica each)");
ABSL_FLAG(int, cuda_workers, -1, "workers on CUDA devices, one per device; -1: one on every device LibTorch sees");
ABSL_FLAG(int, threads, 0, "LibTorch threads, shared by the workers; 0: all cores");
ABSL_FLAG(int, queue_capacity, 16, "jobs waiting; beyond it Submit answers RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, max_study_mb, 4096, "largest study accepted, all sequences together, MiB");
ABSL_FLAG(int, max_files, 10000, "most files per job (a DICOM study has one per slice)");
ABSL_FLAG(absl::Duration, job_deadline, absl::Hours(1), "default time a job may wait in the queue");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Minutes(2), "on SIGTERM, time running jobs get to finish");

namespace {

volatile std::sig_atomic_t stop_requested = 0;
void RequestStop(int) { stop_requested = 1; }

}  // namespace

int main(int argc, char** argv) {
  segrel::ReuseFreedMemory();  // first: before gRPC's and the workers' threads exist
  absl::SetProgramUsageMessage("segrel-server --model_repository DIR [--address HOST:PORT] [--workers N] ...");
  absl::ParseCommandLine(argc, argv);

  segrel::server::ServerOptions options;
  options.address = absl::GetFlag(FLAGS_address);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  options.model_repository = absl::GetFlag(FLAGS_model_repository);
  options.spool_dir = absl::GetFlag(FLAGS_spool_dir);
  options.workers = absl::GetFlag(FLAGS_workers);
  options.cuda_workers = absl::GetFlag(FLAGS_cuda_workers);
  options.queue_capacity = static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_queue_capacity)));
  options.limits.max_study_bytes = static_cast<uint64_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_max_study_mb))) << 20;
  options.limits.max_files = static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_max_files)));
  options.limits.default_deadline = absl::GetFlag(FLAGS_job_deadline);
  options.threads = absl::GetFlag(FLAGS_threads);

  absl::StatusOr<std::unique_ptr<segrel::server::SegrelServer>> server = segrel::server::SegrelServer::Create(options);
  if (!server.ok()) {
    std::cerr << "segrel-server: error: " << server.status().message() << "\n";
    return 1;
  }
  for (const segrel::server::FailedModel& failed : (*server)->models().failed()) {
    std::cerr << "segrel-server: warning: not serving " << failed.path << ": " << failed.status.message() << "\n";
  }
  std::cerr << "segrel-server: " << (*server)->models().models().size() << " models, " << options.workers
            << " CPU workers, " << (*server)->cuda_workers() << " CUDA workers, listening on port " << (*server)->port();
  if ((*server)->metrics_port() > 0) std::cerr << ", metrics on port " << (*server)->metrics_port();
  std::cerr << std::endl;

  std::signal(SIGTERM, RequestStop);
  std::signal(SIGINT, RequestStop);
  while (!stop_requested) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::cerr << "segrel-server: stopping (running jobs get " << absl::FormatDuration(absl::GetFlag(FLAGS_shutdown_grace))
            << ")" << std::endl;
  (*server)->Shutdown(absl::Now() + absl::GetFlag(FLAGS_shutdown_grace));
  std::cerr << "segrel-server: stopped" << std::endl;
  return 0;
}
