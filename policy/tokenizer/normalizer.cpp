// Normalizers, following Hugging Face tokenizers' normalizers/{unicode,utils,prepend,replace,
// strip}.rs.
#include "policy/tokenizer/normalizer.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "policy/tokenizer/json_util.h"
#include "policy/tokenizer/split_pattern.h"
#include "policy/tokenizer/unicode.h"

namespace rlft::tokenizer {
namespace {

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(unicode::NormalForm form) : form_(form) {}
  bool apply(std::string_view in, std::string& out) const override { return unicode::normalize(in, form_, out); }

 private:
  unicode::NormalForm form_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  bool apply(std::string_view in, std::string& out) const override {
    bool changed = false;
    std::string current, next;
    for (const auto& p : parts_) {
      if (p->apply(changed ? std::string_view(current) : in, next)) {
        std::swap(current, next);
        changed = true;
      }
    }
    if (changed) out = std::move(current);
    return changed;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  bool apply(std::string_view in, std::string& out) const override {
    if (in.empty() || prefix_.empty()) return false;
    out = prefix_;
    out.append(in);
    return true;
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::unique_ptr<SplitPattern> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  bool apply(std::string_view in, std::string& out) const override {
    std::vector<ByteRange> matches;
    pattern_->find_matches(in, matches);
    if (matches.empty()) return false;
    std::string result;
    std::size_t prev = 0;
    for (const ByteRange& m : matches) {
      result.append(in.data() + prev, m.begin - prev);
      result += content_;
      prev = m.end;
    }
    result.append(in.data() + prev, in.size() - prev);
    if (result == in) return false;
    out = std::move(result);
    return true;
  }

 private:
  std::unique_ptr<SplitPattern> pattern_;
  std::string content_;
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  bool apply(std::string_view in, std::string& out) const override {
    std::size_t b = 0, e = in.size();
    if (left_) {
      while (b < e) {
        std::size_t next = b;
        if (!(unicode::flags(unicode::decode(in.data(), next)) & unicode::kRustSpace)) break;
        b = next;
      }
    }
    if (right_) {
      while (e > b) {
        const std::size_t start = unicode::previous_start(in, e);
        std::size_t next = start;
        if (!(unicode::flags(unicode::decode(in.data(), next)) & unicode::kRustSpace)) break;
        e = start;
      }
    }
    if (b == 0 && e == in.size()) return false;
    out.assign(in.data() + b, e - b);
    return true;
  }

 private:
  bool left_, right_;
};

}  // namespace

std::unique_ptr<Normalizer> Normalizer::from_json(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = json_type(j, where, "normalizer");
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::kNfc);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::kNfd);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::kNfkc);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::kNfkd);
  if (type == "Sequence") {
    const nlohmann::json& list = json_member(j, "normalizers", where);
    RLFT_CHECK(list.is_array(), "{}.normalizers: expected a list", where);
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (std::size_t i = 0; i < list.size(); ++i) {
      auto p = from_json(list[i], fmt::format("{}.normalizers[{}]", where, i));
      if (p) parts.push_back(std::move(p));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(json_string(j, "prepend", where));
  if (type == "Replace") {
    const nlohmann::json& pattern = json_member(j, "pattern", where);
    std::unique_ptr<SplitPattern> p;
    if (pattern.is_object() && pattern.contains("String"))
      p = make_literal_pattern(json_string(pattern, "String", where + ".pattern"));
    else if (pattern.is_object() && pattern.contains("Regex"))
      p = make_regex_pattern(json_string(pattern, "Regex", where + ".pattern"));
    else
      throw Error(fmt::format("{}.pattern: expected {{\"String\": …}} or {{\"Regex\": …}}", where));
    return std::make_unique<ReplaceNormalizer>(std::move(p), json_string(j, "content", where));
  }
  if (type == "Strip")
    return std::make_unique<StripNormalizer>(json_bool(j, "strip_left", where, true),
                                             json_bool(j, "strip_right", where, true));
  throw Error(
      fmt::format("{}: normalizer type '{}' is not supported by rlft (supported: NFC, NFD, NFKC, NFKD, "
                  "Sequence, Prepend, Replace, Strip)",
                  where, type));
}

std::string_view normalize_piece(const Normalizer* n, std::string_view in, std::string& storage) {
  if (n && n->apply(in, storage)) return storage;
  return in;
}

}  // namespace rlft::tokenizer
