// `segrel convert`: every DICOM series of a folder as a NIfTI file, as dcm2niix would, so that users can check
// segrel's reading of their data in their own viewer.
//
//   segrel convert DICOM_DIR --out DIR
//
// Writes DIR/<SeriesNumber>_<SeriesDescription>.nii.gz per series (the description with every character other
// than letters, digits, '.', '-' and '_' replaced by '_'; "x" for a missing number; "_2", "_3", ... added when two
// series would share a name). Voxels are stored as int16, uint16 or int32 when every value is an integer that fits
// (the usual MR series), else float32; the affine is segrel's (the same as dcm2niix's), stored as sform and qform.
// 4-D series (diffusion b-values, repetitions) are 4-D files. Prints what it wrote and what it skipped (series that
// could not be read, with why; non-image files).
#ifndef SEGREL_TOOLS_SEGREL_CONVERT_COMMAND_H_
#define SEGREL_TOOLS_SEGREL_CONVERT_COMMAND_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace segrel::cli {

struct ConvertCommand {
  std::string dicom_dir;
  std::string out_dir;
};

// Parses the arguments after "convert". Errors: InvalidArgument when DICOM_DIR or --out is missing, or for
// unknown options or extra arguments.
absl::StatusOr<ConvertCommand> ParseConvertArguments(const std::vector<std::string>& arguments);

// Converts every series that can be read. Errors: those of ReadDicomFolder (NotFound for a folder without DICOM
// images); Internal when DIR cannot be created or a file cannot be written.
absl::Status RunConvert(const ConvertCommand& command, std::ostream& out);

// The usage text.
std::string ConvertUsage();

}  // namespace segrel::cli

#endif  // SEGREL_TOOLS_SEGREL_CONVERT_COMMAND_H_
