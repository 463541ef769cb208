#pragma once
// Annotators' sign-in tokens for `rlft serve` (table serve_tokens, migration 2 → 3 in
// data/store.cpp). A token is shown once, when `rlft serve token add NAME` creates it; the
// store keeps only its SHA-256, so a copy of the store does not let anyone sign in.

#include <optional>
#include <string>
#include <vector>

#include "data/store.h"

namespace rlft::app::serve {

struct TokenInfo {
  std::string name;       ///< the annotator's name, recorded with every label they give
  double created_at = 0;  ///< unix seconds
  bool revoked = false;
};

/// Creates a token for annotator `name` and returns it (the only time it is visible).
/// Throws rlft::Error when the name is empty, too long, or has an active token already.
std::string add_token(data::Store& store, const std::string& name);
/// Revokes `name`'s token; throws when there is no such annotator.
void revoke_token(data::Store& store, const std::string& name);
std::vector<TokenInfo> list_tokens(data::Store& store);

/// The annotator a presented token belongs to; nullopt for an unknown or revoked token.
std::optional<std::string> annotator_for_token(data::Store& store, const std::string& token);

/// The CSRF value that goes with a signed-in token (derived, so nothing to keep per session).
std::string csrf_for_token(const std::string& token);

/// Equality that does not stop at the first differing byte.
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace rlft::app::serve
