// Split patterns: hand-written matchers for the known pre-tokenizer regexes, PCRE2 for others.
//
// Each hand-written matcher answers "does the regex match at byte i, and where does the match
// end", following Oniguruma's leftmost-first alternation and greedy backtracking for that
// particular regex; find_matches() then scans like find_iter (try at i; on failure move one code
// point on). Comments spell out why each shortcut equals the backtracking result.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "policy/tokenizer/split_pattern.h"

#include <pcre2.h>

#include <array>
#include <cstdint>

#include "core/error.h"
#include "policy/tokenizer/unicode.h"

namespace rlft::tokenizer {

const char* const kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {

const char* const kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kDeepSeekDigitsRegex = R"(\p{N}{1,3})";
const char* const kDeepSeekCjkRegex = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+";
const char* const kDeepSeekWordsRegex =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

constexpr std::size_t kNoMatch = static_cast<std::size_t>(-1);
constexpr uint16_t kL = unicode::kLetter, kN = unicode::kNumber, kM = unicode::kMark, kP = unicode::kPunctuation,
                   kS = unicode::kSymbol, kSpace = unicode::kSpace;

/// Flags of the ASCII code points, looked up without the two-stage table.
const std::array<uint16_t, 128>& ascii_flags() {
  static const std::array<uint16_t, 128> table = [] {
    std::array<uint16_t, 128> t{};
    for (uint32_t c = 0; c < 128; ++c) t[c] = unicode::flags(c);
    return t;
  }();
  return table;
}

/// A piece of valid UTF-8 with code point access.
struct Text {
  const char* s;
  std::size_t n;
  const std::array<uint16_t, 128>& ascii = ascii_flags();

  /// The code point at i (< n); `next` receives the byte after it.
  uint32_t at(std::size_t i, std::size_t& next) const {
    next = i;
    return unicode::decode(s, next);
  }
  uint16_t flags(uint32_t cp) const { return cp < 128 ? ascii[cp] : unicode::flags(cp); }
  /// End of the run of code points from i whose flags meet `mask`.
  std::size_t scan(std::size_t i, uint16_t mask) const {
    while (i < n) {
      const auto b = static_cast<unsigned char>(s[i]);
      if (b < 0x80) {
        if (!(ascii[b] & mask)) break;
        ++i;
        continue;
      }
      std::size_t next;
      if (!(flags(at(i, next)) & mask)) break;
      i = next;
    }
    return i;
  }
  /// End of the run from i of code points that meet none of `mask` (and are not `also_not`).
  std::size_t scan_not(std::size_t i, uint16_t mask) const {
    while (i < n) {
      const auto b = static_cast<unsigned char>(s[i]);
      if (b < 0x80) {
        if (ascii[b] & mask) break;
        ++i;
        continue;
      }
      std::size_t next;
      if (flags(at(i, next)) & mask) break;
      i = next;
    }
    return i;
  }
  std::size_t scan_newlines(std::size_t i) const {
    while (i < n && (s[i] == '\r' || s[i] == '\n')) ++i;
    return i;
  }
};

/// `\s*[\r\n]+|\s+(?!\S)|\s+` (with_newlines) or `\s+(?!\S)|\s+` at i, where i starts a \s.
std::size_t match_whitespace(const Text& t, std::size_t i, bool with_newlines) {
  std::size_t j = i, last_start = i, after_last_newline = kNoMatch;
  int count = 0;
  while (j < t.n) {
    std::size_t next;
    const uint32_t c = t.at(j, next);
    if (!(t.flags(c) & kSpace)) break;
    if (c == '\r' || c == '\n') after_last_newline = next;
    last_start = j;
    j = next;
    ++count;
  }
  // \s*[\r\n]+: \s* backs off from the end of the run to the last CR/LF, and [\r\n]+ cannot
  // run past it (the next CR/LF would be a later one).
  if (with_newlines && after_last_newline != kNoMatch) return after_last_newline;
  // \s+(?!\S): the whole run at the end of the text; else one code point less, whose own
  // last code point is then followed by a space.
  if (j == t.n) return j;
  if (count >= 2) return last_start;
  return j;  // \s+
}

/// ASCII lower case of the letters that the contractions use, with U+017F (long s), which
/// Oniguruma's case-insensitive matching folds to 's' (measured on the reference).
uint32_t fold_contraction(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c == 0x017F) return 's';
  return c;
}

/// 's|'t|'re|'ve|'m|'ll|'d at i (s[i] == '\''), case-insensitive or not.
std::size_t match_contraction(const Text& t, std::size_t i, bool ignore_case) {
  if (i + 1 >= t.n) return kNoMatch;
  std::size_t n1, n2;
  uint32_t c1 = t.at(i + 1, n1);
  if (ignore_case) c1 = fold_contraction(c1);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return n1;
  if ((c1 == 'r' || c1 == 'v' || c1 == 'l') && n1 < t.n) {
    uint32_t c2 = t.at(n1, n2);
    if (ignore_case) c2 = fold_contraction(c2);
    if ((c1 == 'r' || c1 == 'v') && c2 == 'e') return n2;
    if (c1 == 'l' && c2 == 'l') return n2;
  }
  return kNoMatch;
}

// ---- the matchers ------------------------------------------------------------------------------

/// Qwen2 (max_digits 1) and Llama-3 (max_digits 3):
/// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,k}| ?[^\s\p{L}\p{N}]+[\r\n]*|
/// \s*[\r\n]+|\s+(?!\S)|\s+
std::size_t match_llama3_family(const Text& t, std::size_t i, int max_digits) {
  std::size_t n1;
  const uint32_t c0 = t.at(i, n1);
  const uint16_t f0 = t.flags(c0);
  if (c0 == '\'') {
    const std::size_t e = match_contraction(t, i, true);
    if (e != kNoMatch) return e;
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+: with the optional char when c1 is a letter; else letters from c0.
  if (f0 & kL) return t.scan(n1, kL);
  if (!(f0 & kN) && c0 != '\r' && c0 != '\n' && n1 < t.n) {
    std::size_t n2;
    if (t.flags(t.at(n1, n2)) & kL) return t.scan(n2, kL);
  }
  if (f0 & kN) {
    std::size_t e = n1;
    for (int k = 1; k < max_digits && e < t.n; ++k) {
      std::size_t next;
      if (!(t.flags(t.at(e, next)) & kN)) break;
      e = next;
    }
    return e;
  }
  // ' '?[^\s\p{L}\p{N}]+[\r\n]*
  const uint16_t word_or_space = kSpace | kL | kN;
  if (c0 == ' ' && n1 < t.n) {
    std::size_t n2;
    if (!(t.flags(t.at(n1, n2)) & word_or_space)) return t.scan_newlines(t.scan_not(n2, word_or_space));
  }
  if (!(f0 & word_or_space)) return t.scan_newlines(t.scan_not(n1, word_or_space));
  return match_whitespace(t, i, true);  // c0 is a space here
}

/// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
std::size_t match_gpt2(const Text& t, std::size_t i) {
  std::size_t n1;
  const uint32_t c0 = t.at(i, n1);
  const uint16_t f0 = t.flags(c0);
  if (c0 == '\'') {
    const std::size_t e = match_contraction(t, i, false);
    if (e != kNoMatch) return e;
  }
  const uint16_t word_or_space = kSpace | kL | kN;
  if (c0 == ' ' && n1 < t.n) {
    std::size_t n2;
    const uint16_t f1 = t.flags(t.at(n1, n2));
    if (f1 & kL) return t.scan(n2, kL);
    if (f1 & kN) return t.scan(n2, kN);
    if (!(f1 & word_or_space)) return t.scan_not(n2, word_or_space);
  }
  if (f0 & kL) return t.scan(n1, kL);
  if (f0 & kN) return t.scan(n1, kN);
  if (!(f0 & word_or_space)) return t.scan_not(n1, word_or_space);
  return match_whitespace(t, i, false);
}

/// DeepSeek-V3's first regex: \p{N}{1,3}
std::size_t match_deepseek_digits(const Text& t, std::size_t i) {
  std::size_t e = i;
  for (int k = 0; k < 3 && e < t.n; ++k) {
    std::size_t next;
    if (!(t.flags(t.at(e, next)) & kN)) break;
    e = next;
  }
  return e == i ? kNoMatch : e;
}

/// DeepSeek-V3's second regex: [一-龥぀-ゟ゠-ヿ]+
bool is_deepseek_cjk(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x3040 && c <= 0x30FF);
}
std::size_t match_deepseek_cjk(const Text& t, std::size_t i) {
  std::size_t e = i;
  while (e < t.n) {
    std::size_t next;
    if (!is_deepseek_cjk(t.at(e, next))) break;
    e = next;
  }
  return e == i ? kNoMatch : e;
}

/// DeepSeek-V3's third regex:
/// [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
/// ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
bool is_ascii_punct(uint32_t c) {
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
}
bool is_ascii_letter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
std::size_t match_deepseek_words(const Text& t, std::size_t i) {
  std::size_t n1;
  const uint32_t c0 = t.at(i, n1);
  const uint16_t f0 = t.flags(c0);
  if (is_ascii_punct(c0) && n1 < t.n && is_ascii_letter(t.s[n1])) {
    std::size_t e = n1 + 1;
    while (e < t.n && is_ascii_letter(t.s[e])) ++e;
    return e;
  }
  // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+: the optional char is taken when c1 is a letter or
  // mark; otherwise the run starts at c0 (a mark may stand alone: it is both).
  const uint16_t letter_or_mark = kL | kM;
  if (!(f0 & (kL | kP | kS)) && c0 != '\r' && c0 != '\n' && n1 < t.n) {
    std::size_t n2;
    if (t.flags(t.at(n1, n2)) & letter_or_mark) return t.scan(n2, letter_or_mark);
  }
  if (f0 & letter_or_mark) return t.scan(n1, letter_or_mark);
  const uint16_t punct_or_symbol = kP | kS;
  if (c0 == ' ' && n1 < t.n) {
    std::size_t n2;
    if (t.flags(t.at(n1, n2)) & punct_or_symbol) return t.scan_newlines(t.scan(n2, punct_or_symbol));
  }
  if (f0 & punct_or_symbol) return t.scan_newlines(t.scan(n1, punct_or_symbol));
  if (f0 & kSpace) return match_whitespace(t, i, true);
  return kNoMatch;
}

// ---- patterns ----------------------------------------------------------------------------------

using MatchFn = std::size_t (*)(const Text&, std::size_t);

class HandWrittenPattern final : public SplitPattern {
 public:
  HandWrittenPattern(MatchFn fn, std::string name) : fn_(fn), name_(std::move(name)) {}
  void find_matches(std::string_view text, std::vector<ByteRange>& out) const override {
    const Text t{text.data(), text.size()};
    std::size_t i = 0;
    while (i < t.n) {
      const std::size_t e = fn_(t, i);
      if (e != kNoMatch) {
        out.push_back({i, e});
        i = e;
      } else {
        i += unicode::sequence_length(static_cast<unsigned char>(t.s[i]));
      }
    }
  }
  std::string engine() const override { return name_; }

