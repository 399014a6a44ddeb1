// relevance.json (format "segrel.relevance/1", every field in docs/conventions.md): an AnalysisSummary written for
// people and programs, and read back for the cohort report. Shared by the command line and the server so both
// write the same document.
#ifndef SEGREL_CORE_REPORT_RELEVANCE_REPORT_H_
#define SEGREL_CORE_REPORT_RELEVANCE_REPORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/report/summary.h"

namespace segrel::report {

// Returns the relevance.json document of `summary` (pretty-printed, ends with a newline).
std::string RelevanceReportJson(const AnalysisSummary& summary);

// Reads a relevance.json document back: its format, model (and version), composite, seed, tau, sequences and the
// combined map's relevance per sequence (shares and raw sums), which the cohort report compares; other fields
// stay empty. Errors: InvalidArgument naming `source` (the file) and the field when the text is not JSON, has
// another format, or a field is missing, of the wrong type, or names a sequence twice.
absl::StatusOr<AnalysisSummary> ParseRelevanceReport(const std::string& text, const std::string& source);

}  // namespace segrel::report

#endif  // SEGREL_CORE_REPORT_RELEVANCE_REPORT_H_
