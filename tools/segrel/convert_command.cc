#include "tools/segrel/convert_command.h"

#include <cctype>
#include <filesystem>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"
#include "core/io/dicom_series.h"
#include "core/io/nifti.h"
#include "tools/command_line/command_line.h"
#include "tools/segrel/series_text.h"

namespace segrel::cli {
namespace {

namespace fs = std::filesystem;

// Long descriptions are cut: file names stay well under the usual 255-byte limit.
constexpr size_t kMaxDescriptionLength = 100;

std::string SanitisedDescription(const std::string& description) {
  std::string name;
  for (char c : description.substr(0, kMaxDescriptionLength)) {
    const bool keep = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    name += keep ? c : '_';
  }
  return name.empty() ? "series" : name;
}

// "<SeriesNumber>_<description>", made unique among `taken` with "_2", "_3", ...
std::string FileStem(const io::DicomSeriesInfo& info, std::set<std::string>& taken) {
  const std::string base = absl::StrCat(info.series_number ? absl::StrCat(*info.series_number) : "x", "_",
                                        SanitisedDescription(info.series_description));
  std::string stem = base;
  for (int n = 2; !taken.insert(stem).second; ++n) stem = absl::StrCat(base, "_", n);
  return stem;
}

// The smallest of int16, uint16, int32 that holds every value exactly, else float32.
absl::StatusOr<std::pair<io::NiftiDataType, std::string>> NaturalType(const at::Tensor& data) {
  return CatchTorch("choosing the data type", [&]() -> absl::StatusOr<std::pair<io::NiftiDataType, std::string>> {
    const bool integral = at::equal(data, data.round());
    const double low = data.min().item<double>(), high = data.max().item<double>();
    if (integral && low >= std::numeric_limits<int16_t>::min() && high <= std::numeric_limits<int16_t>::max()) {
      return std::make_pair(io::NiftiDataType::kInt16, std::string("int16"));
    }
    if (integral && low >= 0 && high <= std::numeric_limits<uint16_t>::max()) {
      return std::make_pair(io::NiftiDataType::kUInt16, std::string("uint16"));
    }
    // float32 holds integers exactly only up to 2^24.
    if (integral && low >= -(1 << 24) && high <= (1 << 24)) {
      return std::make_pair(io::NiftiDataType::kInt32, std::string("int32"));
    }
    return std::make_pair(io::NiftiDataType::kFloat32, std::string("float32"));
  });
}

}  // namespace

const std::vector<Option>& ConvertOptions() {
  static const auto* const options = new std::vector<Option>{{"out", "DIR", "where the NIfTI files go (required)"}};
  return *options;
}

std::string ConvertUsage() {
  return "usage: segrel convert DICOM_DIR --out DIR\n"
         "writes DIR/<SeriesNumber>_<SeriesDescription>.nii.gz for every series of DICOM_DIR (searched recursively),\n"
         "integer voxels as int16/uint16/int32 when they fit, else float32, with segrel's (dcm2niix's) affine\n" +
         OptionsHelp(ConvertOptions());
}

absl::StatusOr<ConvertCommand> ParseConvertArguments(const std::vector<std::string>& arguments) {
  SEGREL_ASSIGN_OR_RETURN(const CommandLine command_line, CommandLine::Parse(arguments, ConvertOptions()));
  if (command_line.positional().size() != 1) {
    return absl::InvalidArgumentError(command_line.positional().empty()
                                          ? "give the DICOM_DIR to convert"
                                          : absl::StrCat("give one DICOM_DIR, not ", command_line.positional().size()));
  }
  ConvertCommand command;
  command.dicom_dir = command_line.positional().front();
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> out_dir, command_line.Single("out"));
  if (!out_dir.has_value() || out_dir->empty()) return absl::InvalidArgumentError("--out DIR is required");
  command.out_dir = *out_dir;
  return command;
}

absl::Status RunConvert(const ConvertCommand& command, std::ostream& out) {
  SEGREL_ASSIGN_OR_RETURN(const io::DicomFolder folder, io::ReadDicomFolder(command.dicom_dir));
  std::error_code error;
  fs::create_directories(command.out_dir, error);
  if (error) return absl::InternalError(absl::StrCat(command.out_dir, ": cannot create the folder: ", error.message()));
  std::set<std::string> taken;
  for (const io::DicomSeries& series : folder.series) {
    const std::string name = absl::StrCat(FileStem(series.info, taken), ".nii.gz");
    SEGREL_ASSIGN_OR_RETURN(const auto type, NaturalType(series.volume.data));
    SEGREL_RETURN_IF_ERROR(
        io::WriteNifti((fs::path(command.out_dir) / name).string(), series.volume.data, type.first, series.volume));
    out << "wrote " << name << " (" << SizesText(series.volume) << ", " << SpacingText(series.volume) << " mm, "
        << type.second << ")\n";
  }
  for (const io::FailedDicomSeries& failed : folder.failed) {
    out << "skipped series " << io::SeriesLabel(failed.series_number, failed.series_description) << ": "
        << WithoutRoot(failed.status.message(), command.dicom_dir) << "\n";
  }
  for (const absl::Status& broken : folder.broken_files) {
    out << "skipped " << WithoutRoot(broken.message(), command.dicom_dir) << "\n";
  }
  for (const std::string& note : folder.notes) out << "skipped " << WithoutRoot(note, command.dicom_dir) << "\n";
  out << folder.series.size() << " series written to " << command.out_dir << ", "
      << folder.failed.size() + folder.broken_files.size() + folder.notes.size() << " skipped\n";
  return absl::OkStatus();
}

}  // namespace segrel::cli
