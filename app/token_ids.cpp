#include "app/token_ids.h"

#include <fmt/format.h>

#include <sstream>

#include "core/error.h"

namespace rlft::app {

std::vector<int64_t> parse_token_ids(const std::string& text, const std::string& option, bool allow_empty) {
  std::string s = text;
  for (char& c : s)
    if (c == ',' || c == '[' || c == ']') c = ' ';
  std::istringstream in(s);
  std::vector<int64_t> ids;
  for (std::string word; in >> word;) {
    std::size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || v < 0)
      throw UsageError(fmt::format("{}: '{}' is not a token id (non-negative integer)", option, word));
    ids.push_back(v);
  }
  if (ids.empty() && !allow_empty) throw UsageError(fmt::format("{}: no token ids given", option));
  return ids;
}

}  // namespace rlft::app
