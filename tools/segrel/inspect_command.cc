#include "tools/segrel/inspect_command.h"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
#include "core/io/dicom_series.h"
#include "core/io/nifti.h"
#include "core/io/series_rules.h"
#include "core/model/bundle.h"
#include "core/volume/geometry.h"
#include "tools/command_line/command_line.h"
#include "tools/segrel/series_text.h"

namespace segrel::cli {
namespace {

namespace fs = std::filesystem;

// Notes and problems beyond this many are counted, not listed.
constexpr size_t kMaxListed = 10;

bool IsNiftiName(const std::string& name) {
  const std::string lower = absl::AsciiStrToLower(name);
  return absl::EndsWith(lower, ".nii") || absl::EndsWith(lower, ".nii.gz");
}

// The NIfTI files directly in `dir`, sorted.
std::vector<std::string> NiftiFilesIn(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    if (entry.is_regular_file(error) && IsNiftiName(entry.path().filename().string())) {
      files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// One row of the table: one series or file.
struct Row {
  std::string number;
  std::string description;
  std::string sequence;
  std::string grid;
  std::string spacing;
  std::string orientation;
  std::string syntax;
};

void PrintTable(const std::vector<Row>& rows, bool with_sequence, std::ostream& out) {
  int description_width = 11, sequence_width = 8;  // the headers' lengths
  for (const Row& row : rows) {
    description_width = std::max(description_width, static_cast<int>(row.description.size()));
    sequence_width = std::max(sequence_width, static_cast<int>(row.sequence.size()));
  }
  const auto print = [&](const Row& row) {
    out << absl::StrFormat("%6s  %-*s  ", row.number, description_width, row.description);
    if (with_sequence) out << absl::StrFormat("%-*s  ", sequence_width, row.sequence);
    out << absl::StrFormat("%-14s  %-18s  %-11s  %s\n", row.grid, row.spacing, row.orientation, row.syntax);
  };
  print({"series", "description", "sequence", "grid", "spacing (mm)", "orientation", "transfer syntax"});
  for (const Row& row : rows) print(row);
}

Row VolumeRow(const volume::Volume& volume) {
  Row row;
  row.grid = SizesText(volume);
  row.spacing = SpacingText(volume);
  row.orientation = volume::AxisCodes(volume.affine);
  return row;
}

void PrintListed(const std::string& title, const std::vector<std::string>& lines, std::ostream& out) {
  if (lines.empty()) return;
  out << title << " (" << lines.size() << "):\n";
  for (size_t i = 0; i < std::min(lines.size(), kMaxListed); ++i) out << "  " << lines[i] << "\n";
  if (lines.size() > kMaxListed) out << "  ... and " << lines.size() - kMaxListed << " more\n";
}

// The rules from --rules or the bundle's series_rules (nullopt when neither is given).
absl::StatusOr<std::optional<io::SeriesRules>> LoadRules(const InspectCommand& command) {
  if (!command.rules_path.empty()) {
    SEGREL_ASSIGN_OR_RETURN(io::SeriesRules rules, io::ReadSeriesRules(command.rules_path));
    return rules;
  }
  if (command.model_path.empty()) return std::nullopt;
  SEGREL_ASSIGN_OR_RETURN(const model::Bundle bundle, model::ReadBundle(command.model_path));
  if (!bundle.series_rules.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("the bundle ", bundle.name,
                                                   " has no series_rules to map DICOM series to its sequences ",
                                                   absl::StrJoin(bundle.SequenceNames(), ", ")));
  }
  return bundle.series_rules;
}

std::vector<std::string> MappingLines(const io::SequenceMapping& mapping,
                                      const std::vector<io::DicomSeriesInfo>& infos) {
  std::vector<std::string> lines;
  for (const io::SequenceMatch& match : mapping.matches) {
    std::vector<std::string> candidates;
    for (size_t index : match.candidates) {
      candidates.push_back(io::SeriesLabel(infos[index].series_number, infos[index].series_description));
    }
    std::string line = absl::StrFormat("%-10s ", match.sequence);
    if (match.chosen.has_value()) {
      absl::StrAppend(&line, "series ",
                      io::SeriesLabel(infos[*match.chosen].series_number, infos[*match.chosen].series_description));
      if (!match.how.empty()) absl::StrAppend(&line, " (", match.how, ")");
    } else if (candidates.size() > 1 && match.how.empty()) {
      absl::StrAppend(&line, "AMBIGUOUS: ", candidates.size(), " series match (", absl::StrJoin(candidates, "; "), ")");
    } else {
      absl::StrAppend(&line, "MISSING", match.how.empty() ? ": no series matches" : absl::StrCat(": ", match.how));
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

absl::Status InspectDicom(const InspectCommand& command, std::ostream& out) {
  SEGREL_ASSIGN_OR_RETURN(const std::optional<io::SeriesRules> rules, LoadRules(command));
  SEGREL_ASSIGN_OR_RETURN(const io::DicomFolder folder, io::ReadDicomFolder(command.path));
  std::vector<io::DicomSeriesInfo> infos;
  for (const io::DicomSeries& series : folder.series) infos.push_back(series.info);
  std::optional<io::SequenceMapping> mapping;
  if (rules.has_value()) mapping = io::MapSeries(*rules, infos);

  out << "DICOM folder: " << folder.files << " files, " << folder.series.size() << " series read, "
      << folder.failed.size() << " failed, " << folder.notes.size() << " files skipped\n";
  std::vector<Row> rows;
  for (size_t s = 0; s < folder.series.size(); ++s) {
    const io::DicomSeries& series = folder.series[s];
    Row row = VolumeRow(series.volume);
    row.number = series.info.series_number ? absl::StrCat(*series.info.series_number) : "?";
    row.description = series.info.series_description.empty() ? "-" : series.info.series_description;
    std::vector<std::string> sequences;
    if (mapping.has_value()) {
      for (const io::SequenceMatch& match : mapping->matches) {
        if (match.chosen == s) sequences.push_back(match.sequence);
      }
    }
    row.sequence = sequences.empty() ? "-" : absl::StrJoin(sequences, ",");
    row.syntax = series.info.transfer_syntax;
    rows.push_back(std::move(row));
  }
  PrintTable(rows, mapping.has_value(), out);
  if (mapping.has_value()) {
    out << "sequences (" << (mapping->Complete() ? "complete" : "INCOMPLETE") << ", rules " << rules->source << "):\n";
    for (const std::string& line : MappingLines(*mapping, infos)) out << "  " << line << "\n";
  }
  std::vector<std::string> problems;
  for (const io::FailedDicomSeries& failed : folder.failed) {
    problems.push_back(absl::StrCat("series ", io::SeriesLabel(failed.series_number, failed.series_description),
                                    " could not be read: ", WithoutRoot(failed.status.message(), command.path)));
  }
  for (const absl::Status& broken : folder.broken_files) {
    problems.push_back(WithoutRoot(broken.message(), command.path));
  }
  for (const io::DicomSeries& series : folder.series) {
    for (const std::string& note : series.info.notes) {
      problems.push_back(absl::StrCat("series ",
                                      io::SeriesLabel(series.info.series_number, series.info.series_description), ": ",
                                      WithoutRoot(note, command.path)));
    }
  }
  PrintListed("problems", problems, out);
  std::vector<std::string> skipped;
  for (const std::string& note : folder.notes) skipped.push_back(WithoutRoot(note, command.path));
  PrintListed("skipped files", skipped, out);
  return absl::OkStatus();
}

absl::Status InspectNifti(const InspectCommand& command, const std::vector<std::string>& files, std::ostream& out) {
  std::vector<std::string> sequences;
  if (!command.model_path.empty()) {
    SEGREL_ASSIGN_OR_RETURN(const model::Bundle bundle, model::ReadBundle(command.model_path));
    sequences = bundle.SequenceNames();
  }
  out << "NIfTI: " << files.size() << (files.size() == 1 ? " file\n" : " files\n");
  std::vector<Row> rows;
  std::vector<std::string> problems;
  for (const std::string& file : files) {
    const std::string name = fs::path(file).filename().string();
    const absl::StatusOr<volume::Volume> volume = io::ReadNifti(file);
    if (!volume.ok()) {
      problems.push_back(absl::StrCat(name, ": ", WithoutRoot(volume.status().message(), command.path)));
      continue;
    }
    Row row = VolumeRow(*volume);
    row.number = "-";
    row.description = name;
    row.sequence = "-";
    // A study folder names each sequence's file after it (NAME.nii.gz), as `segrel analyze --study` reads it.
    for (const std::string& sequence : sequences) {
      const std::string lower = absl::AsciiStrToLower(name), wanted = absl::AsciiStrToLower(sequence);
      if (lower == wanted + ".nii" || lower == wanted + ".nii.gz") row.sequence = sequence;
    }
    row.syntax = "NIfTI";
    rows.push_back(std::move(row));
  }
  PrintTable(rows, !sequences.empty(), out);
  PrintListed("problems", problems, out);
  return absl::OkStatus();
}

}  // namespace

const std::vector<Option>& InspectOptions() {
  static const auto* const options = new std::vector<Option>{
      {"rules", "RULES.json", "series rules to map the series to sequences"},
      {"model", "BUNDLE", "instead of --rules: the bundle's series_rules"},
  };
  return *options;
}

std::string InspectUsage() {
  return "usage: segrel inspect PATH [--rules RULES.json | --model BUNDLE]\n"
         "PATH: a DICOM folder (searched recursively), a NIfTI file, or a folder of NIfTI files\n"
         "prints each series (or file): number, description, mapped sequence, grid, spacing, orientation, transfer\n"
         "syntax; the sequence mapping (--rules, or the bundle's series_rules); and the problems found\n" +
         OptionsHelp(InspectOptions());
}

absl::StatusOr<InspectCommand> ParseInspectArguments(const std::vector<std::string>& arguments) {
  SEGREL_ASSIGN_OR_RETURN(const CommandLine command_line, CommandLine::Parse(arguments, InspectOptions()));
  if (command_line.positional().size() != 1) {
    return absl::InvalidArgumentError(command_line.positional().empty()
                                          ? "give the PATH to inspect"
                                          : absl::StrCat("give one PATH, not ", command_line.positional().size()));
  }
  InspectCommand command;
  command.path = command_line.positional().front();
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> rules, command_line.Single("rules"));
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> model, command_line.Single("model"));
  if (rules.has_value() && model.has_value()) return absl::InvalidArgumentError("give --rules or --model, not both");
  command.rules_path = rules.value_or("");
  command.model_path = model.value_or("");
  return command;
}

absl::Status RunInspect(const InspectCommand& command, std::ostream& out) {
  std::error_code error;
  if (fs::is_regular_file(command.path, error)) {
    if (!IsNiftiName(command.path)) {
      return absl::InvalidArgumentError(absl::StrCat(command.path, ": give a DICOM folder or a NIfTI file"));
    }
    return InspectNifti(command, {command.path}, out);
  }
  if (!fs::is_directory(command.path, error)) {
    return absl::NotFoundError(absl::StrCat(command.path, ": no such file or folder"));
  }
  const std::vector<std::string> nifti_files = NiftiFilesIn(command.path);
  if (!nifti_files.empty()) return InspectNifti(command, nifti_files, out);
  return InspectDicom(command, out);
}

}  // namespace segrel::cli
