#include "server/worker_pool.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "core/analysis/pipeline.h"
#include "server/grpc_status.h"

namespace segrel::server {
namespace {

absl::Status CancelledIfRequested(const Job& job) {
  return job.cancel_requested() ? absl::CancelledError("cancelled by request") : absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> RunJob(Job& job, analysis::ModelReplicas* replicas) {
  const JobSpec& spec = job.spec();
  if (absl::Now() > spec.deadline) {
    return absl::DeadlineExceededError("the job waited in the queue past its deadline");
  }
  if (absl::Status status = CancelledIfRequested(job); !status.ok()) return status;
  analysis::AnalysisRequest request;
  request.model = spec.bundle_path;
  for (size_t s = 0; s < spec.sequences.size(); ++s) request.inputs.push_back({spec.sequences[s], spec.input_files[s]});
  if (!spec.composite.empty()) request.composite = spec.composite;
  request.seed = spec.seed;
  request.per_lesion = spec.lesions;
  request.ablation = spec.ablation;
  request.replicas = replicas;
  job.SetStage("analyze", 0.0);
  absl::StatusOr<analysis::AnalysisResult> result = analysis::RunAnalysis(request);
  if (!result.ok()) return result.status();
  if (absl::Status status = CancelledIfRequested(job); !status.ok()) return status;
  job.SetStage("write", 0.9);
  return analysis::WriteAnalysis(*result, spec.OutputDirectory(), spec.maps, spec.pictures);
}

WorkerPool::WorkerPool(JobQueue* queue, Metrics* metrics, int workers) : queue_(queue), metrics_(metrics) {
  metrics_->workers.Set({}, workers);
  metrics_->active_workers.Set({}, 0);
  for (int w = 0; w < workers; ++w) threads_.emplace_back([this] { Work(); });
}

WorkerPool::~WorkerPool() {
  if (threads_.empty()) return;
  for (const std::shared_ptr<Job>& job : queue_->Close()) {
    job->End(absl::UnavailableError("the server stopped before the job ran; submit it again"));
  }
  Stop(absl::Now());
}

void WorkerPool::Work() {
  analysis::ModelReplicas replicas;  // this worker's own model replicas, loaded on first use
  while (std::shared_ptr<Job> job = queue_->Pop()) Run(job, &replicas);
  absl::MutexLock lock(&mutex_);
  ++exited_;
}

void WorkerPool::Run(const std::shared_ptr<Job>& job, analysis::ModelReplicas* replicas) {
  const JobSpec& spec = job->spec();
  metrics_->queue_time.Observe({}, absl::ToDoubleSeconds(absl::Now() - spec.received));
  metrics_->active_workers.Add({}, 1);
  {
    absl::MutexLock lock(&mutex_);
    running_.push_back(job);
  }
  absl::StatusOr<std::vector<std::string>> written = RunJob(*job, replicas);
  const std::string model = spec.model_name;
  if (written.ok()) {
    std::ifstream file(spec.OutputDirectory() + "/relevance.json");
    std::stringstream text;
    text << file.rdbuf();
    metrics_->RecordReport(model, text.str()).IgnoreError();  // the job is done either way
    metrics_->jobs_succeeded.Add({model});
  } else {
    metrics_->jobs_failed.Add({model, CodeName(written.status().code())});
  }
  {
    absl::MutexLock lock(&mutex_);
    running_.erase(std::find(running_.begin(), running_.end(), job));
  }
  metrics_->active_workers.Add({}, -1);
  // Last: a client that sees the job end sees the metrics that count it.
  if (written.ok()) {
    job->End(absl::OkStatus(), *std::move(written));
  } else {
    job->End(written.status());
  }
}

void WorkerPool::Stop(absl::Time deadline) {
  if (threads_.empty()) return;
  {
    absl::MutexLock lock(&mutex_);
    if (!mutex_.AwaitWithDeadline(absl::Condition(this, &WorkerPool::AllExited), deadline)) {
      for (const std::shared_ptr<Job>& job : running_) job->RequestCancel();
    }
  }
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

}  // namespace segrel::server
