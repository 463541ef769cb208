// Jinja2's builtin filters (jinja2/filters.py) with transformers' tojson, each with the
// semantics of its Python original: what it returns (generators included: |select, |map,
// |batch … give one-shot iterators, as in Jinja2), its defaults, and its errors.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "policy/tokenizer/jinja/ast.h"
#include "policy/tokenizer/jinja/methods.h"
#include "policy/tokenizer/jinja/ops.h"
#include "policy/tokenizer/jinja/pystr.h"
#include "policy/tokenizer/jinja/render.h"

namespace rlft::tokenizer::jinja {

namespace {

// soft_str(): a string stays itself (Markup included), anything else becomes str(value).
Value filter_soft_str(const Value& v) {
  return v.is_string() ? v : Value::string(to_str(v));
}

// A string result that keeps the input's Markup-ness (markupsafe's str methods return Markup).
Value filter_same_kind(const Value& input, std::string text) {
  return Value::string(std::move(text), input.is_markup());
}

// Jinja2's make_attrgetter: "a.b.0" looked up part by part with environment.getitem.
Value filter_attr_path(const Value& item, const Value& attribute, const Value* default_value = nullptr) {
  Value v = item;
  if (attribute.is_none()) return v;
  if (!attribute.is_string()) {
    v = get_item(v, attribute);
    if (default_value && v.is_undefined()) v = *default_value;
    return v;
  }
  for (const std::string& part : pystr::split(attribute.str(), std::string("."), -1, false)) {
    const bool digits =
        !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    v = get_item(v, digits ? Value::integer(std::stoll(part)) : Value::string(part));
    if (default_value && v.is_undefined()) v = *default_value;
  }
  return v;
}

// ignore_case(): lower-case strings for case-insensitive sort / unique / min / max keys.
Value filter_ignore_case(const Value& v) {
  return v.is_string() ? Value::string(pystr::lower(v.str())) : v;
}

Value filter_iterator(ValueList items) {
  return Value::iterator(std::move(items), "generator");
}

bool filter_bool_arg(const std::optional<Value>& v) {
  return v && v->truthy();
}

// --- string filters ------------------------------------------------------------------------------

Value filter_upper(Interpreter&, const Value& v, CallArgs& args) {
  bind_args("upper", args, {}, 0);
  const Value s = filter_soft_str(v);
  return filter_same_kind(s, pystr::upper(s.str()));
}

Value filter_lower(Interpreter&, const Value& v, CallArgs& args) {
  bind_args("lower", args, {}, 0);
  const Value s = filter_soft_str(v);
  return filter_same_kind(s, pystr::lower(s.str()));
}

Value filter_capitalize(Interpreter&, const Value& v, CallArgs& args) {
  bind_args("capitalize", args, {}, 0);
  const Value s = filter_soft_str(v);
  return filter_same_kind(s, pystr::capitalize(s.str()));
}

// "".join(item[0].upper() + item[1:].lower() for item in re.split(r"([-\s({\[<]+)", s) if item)
Value filter_title(Interpreter&, const Value& v, CallArgs& args) {
  bind_args("title", args, {}, 0);
  const std::u32string u = pystr::decode(filter_soft_str(v).str());
  auto is_break = [](char32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || pystr::is_space(c);
  };
  std::string out;
  std::size_t i = 0;
  while (i < u.size()) {
    const bool brk = is_break(u[i]);
    std::size_t j = i;
    while (j < u.size() && is_break(u[j]) == brk) ++j;
    const std::u32string_view piece = std::u32string_view(u).substr(i, j - i);
    out += pystr::upper(pystr::encode(piece.substr(0, 1)));
    out += pystr::lower(pystr::encode(piece.substr(1)));
    i = j;
  }
  return Value::string(std::move(out));
}

Value filter_trim(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("trim", args, {"chars"}, 0);
  std::optional<std::string> chars;
  if (a[0] && !a[0]->is_none()) chars = str_arg(*a[0], "trim");
  const Value s = filter_soft_str(v);
  return filter_same_kind(s, pystr::strip(s.str(), chars, true, true));
}

Value filter_replace(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("replace", args, {"old", "new", "count"}, 2);
  const int64_t count = a[2] && !a[2]->is_none() ? int_arg(*a[2], "replace") : -1;
  return Value::string(pystr::replace(to_str(v), to_str(*a[0]), to_str(*a[1]), count));
}

Value filter_center(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("center", args, {"width"}, 0);
  const Value s = filter_soft_str(v);
  CallArgs inner{{a[0].value_or(Value::integer(80))}, {}};
  return filter_same_kind(s, call_method(Value::string(s.str()), "center", inner)->str());
}

Value filter_indent(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("indent", args, {"width", "first", "blank"}, 0);
  std::string indention;
  const Value width = a[0].value_or(Value::integer(4));
  if (width.is_string()) {
    indention = width.str();
  } else {
    const int64_t n = int_arg(width, "indent");
    indention = std::string(static_cast<std::size_t>(std::max<int64_t>(0, n)), ' ');
  }
  if (!v.is_string()) {  // Jinja2 runs `s += "\n"; s.splitlines()` on whatever it is given
    if (v.is_undefined()) v.fail_undefined();
    if (v.is_list()) throw_py("AttributeError", "'list' object has no attribute 'splitlines'");
    if (v.is_tuple()) throw_py("TypeError", "can only concatenate tuple (not \"str\") to tuple");
    throw_py("TypeError", fmt::format("unsupported operand type(s) for +=: '{}' and 'str'", v.type_name()));
  }
  const std::vector<std::string> lines = pystr::splitlines(v.str() + "\n", false);
  std::string rv;
  if (filter_bool_arg(a[2])) {
    for (std::size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + indention : "") + lines[i];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (std::size_t i = 1; i < lines.size(); ++i) rv += "\n" + (lines[i].empty() ? "" : indention + lines[i]);
  }
  if (filter_bool_arg(a[1])) rv = indention + rv;
  return filter_same_kind(v, std::move(rv));
}

Value filter_truncate(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("truncate", args, {"length", "killwords", "end", "leeway"}, 0);
  const int64_t length = a[0] ? int_arg(*a[0], "truncate") : 255;
  const std::string end = a[2] ? str_arg(*a[2], "truncate") : "...";
  const int64_t leeway = a[3] && !a[3]->is_none() ? int_arg(*a[3], "truncate") : 5;
  const auto end_len = pystr::length(end);
  if (length < end_len) throw_py("AssertionError", fmt::format("expected length >= {}, got {}", end_len, length));
  if (leeway < 0) throw_py("AssertionError", fmt::format("expected leeway >= 0, got {}", leeway));
  if (jinja::length(v) <= length + leeway) return v;  // anything short enough comes back as it is
  if (!v.is_string()) {
    if (filter_bool_arg(a[1]) && (v.is_list() || v.is_tuple()))
      throw_py("TypeError", fmt::format("can only concatenate {} (not \"str\") to {}", v.type_name(), v.type_name()));
    throw_py("unsupported", fmt::format("truncate of a {}", v.type_name()));
  }
  const std::u32string s = pystr::decode(v.str());
  const std::string head = pystr::encode(std::u32string_view(s).substr(0, static_cast<std::size_t>(length - end_len)));
  if (filter_bool_arg(a[1])) return Value::string(head + end);
  const std::size_t space = head.rfind(' ');
  return Value::string((space == std::string::npos ? head : head.substr(0, space)) + end);
}

Value filter_wordcount(Interpreter&, const Value& v, CallArgs& args) {
  bind_args("wordcount", args, {}, 0);
  const std::string s = to_str(v);
  int64_t n = 0;
  bool in_word = false;
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) throw_py("unsupported", "wordcount of non-ASCII text");
    const bool w = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::integer(n);
}

Value filter_format(Interpreter&, const Value& v, CallArgs& args) {
  if (!args.args.empty() && !args.kwargs.empty())
    throw_py("FilterArgumentError", "can't handle positional and keyword arguments at the same time");
  if (!args.kwargs.empty()) {
    Dict d;
    for (auto& [k, x] : args.kwargs) d.set(Value::string(k), x);
    return Value::string(percent_format(to_str(v), Value::dict(std::move(d))));
  }
  return Value::string(percent_format(to_str(v), Value::tuple(args.args)));
}

Value filter_string(Interpreter&, const Value& v, CallArgs& args) {
  bind_args("string", args, {}, 0);
  return filter_soft_str(v);
}

Value filter_safe(Interpreter&, const Value& v, CallArgs& args) {
  bind_args("safe", args, {}, 0);
  return Value::string(to_str(v), true);
}

Value filter_escape(Interpreter&, const Value& v, CallArgs& args) {
  bind_args("escape", args, {}, 0);
  if (v.is_markup()) return v;
  return Value::string(html_escape(to_str(v)), true);
}

Value filter_forceescape(Interpreter&, const Value& v, CallArgs& args) {
  bind_args("forceescape", args, {}, 0);
  return Value::string(html_escape(to_str(v)), true);
}

// transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None,
// sort_keys=False).
Value filter_tojson(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"}, 0);
  JsonDumpOptions o;
  o.ensure_ascii = filter_bool_arg(a[0]);
  if (a[1] && !a[1]->is_none()) {
    if (a[1]->is_string()) {
      o.indent = a[1]->str();
    } else {
      o.indent = std::string(static_cast<std::size_t>(std::max<int64_t>(0, int_arg(*a[1], "tojson indent"))), ' ');
    }
  }
  if (a[2] && !a[2]->is_none()) {
    const ValueList seps = iterate(*a[2]);
    if (seps.size() != 2) throw_py("ValueError", "separators must be a pair (item_separator, key_separator)");
    o.separators = std::make_pair(str_arg(seps[0], "tojson separators"), str_arg(seps[1], "tojson separators"));
  }
  o.sort_keys = filter_bool_arg(a[3]);
  return Value::string(json_dumps(v, o));
}

// --- conversions ---------------------------------------------------------------------------------

// Python's int(text, base) for a str; nullopt where Python raises ValueError.
std::optional<int64_t> filter_parse_int(std::string text, int base) {
  text = pystr::strip(text, std::nullopt, true, true);
  bool neg = false;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    neg = text[0] == '-';
    text.erase(0, 1);
  }
  if (text.size() > 2 && text[0] == '0') {
    const char p = static_cast<char>(text[1] | 0x20);
    const int prefix_base = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
    if (prefix_base && (base == prefix_base || base == 0)) {
      text.erase(0, 2);
      if (!text.empty() && text[0] == '_') text.erase(0, 1);
      base = prefix_base;
    }
  }
  if (base == 0) base = 10;
  std::string digits;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '_') {
      if (i == 0 || i + 1 == text.size() || text[i + 1] == '_') return std::nullopt;
      continue;
    }
    digits.push_back(text[i]);
  }
  if (digits.empty()) return std::nullopt;
  uint64_t value = 0;
  const auto res = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (res.ec == std::errc::result_out_of_range) throw_py("unsupported", "an integer beyond 64 bits");
  if (res.ec != std::errc() || res.ptr != digits.data() + digits.size()) return std::nullopt;
  if (value > static_cast<uint64_t>(INT64_MAX)) throw_py("unsupported", "an integer beyond 64 bits");
  return neg ? -static_cast<int64_t>(value) : static_cast<int64_t>(value);
}

