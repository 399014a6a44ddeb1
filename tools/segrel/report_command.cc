#include "tools/segrel/report_command.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
#include "core/report/cohort.h"
#include "tools/command_line/command_line.h"

namespace segrel::cli {
namespace {

void PrintSummary(const report::CohortSummary& summary, const std::string& out_dir,
                  const std::vector<std::string>& written, std::ostream& out) {
  const report::CohortStudy& first = summary.studies.front();
  out << "segrel report: " << summary.studies.size() << " studies, model " << first.model << ", composite "
      << first.composite << "\n";
  out << absl::StrFormat("  %-12s %8s %8s\n", "sequence", "mean", "median");
  for (const std::string& sequence : summary.sequences) {
    out << absl::StrFormat("  %-12s %8.4f %8.4f\n", sequence, summary.mean.at(sequence), summary.median.at(sequence));
  }
  out << "ranking (by mean share): " << absl::StrJoin(summary.ranking, " > ") << "\n";
  out << "outputs in " << out_dir << ": " << absl::StrJoin(written, ", ") << "\n";
}

}  // namespace

const std::vector<Option>& ReportOptions() {
  static const auto* const options =
      new std::vector<Option>{{"out", "DIR", "where cohort.csv, cohort.json and cohort.png go (required)"}};
  return *options;
}

std::string ReportUsage() {
  return "usage: segrel report --out DIR RUN_DIR [RUN_DIR ...]\n"
         "RUN_DIR: the --out folder of a 'segrel analyze' run (holds relevance.json); its name is the study's id\n"
         "writes DIR/cohort.csv, DIR/cohort.json and DIR/cohort.png\n" +
         OptionsHelp(ReportOptions());
}

absl::StatusOr<ReportCommand> ParseReportArguments(const std::vector<std::string>& arguments) {
  SEGREL_ASSIGN_OR_RETURN(const CommandLine command_line, CommandLine::Parse(arguments, ReportOptions()));
  ReportCommand command;
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> out_dir, command_line.Single("out"));
  if (!out_dir.has_value()) return absl::InvalidArgumentError("--out DIR is required");
  command.out_dir = *out_dir;
  command.run_dirs = command_line.positional();
  if (command.run_dirs.empty()) return absl::InvalidArgumentError("give at least one RUN_DIR");
  return command;
}

absl::Status RunReport(const ReportCommand& command, std::ostream& out) {
  std::vector<report::CohortStudy> studies;
  for (const std::string& run_dir : command.run_dirs) {
    SEGREL_ASSIGN_OR_RETURN(report::CohortStudy study, report::ReadStudyReport(run_dir));
    studies.push_back(std::move(study));
  }
  SEGREL_ASSIGN_OR_RETURN(const report::CohortSummary summary, report::Summarise(std::move(studies)));
  SEGREL_ASSIGN_OR_RETURN(const std::vector<std::string> written, report::WriteCohortReport(summary, command.out_dir));
  PrintSummary(summary, command.out_dir, written, out);
  return absl::OkStatus();
}

}  // namespace segrel::cli
