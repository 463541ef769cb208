#include "policy/tokenizer/jinja/methods.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "policy/tokenizer/jinja/ops.h"
#include "policy/tokenizer/jinja/pystr.h"

namespace rlft::tokenizer::jinja {

namespace {

bool methods_in(const char* const* names, const std::string& name) {
  for (; *names; ++names)
    if (name == *names) return true;
  return false;
}

// Python's attributes of each type (methods and data attributes).
const char* const kMethodsStr[] = {
    "capitalize",   "casefold",   "center",    "count",       "encode",    "endswith",     "expandtabs",   "find",
    "format",       "format_map", "index",     "isalnum",     "isalpha",   "isascii",      "isdecimal",    "isdigit",
    "isidentifier", "islower",    "isnumeric", "isprintable", "isspace",   "istitle",      "isupper",      "join",
    "ljust",        "lower",      "lstrip",    "maketrans",   "partition", "removeprefix", "removesuffix", "replace",
    "rfind",        "rindex",     "rjust",     "rpartition",  "rsplit",    "rstrip",       "split",        "splitlines",
    "startswith",   "strip",      "swapcase",  "title",       "translate", "upper",        "zfill",        nullptr};
const char* const kMethodsDict[] = {"clear", "copy",    "fromkeys",   "get",    "items",  "keys",
                                    "pop",   "popitem", "setdefault", "update", "values", nullptr};
const char* const kMethodsDictUnsafe[] = {"clear", "pop", "popitem", "setdefault", "update", nullptr};
const char* const kMethodsList[] = {"append", "clear", "copy",   "count",   "extend", "index",
                                    "insert", "pop",   "remove", "reverse", "sort",   nullptr};
const char* const kMethodsListUnsafe[] = {"append", "extend", "insert", "remove", "reverse", "sort", nullptr};
const char* const kMethodsTuple[] = {"count", "index", nullptr};
const char* const kMethodsNumber[] = {"as_integer_ratio", "bit_count", "bit_length", "conjugate", "denominator",
                                      "from_bytes",       "fromhex",   "hex",        "imag",      "is_integer",
                                      "numerator",        "real",      "to_bytes",   nullptr};
const char* const kMethodsLoop[] = {"index",    "index0",   "revindex", "revindex0", "first", "last",    "length",
                                    "previtem", "nextitem", "depth",    "depth0",    "cycle", "changed", nullptr};

// Jinja2's object_type_repr, for Undefined messages.
std::string methods_type_repr(const Value& obj) {
  switch (obj.kind()) {
    case Kind::kNone:
      return "None";
    case Kind::kNamespace:
      return "jinja2.utils.Namespace object";
    case Kind::kLoop:
      return "jinja2.runtime.LoopContext object";
    default:
      return obj.type_name() + " object";
  }
}

Value methods_no_attribute(const Value& obj, const std::string& name) {
  return Value::undefined(fmt::format("'{}' has no attribute '{}'", methods_type_repr(obj), name));
}

Value methods_unsafe(const Value& obj, const std::string& name) {
  return Value::undefined(fmt::format("access to attribute '{}' of '{}' object is unsafe.", name, obj.type_name()),
                          true);
}

Value methods_bound(const Value& obj, const std::string& name) {
  return Value::callable(obj.type_name() + "." + name,
                         [obj, name](Interpreter&, CallArgs& args) { return *call_method(obj, name, args); });
}

Value methods_loop_attr(const Value& obj, const std::string& name) {
  LoopState& loop = obj.loop_ref();
  const auto n = static_cast<int64_t>(loop.items.size());
  const auto i = static_cast<int64_t>(loop.index0);
  if (name == "index") return Value::integer(i + 1);
  if (name == "index0") return Value::integer(i);
  if (name == "revindex") return Value::integer(n - i);
  if (name == "revindex0") return Value::integer(n - i - 1);
  if (name == "first") return Value::boolean(i == 0);
  if (name == "last") return Value::boolean(i == n - 1);
  if (name == "length") return Value::integer(n);
  if (name == "depth") return Value::integer(1);
  if (name == "depth0") return Value::integer(0);
  if (name == "previtem") return i > 0 ? loop.items[loop.index0 - 1] : Value::undefined("there is no previous item");
  if (name == "nextitem") return i + 1 < n ? loop.items[loop.index0 + 1] : Value::undefined("there is no next item");
  if (name == "cycle") {
    return Value::callable("loop.cycle", [obj](Interpreter&, CallArgs& args) {
      if (!args.kwargs.empty()) throw_py("TypeError", "cycle() got an unexpected keyword argument");
      if (args.args.empty()) throw_py("TypeError", "no items for cycling given");
      return args.args[obj.loop_ref().index0 % args.args.size()];
    });
  }
  // changed
  return Value::callable("loop.changed", [obj](Interpreter&, CallArgs& args) {
    LoopState& l = obj.loop_ref();
    const Value value = Value::tuple(args.args);
    if (!l.changed_seen || !equals(l.changed_last, value)) {
      l.changed_seen = true;
      l.changed_last = value;
      return Value::boolean(true);
    }
    return Value::boolean(false);
  });
}

// --- str methods ---------------------------------------------------------------------------------

std::optional<std::string> methods_opt_str(const std::optional<Value>& v, const char* what) {
  if (!v || v->is_none()) return std::nullopt;
  return str_arg(*v, what);
}

std::optional<int64_t> methods_opt_int(const std::optional<Value>& v, const char* what) {
  if (!v || v->is_none()) return std::nullopt;
  return int_arg(*v, what);
}

// s[start:end] by code points, for startswith/endswith/count; nullopt when start is past the end.
std::optional<std::string> methods_window(const std::string& s, std::optional<int64_t> start,
                                          std::optional<int64_t> end) {
  if (!start && !end) return s;
  const std::u32string u = pystr::decode(s);
  const auto len = static_cast<int64_t>(u.size());
  int64_t lo = start.value_or(0), hi = end.value_or(len);
  if (lo < 0) lo = std::max<int64_t>(0, lo + len);
  if (hi < 0) hi = std::max<int64_t>(0, hi + len);
  hi = std::min(hi, len);
  if (lo > len) return std::nullopt;
  if (hi < lo) return std::string();
  return pystr::encode(std::u32string_view(u).substr(lo, hi - lo));
}

Value methods_affix(const std::string& s, const char* fname, CallArgs& args, bool prefix) {
  const auto a = bind_args(fname, args, {"prefix", "start", "end"}, 1);
  const auto window = methods_window(s, methods_opt_int(a[1], fname), methods_opt_int(a[2], fname));
  std::vector<std::string> affixes;
  if (a[0]->is_tuple()) {
    for (const Value& v : a[0]->items()) affixes.push_back(str_arg(v, fname));
  } else if (a[0]->is_string()) {
    affixes.push_back(a[0]->str());
  } else {
    throw_py("TypeError", fmt::format("{} first arg must be str or a tuple of str, not {}", fname, a[0]->type_name()));
  }
  if (!window) return Value::boolean(false);
  for (const std::string& x : affixes) {
    if (x.size() > window->size()) continue;
    if (prefix ? window->compare(0, x.size(), x) == 0 : window->compare(window->size() - x.size(), x.size(), x) == 0)
      return Value::boolean(true);
  }
  return Value::boolean(false);
}

Value methods_pad(const std::string& s, const std::string& name, CallArgs& args) {
  const auto a = bind_args(name, args, {"width", "fillchar"}, 1);
  const int64_t width = int_arg(*a[0], name.c_str());
  std::string fill = " ";
  if (a[1]) {
    fill = str_arg(*a[1], name.c_str());
    if (pystr::length(fill) != 1) throw_py("TypeError", "The fill character must be exactly one character long");
  }
  const int64_t len = pystr::length(s);
  if (width <= len) return Value::string(s);
  const int64_t marg = width - len;
  int64_t left = 0;
  if (name == "center") {
    left = marg / 2 + (marg & width & 1);
  } else if (name == "rjust") {
    left = marg;
  }
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = 0; i < marg - left; ++i) out += fill;
  return Value::string(std::move(out));
}

bool methods_all_ascii(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

Value methods_str_class(const std::string& s, const std::string& name) {
  if (name == "isspace") {
    const std::u32string u = pystr::decode(s);
    return Value::boolean(!u.empty() && std::all_of(u.begin(), u.end(), pystr::is_space));
  }
  if (name == "isupper") return Value::boolean(pystr::is_upper(s));
  if (name == "islower") return Value::boolean(pystr::is_lower(s));
  if (name == "isascii") return Value::boolean(methods_all_ascii(s));
  if (name == "isprintable") {
    const std::u32string u = pystr::decode(s);
    return Value::boolean(std::all_of(u.begin(), u.end(), pystr::is_printable));
  }
  if (!methods_all_ascii(s)) throw_py("unsupported", fmt::format("str.{}() of non-ASCII text", name));
  auto all = [&](auto pred) { return !s.empty() && std::all_of(s.begin(), s.end(), pred); };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (name == "isdigit" || name == "isdecimal" || name == "isnumeric") return Value::boolean(all(digit));
  if (name == "isalpha") return Value::boolean(all(alpha));
  return Value::boolean(all([&](char c) { return digit(c) || alpha(c); }));  // isalnum
}

Value methods_str(const Value& obj, const std::string& name, CallArgs& args) {
  const std::string& s = obj.str();
  const std::string fname = "str." + name;
  const char* f = fname.c_str();
  if (obj.is_markup()) throw_py("unsupported", fmt::format("{}() on a Markup string (from |safe or |escape)", fname));
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const auto a = bind_args(fname, args, {"chars"}, 0);
    return Value::string(pystr::strip(s, methods_opt_str(a[0], f), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    const auto a = bind_args(fname, args, {"sep", "maxsplit"}, 0);
    const int64_t maxsplit = a[1] ? int_arg(*a[1], f) : -1;
    ValueList out;
    for (std::string& part : pystr::split(s, methods_opt_str(a[0], f), maxsplit, name == "rsplit"))
      out.push_back(Value::string(std::move(part)));
    return Value::list(std::move(out));
  }
  if (name == "splitlines") {
    const auto a = bind_args(fname, args, {"keepends"}, 0);
    ValueList out;
    for (std::string& line : pystr::splitlines(s, a[0] && a[0]->truthy()))
      out.push_back(Value::string(std::move(line)));
    return Value::list(std::move(out));
  }
  if (name == "startswith" || name == "endswith") return methods_affix(s, f, args, name == "startswith");
  if (name == "replace") {
    const auto a = bind_args(fname, args, {"old", "new", "count"}, 2);
    return Value::string(pystr::replace(s, str_arg(*a[0], f), str_arg(*a[1], f), a[2] ? int_arg(*a[2], f) : -1));
  }
  if (name == "upper") return Value::string(pystr::upper(s));
  if (name == "lower") return Value::string(pystr::lower(s));
  if (name == "title") return Value::string(pystr::title(s));
  if (name == "capitalize") return Value::string(pystr::capitalize(s));
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    const auto a = bind_args(fname, args, {"sub", "start", "end"}, 1);
    const int64_t i =
        pystr::find(s, str_arg(*a[0], f), methods_opt_int(a[1], f), methods_opt_int(a[2], f), name[0] == 'r');
    if (i < 0 && (name == "index" || name == "rindex")) throw_py("ValueError", "substring not found");
    return Value::integer(i);
  }
  if (name == "count") {
    const auto a = bind_args(fname, args, {"sub", "start", "end"}, 1);
    const auto window = methods_window(s, methods_opt_int(a[1], f), methods_opt_int(a[2], f));
    return Value::integer(window ? pystr::count(*window, str_arg(*a[0], f)) : 0);
  }
  if (name == "join") {
    const auto a = bind_args(fname, args, {"iterable"}, 1);
    std::string out;
    const ValueList items = iterate(*a[0]);
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string())
        throw_py("TypeError",
                 fmt::format("sequence item {}: expected str instance, {} found", i, items[i].type_name()));
      if (i) out += s;
      out += items[i].str();
    }
    return Value::string(std::move(out));
  }
  if (name == "center" || name == "ljust" || name == "rjust") return methods_pad(s, name, args);
  if (name == "zfill") {
    const auto a = bind_args(fname, args, {"width"}, 1);
    const int64_t width = int_arg(*a[0], f);
    const int64_t len = pystr::length(s);
    if (width <= len) return Value::string(s);
    std::string out = s;
    const std::size_t at = !s.empty() && (s[0] == '+' || s[0] == '-') ? 1 : 0;
    out.insert(at, std::string(static_cast<std::size_t>(width - len), '0'));
    return Value::string(std::move(out));
  }
  if (name == "partition" || name == "rpartition") {
    const auto a = bind_args(fname, args, {"sep"}, 1);
    const std::string& sep = str_arg(*a[0], f);
    if (sep.empty()) throw_py("ValueError", "empty separator");
    const std::size_t hit = name == "partition" ? s.find(sep) : s.rfind(sep);
    if (hit == std::string::npos) {
      return name == "partition" ? Value::tuple({Value::string(s), Value::string(""), Value::string("")})
                                 : Value::tuple({Value::string(""), Value::string(""), Value::string(s)});
    }
    return Value::tuple(
        {Value::string(s.substr(0, hit)), Value::string(sep), Value::string(s.substr(hit + sep.size()))});
  }
  if (name == "removeprefix" || name == "removesuffix") {
    const auto a = bind_args(fname, args, {"affix"}, 1);
    const std::string& x = str_arg(*a[0], f);
    if (name == "removeprefix") return Value::string(s.compare(0, x.size(), x) == 0 ? s.substr(x.size()) : s);
    const bool ends = s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
    return Value::string(ends ? s.substr(0, s.size() - x.size()) : s);
  }
  if (name == "format") return Value::string(str_format(s, args));
  if (name.rfind("is", 0) == 0 && name != "isidentifier" && name != "istitle") {
    bind_args(fname, args, {}, 0);
    return methods_str_class(s, name);
  }
  throw_py("unsupported", fmt::format("the method {}()", fname));
}