 private:
  MatchFn fn_;
  std::string name_;
};

class LiteralPattern final : public SplitPattern {
 public:
  explicit LiteralPattern(std::string literal) : literal_(std::move(literal)) {}
  void find_matches(std::string_view text, std::vector<ByteRange>& out) const override {
    if (literal_.empty()) return;
    std::size_t pos = 0;
    while ((pos = text.find(literal_, pos)) != std::string_view::npos) {
      out.push_back({pos, pos + literal_.size()});
      pos += literal_.size();
    }
  }
  std::string engine() const override { return "literal"; }

 private:
  std::string literal_;
};

class Pcre2Pattern final : public SplitPattern {
 public:
  explicit Pcre2Pattern(const std::string& regex) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex.data()), regex.size(), PCRE2_UTF | PCRE2_UCP, &error,
                          &offset, nullptr);
    if (!code_) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      throw Error(fmt::format("Split regex '{}' does not compile at offset {}: {}", regex, offset,
                              reinterpret_cast<const char*>(message)));
    }
    jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
  }
  ~Pcre2Pattern() override { pcre2_code_free(code_); }
  Pcre2Pattern(const Pcre2Pattern&) = delete;
  Pcre2Pattern& operator=(const Pcre2Pattern&) = delete;

  void find_matches(std::string_view text, std::vector<ByteRange>& out) const override {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    std::size_t pos = 0, last_end = kNoMatch;
    while (pos <= text.size()) {
      int rc = pcre2_match(code_, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre2_match(code_, subject, text.size(), pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        pcre2_match_data_free(md);
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof message);
        throw Error(fmt::format("Split regex failed to match: {}", reinterpret_cast<const char*>(message)));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      const std::size_t b = ov[0], e = ov[1];
      if (b == e) {
        // An empty match: reported unless it touches the previous match (find_iter), then
        // the search moves one code point on.
        if (b != last_end) out.push_back({b, e});
        if (b >= text.size()) break;
        pos = b + unicode::sequence_length(static_cast<unsigned char>(text[b]));
      } else {
        out.push_back({b, e});
        pos = e;
      }
      last_end = e;
    }
    pcre2_match_data_free(md);
  }
  std::string engine() const override { return jit_ ? "pcre2-jit" : "pcre2"; }

 private:
  pcre2_code* code_ = nullptr;
  bool jit_ = false;
};