// Python's float(text); nullopt where Python raises ValueError.
std::optional<double> filter_parse_float(std::string text) {
  text = pystr::strip(text, std::nullopt, true, true);
  std::string lower = pystr::lower(text);
  std::string body = lower;
  double sign = 1;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
    sign = body[0] == '-' ? -1 : 1;
    body.erase(0, 1);
  }
  if (body == "inf" || body == "infinity") return sign * INFINITY;
  if (body == "nan") return NAN;
  std::string clean;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '_') {
      const bool ok = i > 0 && i + 1 < text.size() && std::isdigit(static_cast<unsigned char>(text[i - 1])) &&
                      std::isdigit(static_cast<unsigned char>(text[i + 1]));
      if (!ok) return std::nullopt;
      continue;
    }
    if (!std::strchr("0123456789+-.eE", text[i])) return std::nullopt;
    clean.push_back(text[i]);
  }
  if (clean.empty()) return std::nullopt;
  const char* b = clean.data();
  if (*b == '+') ++b;
  double d = 0;
  const auto res = std::from_chars(b, clean.data() + clean.size(), d);
  if (res.ec != std::errc() || res.ptr != clean.data() + clean.size()) return std::nullopt;
  return d;
}

Value filter_int(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("int", args, {"default", "base"}, 0);
  const Value fallback = a[0].value_or(Value::integer(0));
  const int64_t base = a[1] ? int_arg(*a[1], "int") : 10;
  if (v.is_undefined()) v.fail_undefined();
  if (v.is_int() || v.is_bool()) return Value::integer(v.as_int());
  if (v.is_float()) {
    const double d = v.as_double();
    if (std::isinf(d)) throw_py("OverflowError", "cannot convert float infinity to integer");
    if (std::isnan(d)) return fallback;
    if (std::fabs(d) >= 9.2e18) throw_py("unsupported", "an integer beyond 64 bits");
    return Value::integer(static_cast<int64_t>(std::trunc(d)));
  }
  if (v.is_string()) {
    if (auto i = filter_parse_int(v.str(), static_cast<int>(base))) return Value::integer(*i);
    if (auto d = filter_parse_float(v.str())) {
      if (std::isinf(*d)) throw_py("OverflowError", "cannot convert float infinity to integer");
      if (std::isnan(*d)) return fallback;
      if (std::fabs(*d) >= 9.2e18) throw_py("unsupported", "an integer beyond 64 bits");
      return Value::integer(static_cast<int64_t>(std::trunc(*d)));
    }
  }
  return fallback;
}

