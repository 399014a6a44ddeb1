// libFuzzer target: arbitrary bytes as the messages of one Submit stream (see upload_entry.h and fuzz/README.md).
#include <cstddef>
#include <cstdint>

#include "fuzz/upload_entry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return segrel::fuzz::FuzzUpload(data, size); }
