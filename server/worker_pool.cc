#include "server/worker_pool.h"

#include <torch/cuda.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/pipeline/pipeline.h"

namespace segrel::server {
namespace {

using analysis::Stage;

// Where each stage of a job starts and ends in its overall progress (0 to 1), roughly as the stages take time
// with sliding windows on the CPU (bench/README.md); a job without ablation jumps from relevance to write.
struct StageSpan {
  Stage stage;
  double start, end;
};
constexpr StageSpan kStageSpans[] = {{Stage::kRead, 0.00, 0.02},      {Stage::kImport, 0.02, 0.04},
                                     {Stage::kInference, 0.04, 0.12}, {Stage::kTranspose, 0.12, 0.52},
                                     {Stage::kRelevance, 0.52, 0.92}, {Stage::kAblation, 0.92, 0.98},
                                     {Stage::kWrite, 0.98, 1.00}};

double OverallProgress(Stage stage, int64_t done, int64_t total) {
  for (const StageSpan& span : kStageSpans) {
    if (stage == span.stage) {
      const double within = total > 0 ? std::clamp(static_cast<double>(done) / total, 0.0, 1.0) : 0.0;
      return span.start + within * (span.end - span.start);
    }
  }
  return 0;
}

// The analysis of `spec`'s study, reporting each stage and window to `job` and stopping when it is cancelled.
pipeline::AnalysisRequest RequestFor(Job& job, model::ModelReplicas* replicas, at::Device device) {
  const JobSpec& spec = job.spec();
  pipeline::AnalysisRequest request;
  request.model = spec.bundle_path;
  for (size_t s = 0; s < spec.sequences.size(); ++s) request.inputs.push_back({spec.sequences[s], spec.input_files[s]});
  request.study_dir = spec.dicom_dir;
  request.reference = spec.reference_file;
  request.regions = spec.region_files;
  if (!spec.composite.empty()) request.composite = spec.composite;
  request.seed = spec.seed;
  request.per_lesion = spec.lesions;
  request.ablation = spec.ablation;
  request.replicas = replicas;
  request.device = device;
  request.progress = [&job](Stage stage, int64_t done, int64_t total) {
    if (absl::Status stop = job.stop_reason(); !stop.ok()) return stop;
    job.SetStage(std::string(analysis::StageName(stage)), OverallProgress(stage, done, total));
    return absl::OkStatus();
  };
  return request;
}

// How a failed analysis is shown to the job's clients: the job's spool folder is the server's business (its paths
// name the upload counter and the server's layout), so paths are given relative to the job's inputs; and a file the
// pipeline cannot find there is a study it cannot read (the client's mistake), not an unknown model or job, which
// NOT_FOUND means in this API.
absl::Status ForClients(const absl::Status& status, const JobSpec& spec) {
  if (status.ok()) return status;
  const std::string message = absl::StrReplaceAll(
      status.message(), {{spec.InputDirectory() + "/", ""}, {spec.directory + "/", ""}, {spec.directory, "the job"}});
  const absl::StatusCode code =
      status.code() == absl::StatusCode::kNotFound ? absl::StatusCode::kInvalidArgument : status.code();
  return absl::Status(code, message);
}

}  // namespace

absl::StatusOr<JobResults> RunJob(Job& job, model::ModelReplicas* replicas, at::Device device) {
  const JobSpec& spec = job.spec();
  if (absl::Now() > spec.deadline) {
    return absl::DeadlineExceededError("the job waited in the queue past its deadline");
  }
  if (absl::Status stop = job.stop_reason(); !stop.ok()) return stop;
  absl::StatusOr<pipeline::AnalysisResult> result = pipeline::RunAnalysis(RequestFor(job, replicas, device));
  if (!result.ok()) return ForClients(result.status(), spec);
  if (absl::Status stop = job.stop_reason(); !stop.ok()) return stop;
  job.SetStage(std::string(analysis::StageName(Stage::kWrite)), OverallProgress(Stage::kWrite, 0, 1));
  JobResults results;
  absl::StatusOr<std::vector<std::string>> files =
      pipeline::WriteAnalysis(*result, spec.OutputDirectory(), spec.maps, spec.pictures, &results.summary);
  if (!files.ok()) return ForClients(files.status(), spec);
  results.files = *std::move(files);
  return results;
}

absl::StatusOr<std::vector<at::Device>> WorkerDevices(int cpu_workers, int cuda_workers) {
  if (cpu_workers < 0) return absl::InvalidArgumentError("the number of CPU workers must not be negative");
  std::vector<at::Device> devices(static_cast<size_t>(cpu_workers), at::Device(at::kCPU));
  const int visible = at::hasCUDA() ? static_cast<int>(torch::cuda::device_count()) : 0;
  if (cuda_workers > visible) {
    return absl::InvalidArgumentError(
        absl::StrCat(cuda_workers, " CUDA workers asked for, but LibTorch sees ", visible, " CUDA devices"));
  }
  const int cuda = cuda_workers < 0 ? visible : cuda_workers;
  for (int d = 0; d < cuda; ++d) devices.emplace_back(at::kCUDA, static_cast<at::DeviceIndex>(d));
  if (devices.empty()) return absl::InvalidArgumentError("no workers: give at least one CPU or CUDA worker");
  return devices;
}

WorkerPool::WorkerPool(JobManager* jobs, Metrics* metrics, std::vector<at::Device> devices)
    : jobs_(jobs), metrics_(metrics) {
  for (const at::Device& device : devices) {
    metrics_->workers.Add({device.str()}, 1);
    metrics_->active_workers.Set({device.str()}, 0);
  }
  for (const at::Device& device : devices) threads_.emplace_back([this, device] { Work(device); });
}

WorkerPool::~WorkerPool() {
  if (threads_.empty()) return;
  jobs_->Shutdown();
  Stop(absl::Now());
}

void WorkerPool::Work(at::Device device) {
  model::ModelReplicas replicas;  // this worker's own model replicas, loaded on first use
  while (std::shared_ptr<Job> job = jobs_->NextJob()) Run(job, &replicas, device);
  absl::MutexLock lock(&mutex_);
  ++exited_;
}

void WorkerPool::Run(const std::shared_ptr<Job>& job, model::ModelReplicas* replicas, at::Device device) {
  metrics_->active_workers.Add({device.str()}, 1);
  {
    absl::MutexLock lock(&mutex_);
    running_.push_back(job);
  }
  absl::StatusOr<JobResults> written = RunJob(*job, replicas, device);
  {
    absl::MutexLock lock(&mutex_);
    running_.erase(std::find(running_.begin(), running_.end(), job));
  }
  metrics_->active_workers.Add({device.str()}, -1);
  if (written.ok()) {
    jobs_->Finish(*job, absl::OkStatus(), *std::move(written));
  } else {
    jobs_->Finish(*job, written.status());
  }
}

void WorkerPool::Stop(absl::Time deadline) {
  if (threads_.empty()) return;
  {
    absl::MutexLock lock(&mutex_);
    if (!mutex_.AwaitWithDeadline(absl::Condition(this, &WorkerPool::AllExited), deadline)) {
      for (const std::shared_ptr<Job>& job : running_) {
        job->RequestCancel(jobs_->Interrupted());
      }
    }
  }
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

}  // namespace segrel::server
