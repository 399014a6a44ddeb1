// The upload fuzz target's entry function, shared by the libFuzzer program (fuzz/upload_fuzzer.cc, built with
// -DSEGREL_BUILD_FUZZERS=ON -DSEGREL_BUILD_SERVER=ON and clang) and by the corpus regression test
// (tests/fuzz/corpus_test.cc, built with the normal build). Kept apart from fuzz_entries.h because it needs the
// server library (and so all of core/), which the two readers' targets do not.
//
// FuzzUpload drives server/upload.h's state machine as server/service.cc's SubmitReactor does: the first message's
// metadata starts the upload in a fresh folder, every further message must be a chunk and is appended until one
// fails, and the end of the input is the client's half-close (Finish). It aborts (a crash libFuzzer reports) when
// Upload breaks a promise of its header:
//   - an error without a message, or with a code Upload does not give (InvalidArgument, NotFound,
//     FailedPrecondition, ResourceExhausted, DataLoss, Internal);
//   - a folder left behind by an upload that failed or was destroyed before a successful Finish, or removed by one
//     that finished;
//   - after a successful Finish: a file the JobSpec names that does not exist, more bytes than kFuzzUploadLimits
//     allows, or bytes on disk that differ from those the spec counts.
// Not thread-safe: one call at a time per process.
#ifndef SEGREL_FUZZ_UPLOAD_ENTRY_H_
#define SEGREL_FUZZ_UPLOAD_ENTRY_H_

#include <cstddef>
#include <cstdint>

namespace segrel::fuzz {

// The input is up to kMaxUploadPieces pieces separated by kUploadMessageSeparator. Two modes, chosen by the first
// piece:
//
// Raw (the first piece is not empty): each piece is one SubmitRequest in protobuf's binary encoding, sent in order
// whatever it holds. A piece that does not parse becomes a chunk of its bytes with a correct CRC-32, for file 0 at
// the offset the raw chunks before it add up to, so that mutated bytes still reach Append.
//
// Synthesised (the first piece is empty): the job is valid metadata for the test model (tests/fixtures/data/bundle,
// "unet-bn-test"): pieces 1, 2 and 3 are the bytes of sequences T1, T2 and FLAIR (a missing piece is an empty
// file), with their sizes and SHA-256 in the metadata. Piece 4, when there, is a plan of bytes that bends the
// upload (below); where the plan ends, the rest of the files goes in correct chunks of kUploadChunkBytes, so an
// input without a plan is a complete, valid upload. Pieces after the plan are sent afterwards as in the raw mode.
inline constexpr char kUploadMessageSeparator[] = "#SEGREL-NEXT-MESSAGE#";
inline constexpr int kMaxUploadPieces = 64;
inline constexpr size_t kUploadChunkBytes = 4096;

// The plan's first byte: changes to the synthesised metadata (bits, any combination).
inline constexpr uint8_t kTweakHugeSize = 0x01;      // T1 declares 2^63 bytes
inline constexpr uint8_t kTweakLongerSize = 0x02;    // T2 declares one byte more than it has
inline constexpr uint8_t kTweakUpperCaseSha = 0x04;  // FLAIR's SHA-256 in upper case (letter case is ignored)
inline constexpr uint8_t kTweakReference = 0x08;     // a REFERENCE file too, with T1's bytes
inline constexpr uint8_t kTweakRegion = 0x10;        // a REGION file for class 1 too, with T2's bytes
inline constexpr uint8_t kTweakReversed = 0x20;      // the files listed (and so sent) in reverse order
inline constexpr uint8_t kTweakOptions = 0x40;       // composite "epsilon-plus", priority 3, deadline 60 s
inline constexpr uint8_t kTweakDicom = 0x80;         // every sequence declared DICOM (the model has no series rules)

// Each further byte of the plan makes the next message: its low 4 bits give the chunk's length (0: the rest of the
// file; n: at most 2^(n-1) bytes), its high 4 bits what is done to it. Half the values send the chunk as a client
// should, so that mutated plans still reach the later files. The files' cursor moves on as if the chunk were right.
enum UploadChunkOp : uint8_t {
  kSendChunk = 0,       // 0 to 7: correct
  kBadCrc = 8,          // CRC-32 off by one bit
  kGap = 9,             // skips one byte: offset and data start one byte later
  kOverlap = 10,        // starts one byte early (at offset 0: offset 2^64 - 1)
  kOtherFile = 11,      // file index one too high
  kEmptyChunk = 12,     // no data (CRC-32 of nothing)
  kHugeOffset = 13,     // offset 2^63
  kDuplicate = 14,      // sent twice
  kMetadataAgain = 15,  // a second metadata message instead of the chunk
};

// Runs one input. Returns 0 (libFuzzer's "keep going").
int FuzzUpload(const uint8_t* data, size_t size);

}  // namespace segrel::fuzz

#endif  // SEGREL_FUZZ_UPLOAD_ENTRY_H_
