// libFuzzer target: arbitrary bytes as an ONNX file (see fuzz_entries.h and fuzz/README.md).
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_entries.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return segrel::fuzz::FuzzOnnx(data, size); }
