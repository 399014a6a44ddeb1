#include "tests/core/io/dicom_test_util.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dctag.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpeg/djrplol.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <dcmtk/dcmjpls/djrparam.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

#ifndef SEGREL_SHARED_DATA_DIR
#error "tests/CMakeLists.txt defines SEGREL_SHARED_DATA_DIR"
#endif

namespace segrel::testing {
namespace {

namespace fs = std::filesystem;

DcmTagKey TagNamed(const std::string& name) {
  DcmTag tag;
  EXPECT_TRUE(DcmTag::findTagFromName(name.c_str(), tag).good()) << "no DICOM tag named " << name;
  return tag;
}

void RegisterEncoders() {
  static std::once_flag once;
  std::call_once(once, [] {
    DJEncoderRegistration::registerCodecs();
    DJLSEncoderRegistration::registerCodecs();
    DcmRLEEncoderRegistration::registerCodecs();
  });
}

}  // namespace

std::string SharedDataDir() {
  std::error_code error;
  return fs::is_directory(SEGREL_SHARED_DATA_DIR, error) ? SEGREL_SHARED_DATA_DIR : "";
}

std::string ProstateXSeries(const std::string& case_id, int series_number) {
  if (SharedDataDir().empty()) return "";
  const fs::path root = fs::path(SharedDataDir()) / "prostatex-dicom" / case_id;
  std::error_code error;
  if (!fs::is_directory(root, error)) return "";
  const std::string prefix = absl::StrCat(series_number, ".000000-");
  for (const auto& study : fs::directory_iterator(root)) {
    for (const auto& series : fs::directory_iterator(study.path())) {
      if (absl::StartsWith(series.path().filename().string(), prefix)) return series.path().string();
    }
  }
  return "";
}

std::vector<std::string> AllProstateXSeries() {
  std::vector<std::string> dirs;
  if (SharedDataDir().empty()) return dirs;
  const fs::path root = fs::path(SharedDataDir()) / "prostatex-dicom";
  for (const auto& patient : fs::directory_iterator(root)) {
    if (!patient.is_directory()) continue;
    for (const auto& study : fs::directory_iterator(patient.path())) {
      for (const auto& series : fs::directory_iterator(study.path())) dirs.push_back(series.path().string());
    }
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> CopySeries(const std::string& series_dir, const std::string& target_dir) {
  fs::create_directories(target_dir);
  std::vector<std::string> copies;
  for (const std::string& file : FilesIn(series_dir)) {
    const fs::path target = fs::path(target_dir) / fs::path(file).filename();
    fs::copy_file(file, target, fs::copy_options::overwrite_existing);
    fs::permissions(target, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add);
    copies.push_back(target.string());
  }
  return copies;
}

namespace {

// Loads `path`, applies `edit` to its dataset and saves it in its own transfer syntax.
template <typename Edit>
void EditFile(const std::string& path, Edit edit) {
  DcmFileFormat file;
  ASSERT_TRUE(file.loadFile(path.c_str()).good()) << path;
  file.loadAllDataIntoMemory();
  edit(*file.getDataset());
  const E_TransferSyntax xfer = file.getDataset()->getOriginalXfer();
  ASSERT_TRUE(file.saveFile(path.c_str(), xfer).good()) << path;
}

}  // namespace

void SetTag(const std::string& path, const std::string& tag, const std::string& value) {
  const DcmTagKey key = TagNamed(tag);
  EditFile(path, [&](DcmDataset& dataset) {
    EXPECT_TRUE(dataset.putAndInsertOFStringArray(key, value.c_str()).good()) << path << " " << tag;
  });
}

void DeleteTag(const std::string& path, const std::string& tag) {
  const DcmTagKey key = TagNamed(tag);
  EditFile(path, [&](DcmDataset& dataset) { dataset.findAndDeleteElement(key); });
}

std::string GetTag(const std::string& path, const std::string& tag) {
  DcmFileFormat file;
  EXPECT_TRUE(file.loadFile(path.c_str()).good()) << path;
  OFString value;
  if (file.getDataset()->findAndGetOFStringArray(TagNamed(tag), value).bad()) return "";
  return value.c_str();
}

void Reencode(const std::string& path, const std::string& transfer_syntax_uid) {
  RegisterEncoders();
  const DcmXfer xfer(transfer_syntax_uid.c_str());
  ASSERT_NE(xfer.getXfer(), EXS_Unknown) << transfer_syntax_uid;
  DcmFileFormat file;
  ASSERT_TRUE(file.loadFile(path.c_str()).good()) << path;
  file.loadAllDataIntoMemory();
  DcmDataset& dataset = *file.getDataset();
  // Lossless parameters for the JPEG processes (DCMTK's defaults are lossy for JPEG-LS near-lossless mode).
  const DJ_RPLossless jpeg_lossless(/*aPrediction=*/1, /*aPt=*/0);
  const DJLSRepresentationParameter jpeg_ls(/*nearlosslessDeviation=*/0, /*losslessProcess=*/OFTrue);
  const DcmRepresentationParameter* parameter = nullptr;
  if (xfer.getXfer() == EXS_JPEGProcess14SV1 || xfer.getXfer() == EXS_JPEGProcess14) parameter = &jpeg_lossless;
  if (xfer.getXfer() == EXS_JPEGLSLossless) parameter = &jpeg_ls;
  ASSERT_TRUE(dataset.chooseRepresentation(xfer.getXfer(), parameter).good()) << path << " " << xfer.getXferName();
  ASSERT_TRUE(dataset.canWriteXfer(xfer.getXfer())) << path << " " << xfer.getXferName();
  ASSERT_TRUE(file.saveFile(path.c_str(), xfer.getXfer()).good()) << path;
}

std::vector<std::string> RunDcm2niix(const std::string& series_dir, const std::string& out_dir,
                                     const std::string& options) {
  fs::create_directories(out_dir);
  const std::string log = (fs::path(out_dir) / "dcm2niix.log").string();
  const std::string command = absl::StrCat("dcm2niix ", options, " -o ", ShellQuote(out_dir), " ",
                                           ShellQuote(series_dir), " > ", ShellQuote(log), " 2>&1");
  const int result = std::system(command.c_str());
  EXPECT_EQ(result, 0) << "dcm2niix failed (scripts/install-deps installs it): " << command << "\nsee " << log;
  std::vector<std::string> written;
  for (const std::string& file : FilesIn(out_dir)) {
    if (absl::EndsWith(file, ".nii") || absl::EndsWith(file, ".nii.gz")) written.push_back(file);
  }
  return written;
}

}  // namespace segrel::testing