// --- dict, list and tuple methods ----------------------------------------------------------------

Value methods_dict(const Value& obj, const std::string& name, CallArgs& args) {
  const Dict& d = obj.dict_ref();
  const std::string fname = "dict." + name;
  if (name == "get") {
    if (!args.kwargs.empty()) throw_py("TypeError", "get() takes no keyword arguments");
    const auto a = bind_args(fname, args, {"key", "default"}, 1);
    if (a[0]->is_list() || a[0]->is_dict())
      throw_py("TypeError", fmt::format("unhashable type: '{}'", a[0]->type_name()));
    const Value* v = d.find(*a[0]);
    return v ? *v : a[1].value_or(Value::none());
  }
  bind_args(fname, args, {}, 0);
  ValueList out;
  if (name == "items") {
    for (const auto& [k, v] : d.items) out.push_back(Value::tuple({k, v}));
    return Value::view(std::move(out), ViewKind::kItems);
  }
  if (name == "keys") {
    for (const auto& kv : d.items) out.push_back(kv.first);
    return Value::view(std::move(out), ViewKind::kKeys);
  }
  if (name == "values") {
    for (const auto& kv : d.items) out.push_back(kv.second);
    return Value::view(std::move(out), ViewKind::kValues);
  }
  if (name == "copy") return Value::dict(d);
  throw_py("unsupported", fmt::format("the method {}()", fname));
}