Value filter_float(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("float", args, {"default"}, 0);
  const Value fallback = a[0].value_or(Value::number(0.0));
  if (v.is_undefined()) v.fail_undefined();
  if (v.is_number()) return Value::number(v.as_double());
  if (v.is_string())
    if (auto d = filter_parse_float(v.str())) return Value::number(*d);
  return fallback;
}

Value filter_abs(Interpreter&, const Value& v, CallArgs& args) {
  bind_args("abs", args, {}, 0);
  if (v.is_float()) return Value::number(std::fabs(v.as_double()));
  if (v.is_int() || v.is_bool()) return v.as_int() < 0 ? unary_op('-', v) : Value::integer(v.as_int());
  throw_py("TypeError", fmt::format("bad operand type for abs(): '{}'", v.type_name()));
}

Value filter_round(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("round", args, {"precision", "method"}, 0);
  const int64_t precision = a[0] ? int_arg(*a[0], "round") : 0;
  const std::string method = a[1] ? str_arg(*a[1], "round") : "common";
  if (method != "common" && method != "ceil" && method != "floor")
    throw_py("FilterArgumentError", "method must be common, ceil or floor");
  if (!v.is_number()) throw_py("TypeError", fmt::format("type {} doesn't define __round__ method", v.type_name()));
  if (precision < 0) throw_py("unsupported", "round with a negative precision");
  if (method == "common") {
    if (!v.is_float()) return Value::integer(v.as_int());
    // Python rounds the exact binary value half-to-even, as printf's correctly rounded %.Nf.
    const std::string text = fmt::format("{:.{}f}", v.as_double(), static_cast<int>(precision));
    double d = 0;
    std::from_chars(text.data(), text.data() + text.size(), d);
    return Value::number(d);
  }
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = v.as_double() * scale;
  return Value::number((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

// --- sequences -----------------------------------------------------------------------------------

Value filter_length(Interpreter&, const Value& v, CallArgs& args) {
  bind_args("length", args, {}, 0);
  return Value::integer(length(v));
}

Value filter_list(Interpreter&, const Value& v, CallArgs& args) {
  bind_args("list", args, {}, 0);
  return Value::list(iterate(v));
}

Value filter_first(Interpreter&, const Value& v, CallArgs& args) {
  bind_args("first", args, {}, 0);
  if (v.is_iterator()) {
    IteratorState& it = v.iterator_ref();
    if (it.pos < it.items.size()) return it.items[it.pos++];
  } else {
    const ValueList items = iterate(v);
    if (!items.empty()) return items.front();
  }
  return Value::undefined("No first item, sequence was empty.");
}

Value filter_last(Interpreter&, const Value& v, CallArgs& args) {
  bind_args("last", args, {}, 0);
  if (v.is_iterator()) throw_py("TypeError", fmt::format("'{}' object is not reversible", v.type_name()));
  if (!v.is_undefined() && !v.is_string() && !v.is_sequence() && !v.is_dict() && !v.is_view())
    throw_py("TypeError", fmt::format("'{}' object is not reversible", v.type_name()));
  const ValueList items = iterate(v);
  if (!items.empty()) return items.back();
  return Value::undefined("No last item, sequence was empty.");
}

Value filter_reverse(Interpreter&, const Value& v, CallArgs& args) {
  bind_args("reverse", args, {}, 0);
  if (v.is_string()) return slice_of(v, Value::none(), Value::none(), Value::integer(-1));
  if (!v.is_undefined() && !v.is_sequence() && !v.is_dict() && !v.is_view() && !v.is_iterator())
    throw_py("FilterArgumentError", "argument must be iterable");
  ValueList items = iterate(v);
  std::reverse(items.begin(), items.end());
  if (v.is_iterator()) return Value::list(std::move(items));
  const char* type = v.is_list()                  ? "list_reverseiterator"
                     : v.is_dict() || v.is_view() ? "dict_reverseiterator"
                                                  : "reversed";
  return Value::iterator(std::move(items), type);
}

Value filter_join(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("join", args, {"d", "attribute"}, 0);
  const std::string sep = a[0] ? to_str(*a[0]) : "";
  std::string out;
  bool first = true;
  for (const Value& item : iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += to_str(a[1] ? filter_attr_path(item, *a[1]) : item);
  }
  return Value::string(std::move(out));
}

Value filter_default(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("default", args, {"default_value", "boolean"}, 0);
  if (v.is_undefined() || (filter_bool_arg(a[1]) && !v.truthy())) return a[0].value_or(Value::string(""));
  return v;
}

Value filter_items(Interpreter&, const Value& v, CallArgs& args) {
  bind_args("items", args, {}, 0);
  if (v.is_undefined()) return filter_iterator({});
  if (!v.is_dict()) throw_py("TypeError", "Can only get item pairs from a mapping.");
  ValueList out;
  for (const auto& [k, x] : v.dict_ref().items) out.push_back(Value::tuple({k, x}));
  return filter_iterator(std::move(out));
}

Value filter_dictsort(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("dictsort", args, {"case_sensitive", "by", "reverse"}, 0);
  const std::string by = a[1] ? str_arg(*a[1], "dictsort") : "key";
  if (by != "key" && by != "value") throw_py("FilterArgumentError", "You can only sort by either \"key\" or \"value\"");
  if (v.is_undefined()) v.fail_undefined();
  if (!v.is_dict()) throw_py("AttributeError", fmt::format("'{}' object has no attribute 'items'", v.type_name()));
  const bool case_sensitive = filter_bool_arg(a[0]);
  const bool reverse = filter_bool_arg(a[2]);
  ValueList out;
  std::vector<Value> keys;
  for (const auto& [k, x] : v.dict_ref().items) {
    out.push_back(Value::tuple({k, x}));
    const Value& key = by == "key" ? k : x;
    keys.push_back(case_sensitive ? key : filter_ignore_case(key));
  }
  std::vector<std::size_t> order(out.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
    return reverse ? compare(keys[y], keys[x], "lt") : compare(keys[x], keys[y], "lt");
  });
  ValueList sorted;
  for (std::size_t i : order) sorted.push_back(out[i]);
  return Value::list(std::move(sorted));
}

// The sort key of Jinja2's make_multi_attrgetter: a list of the comma-separated attributes.
Value filter_sort_key(const Value& item, const std::optional<Value>& attribute, bool case_sensitive) {
  if (!attribute || attribute->is_none()) return Value::list({case_sensitive ? item : filter_ignore_case(item)});
  ValueList keys;
  if (attribute->is_string()) {
    for (const std::string& part : pystr::split(attribute->str(), std::string(","), -1, false)) {
      const Value k = filter_attr_path(item, Value::string(part));
      keys.push_back(case_sensitive ? k : filter_ignore_case(k));
    }
  } else {
    const Value k = filter_attr_path(item, *attribute);
    keys.push_back(case_sensitive ? k : filter_ignore_case(k));
  }
  return Value::list(std::move(keys));
}

Value filter_sort(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("sort", args, {"reverse", "case_sensitive", "attribute"}, 0);
  const bool reverse = filter_bool_arg(a[0]);
  const bool case_sensitive = filter_bool_arg(a[1]);
  const ValueList items = iterate(v);
  std::vector<Value> keys;
  for (const Value& item : items) keys.push_back(filter_sort_key(item, a[2], case_sensitive));
  std::vector<std::size_t> order(items.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
    return reverse ? compare(keys[y], keys[x], "lt") : compare(keys[x], keys[y], "lt");
  });
  ValueList out;
  for (std::size_t i : order) out.push_back(items[i]);
  return Value::list(std::move(out));
}

Value filter_unique(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("unique", args, {"case_sensitive", "attribute"}, 0);
  const bool case_sensitive = filter_bool_arg(a[0]);
  ValueList out, seen;
  for (const Value& item : iterate(v)) {
    Value key = a[1] && !a[1]->is_none() ? filter_attr_path(item, *a[1]) : item;
    if (!case_sensitive) key = filter_ignore_case(key);
    if (key.is_list() || key.is_dict()) throw_py("TypeError", fmt::format("unhashable type: '{}'", key.type_name()));
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) {
      seen.push_back(key);
      out.push_back(item);
    }
  }
  return filter_iterator(std::move(out));
}

