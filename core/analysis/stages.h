// How far an analysis has come, told to whoever runs it, who may also stop it there: a server reports a job's stage
// and cancels a running job through it.
#ifndef SEGREL_CORE_ANALYSIS_PROGRESS_H_
#define SEGREL_CORE_ANALYSIS_PROGRESS_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace segrel::analysis {

// Called when a stage starts (done = 0) and after each unit of work in it (a sliding window, an ablated sequence):
// `done` of `total` units. Stages, in order: "read", "import", "inference", "transpose", "relevance", "ablation";
// the transpose and relevance stages may pass over the windows more than once (done restarts at 1 each time).
// A non-OK return stops the analysis at that point, and the analysis returns that status.
using ProgressCallback = std::function<absl::Status(absl::string_view stage, int64_t done, int64_t total)>;

// Calls `progress` when there is one.
inline absl::Status ReportProgress(const ProgressCallback& progress, absl::string_view stage, int64_t done,
                                   int64_t total) {
  return progress ? progress(stage, done, total) : absl::OkStatus();
}

}  // namespace segrel::analysis

#endif  // SEGREL_CORE_ANALYSIS_PROGRESS_H_