Value methods_sequence(const Value& obj, const std::string& name, CallArgs& args) {
  ValueList& items = obj.items();
  const std::string fname = obj.type_name() + "." + name;
  if (name == "count") {
    const auto a = bind_args(fname, args, {"value"}, 1);
    return Value::integer(std::count_if(items.begin(), items.end(), [&](const Value& v) { return equals(v, *a[0]); }));
  }
  if (name == "index") {
    const auto a = bind_args(fname, args, {"value", "start", "stop"}, 1);
    const auto n = static_cast<int64_t>(items.size());
    int64_t lo = a[1] ? int_arg(*a[1], "index") : 0, hi = a[2] ? int_arg(*a[2], "index") : n;
    if (lo < 0) lo = std::max<int64_t>(0, lo + n);
    if (hi < 0) hi = std::max<int64_t>(0, hi + n);
    for (int64_t i = lo; i < std::min(hi, n); ++i)
      if (equals(items[static_cast<std::size_t>(i)], *a[0])) return Value::integer(i);
    throw_py("ValueError", obj.is_tuple() ? "tuple.index(x): x not in tuple" : repr(*a[0]) + " is not in list");
  }
  if (name == "copy") {
    bind_args(fname, args, {}, 0);
    return Value::list(items);
  }
  if (name == "clear") {
    bind_args(fname, args, {}, 0);
    items.clear();
    return Value::none();
  }
  if (name == "pop") {
    const auto a = bind_args(fname, args, {"index"}, 0);
    if (items.empty()) throw_py("IndexError", "pop from empty list");
    const auto n = static_cast<int64_t>(items.size());
    int64_t i = a[0] ? int_arg(*a[0], "pop") : -1;
    if (i < 0) i += n;
    if (i < 0 || i >= n) throw_py("IndexError", "pop index out of range");
    Value v = items[static_cast<std::size_t>(i)];
    items.erase(items.begin() + i);
    return v;
  }
  throw_py("unsupported", fmt::format("the method {}()", fname));
}

}  // namespace

