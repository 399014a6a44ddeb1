// The stages of an analysis, as one type, and the one tracker that tells the caller how far an analysis has come
// (a server reports a job's stage and cancels a running job through it) and records how long each stage took.
#ifndef SEGREL_CORE_ANALYSIS_STAGES_H_
#define SEGREL_CORE_ANALYSIS_STAGES_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace segrel::analysis {

// In the order an analysis runs them.
enum class Stage {
  kRead,       // the model bundle, the study and any masks
  kLoadModel,  // the TorchScript model (a server worker's replica: only the first time)
  kNormalise,  // the study as the network input
  kImport,     // the network's layer graph for the input's shape, and its explainer
  kInference,  // the explained forward pass (with windows: the windowed prediction)
  kTranspose,  // c = Lambda^T 1 (with windows: each window's explained forward and transpose passes)
  kRelevance,  // the regions and the relevance pass (with windows: each window's forward and relevance passes)
  kAblation,   // predictions with each sequence ablated
  kWrite,      // the outputs
};

// The stage's name in relevance.json, metrics and the server's job status: "read", "load_model", "normalise",
// "import", "inference", "transpose", "relevance", "ablation", "write".
absl::string_view StageName(Stage stage);

// Whether callers are told when the stage starts. Loading the model and normalising are timed apart but reported
// as part of "read"; "write" is reported by whoever writes the outputs (WriteAnalysis takes no callback).
bool IsReported(Stage stage);

// Seconds per stage, for the stages that ran; iterates in run order.
using StageTimes = std::map<Stage, double>;

// Called when a reported stage starts (done = 0) and after each unit of work in it (a sliding window, an ablated
// sequence): `done` of `total` units. The transpose and relevance stages may pass over the windows more than once
// (done restarts at 1 each time). A non-OK return stops the analysis at that point, and the analysis returns that
// status.
using ProgressCallback = std::function<absl::Status(Stage stage, int64_t done, int64_t total)>;

// Tracks the stages of one analysis: tells `progress` (if any) and times each stage from its Start to the next
// Start or Stop. Not thread-safe (an analysis runs its stages one after the other).
class StageTracker {
 public:
  explicit StageTracker(ProgressCallback progress = {}) : progress_(std::move(progress)) {}
  StageTracker(const StageTracker&) = delete;
  StageTracker& operator=(const StageTracker&) = delete;

  // Ends the current stage and starts `stage` of `total` units, telling the caller (done = 0) when it is reported.
  // Returns what the caller returned.
  absl::Status Start(Stage stage, int64_t total = 1);
  // Tells the caller that `done` units of the current stage are done (of `total`, or the total given to Start).
  absl::Status Progress(int64_t done);
  absl::Status Progress(int64_t done, int64_t total);
  // The current stage's Progress as a callback of (done, total), e.g. for each sliding window.
  std::function<absl::Status(int64_t done, int64_t total)> ProgressOfCurrentStage();
  // Ends the current stage (if any).
  void Stop();

  // The stages ended so far.
  const StageTimes& times() const { return times_; }

 private:
  ProgressCallback progress_;
  std::optional<Stage> current_;
  int64_t total_ = 1;
  std::chrono::steady_clock::time_point started_;
  StageTimes times_;
};

// The sum of `times`.
double TotalSeconds(const StageTimes& times);

}  // namespace segrel::analysis

#endif  // SEGREL_CORE_ANALYSIS_STAGES_H_
