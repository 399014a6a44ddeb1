// The fuzz targets' committed corpora as a regression test: every file of fuzz/corpus/nifti, fuzz/corpus/dicom and
// fuzz/corpus/upload runs through the same entry function the libFuzzer programs call (fuzz/fuzz_entries.h,
// fuzz/upload_entry.h), which aborts on a broken promise, so an input that once crashed a reader or the upload
// (kept in the corpus as crash-*) fails CI if it crashes again.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_entries.h"
#ifdef SEGREL_FUZZ_MODEL_REPOSITORY  // built with the server (tests/CMakeLists.txt)
#include "fuzz/upload_entry.h"
#endif

namespace segrel::fuzz {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> CorpusFiles(const std::string& name) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(fs::path(SEGREL_FUZZ_CORPUS_DIR) / name)) {
    if (entry.is_regular_file()) files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

template <typename Entry>
void RunCorpus(const std::string& name, Entry entry) {
  const std::vector<std::string> files = CorpusFiles(name);
  ASSERT_GE(files.size(), 5u) << "the " << name << " corpus is missing";
  for (const std::string& file : files) {
    // An abort inside the entry ends the test program: say which file it was on.
    std::fprintf(stderr, "corpus file %s\n", file.c_str());
    const std::string bytes = ReadBytes(file);
    ASSERT_FALSE(bytes.empty()) << file;
    EXPECT_EQ(entry(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), 0) << file;
  }
}

TEST(FuzzCorpus, NiftiInputsDoNotBreakTheReader) { RunCorpus("nifti", FuzzNifti); }

TEST(FuzzCorpus, DicomInputsDoNotBreakTheFolderReader) { RunCorpus("dicom", FuzzDicomFolder); }

TEST(FuzzCorpus, OnnxInputsDoNotBreakTheImporter) { RunCorpus("onnx", FuzzOnnx); }

#ifdef SEGREL_FUZZ_MODEL_REPOSITORY
TEST(FuzzCorpus, UploadInputsDoNotBreakTheUploadPromises) { RunCorpus("upload", FuzzUpload); }
#endif

}  // namespace
}  // namespace segrel::fuzz
