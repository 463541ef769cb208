#pragma once
// Token ids typed on the command line ("1,2,3", "1 2 3", "[1, 2, 3]"), for `rlft model logits
// --ids`, `rlft generate --ids` and `rlft tokenize --decode`.

#include <cstdint>
#include <string>
#include <vector>

namespace rlft::app {

/// Throws UsageError "OPTION: 'x' is not a token id (non-negative integer)", and
/// "OPTION: no token ids given" for an empty list unless `allow_empty`.
std::vector<int64_t> parse_token_ids(const std::string& text, const std::string& option, bool allow_empty = false);

}  // namespace rlft::app
