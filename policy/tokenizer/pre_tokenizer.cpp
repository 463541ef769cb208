// Pre-tokenizers, following Hugging Face tokenizers' pre_tokenizers/{split,byte_level,digits,
// sequence}.rs and NormalizedString::split (behaviours), re-expressed over byte ranges.
#include "policy/tokenizer/pre_tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "policy/tokenizer/json_util.h"
#include "policy/tokenizer/unicode.h"

namespace rlft::tokenizer {
namespace {

struct Piece {
  ByteRange range;
  bool is_match;
};

SplitBehavior parse_behavior(const std::string& s, const std::string& where) {
  std::string lower;
  for (char c : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "removed") return SplitBehavior::kRemoved;
  if (lower == "isolated") return SplitBehavior::kIsolated;
  if (lower == "mergedwithprevious") return SplitBehavior::kMergedWithPrevious;
  if (lower == "mergedwithnext") return SplitBehavior::kMergedWithNext;
  if (lower == "contiguous") return SplitBehavior::kContiguous;
  throw Error(
      fmt::format("{}: behavior '{}' is unknown (known: Removed, Isolated, MergedWithPrevious, "
                  "MergedWithNext, Contiguous)",
                  where, s));
}

void parse_into(const nlohmann::json& j, const std::string& where, std::vector<PreTokenizerStep>& steps) {
  const std::string type = json_type(j, where, "pre-tokenizer");
  if (type == "Sequence") {
    const nlohmann::json& list = json_member(j, "pretokenizers", where);
    RLFT_CHECK(list.is_array(), "{}.pretokenizers: expected a list", where);
    for (std::size_t i = 0; i < list.size(); ++i)
      parse_into(list[i], fmt::format("{}.pretokenizers[{}]", where, i), steps);
    return;
  }
  PreTokenizerStep step;
  if (type == "Split") {
    step.kind = PreTokenizerStep::Kind::kSplit;
    const nlohmann::json& pattern = json_member(j, "pattern", where);
    if (pattern.is_object() && pattern.contains("Regex")) {
      step.pattern = make_regex_pattern(json_string(pattern, "Regex", where + ".pattern"));
    } else if (pattern.is_object() && pattern.contains("String")) {
      step.pattern = make_literal_pattern(json_string(pattern, "String", where + ".pattern"));
    } else {
      throw Error(fmt::format("{}.pattern: expected {{\"Regex\": …}} or {{\"String\": …}}", where));
    }
    step.behavior = parse_behavior(json_string(j, "behavior", where), where + ".behavior");
    step.invert = json_bool(j, "invert", where, false);
  } else if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::Kind::kByteLevel;
    step.add_prefix_space = json_bool(j, "add_prefix_space", where, true);
    step.use_regex = json_bool(j, "use_regex", where, true);
    if (step.use_regex) step.pattern = make_regex_pattern(kGpt2Regex);
  } else if (type == "Digits") {
    step.kind = PreTokenizerStep::Kind::kDigits;
    step.individual_digits = json_bool(j, "individual_digits", where, false);
  } else {
    throw Error(
        fmt::format("{}: pre-tokenizer type '{}' is not supported by rlft (supported: Sequence, Split, "
                    "ByteLevel, Digits)",
                    where, type));
  }
  steps.push_back(std::move(step));
}

/// Every numeric code point (Rust's char::is_numeric) of text[range], one match each.
void numeric_matches(std::string_view text, ByteRange range, std::vector<ByteRange>& out) {
  std::size_t i = range.begin;
  while (i < range.end) {
    const std::size_t start = i;
    const uint32_t cp = unicode::decode(text.data(), i);
    if (unicode::flags(cp) & unicode::kRustNumeric) out.push_back({start, i});
  }
}

}  // namespace

