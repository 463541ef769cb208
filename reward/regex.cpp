#define PCRE2_CODE_UNIT_WIDTH 8
#include "reward/regex.h"

#include <pcre2.h>

#include <atomic>
#include <cctype>

#include "core/error.h"
#include "core/log.h"

namespace rlft::reward {
namespace {

constexpr uint32_t kMatchLimit = 5'000'000;  // backtracking steps before a match is abandoned
constexpr uint32_t kDepthLimit = 10'000;

}  // namespace

struct Regex::Impl {
  pcre2_code* code = nullptr;
  pcre2_match_context* context = nullptr;
  mutable std::atomic<bool> warned{false};
  ~Impl() {
    if (context) pcre2_match_context_free(context);
    if (code) pcre2_code_free(code);
  }
};

Regex::Regex(const std::string& pattern, const RegexOptions& o) : impl_(std::make_unique<Impl>()), pattern_(pattern) {
  uint32_t flags = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
  if (o.case_insensitive) flags |= PCRE2_CASELESS;
  if (o.dotall) flags |= PCRE2_DOTALL;
  if (o.multiline) flags |= PCRE2_MULTILINE;
  if (o.unicode_classes) flags |= PCRE2_UCP;
  int error = 0;
  PCRE2_SIZE offset = 0;
  impl_->code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), flags, &error, &offset, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    throw Error(fmt::format("the regular expression does not compile: {} at offset {}",
                            reinterpret_cast<char*>(message), offset));
  }
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);  // a speed-up where available; fine to fail
  impl_->context = pcre2_match_context_create(nullptr);
  pcre2_set_match_limit(impl_->context, kMatchLimit);
  pcre2_set_depth_limit(impl_->context, kDepthLimit);
  uint32_t groups = 0;
  pcre2_pattern_info(impl_->code, PCRE2_INFO_CAPTURECOUNT, &groups);
  n_groups_ = static_cast<int>(groups);
}

Regex::~Regex() = default;
Regex::Regex(Regex&& other) noexcept = default;
Regex& Regex::operator=(Regex&& other) noexcept = default;

std::optional<std::vector<std::optional<std::string_view>>> Regex::match(std::string_view text, bool full) const {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  RLFT_CHECK(md != nullptr, "out of memory for a regular expression match");
  const uint32_t flags = full ? (PCRE2_ANCHORED | PCRE2_ENDANCHORED) : 0;
  const int rc =
      pcre2_match(impl_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, flags, md, impl_->context);
  std::optional<std::vector<std::optional<std::string_view>>> out;
  if (rc > 0) {
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    out.emplace();
    for (int g = 0; g <= n_groups_; ++g) {
      if (g >= rc || ov[2 * g] == PCRE2_UNSET)
        out->push_back(std::nullopt);
      else
        out->push_back(text.substr(ov[2 * g], ov[2 * g + 1] - ov[2 * g]));
    }
  } else if (rc != PCRE2_ERROR_NOMATCH && !impl_->warned.exchange(true)) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(rc, message, sizeof message);
    log::warn("regex /{}/ gave up on a {}-byte text ({}); counted as no match", pattern_, text.size(),
              reinterpret_cast<char*>(message));
  }
  pcre2_match_data_free(md);
  return out;
}

std::string Regex::escape(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !std::isalnum(u) && c != '_' && c != ' ') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace rlft::reward