Value get_attr(const Value& obj, const std::string& name, bool item_fallback) {
  if (obj.is_undefined()) obj.fail_undefined();
  if (name.size() > 1 && name[0] == '_' && name[1] == '_') return methods_unsafe(obj, name);
  switch (obj.kind()) {
    case Kind::kString:
      return methods_in(kMethodsStr, name) ? methods_bound(obj, name) : methods_no_attribute(obj, name);
    case Kind::kDict:
      if (methods_in(kMethodsDictUnsafe, name)) return methods_unsafe(obj, name);
      if (methods_in(kMethodsDict, name)) return methods_bound(obj, name);
      if (item_fallback)
        if (const Value* v = obj.dict_ref().find(Value::string(name))) return *v;
      return methods_no_attribute(obj, name);
    case Kind::kList:
      if (methods_in(kMethodsListUnsafe, name)) return methods_unsafe(obj, name);
      return methods_in(kMethodsList, name) ? methods_bound(obj, name) : methods_no_attribute(obj, name);
    case Kind::kTuple:
      return methods_in(kMethodsTuple, name) ? methods_bound(obj, name) : methods_no_attribute(obj, name);
    case Kind::kNamespace:
      if (const Value* v = obj.dict_ref().find(Value::string(name))) return *v;
      return methods_no_attribute(obj, name);
    case Kind::kLoop:
      return methods_in(kMethodsLoop, name) ? methods_loop_attr(obj, name) : methods_no_attribute(obj, name);
    case Kind::kInt:
    case Kind::kFloat:
    case Kind::kBool:
      if (methods_in(kMethodsNumber, name))
        throw_py("unsupported", fmt::format("the attribute '{}' of a number", name));
      return methods_no_attribute(obj, name);
    case Kind::kCallable:
      throw_py("unsupported", fmt::format("attributes of a function or macro ('{}')", name));
    default:
      return methods_no_attribute(obj, name);
  }
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) obj.fail_undefined();
  auto no_element = [&] {
    if (key.is_string()) return get_attr(obj, key.str());
    return Value::undefined(fmt::format("{} has no element {}", methods_type_repr(obj), repr(key)));
  };
  switch (obj.kind()) {
    case Kind::kString:
    case Kind::kList:
    case Kind::kTuple: {
      if (!key.is_int() && !key.is_bool()) return no_element();
      const int64_t n = obj.is_string() ? pystr::length(obj.str()) : static_cast<int64_t>(obj.items().size());
      int64_t i = key.as_int();
      if (i < 0) i += n;
      if (i < 0 || i >= n)
        return Value::undefined(fmt::format("{} has no element {}", methods_type_repr(obj), repr(key)));
      if (obj.is_string()) return slice_of(obj, Value::integer(i), Value::integer(i + 1), Value::none());
      return obj.items()[static_cast<std::size_t>(i)];
    }
    case Kind::kDict:
      if (!key.is_list() && !key.is_dict() && !key.is_namespace() && !key.is_view() && !key.is_iterator()) {
        if (const Value* v = obj.dict_ref().find(key)) return *v;
      }
      return no_element();
    default:
      return no_element();
  }
}

