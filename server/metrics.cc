#include "server/metrics.h"

#include <civetweb.h>

#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/common/gpu_memory.h"

namespace segrel::server {
namespace {

const std::vector<double> kSecondsBuckets = ExponentialBuckets(0.001, 2.5, 16);  // 1 ms to ~15 min
const std::vector<double> kShareBuckets = LinearBuckets(0.05, 0.05, 20);         // 0.05 .. 1.0

int HandleMetrics(mg_connection* connection, void* data) {
  const std::string body = static_cast<const MetricsRegistry*>(data)->Render();
  mg_printf(connection,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            "Content-Length: %zu\r\nConnection: close\r\n\r\n",
            body.size());
  mg_write(connection, body.data(), body.size());
  return 200;
}

}  // namespace

Metrics::Metrics()
    : jobs_received(registry_.Counter("segrel_jobs_received_total", "Uploads accepted into the job queue.")),
      jobs_rejected(registry_.Counter("segrel_jobs_rejected_total", "Submissions refused, by status code.", {"code"})),
      jobs_succeeded(registry_.Counter("segrel_jobs_succeeded_total", "Jobs done.", {"model"})),
      jobs_failed(registry_.Counter("segrel_jobs_failed_total",
                                    "Jobs failed or cancelled after acceptance, by status code.", {"model", "reason"})),
      bytes_received(registry_.Counter("segrel_bytes_received_total", "Study bytes received.")),
      queue_length(registry_.Gauge("segrel_queue_length", "Jobs waiting in the queue.")),
      queue_time(registry_.Histogram("segrel_queue_time_seconds", "Time from acceptance to a worker taking the job.",
                                     {}, kSecondsBuckets)),
      stage_seconds(
          registry_.Histogram("segrel_stage_seconds", "Time per pipeline stage.", {"model", "stage"}, kSecondsBuckets)),
      workers(registry_.Gauge("segrel_workers", "Workers in the pool, per device.", {"device"})),
      active_workers(registry_.Gauge("segrel_active_workers", "Workers running a job, per device.", {"device"})),
      model_loaded(registry_.Gauge("segrel_model_loaded", "1 for a model served, 0 for one that failed to load.",
                                   {"model", "version"})),
      gpu_memory_used(registry_.Gauge("segrel_gpu_memory_used_bytes",
                                      "GPU memory used by all processes, as the NVIDIA driver reports it.",
                                      {"gpu", "name"})),
      gpu_memory_total(registry_.Gauge("segrel_gpu_memory_total_bytes", "GPU memory, as the NVIDIA driver reports it.",
                                       {"gpu", "name"})),
      bias_share(registry_.Histogram("segrel_relevance_bias_share",
                                     "Share of a class region's relevance lost to biases (1 - mean normaliser).",
                                     {"model", "class"}, kShareBuckets)),
      sequence_share(registry_.Histogram("segrel_sequence_relevance_share",
                                         "Share of the combined relevance map per sequence, per job.",
                                         {"model", "sequence"}, kShareBuckets)),
      dicom_associations(registry_.Counter("segrel_dicom_associations_total",
                                           "DICOM associations accepted, or rejected by reason.", {"result"})),
      dicom_instances(registry_.Counter("segrel_dicom_instances_received_total",
                                        "DICOM instances stored (duplicates not counted).")),
      dicom_bytes(registry_.Counter("segrel_dicom_bytes_received_total", "Bytes of the DICOM instances stored.")),
      dicom_store_failures(registry_.Counter("segrel_dicom_store_failures_total",
                                             "C-STORE requests answered with a failure, by reason.", {"reason"})),
      dicom_store_seconds(registry_.Histogram(
          "segrel_dicom_store_seconds",
          "Receive latency of a stored DICOM instance: from its C-STORE request to the success response.", {},
          kSecondsBuckets)),
      dicom_studies(registry_.Counter("segrel_dicom_studies_total",
                                      "DICOM studies complete, by outcome (job, unrouted, waiting: offered again).",
                                      {"outcome"})),
      dicom_results(registry_.Counter("segrel_dicom_results_total",
                                      "DICOM results sent back to the peer, by outcome (sent, retried, failed).",
                                      {"outcome"})),
      cluster_jobs_waiting(registry_.Gauge("segrel_cluster_jobs_waiting",
                                           "Jobs queued in the cluster, not yet taken by a worker (the same on every "
                                           "replica).")),
      cluster_jobs_running(
          registry_.Gauge("segrel_cluster_jobs_running", "Jobs taken by a worker of the cluster, not yet completed.")),
      cluster_oldest_job_age(registry_.Gauge("segrel_cluster_oldest_job_age_seconds",
                                             "Since the oldest job of the cluster not yet completed was queued.")),
      cluster_jobs_redelivered(registry_.Gauge("segrel_cluster_jobs_redelivered",
                                               "Jobs of the cluster running again after the replica that took them "
                                               "stopped.")),
      cluster_jobs_taken(registry_.Counter("segrel_cluster_jobs_taken_total",
                                           "Jobs this replica's workers took from the cluster's queue.")) {
  // Series without labels exist from the start, so a scrape sees 0 rather than nothing.
  jobs_received.Add({}, 0);
  bytes_received.Add({}, 0);
  dicom_instances.Add({}, 0);
  dicom_bytes.Add({}, 0);
  queue_length.Set({}, 0);
  if (ReadGpuMemory().ok()) {  // with an NVIDIA driver: read the GPUs' memory at every scrape
    registry_.AddCollector([this] {
      const absl::StatusOr<std::vector<GpuMemory>> gpus = ReadGpuMemory();
      if (!gpus.ok()) return;
      for (const GpuMemory& gpu : *gpus) {
        const std::vector<std::string> labels = {std::to_string(gpu.index), gpu.name};
        gpu_memory_used.Set(labels, static_cast<double>(gpu.used_bytes));
        gpu_memory_total.Set(labels, static_cast<double>(gpu.total_bytes));
      }
    });
  }
}

void Metrics::RecordSummary(const std::string& model, const report::AnalysisSummary& summary) {
  for (const auto& [stage, seconds] : summary.seconds) {
    stage_seconds.Observe({model, std::string(analysis::StageName(stage))}, seconds);
  }
  stage_seconds.Observe({model, "total"}, analysis::TotalSeconds(summary.seconds));
  for (size_t s = 0; s < summary.sequences.size(); ++s) {
    sequence_share.Observe({model, summary.sequences[s]}, summary.relevance.shares[s]);
  }
  for (const report::ClassSummary& entry : summary.classes) {
    bias_share.Observe({model, entry.name.empty() ? absl::StrCat(entry.index) : entry.name},
                       1.0 - entry.mean_normaliser);
  }
}

absl::StatusOr<std::unique_ptr<MetricsExposer>> MetricsExposer::Create(const std::string& address,
                                                                       const MetricsRegistry* registry) {
  static std::once_flag initialised;
  std::call_once(initialised, [] { mg_init_library(0); });
  // Half-open connections hold a thread each until the request timeout: enough threads, and a short timeout, keep
  // /metrics answering for Prometheus when a few clients stall.
  const char* options[] = {"listening_ports",    address.c_str(), "num_threads", "8",
                           "request_timeout_ms", "5000",          nullptr};
  mg_callbacks callbacks{};
  mg_context* context = mg_start(&callbacks, nullptr, options);
  if (context == nullptr) return absl::UnavailableError(absl::StrCat("/metrics: cannot listen on ", address));
  mg_set_request_handler(context, "/metrics", HandleMetrics, const_cast<MetricsRegistry*>(registry));
  mg_server_port ports[4];
  const int count = mg_get_server_ports(context, 4, ports);
  if (count < 1) {
    mg_stop(context);
    return absl::UnavailableError(absl::StrCat("/metrics: no port open on ", address));
  }
  return std::unique_ptr<MetricsExposer>(new MetricsExposer(context, ports[0].port));
}

MetricsExposer::~MetricsExposer() { mg_stop(static_cast<mg_context*>(context_)); }

std::string CodeName(absl::StatusCode code) {
  // absl::StatusCodeToString gives "INVALID_ARGUMENT" for kInvalidArgument.
  return absl::AsciiStrToUpper(absl::StatusCodeToString(code));
}

}  // namespace segrel::server
