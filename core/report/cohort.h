// The cohort report: which input sequences a model relied on over many studies. Reads the relevance.json of each
// `segrel analyze` run, checks that the runs can be compared (same sequences, model and composite), and writes the
// per-study shares with their mean, median and ranking as CSV, JSON and a chart in the style of the paper's Figure 1.
// The functions are thread-safe.
#ifndef SEGREL_CORE_REPORT_COHORT_H_
#define SEGREL_CORE_REPORT_COHORT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace segrel::report {

// One study's result, as its relevance.json reports it.
struct CohortStudy {
  std::string id;                        // the run folder's name
  std::map<std::string, double> shares;  // sequence -> share of the combined relevance (sequence_relevance)
  std::map<std::string, double> raw;     // sequence -> raw relevance sum (sequence_relevance_raw)
  std::string model;
  std::string composite;
  std::vector<std::string> sequences;  // channel order ("sequences"); empty: the order of `shares`' names
};

// Reads RUN_DIR/relevance.json (format "segrel.relevance/1"); the study's id is the run folder's name.
// Errors: NotFound when the file does not exist; InvalidArgument naming the file (and the field) when it is not
// JSON, has another format, or a field is missing or of the wrong type.
absl::StatusOr<CohortStudy> ReadStudyReport(const std::string& run_dir);

struct CohortSummary {
  std::vector<std::string> sequences;          // channel order of the first study
  std::vector<CohortStudy> studies;            // in the order given
  std::map<std::string, double> mean, median;  // per sequence, over the studies' shares
  std::vector<std::string> ranking;            // sequences by mean, descending (ties in channel order)
};

// Summarises `studies`. Errors: InvalidArgument when there are none, two have the same id, or they name different
// sequences or mix models or composites (each error says which studies differ and how).
absl::StatusOr<CohortSummary> Summarise(std::vector<CohortStudy> studies);

// Writes into `dir` (created):
//   cohort.csv   header "id,<sequence>,...", one row per study (its shares), then rows "mean" and "median";
//   cohort.json  format "segrel.cohort/1": model, composite, sequences, studies (id, shares, raw), mean, median,
//                ranking;
//   cohort.png   x: the sequences; per study its shares as a coloured line with points (legend by study id); the
//                mean as a thick black line.
// Returns the file names written. Errors: InvalidArgument when `summary` has no studies or lacks a value for a
// sequence (it was not made by Summarise); Internal naming the file that could not be written; FailedPrecondition
// when gnuplot is not installed.
absl::StatusOr<std::vector<std::string>> WriteCohortReport(const CohortSummary& summary, const std::string& dir);

}  // namespace segrel::report

#endif  // SEGREL_CORE_REPORT_COHORT_H_
