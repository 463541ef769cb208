#pragma once
// Reading the float32 .npy files `rlft model logits` writes (format 1.0, little-endian '<f4',
// C order). Throws std::runtime_error naming the file for anything else.

#include <ATen/ATen.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace rlft::test {

inline at::Tensor read_npy_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto fail = [&](const std::string& why) { throw std::runtime_error(path + ": " + why); };
  if (data.size() <= 10 || data.compare(0, 6, "\x93NUMPY") != 0) fail("not a .npy file");
  const size_t header_len = static_cast<unsigned char>(data[8]) | (static_cast<unsigned char>(data[9]) << 8);
  const std::string header = data.substr(10, header_len);
  if (header.find("'descr': '<f4'") == std::string::npos) fail("not float32: " + header);
  std::vector<int64_t> shape;
  for (size_t i = header.find("'shape': (") + 10; header[i] != ')';) {
    size_t used = 0;
    shape.push_back(std::stoll(header.substr(i), &used));
    i += used;
    while (header[i] == ',' || header[i] == ' ') ++i;
  }
  const size_t offset = 10 + header_len;
  auto t = at::empty(shape, at::kFloat);
  if (data.size() - offset != static_cast<size_t>(t.numel()) * 4) fail("data size disagrees with the shape");
  std::memcpy(t.data_ptr(), data.data() + offset, data.size() - offset);
  return t;
}

}  // namespace rlft::test
