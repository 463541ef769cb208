// UTF-8 and Unicode normalisation (UAX #15) over the generated tables (unicode_tables.inc,
// looked up in unicode_data.cpp).
#include "policy/tokenizer/unicode.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace rlft::tokenizer::unicode {
namespace {

// Hangul syllable arithmetic (Unicode §3.12).
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

bool is_hangul_syllable(uint32_t cp) {
  return cp >= kSBase && cp < kSBase + kSCount;
}

/// Length of the well-formed UTF-8 sequence at s[i], or the length (>= 1) of its maximal
/// ill-formed subpart negated.
int sequence_at(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = b(i);
  if (b0 < 0x80) return 1;
  int need;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF)
    need = 1;
  else if (b0 == 0xE0)
    need = 2, lo = 0xA0;
  else if (b0 >= 0xE1 && b0 <= 0xEC)
    need = 2;
  else if (b0 == 0xED)
    need = 2, hi = 0x9F;
  else if (b0 >= 0xEE && b0 <= 0xEF)
    need = 2;
  else if (b0 == 0xF0)
    need = 3, lo = 0x90;
  else if (b0 >= 0xF1 && b0 <= 0xF3)
    need = 3;
  else if (b0 == 0xF4)
    need = 3, hi = 0x8F;
  else
    return -1;
  for (int k = 1; k <= need; ++k) {
    if (i + k >= s.size()) return -k;
    const unsigned char c = b(i + k);
    const bool ok = k == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) return -k;
  }
  return need + 1;
}

bool ascii8(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return (w & 0x8080808080808080ull) == 0;
}

// --- normalisation --------------------------------------------------------------------------

void decompose_into(uint32_t cp, bool compat, std::vector<uint32_t>& out) {
  if (is_hangul_syllable(cp)) {
    const uint32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  const Span d = decomposition(cp, compat);
  if (d.size == 0)
    out.push_back(cp);
  else
    out.insert(out.end(), d.data, d.data + d.size);
}

/// Canonical ordering: a stable sort by combining class of every run of non-starters.
void reorder(std::vector<uint32_t>& cps) {
  const std::size_t n = cps.size();
  for (std::size_t i = 1; i < n; ++i) {
    const uint8_t c = combining_class(cps[i]);
    if (c == 0) continue;
    std::size_t j = i;
    const uint32_t cp = cps[i];
    while (j > 0) {
      const uint8_t p = combining_class(cps[j - 1]);
      if (p == 0 || p <= c) break;
      cps[j] = cps[j - 1];
      --j;
    }
    cps[j] = cp;
  }
}

uint32_t compose(uint32_t a, uint32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (is_hangul_syllable(a) && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  return compose_pair(a, b);
}

/// Canonical composition of a decomposed, reordered sequence, in place.
void compose_all(std::vector<uint32_t>& cps) {
  std::size_t out = 0;
  std::ptrdiff_t starter = -1;
  for (std::size_t i = 0; i < cps.size(); ++i) {
    const uint32_t cp = cps[i];
    const uint8_t c = combining_class(cp);
    if (starter >= 0) {
      const bool adjacent = out == static_cast<std::size_t>(starter) + 1;
      if (adjacent || combining_class(cps[out - 1]) < c) {
        if (const uint32_t composite = compose(cps[static_cast<std::size_t>(starter)], cp)) {
          cps[static_cast<std::size_t>(starter)] = composite;
          continue;
        }
      }
    }
    if (c == 0) starter = static_cast<std::ptrdiff_t>(out);
    cps[out++] = cp;
  }
  cps.resize(out);
}

void normalize_segment(std::string_view seg, NormalForm form, std::vector<uint32_t>& scratch, std::string& out) {
  const bool compat = form == NormalForm::kNfkc || form == NormalForm::kNfkd;
  const bool composing = form == NormalForm::kNfc || form == NormalForm::kNfkc;
  scratch.clear();
  for (std::size_t i = 0; i < seg.size();) decompose_into(decode(seg.data(), i), compat, scratch);
  reorder(scratch);
  if (composing) compose_all(scratch);
  for (uint32_t cp : scratch) append_utf8(out, cp);
}

/// Whether `cp` may make the text differ from its normal form (a quick check that is never
/// wrong in the "no" direction).
bool needs_work(uint32_t cp, uint16_t f, NormalForm form) {
  switch (form) {
    case NormalForm::kNfc:
      return f & kNfcCheck;
    case NormalForm::kNfkc:
      return f & kNfkcCheck;
    case NormalForm::kNfd:
      return (f & kCanonical) || is_hangul_syllable(cp) || combining_class(cp) != 0;
    case NormalForm::kNfkd:
      return (f & (kCanonical | kCompat)) || is_hangul_syllable(cp) || combining_class(cp) != 0;
  }
  return true;
}

}  // namespace

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::optional<std::size_t> find_invalid_utf8(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    if (i + 8 <= n && ascii8(s.data() + i)) {
      i += 8;
      continue;
    }
    const int len = sequence_at(s, i);
    if (len < 0) return i;
    i += static_cast<std::size_t>(len);
  }
  return std::nullopt;
}

std::string replace_invalid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const int len = sequence_at(s, i);
    if (len > 0) {
      out.append(s.data() + i, static_cast<std::size_t>(len));
      i += static_cast<std::size_t>(len);
    } else {
      append_utf8(out, kReplacementChar);
      i += static_cast<std::size_t>(-len);
    }
  }
  return out;
}

bool normalize(std::string_view in, NormalForm form, std::string& out) {
  // Segments that may change run from the last code point that needs no work (a starter that
  // composes with nothing before it) to the next such code point; text outside them is copied.
  std::vector<uint32_t> scratch;
  std::string result;
  bool changed = false;
  std::size_t copied = 0;     // in[0, copied) is already in `result`
  std::size_t last_safe = 0;  // start of the last code point that needs no work
  std::size_t i = 0;
  const std::size_t n = in.size();
  while (i < n) {
    if (static_cast<unsigned char>(in[i]) < 0x80) {  // ASCII needs no work in any form
      last_safe = i++;
      continue;
    }
    const std::size_t start = i;
    const uint32_t cp = decode(in.data(), i);
    if (!needs_work(cp, flags(cp), form)) {
      last_safe = start;
      continue;
    }
    std::size_t end = i;
    const std::size_t seg_start = std::max(last_safe, copied);
    while (end < n) {
      std::size_t next = end;
      const uint32_t c = decode(in.data(), next);
      if (c < 0x80 || !needs_work(c, flags(c), form)) break;
      end = next;
    }
    if (!changed) {
      result.reserve(in.size() + in.size() / 8);
      changed = true;
    }
    result.append(in.data() + copied, seg_start - copied);
    normalize_segment(in.substr(seg_start, end - seg_start), form, scratch, result);
    copied = end;
    last_safe = end;
    i = end;
  }
  if (!changed) return false;
  result.append(in.data() + copied, n - copied);
  if (result == in) return false;
  out = std::move(result);
  return true;
}

}  // namespace rlft::tokenizer::unicode
