// relevance.json: what an explanation found, in the format DESIGN section 4 describes. Shared by the command
// line and the server so both write the same document.
#ifndef SEGREL_CORE_ANALYSIS_RELEVANCE_REPORT_H_
#define SEGREL_CORE_ANALYSIS_RELEVANCE_REPORT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/analysis/explanation.h"

namespace segrel::analysis {

// What the report says besides the explanation itself. Nothing here may identify a patient: models and sequences
// are named, input files are not.
struct ReportContext {
  std::string model;                     // the bundle's name, or the model's file name without directories
  std::string model_version;             // bundles only
  std::string license;                   // of the data the model was trained on (bundles only)
  std::vector<std::string> class_names;  // by class index (empty: unnamed)
  std::vector<int64_t> patch;            // sliding-window patch (empty: whole volume)
  std::vector<std::string> sequences;    // input sequence names, in channel order
  std::vector<int64_t> grid;             // the study's sizes (i, j, k)
  std::string composite;
  uint64_t seed = 0;
  double tau = 1e-6;
  std::string device;
  int threads = 0;
  std::map<std::string, double> seconds;  // stages measured outside ExplainSegmentation (read, write, total)
};

// Returns the relevance.json document (pretty-printed, ends with a newline).
std::string RelevanceReportJson(const Explanation& explanation, const ReportContext& context);

// Spearman's rank correlation of two equally long series (0 when either is constant).
double SpearmanCorrelation(const std::vector<double>& a, const std::vector<double>& b);

// Returns the sequence names ordered by decreasing share of relevance.
std::vector<std::string> RankSequences(const std::vector<std::string>& sequences, const std::vector<double>& shares);

}  // namespace segrel::analysis

#endif  // SEGREL_CORE_ANALYSIS_RELEVANCE_REPORT_H_