Value filter_min_max(const Value& v, CallArgs& args, bool max) {
  const auto a = bind_args(max ? "max" : "min", args, {"case_sensitive", "attribute"}, 0);
  const bool case_sensitive = filter_bool_arg(a[0]);
  const ValueList items = iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  auto key = [&](const Value& item) {
    Value k = a[1] && !a[1]->is_none() ? filter_attr_path(item, *a[1]) : item;
    return case_sensitive ? k : filter_ignore_case(k);
  };
  std::size_t best = 0;
  Value best_key = key(items[0]);
  for (std::size_t i = 1; i < items.size(); ++i) {
    const Value k = key(items[i]);
    if (max ? compare(best_key, k, "lt") : compare(k, best_key, "lt")) {
      best = i;
      best_key = k;
    }
  }
  return items[best];
}

Value filter_max(Interpreter&, const Value& v, CallArgs& args) {
  return filter_min_max(v, args, true);
}
Value filter_min(Interpreter&, const Value& v, CallArgs& args) {
  return filter_min_max(v, args, false);
}

Value filter_sum(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("sum", args, {"attribute", "start"}, 0);
  Value total = a[1].value_or(Value::integer(0));
  for (const Value& item : iterate(v)) {
    total = binary_op("+", total, a[0] && !a[0]->is_none() ? filter_attr_path(item, *a[0]) : item);
  }
  return total;
}

