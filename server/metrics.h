// segrel-server's metrics (Triton-like names and meanings) and the HTTP endpoint Prometheus scrapes (/metrics on its
// own port).
//
//   segrel_jobs_received_total                     uploads accepted into the queue
//   segrel_jobs_rejected_total{code}               submissions refused (bad input, full queue, ...)
//   segrel_jobs_succeeded_total{model}             jobs done
//   segrel_jobs_failed_total{model,reason}         jobs failed or cancelled; reason: the status code name
//   segrel_bytes_received_total                    study bytes received (accepted or not)
//   segrel_queue_length                            jobs waiting
//   segrel_queue_time_seconds                      time from acceptance to a worker taking the job (histogram)
//   segrel_stage_seconds{model,stage}              time per pipeline stage (read, load_model, normalise, import,
//                                                  inference, transpose, relevance, write, total) (histogram)
//   segrel_workers / segrel_active_workers{device} workers in the pool / running a job now, per device (cpu,
//                                                  cuda:0, ...)
//   segrel_model_loaded{model,version}             1 for every bundle served, 0 for bundles that failed to load
//   segrel_gpu_memory_used_bytes{gpu,name} / segrel_gpu_memory_total_bytes{gpu,name}  per NVIDIA GPU as the driver
//                                                  reports it when scraped (as nvidia-smi; absent without a driver)
//   segrel_relevance_bias_share{model,class}       per job, the share of relevance lost to biases in the class's
//                                                  region, 1 - mean normaliser (histogram)
//   segrel_sequence_relevance_share{model,sequence}  per job, the sequence's share of the combined map (histogram)
// The last two make drift visible: a missing or mis-registered sequence, a protocol change. The DICOM node:
//   segrel_dicom_associations_total{result}        accepted, unknown_caller, unknown_called_ae
//   segrel_dicom_instances_received_total          instances stored (duplicates not counted)
//   segrel_dicom_bytes_received_total              their bytes
//   segrel_dicom_store_failures_total{reason}      C-STORE failures: out_of_resources, cannot_understand, failure
//   segrel_dicom_store_seconds                     receive latency: C-STORE request to response (data set read,
//                                                  written, synced, committed), stored instances
//   segrel_dicom_studies_total{outcome}            complete studies: job, unrouted, waiting (offered again)
//   segrel_dicom_results_total{outcome}            results sent back to the peer: sent, retried, failed
// A replica of a cluster (--queue; server/cluster_jobs.h) also exports the cluster's queue as the stream has it, the
// same value on every replica (Prometheus: take max or any, not sum):
//   segrel_cluster_jobs_waiting                    jobs queued in the cluster, not yet taken by a worker
//   segrel_cluster_jobs_running                    jobs taken by a worker, not yet completed
//   segrel_cluster_oldest_job_age_seconds          since the oldest job not yet completed was queued
//   segrel_cluster_jobs_redelivered                jobs running again after the replica that took them stopped
//   segrel_cluster_jobs_taken_total                jobs this replica's workers took from the cluster's queue
#ifndef SEGREL_SERVER_METRICS_H_
#define SEGREL_SERVER_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/report/summary.h"
#include "server/metrics_registry.h"

namespace segrel::server {

// Thread-safe.
class Metrics {
 private:
  MetricsRegistry registry_;  // first: the public references below point into it

 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  MetricsRegistry& registry() { return registry_; }

  MetricFamily& jobs_received;
  MetricFamily& jobs_rejected;
  MetricFamily& jobs_succeeded;
  MetricFamily& jobs_failed;
  MetricFamily& bytes_received;
  MetricFamily& queue_length;
  MetricFamily& queue_time;
  MetricFamily& stage_seconds;
  MetricFamily& workers;
  MetricFamily& active_workers;
  MetricFamily& model_loaded;
  MetricFamily& gpu_memory_used;
  MetricFamily& gpu_memory_total;
  MetricFamily& bias_share;
  MetricFamily& sequence_share;
  MetricFamily& dicom_associations;
  MetricFamily& dicom_instances;
  MetricFamily& dicom_bytes;
  MetricFamily& dicom_store_failures;
  MetricFamily& dicom_store_seconds;
  MetricFamily& dicom_studies;
  MetricFamily& dicom_results;
  MetricFamily& cluster_jobs_waiting;
  MetricFamily& cluster_jobs_running;
  MetricFamily& cluster_oldest_job_age;
  MetricFamily& cluster_jobs_redelivered;
  MetricFamily& cluster_jobs_taken;

  // Records a finished job's stage times and explanation telemetry from its summary (as written for the client).
  void RecordSummary(const std::string& model, const report::AnalysisSummary& summary);
};

// The canonical name of a status code ("INVALID_ARGUMENT", as gRPC spells it), for metrics labels.
std::string CodeName(absl::StatusCode code);

// Serves `registry` at http://ADDRESS/metrics. Not copyable; stops serving when destroyed.
class MetricsExposer {
 public:
  // `address`: "HOST:PORT" or "PORT" (port 0: any free port). Errors: Unavailable when it cannot listen.
  static absl::StatusOr<std::unique_ptr<MetricsExposer>> Create(const std::string& address,
                                                                const MetricsRegistry* registry);
  ~MetricsExposer();
  MetricsExposer(const MetricsExposer&) = delete;
  MetricsExposer& operator=(const MetricsExposer&) = delete;

  int port() const { return port_; }

 private:
  MetricsExposer(void* context, int port) : context_(context), port_(port) {}
  void* context_;  // civetweb's mg_context
  int port_;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_METRICS_H_
