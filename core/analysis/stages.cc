#include "core/analysis/stages.h"

namespace segrel::analysis {

absl::string_view StageName(Stage stage) {
  switch (stage) {
    case Stage::kRead:
      return "read";
    case Stage::kLoadModel:
      return "load_model";
    case Stage::kNormalise:
      return "normalise";
    case Stage::kImport:
      return "import";
    case Stage::kInference:
      return "inference";
    case Stage::kTranspose:
      return "transpose";
    case Stage::kRelevance:
      return "relevance";
    case Stage::kAblation:
      return "ablation";
    case Stage::kWrite:
      return "write";
  }
  return "unknown";
}

bool IsReported(Stage stage) { return stage != Stage::kLoadModel && stage != Stage::kNormalise; }

absl::Status StageTracker::Start(Stage stage, int64_t total) {
  Stop();
  current_ = stage;
  total_ = total;
  started_ = std::chrono::steady_clock::now();
  return IsReported(stage) ? Progress(0) : absl::OkStatus();
}

absl::Status StageTracker::Progress(int64_t done) { return Progress(done, total_); }

absl::Status StageTracker::Progress(int64_t done, int64_t total) {
  if (!progress_ || !current_.has_value() || !IsReported(*current_)) return absl::OkStatus();
  return progress_(*current_, done, total);
}

std::function<absl::Status(int64_t, int64_t)> StageTracker::ProgressOfCurrentStage() {
  return [this](int64_t done, int64_t total) { return Progress(done, total); };
}

void StageTracker::Stop() {
  if (!current_.has_value()) return;
  times_[*current_] += std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  current_.reset();
}

double TotalSeconds(const StageTimes& times) {
  double total = 0;
  for (const auto& [stage, seconds] : times) total += seconds;
  return total;
}

}  // namespace segrel::analysis