Value filter_batch(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("batch", args, {"linecount", "fill_with"}, 1);
  const int64_t n = int_arg(*a[0], "batch");
  ValueList out, tmp;
  for (const Value& item : iterate(v)) {
    if (static_cast<int64_t>(tmp.size()) == n) {
      out.push_back(Value::list(std::move(tmp)));
      tmp.clear();
    }
    tmp.push_back(item);
  }
  if (!tmp.empty()) {
    if (a[1] && !a[1]->is_none())
      while (static_cast<int64_t>(tmp.size()) < n) tmp.push_back(*a[1]);
    out.push_back(Value::list(std::move(tmp)));
  }
  return filter_iterator(std::move(out));
}

Value filter_slice(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("slice", args, {"slices", "fill_with"}, 1);
  const int64_t slices = int_arg(*a[0], "slice");
  if (slices == 0) throw_py("ZeroDivisionError", "integer division or modulo by zero");
  const ValueList seq = iterate(v);
  const auto len = static_cast<int64_t>(seq.size());
  const int64_t per = len / slices, extra = len % slices;
  int64_t offset = 0;
  ValueList out;
  for (int64_t k = 0; k < slices; ++k) {
    const int64_t start = offset + k * per;
    if (k < extra) ++offset;
    const int64_t end = offset + (k + 1) * per;
    ValueList tmp(seq.begin() + start, seq.begin() + end);
    if (a[1] && !a[1]->is_none() && k >= extra) tmp.push_back(*a[1]);
    out.push_back(Value::list(std::move(tmp)));
  }
  return filter_iterator(std::move(out));
}

