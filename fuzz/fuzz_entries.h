// The fuzz targets' entry functions, shared by the libFuzzer programs (fuzz/*_fuzzer.cc, built with
// -DSEGREL_BUILD_FUZZERS=ON and clang) and by the corpus regression test (tests/fuzz/corpus_test.cc, built with
// the normal build), so that every committed corpus file is checked in CI with exactly the code the fuzzer ran.
//
// Each entry writes the bytes to files in a private temporary folder, reads them with segrel's reader under a
// small size limit, and aborts (a crash libFuzzer reports) when the reader breaks a promise of its header: an OK
// result larger than the limit, non-finite voxels, a volume that disagrees with its description, or an error
// without a message. Not thread-safe: one call at a time per process.
#ifndef SEGREL_FUZZ_FUZZ_ENTRIES_H_
#define SEGREL_FUZZ_FUZZ_ENTRIES_H_

#include <cstddef>
#include <cstdint>

namespace segrel::fuzz {

// Largest decoded volume (bytes, as float32) the readers may allocate under fuzzing: 4 MiB.
inline constexpr int64_t kFuzzMaxBytes = int64_t{4} << 20;

// `data` as one NIfTI file (named .nii.gz when it starts with the gzip magic, else .nii) read by ReadNifti.
// Returns 0 (libFuzzer's "keep going").
int FuzzNifti(const uint8_t* data, size_t size);

// `data` as up to kMaxDicomFiles DICOM files (pieces separated by kDicomFileSeparator) in one folder read by
// ReadDicomFolder. Returns 0.
inline constexpr char kDicomFileSeparator[] = "#SEGREL-NEXT-FILE#";
inline constexpr int kMaxDicomFiles = 8;
int FuzzDicomFolder(const uint8_t* data, size_t size);

// `data` as one ONNX file loaded by OnnxModel::Load (imports limited to 2^20 elements per value) and, when that
// succeeds, imported for its declared input sizes (4 for open dimensions) and run once on zeros. Aborts when an
// error has no message or a graph's output disagrees with its output_sizes(). Returns 0.
int FuzzOnnx(const uint8_t* data, size_t size);

}  // namespace segrel::fuzz

#endif  // SEGREL_FUZZ_FUZZ_ENTRIES_H_