/// The regex with literal CR / LF written as the escapes \r / \n (DeepSeek-V3's file has
/// them literally; Qwen2's escaped): one spelling to compare with.
std::string canonical_regex(const std::string& regex) {
  std::string out;
  out.reserve(regex.size());
  for (char c : regex) {
    if (c == '\r')
      out += "\\r";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::size_t match_qwen2(const Text& t, std::size_t i) {
  return match_llama3_family(t, i, 1);
}
std::size_t match_llama3(const Text& t, std::size_t i) {
  return match_llama3_family(t, i, 3);
}

}  // namespace

std::unique_ptr<SplitPattern> make_regex_pattern(const std::string& regex) {
  const std::string r = canonical_regex(regex);
  if (r == kQwen2Regex) return std::make_unique<HandWrittenPattern>(match_qwen2, "qwen2");
  if (r == kLlama3Regex) return std::make_unique<HandWrittenPattern>(match_llama3, "llama3");
  if (r == kGpt2Regex) return std::make_unique<HandWrittenPattern>(match_gpt2, "gpt2");
  if (r == kDeepSeekDigitsRegex)
    return std::make_unique<HandWrittenPattern>(match_deepseek_digits, "deepseek-v3-digits");
  if (r == kDeepSeekCjkRegex) return std::make_unique<HandWrittenPattern>(match_deepseek_cjk, "deepseek-v3-cjk");
  if (r == kDeepSeekWordsRegex) return std::make_unique<HandWrittenPattern>(match_deepseek_words, "deepseek-v3-words");
  return std::make_unique<Pcre2Pattern>(regex);
}

std::unique_ptr<SplitPattern> make_pcre2_pattern(const std::string& regex) {
  return std::make_unique<Pcre2Pattern>(regex);
}

std::unique_ptr<SplitPattern> make_literal_pattern(const std::string& literal) {
  return std::make_unique<LiteralPattern>(literal);
}

}  // namespace rlft::tokenizer
