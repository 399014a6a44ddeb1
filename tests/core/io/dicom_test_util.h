// Helpers for the DICOM tests: the shared ProstateX series, copies of them to break or re-encode with DCMTK, and
// dcm2niix (the independent reference) run as a command.
#ifndef SEGREL_TESTS_CORE_IO_DICOM_TEST_UTIL_H_
#define SEGREL_TESTS_CORE_IO_DICOM_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/test_util.h"  // ShellQuote

namespace segrel::testing {

// The shared data folder (`../shared/data` beside the repository), or "" when it is absent (tests then skip).
std::string SharedDataDir();

// Skips the current test when the shared data folder is absent.
#define SKIP_WITHOUT_SHARED_DATA() \
  if (::segrel::testing::SharedDataDir().empty()) GTEST_SKIP() << "../shared/data is absent"

// The folder of one ProstateX series, e.g. ProstateXSeries("ProstateX-0218", 5) for series number 5 (the folder
// whose name starts with "5.000000-"); "" when absent.
std::string ProstateXSeries(const std::string& case_id, int series_number);

// Every ProstateX series folder (both cases), sorted; empty when the data is absent.
std::vector<std::string> AllProstateXSeries();

// The files of a folder (not recursive), sorted by name.
std::vector<std::string> FilesIn(const std::string& dir);

// Copies the files of `series_dir` into `target_dir` (created) and returns the copies, in the order of FilesIn.
std::vector<std::string> CopySeries(const std::string& series_dir, const std::string& target_dir);

// Edits a DICOM file in place with DCMTK: sets the element named `tag` (a data dictionary name such as
// "ImagePositionPatient") to `value` (DICOM string form, values separated by '\'). Fails the test on error.
void SetTag(const std::string& path, const std::string& tag, const std::string& value);

// Deletes the element named `tag` from a DICOM file.
void DeleteTag(const std::string& path, const std::string& tag);

// Re-encodes a DICOM file in place with DCMTK in the transfer syntax named by its UID (e.g. JPEG lossless
// 1.2.840.10008.1.2.4.70). Fails the test when DCMTK cannot.
void Reencode(const std::string& path, const std::string& transfer_syntax_uid);

// The named element's value of a DICOM file, as DCMTK prints it ("" when absent).
std::string GetTag(const std::string& path, const std::string& tag);

// Runs dcm2niix on `series_dir` with `options` and writes into `out_dir`; returns the NIfTI files written, sorted.
// Fails the test when dcm2niix cannot be run.
std::vector<std::string> RunDcm2niix(const std::string& series_dir, const std::string& out_dir,
                                     const std::string& options);

}  // namespace segrel::testing

#endif  // SEGREL_TESTS_CORE_IO_DICOM_TEST_UTIL_H_
