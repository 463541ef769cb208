#pragma once
// Small helpers every suite uses: the message of a thrown error, substring checks, whole-file
// reads. One copy here (the files of a suite share a translation unit in unity builds).

#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>

namespace rlft::test {

/// The message of the exception `fn` throws ("" when it does not throw).
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// The bytes of a file ("" when it cannot be read).
inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace rlft::test
