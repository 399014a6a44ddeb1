// The checksums the segrel protocol defines (proto/segrel/v1/segrel.proto): CRC-32 of every chunk and SHA-256 of
// every uploaded file. Shared by the server, which verifies them, and the client, which computes them.
#ifndef SEGREL_PROTO_CHECKSUMS_H_
#define SEGREL_PROTO_CHECKSUMS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace segrel::proto {

// CRC-32 (ISO-HDLC, as zlib's crc32 and Python's zlib.crc32) of `data`.
uint32_t Crc32(absl::string_view data);

// Incremental SHA-256. Not thread-safe; not copyable.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view data);
  // Returns the digest as 64 lower-case hex digits. REQUIRES: called once, after the last Update.
  std::string HexDigest();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The SHA-256 of `bytes` as 64 lower-case hex digits.
std::string Sha256Of(absl::string_view bytes);

// The SHA-256 of a whole file as 64 lower-case hex digits, or "" when the file cannot be read.
std::string Sha256OfFile(const std::string& path);

}  // namespace segrel::proto

#endif  // SEGREL_PROTO_CHECKSUMS_H_
