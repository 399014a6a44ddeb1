// `segrel report`: the cohort summary over many `segrel analyze` runs (core/report/cohort.h).
//
//   segrel report --out DIR RUN_DIR [RUN_DIR ...]
//
// Each RUN_DIR is the --out folder of one `segrel analyze` run (it holds relevance.json); the study's id is the
// folder's name. Writes DIR/cohort.csv, DIR/cohort.json and DIR/cohort.png, and prints the mean and median share per
// sequence and the ranking.
#ifndef SEGREL_TOOLS_SEGREL_REPORT_COMMAND_H_
#define SEGREL_TOOLS_SEGREL_REPORT_COMMAND_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace segrel::cli {

struct ReportCommand {
  std::vector<std::string> run_dirs;  // in the order given
  std::string out_dir;
};

// Parses the arguments after "report". Errors: InvalidArgument naming the option at fault, or when no RUN_DIR is
// given.
absl::StatusOr<ReportCommand> ParseReportArguments(const std::vector<std::string>& arguments);

// Reads every run's relevance.json, summarises them and writes the cohort report; prints the table, the ranking
// and where the files are to `out`. Errors name the run or file at fault (see core/report/cohort.h).
absl::Status RunReport(const ReportCommand& command, std::ostream& out);

// The usage text.
std::string ReportUsage();

}  // namespace segrel::cli

#endif  // SEGREL_TOOLS_SEGREL_REPORT_COMMAND_H_
