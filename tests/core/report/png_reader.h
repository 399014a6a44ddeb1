// Reading PNGs back in the report tests: the file's signature and IHDR size from its bytes, and its pixels
// through libpng.
#ifndef SEGREL_TESTS_CORE_REPORT_PNG_READER_H_
#define SEGREL_TESTS_CORE_REPORT_PNG_READER_H_

#include <png.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace segrel::testing {

struct PngHeader {
  bool signature_ok = false;  // the 8-byte PNG signature followed by an IHDR chunk
  uint32_t width = 0, height = 0;
};

// The header of the PNG file `path`, read byte by byte (independent of libpng).
inline PngHeader ReadPngHeader(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::vector<unsigned char> bytes(24);
  file.read(reinterpret_cast<char*>(bytes.data()), 24);
  PngHeader header;
  if (file.gcount() != 24) return header;
  constexpr unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  header.signature_ok = std::memcmp(bytes.data(), kSignature, 8) == 0 && std::memcmp(&bytes[12], "IHDR", 4) == 0;
  auto big_endian = [&](size_t at) {
    return (uint32_t{bytes[at]} << 24) | (uint32_t{bytes[at + 1]} << 16) | (uint32_t{bytes[at + 2]} << 8) |
           uint32_t{bytes[at + 3]};
  };
  header.width = big_endian(16);
  header.height = big_endian(20);
  return header;
}

// A PNG's pixels as 8-bit RGB, row 0 at the top; empty (width 0) when libpng cannot read the file.
struct RgbImage {
  uint32_t width = 0, height = 0;
  std::vector<uint8_t> pixels;

  std::array<int, 3> At(int64_t row, int64_t column) const {
    const uint8_t* pixel = &pixels[(row * width + column) * 3];
    return {pixel[0], pixel[1], pixel[2]};
  }
};

inline RgbImage ReadPngPixels(const std::string& path) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  RgbImage result;
  if (png_image_begin_read_from_file(&image, path.c_str()) == 0) return result;
  image.format = PNG_FORMAT_RGB;
  result.pixels.resize(PNG_IMAGE_SIZE(image));
  if (png_image_finish_read(&image, nullptr, result.pixels.data(), 0, nullptr) == 0) {
    png_image_free(&image);
    return RgbImage();
  }
  result.width = image.width;
  result.height = image.height;
  return result;
}

}  // namespace segrel::testing

#endif  // SEGREL_TESTS_CORE_REPORT_PNG_READER_H_