void split_by_matches(ByteRange range, const std::vector<ByteRange>& matches, SplitBehavior behavior, bool invert,
                      std::vector<ByteRange>& out) {
  if (behavior == SplitBehavior::kIsolated && !invert) {  // the common case, without the fold
    std::size_t prev = range.begin;
    for (const ByteRange& m : matches) {
      if (prev < m.begin) out.push_back({prev, m.begin});
      if (m.begin < m.end) out.push_back(m);
      prev = m.end;
    }
    if (prev < range.end) out.push_back({prev, range.end});
    return;
  }
  std::vector<Piece> pieces;
  std::size_t prev = range.begin;
  for (const ByteRange& m : matches) {
    if (prev != m.begin) pieces.push_back({{prev, m.begin}, false});
    pieces.push_back({m, true});
    prev = m.end;
  }
  if (prev != range.end || pieces.empty()) pieces.push_back({{prev, range.end}, false});
  if (invert)
    for (Piece& p : pieces) p.is_match = !p.is_match;

  std::vector<ByteRange> kept;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Piece& p : pieces) kept.push_back(p.range);
      break;
    case SplitBehavior::kRemoved:
      for (const Piece& p : pieces)
        if (!p.is_match) kept.push_back(p.range);
      break;
    case SplitBehavior::kContiguous:
      for (const Piece& p : pieces) {
        if (p.is_match == previous_match && !kept.empty())
          kept.back().end = p.range.end;
        else
          kept.push_back(p.range);
        previous_match = p.is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Piece& p : pieces) {
        if (p.is_match && !previous_match && !kept.empty())
          kept.back().end = p.range.end;
        else
          kept.push_back(p.range);
        previous_match = p.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
        if (it->is_match && !previous_match && !kept.empty())
          kept.back().begin = it->range.begin;
        else
          kept.push_back(it->range);
        previous_match = it->is_match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
  }
  for (const ByteRange& r : kept)
    if (r.begin < r.end) out.push_back(r);
}

PreTokenizer::PreTokenizer(std::vector<PreTokenizerStep> steps) : steps_(std::move(steps)) {
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    if (steps_[i].kind != PreTokenizerStep::Kind::kByteLevel) continue;
    RLFT_CHECK(i + 1 == steps_.size(),
               "pre_tokenizer: ByteLevel is step {} of {}; rlft supports it only as the last pre-tokenizer", i + 1,
               steps_.size());
    byte_level_ = true;
  }
}

PreTokenizer PreTokenizer::from_json(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return PreTokenizer();
  std::vector<PreTokenizerStep> steps;
  parse_into(j, where, steps);
  return PreTokenizer(std::move(steps));
}

void PreTokenizer::run(std::string_view piece, Words& w) const {
  w.text = piece;
  w.ranges.clear();
  if (!piece.empty()) w.ranges.push_back({0, piece.size()});
  for (const PreTokenizerStep& step : steps_) {
    if (step.kind == PreTokenizerStep::Kind::kByteLevel && step.add_prefix_space) {
      // Every piece that does not start with a space gets one: lay the pieces out afresh.
      w.spare.clear();
      w.scratch.clear();
      for (const ByteRange& r : w.ranges) {
        const std::size_t begin = w.spare.size();
        if (w.text[r.begin] != ' ') w.spare.push_back(' ');
        w.spare.append(w.text.data() + r.begin, r.end - r.begin);
        w.scratch.push_back({begin, w.spare.size()});
      }
      std::swap(w.storage, w.spare);
      w.text = w.storage;
      std::swap(w.ranges, w.scratch);
    }
    if (step.kind == PreTokenizerStep::Kind::kByteLevel && !step.use_regex) continue;
    w.scratch.clear();
    for (const ByteRange& r : w.ranges) {
      w.matches.clear();
      if (step.kind == PreTokenizerStep::Kind::kDigits) {
        numeric_matches(w.text, r, w.matches);
        split_by_matches(r, w.matches, step.individual_digits ? SplitBehavior::kIsolated : SplitBehavior::kContiguous,
                         false, w.scratch);
        continue;
      }
      step.pattern->find_matches(w.text.substr(r.begin, r.end - r.begin), w.matches);
      for (ByteRange& m : w.matches) m.begin += r.begin, m.end += r.begin;
      const bool isolated = step.kind == PreTokenizerStep::Kind::kByteLevel;
      split_by_matches(r, w.matches, isolated ? SplitBehavior::kIsolated : step.behavior,
                       isolated ? false : step.invert, w.scratch);
    }
    std::swap(w.ranges, w.scratch);
  }
}

}  // namespace rlft::tokenizer
