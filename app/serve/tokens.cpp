#include "app/serve/tokens.h"

#include <fmt/format.h>

#include <sqlite3.h>

#include <cctype>
#include <random>

#include "core/error.h"
#include "data/feedback_hash.h"

namespace rlft::app::serve {
namespace {

constexpr std::size_t kMaxNameChars = 64;

/// 32 bytes from the OS entropy source, as 64 hex digits, prefixed so a token is
/// recognisable in a shell history or a leaked file.
std::string random_token() {
  std::random_device rd;
  std::string out = "rlft_";
  for (int i = 0; i < 8; ++i) out += fmt::format("{:08x}", rd());
  return out;
}

}  // namespace

std::string add_token(data::Store& store, const std::string& name) {
  RLFT_CHECK(!name.empty() && name.size() <= kMaxNameChars, "an annotator name must have 1 to {} characters, got '{}'",
             kMaxNameChars, name);
  for (const char c : name)
    RLFT_CHECK(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.',
               "annotator name '{}': use letters, digits, '_', '-' or '.'", name);
  const std::string token = random_token();
  sqlite::Transaction tx(store.db());
  sqlite::Statement old(store.db(), "SELECT revoked_at IS NULL FROM serve_tokens WHERE name = ?");
  old.bind(1, name);
  if (old.step()) {
    RLFT_CHECK(old.column_int(0) == 0,
               "{}: annotator '{}' has a token already (revoke it first: rlft serve token revoke {})", store.path(),
               name, name);
    sqlite::Statement del(store.db(), "DELETE FROM serve_tokens WHERE name = ?");
    del.bind(1, name).run();
  }
  sqlite::Statement q(store.db(), "INSERT INTO serve_tokens (name, token_hash, created_at) VALUES (?, ?, ?)");
  q.bind(1, name).bind(2, data::sha256_hex(token)).bind(3, data::unix_now()).run();
  tx.commit();
  return token;
}

void revoke_token(data::Store& store, const std::string& name) {
  sqlite::Statement q(store.db(), "UPDATE serve_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL");
  q.bind(1, data::unix_now()).bind(2, name).run();
  RLFT_CHECK(sqlite3_changes(store.db().handle()) == 1, "{}: no annotator '{}' with an active token", store.path(),
             name);
}

std::vector<TokenInfo> list_tokens(data::Store& store) {
  sqlite::Statement q(store.db(), "SELECT name, created_at, revoked_at IS NOT NULL FROM serve_tokens ORDER BY name");
  std::vector<TokenInfo> out;
  while (q.step()) out.push_back({q.column_text(0), q.column_double(1), q.column_int(2) != 0});
  return out;
}

std::optional<std::string> annotator_for_token(data::Store& store, const std::string& token) {
  if (token.empty() || token.size() > 256) return std::nullopt;
  sqlite::Statement q(store.db(), "SELECT name FROM serve_tokens WHERE token_hash = ? AND revoked_at IS NULL");
  q.bind(1, data::sha256_hex(token));
  if (!q.step()) return std::nullopt;
  return q.column_text(0);
}

std::string csrf_for_token(const std::string& token) {
  return data::sha256_hex("rlft serve csrf\n" + token);
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace rlft::app::serve
