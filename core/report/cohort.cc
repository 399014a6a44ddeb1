#include "core/report/cohort.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/common/files.h"
#include "core/common/status_macros.h"
#include "core/report/gnuplot.h"
#include "core/report/relevance_report.h"

namespace segrel::report {
namespace {

using nlohmann::ordered_json;

constexpr char kCsvFile[] = "cohort.csv";
constexpr char kJsonFile[] = "cohort.json";
constexpr char kChartFile[] = "cohort.png";

// The run folder's own name, also for "runs/a/" and ".".
std::string RunId(const std::string& run_dir) {
  std::error_code error;
  std::filesystem::path folder = std::filesystem::absolute(run_dir, error).lexically_normal();
  if (error) folder = std::filesystem::path(run_dir).lexically_normal();
  if (folder.filename().empty()) folder = folder.parent_path();
  return folder.filename().string();
}

std::vector<std::string> Keys(const std::map<std::string, double>& values) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : values) keys.push_back(key);
  return keys;
}

// The study's sequences in channel order. Errors: InvalidArgument when `sequences` and `shares` disagree.
absl::StatusOr<std::vector<std::string>> StudySequences(const CohortStudy& study) {
  if (study.sequences.empty()) return Keys(study.shares);
  std::vector<std::string> sorted = study.sequences;
  std::sort(sorted.begin(), sorted.end());
  if (sorted != Keys(study.shares)) {
    return absl::InvalidArgumentError(absl::StrCat("study ", study.id, " lists sequences ",
                                                   absl::StrJoin(study.sequences, ", "), " but has shares for ",
                                                   absl::StrJoin(Keys(study.shares), ", ")));
  }
  return study.sequences;
}

// Every study must name the first one's sequences and use its model and composite.
absl::Status CheckComparable(const std::vector<CohortStudy>& studies) {
  const CohortStudy& first = studies.front();
  std::set<std::string> ids;
  for (const CohortStudy& study : studies) {
    if (!ids.insert(study.id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("two studies are called '", study.id, "' (a study's id is its run folder's name)"));
    }
    SEGREL_RETURN_IF_ERROR(StudySequences(study).status());
    if (Keys(study.shares) != Keys(first.shares)) {
      return absl::InvalidArgumentError(absl::StrCat("studies name different sequences: ", study.id, " has ",
                                                     absl::StrJoin(Keys(study.shares), ", "), ", ", first.id, " has ",
                                                     absl::StrJoin(Keys(first.shares), ", ")));
    }
    if (study.model != first.model) {
      return absl::InvalidArgumentError(
          absl::StrCat("studies mix models: ", study.id, " used ", study.model, ", ", first.id, " used ", first.model));
    }
    if (study.composite != first.composite) {
      return absl::InvalidArgumentError(absl::StrCat("studies mix composites: ", study.id, " used ", study.composite,
                                                     ", ", first.id, " used ", first.composite));
    }
  }
  return absl::OkStatus();
}