Value filter_attr(Interpreter&, const Value& v, CallArgs& args) {
  const auto a = bind_args("attr", args, {"name"}, 1);
  return get_attr(v, to_str(*a[0]), false);  // getattr() only: a dict's keys are not attributes
}

Value filter_map(Interpreter& in, const Value& v, CallArgs& args) {
  ValueList out;
  if (args.args.empty() &&
      std::any_of(args.kwargs.begin(), args.kwargs.end(), [](const auto& kv) { return kv.first == "attribute"; })) {
    Value attribute, fallback = Value::none();
    for (auto& [k, x] : args.kwargs) {
      if (k == "attribute") {
        attribute = x;
      } else if (k == "default") {
        fallback = x;
      } else {
        throw_py("FilterArgumentError", fmt::format("Unexpected keyword argument '{}'", k));
      }
    }
    if (!v.truthy()) return filter_iterator({});
    for (const Value& item : iterate(v))
      out.push_back(filter_attr_path(item, attribute, fallback.is_none() ? nullptr : &fallback));
    return filter_iterator(std::move(out));
  }
  if (args.args.empty()) throw_py("FilterArgumentError", "map requires a filter argument");
  const std::string name = str_arg(args.args[0], "map");
  CallArgs rest{ValueList(args.args.begin() + 1, args.args.end()), args.kwargs};
  if (!v.truthy()) return filter_iterator({});
  for (const Value& item : iterate(v)) {
    CallArgs call = rest;
    out.push_back(in.apply_filter(name, item, call));
  }
  return filter_iterator(std::move(out));
}