std::optional<Value> call_method(const Value& obj, const std::string& name, CallArgs& args) {
  switch (obj.kind()) {
    case Kind::kString:
      if (methods_in(kMethodsStr, name)) return methods_str(obj, name, args);
      return std::nullopt;
    case Kind::kDict:
      if (methods_in(kMethodsDictUnsafe, name)) methods_unsafe(obj, name).fail_undefined();
      if (methods_in(kMethodsDict, name)) return methods_dict(obj, name, args);
      return std::nullopt;
    case Kind::kList:
      if (methods_in(kMethodsListUnsafe, name)) methods_unsafe(obj, name).fail_undefined();
      if (methods_in(kMethodsList, name)) return methods_sequence(obj, name, args);
      return std::nullopt;
    case Kind::kTuple:
      if (methods_in(kMethodsTuple, name)) return methods_sequence(obj, name, args);
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

std::string str_format(const std::string& format, const CallArgs& args) {
  std::string out;
  std::size_t auto_index = 0;
  bool used_auto = false, used_manual = false;
  for (std::size_t i = 0; i < format.size(); ++i) {
    const char c = format[i];
    if (c == '}') {
      if (i + 1 < format.size() && format[i + 1] == '}') {
        out.push_back('}');
        ++i;
        continue;
      }
      throw_py("ValueError", "Single '}' encountered in format string");
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (i + 1 < format.size() && format[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    const std::size_t close = format.find('}', i);
    if (close == std::string::npos) throw_py("ValueError", "expected '}' before end of string");
    std::string field = format.substr(i + 1, close - i - 1);
    i = close;
    if (field.find('{') != std::string::npos) throw_py("unsupported", "nested replacement fields in str.format");
    char conversion = 0;
    const std::size_t colon = field.find(':');
    if (colon != std::string::npos) {
      if (colon + 1 < field.size()) throw_py("unsupported", "format specs in str.format ('" + field + "')");
      field.resize(colon);
    }
    const std::size_t bang = field.find('!');
    if (bang != std::string::npos) {
      if (bang + 2 != field.size() || (field[bang + 1] != 's' && field[bang + 1] != 'r'))
        throw_py("unsupported", "the conversion in '{" + field + "}'");
      conversion = field[bang + 1];
      field.resize(bang);
    }
    std::size_t end = std::min(field.find('.'), field.find('['));
    const std::string first = field.substr(0, end);
    Value value;
    if (first.empty() || std::all_of(first.begin(), first.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      std::size_t index;
      if (first.empty()) {
        if (used_manual)
          throw_py("ValueError", "cannot switch from manual field specification to automatic field numbering");
        used_auto = true;
        index = auto_index++;
      } else {
        if (used_auto)
          throw_py("ValueError", "cannot switch from automatic field numbering to manual field specification");
        used_manual = true;
        index = std::stoul(first);
      }
      if (index >= args.args.size())
        throw_py("IndexError", fmt::format("Replacement index {} out of range for positional args tuple", index));
      value = args.args[index];
    } else {
      auto it = std::find_if(args.kwargs.begin(), args.kwargs.end(), [&](const auto& kv) { return kv.first == first; });
      if (it == args.kwargs.end()) throw_py("KeyError", pystr::repr(first));
      value = it->second;
    }
    while (end != std::string::npos && end < field.size()) {
      if (field[end] == '.') {
        const std::size_t next = std::min(field.find('.', end + 1), field.find('[', end + 1));
        value = get_attr(value, field.substr(end + 1, next - end - 1));
        end = next;
      } else {
        const std::size_t rb = field.find(']', end);
        if (rb == std::string::npos) throw_py("ValueError", "Missing ']' in format string");
        const std::string key = field.substr(end + 1, rb - end - 1);
        const bool numeric =
            !key.empty() && std::all_of(key.begin(), key.end(), [](char d) { return d >= '0' && d <= '9'; });
        value = get_item(value, numeric ? Value::integer(std::stoll(key)) : Value::string(key));
        end = rb + 1;
      }
    }
    out += conversion == 'r' ? repr(value) : to_str(value);
  }
  return out;
}

}  // namespace rlft::tokenizer::jinja