double Mean(const std::vector<double>& values) {
  double sum = 0;
  for (double value : values) sum += value;
  return sum / static_cast<double>(values.size());
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t middle = values.size() / 2;
  return values.size() % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

std::string Number(double value) { return absl::StrFormat("%.6g", value); }

// A CSV field, quoted when it holds a comma, a quote or a line break.
std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

std::string CsvRow(const std::string& id, const std::vector<std::string>& sequences,
                   const std::map<std::string, double>& values) {
  std::string row = CsvField(id);
  for (const std::string& sequence : sequences) absl::StrAppend(&row, ",", Number(values.at(sequence)));
  return row + "\n";
}

std::string CohortCsv(const CohortSummary& summary) {
  std::string csv = "id";
  for (const std::string& sequence : summary.sequences) absl::StrAppend(&csv, ",", CsvField(sequence));
  csv += "\n";
  for (const CohortStudy& study : summary.studies) csv += CsvRow(study.id, summary.sequences, study.shares);
  csv += CsvRow("mean", summary.sequences, summary.mean);
  csv += CsvRow("median", summary.sequences, summary.median);
  return csv;
}

// The values of `sequences` that `values` has, in channel order.
ordered_json InOrder(const std::vector<std::string>& sequences, const std::map<std::string, double>& values) {
  ordered_json object = ordered_json::object();
  for (const std::string& sequence : sequences) {
    if (const auto it = values.find(sequence); it != values.end()) object[sequence] = it->second;
  }
  return object;
}

std::string CohortJson(const CohortSummary& summary) {
  ordered_json document;
  document["format"] = "segrel.cohort/1";
  document["model"] = summary.studies.front().model;
  document["composite"] = summary.studies.front().composite;
  document["sequences"] = summary.sequences;
  ordered_json studies = ordered_json::array();
  for (const CohortStudy& study : summary.studies) {
    studies.push_back({{"id", study.id},
                       {"shares", InOrder(summary.sequences, study.shares)},
                       {"raw", InOrder(summary.sequences, study.raw)}});
  }
  document["studies"] = std::move(studies);
  document["mean"] = InOrder(summary.sequences, summary.mean);
  document["median"] = InOrder(summary.sequences, summary.median);
  document["ranking"] = summary.ranking;
  return document.dump(2) + "\n";
}

// Columns of the datablock: x position, sequence name, one share per study, the mean.
std::string ChartScript(const CohortSummary& summary, const std::string& output) {
  std::string script = GnuplotPngHeader(output, 900, 540);
  absl::StrAppend(&script, "$cohort << EOD\n");
  for (size_t s = 0; s < summary.sequences.size(); ++s) {
    const std::string& sequence = summary.sequences[s];
    absl::StrAppend(&script, s, " ", GnuplotDataString(sequence));
    for (const CohortStudy& study : summary.studies) absl::StrAppend(&script, " ", Number(study.shares.at(sequence)));
    absl::StrAppend(&script, " ", Number(summary.mean.at(sequence)), "\n");
  }
  const CohortStudy& first = summary.studies.front();
  absl::StrAppend(&script, "EOD\n", "set title ",
                  GnuplotQuote(absl::StrCat("Relevance per input sequence, ", summary.studies.size(),
                                            " studies (model ", first.model, ", ", first.composite, ")")),
                  "\nset xlabel 'input sequence'\nset ylabel 'normalised relevance (share of the combined map)'\n",
                  absl::StrFormat("set xrange [-0.5:%.1f]\n", summary.sequences.size() - 0.5),
                  "set grid ytics\nset key outside right top\n", "plot ");
  for (size_t s = 0; s < summary.studies.size(); ++s) {
    const std::string columns = s == 0 ? "$cohort using 1:3:xtic(2)" : absl::StrCat("'' using 1:", s + 3);
    absl::StrAppend(&script, columns, " with linespoints lw 1.5 pt 7 ps 0.8 title ",
                    GnuplotQuote(summary.studies[s].id), ", ");
  }
  absl::StrAppend(&script, "'' using 1:", summary.studies.size() + 3,
                  " with linespoints lw 4 pt 7 ps 1.2 lc rgb 'black' title 'mean'\n");
  return script;
}

// A summary not made by Summarise must still have a value for every sequence wherever one is read.
absl::Status CheckSummary(const CohortSummary& summary) {
  if (summary.studies.empty() || summary.sequences.empty()) {
    return absl::InvalidArgumentError("the cohort summary has no studies or no sequences");
  }
  auto complete = [&](const std::map<std::string, double>& values) {
    return std::all_of(summary.sequences.begin(), summary.sequences.end(),
                       [&](const std::string& sequence) { return values.count(sequence) > 0; });
  };
  for (const CohortStudy& study : summary.studies) {
    if (!complete(study.shares)) {
      return absl::InvalidArgumentError(absl::StrCat("the cohort summary's study ", study.id,
                                                     " lacks a share for one of ",
                                                     absl::StrJoin(summary.sequences, ", ")));
    }
  }
  if (!complete(summary.mean) || !complete(summary.median)) {
    return absl::InvalidArgumentError("the cohort summary's mean or median lacks a sequence");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CohortStudy> ReadStudyReport(const std::string& run_dir) {
  const std::string path = (std::filesystem::path(run_dir) / "relevance.json").string();
  std::ifstream stream(path);
  if (!stream) {
    return absl::NotFoundError(
        absl::StrCat(path, ": no such file (is ", run_dir, " the output folder of an analysis?)"));
  }
  std::stringstream text;
  text << stream.rdbuf();
  SEGREL_ASSIGN_OR_RETURN(const AnalysisSummary report, ParseRelevanceReport(text.str(), path));
  CohortStudy study;
  study.id = RunId(run_dir);
  study.model = report.model;
  study.composite = report.composite;
  study.sequences = report.sequences;
  for (size_t s = 0; s < report.sequences.size(); ++s) {
    study.shares[report.sequences[s]] = report.relevance.shares[s];
    study.raw[report.sequences[s]] = report.relevance.raw[s];
  }
  return study;
}

absl::StatusOr<CohortSummary> Summarise(std::vector<CohortStudy> studies) {
  if (studies.empty()) return absl::InvalidArgumentError("no studies to summarise");
  SEGREL_RETURN_IF_ERROR(CheckComparable(studies));
  CohortSummary summary;
  SEGREL_ASSIGN_OR_RETURN(summary.sequences, StudySequences(studies.front()));
  summary.studies = std::move(studies);
  std::vector<double> means;
  for (const std::string& sequence : summary.sequences) {
    std::vector<double> shares;
    for (const CohortStudy& study : summary.studies) shares.push_back(study.shares.at(sequence));
    summary.mean[sequence] = Mean(shares);
    summary.median[sequence] = Median(shares);
    means.push_back(summary.mean[sequence]);
  }
  summary.ranking = report::RankSequences(summary.sequences, means);
  return summary;
}

absl::StatusOr<std::vector<std::string>> WriteCohortReport(const CohortSummary& summary, const std::string& dir) {
  SEGREL_RETURN_IF_ERROR(CheckSummary(summary));
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return absl::InternalError(absl::StrCat(dir, ": cannot create the folder: ", error.message()));
  SEGREL_RETURN_IF_ERROR(WriteTextFile(dir + "/" + kCsvFile, CohortCsv(summary)));
  SEGREL_RETURN_IF_ERROR(WriteTextFile(dir + "/" + kJsonFile, CohortJson(summary)));
  SEGREL_RETURN_IF_ERROR(RunGnuplot(ChartScript(summary, dir + "/" + kChartFile), dir + "/" + kChartFile));
  return std::vector<std::string>{kCsvFile, kJsonFile, kChartFile};
}

}  // namespace segrel::report