// select / reject / selectattr / rejectattr (Jinja2's select_or_reject).
Value filter_select_impl(Interpreter& in, const Value& v, CallArgs& args, bool keep, bool lookup_attr) {
  if (!v.truthy()) return filter_iterator({});
  std::size_t off = 0;
  Value attribute;
  if (lookup_attr) {
    if (args.args.empty()) throw_py("FilterArgumentError", "Missing parameter for attribute name");
    attribute = args.args[0];
    off = 1;
  }
  const bool has_test = args.args.size() > off;
  const std::string test = has_test ? str_arg(args.args[off], "select") : "";
  CallArgs rest{
      has_test ? ValueList(args.args.begin() + static_cast<std::ptrdiff_t>(off + 1), args.args.end()) : ValueList{},
      args.kwargs};
  ValueList out;
  for (const Value& item : iterate(v)) {
    const Value x = lookup_attr ? filter_attr_path(item, attribute) : item;
    bool ok;
    if (has_test) {
      CallArgs call = rest;
      ok = in.apply_test(test, x, call);
    } else {
      ok = x.truthy();
    }
    if (ok == keep) out.push_back(item);
  }
  return filter_iterator(std::move(out));
}

Value filter_select(Interpreter& in, const Value& v, CallArgs& args) {
  return filter_select_impl(in, v, args, true, false);
}
Value filter_reject(Interpreter& in, const Value& v, CallArgs& args) {
  return filter_select_impl(in, v, args, false, false);
}
Value filter_selectattr(Interpreter& in, const Value& v, CallArgs& args) {
  return filter_select_impl(in, v, args, true, true);
}
Value filter_rejectattr(Interpreter& in, const Value& v, CallArgs& args) {
  return filter_select_impl(in, v, args, false, true);
}

const FilterDef kFilters[] = {
    {"abs", filter_abs},
    {"attr", filter_attr},
    {"batch", filter_batch},
    {"capitalize", filter_capitalize},
    {"center", filter_center},
    {"count", filter_length},
    {"d", filter_default},
    {"default", filter_default},
    {"dictsort", filter_dictsort},
    {"e", filter_escape},
    {"escape", filter_escape},
    {"first", filter_first},
    {"float", filter_float},
    {"forceescape", filter_forceescape},
    {"format", filter_format},
    {"indent", filter_indent},
    {"int", filter_int},
    {"items", filter_items},
    {"join", filter_join},
    {"last", filter_last},
    {"length", filter_length},
    {"list", filter_list},
    {"lower", filter_lower},
    {"map", filter_map},
    {"max", filter_max},
    {"min", filter_min},
    {"reject", filter_reject},
    {"rejectattr", filter_rejectattr},
    {"replace", filter_replace},
    {"reverse", filter_reverse},
    {"round", filter_round},
    {"safe", filter_safe},
    {"select", filter_select},
    {"selectattr", filter_selectattr},
    {"slice", filter_slice},
    {"sort", filter_sort},
    {"string", filter_string},
    {"sum", filter_sum},
    {"title", filter_title},
    {"tojson", filter_tojson},
    {"trim", filter_trim},
    {"truncate", filter_truncate},
    {"unique", filter_unique},
    {"upper", filter_upper},
    {"wordcount", filter_wordcount},
};

// Jinja2 filters this engine leaves out (rare in chat templates).
const char* const kUnsupportedFilters[] = {"filesizeformat", "groupby", "pprint",   "random",  "striptags",
                                           "urlencode",      "urlize",  "wordwrap", "xmlattr", nullptr};

}  // namespace

const FilterDef* find_filter(const std::string& name, bool* unsupported) {
  for (const FilterDef& f : kFilters)
    if (name == f.name) return &f;
  *unsupported = false;
  for (const char* const* u = kUnsupportedFilters; *u; ++u)
    if (name == *u) *unsupported = true;
  return nullptr;
}

}  // namespace rlft::tokenizer::jinja
