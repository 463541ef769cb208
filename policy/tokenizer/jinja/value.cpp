#include "policy/tokenizer/jinja/value.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "policy/tokenizer/jinja/pystr.h"

namespace rlft::tokenizer::jinja {

void throw_py(std::string type, std::string message) {
  throw PyError{std::move(type), std::move(message)};
}

// --- Dict --------------------------------------------------------------------------------------

const Value* Dict::find(const Value& key) const {
  for (const auto& [k, v] : items)
    if (equals(k, key)) return &v;
  return nullptr;
}

Value* Dict::find(const Value& key) {
  for (auto& [k, v] : items)
    if (equals(k, key)) return &v;
  return nullptr;
}

void Dict::set(Value key, Value value) {
  if (Value* v = find(key)) {
    *v = std::move(value);
  } else {
    items.emplace_back(std::move(key), std::move(value));
  }
}

// --- Value -------------------------------------------------------------------------------------

Value Value::undefined(std::string message, bool unsafe) {
  Value v;
  v.data_ = std::make_shared<const UndefinedInfo>(UndefinedInfo{std::move(message), unsafe});
  return v;
}

Value Value::string(std::string s, bool markup) {
  Value v(Tag::kNone);
  v.data_ = std::make_shared<const StringData>(StringData{std::move(s), markup});
  return v;
}

Value Value::list(ValueList items) {
  Value v(Tag::kNone);
  v.data_ = std::make_shared<ValueList>(std::move(items));
  return v;
}

Value Value::tuple(ValueList items) {
  Value v = list(std::move(items));
  v.sub_ = kSubTuple;
  return v;
}

Value Value::range(ValueList items) {
  Value v = list(std::move(items));
  v.sub_ = kSubRange;
  return v;
}

Value Value::view(ValueList items, ViewKind kind) {
  Value v = list(std::move(items));
  v.sub_ = static_cast<uint8_t>(kind);
  return v;
}

Value Value::iterator(ValueList items, std::string type_name) {
  Value v(Tag::kNone);
  v.data_ = std::make_shared<IteratorState>(IteratorState{std::move(items), 0, std::move(type_name)});
  return v;
}

Value Value::dict(Dict d) {
  Value v(Tag::kNone);
  v.data_ = std::make_shared<Dict>(std::move(d));
  return v;
}

Value Value::namespace_(Dict attrs) {
  Value v = dict(std::move(attrs));
  v.sub_ = kSubNamespace;
  return v;
}

Value Value::callable(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn) {
  Value v(Tag::kNone);
  v.data_ = std::make_shared<const Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

Value Value::loop(std::shared_ptr<LoopState> state) {
  Value v(Tag::kNone);
  v.data_ = std::move(state);
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  using T = nlohmann::ordered_json::value_t;
  switch (j.type()) {
    case T::null:
      return none();
    case T::boolean:
      return boolean(j.get<bool>());
    case T::number_integer:
      return integer(j.get<int64_t>());
    case T::number_unsigned: {
      const auto u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) throw_py("unsupported", fmt::format("the integer {} is too large", u));
      return integer(static_cast<int64_t>(u));
    }
    case T::number_float:
      return number(j.get<double>());
    case T::string: {
      std::string s = j.get<std::string>();
      if (!pystr::valid_utf8(s)) throw_py("ValueError", "a string that is not valid UTF-8");
      return string(std::move(s));
    }
    case T::array: {
      ValueList items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e));
      return list(std::move(items));
    }
    case T::object: {
      Dict d;
      d.items.reserve(j.size());
      for (const auto& [k, e] : j.items()) {
        if (!pystr::valid_utf8(k)) throw_py("ValueError", "a key that is not valid UTF-8");
        d.items.emplace_back(string(k), from_json(e));
      }
      return dict(std::move(d));
    }
    default:
      throw_py("unsupported", "binary JSON values cannot be template variables");
  }
}

Kind Value::kind() const {
  switch (data_.index()) {
    case 0:
      return Kind::kUndefined;
    case 1:
      return Kind::kNone;
    case 2:
      return Kind::kBool;
    case 3:
      return Kind::kInt;
    case 4:
      return Kind::kFloat;
    case 5:
      return Kind::kString;
    case 6:
      return sub_ == kSubPlain ? Kind::kList : (sub_ == kSubTuple || sub_ == kSubRange) ? Kind::kTuple : Kind::kView;
    case 7:
      return sub_ == kSubNamespace ? Kind::kNamespace : Kind::kDict;
    case 8:
      return Kind::kCallable;
    case 9:
      return Kind::kLoop;
    default:
      return Kind::kIterator;
  }
}

int64_t Value::as_int() const {
  return is_bool() ? (as_bool() ? 1 : 0) : std::get<int64_t>(data_);
}

double Value::as_double() const {
  return is_float() ? std::get<double>(data_) : static_cast<double>(as_int());
}

bool Value::is_markup() const {
  return is_string() && std::get<std::shared_ptr<const StringData>>(data_)->markup;
}

const UndefinedInfo& Value::undefined_info() const {
  static const UndefinedInfo kPlain{"undefined value", false};
  const auto& p = std::get<std::shared_ptr<const UndefinedInfo>>(data_);
  return p ? *p : kPlain;
}

void Value::fail_undefined() const {
  const UndefinedInfo& info = undefined_info();
  throw_py(info.unsafe ? "SecurityError" : "UndefinedError", info.message);
}

bool Value::truthy() const {
  switch (kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return as_bool();
    case Kind::kInt:
      return as_int() != 0;
    case Kind::kFloat:
      return as_double() != 0.0;
    case Kind::kString:
      return !str().empty();
    case Kind::kList:
    case Kind::kTuple:
    case Kind::kView:
      return !items().empty();
    case Kind::kDict:
      return dict_ref().size() != 0;
    default:
      return true;
  }
}

bool Value::same_object(const Value& other) const {
  if (kind() != other.kind()) return false;
  switch (kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kBool:
      return as_bool() == other.as_bool();
    case Kind::kInt:
      return as_int() == other.as_int();
    case Kind::kFloat:
      return as_double() == other.as_double();
    case Kind::kString:
      return std::get<5>(data_) == std::get<5>(other.data_);
    default:
      return data_ == other.data_;
  }
}

std::string Value::type_name() const {
  switch (kind()) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return is_markup() ? "Markup" : "str";
    case Kind::kList:
      return "list";
    case Kind::kTuple:
      return is_range() ? "range" : "tuple";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kCallable:
      return "function";
    case Kind::kLoop:
      return "LoopContext";
    case Kind::kView:
      return view_kind() == ViewKind::kItems  ? "dict_items"
             : view_kind() == ViewKind::kKeys ? "dict_keys"
                                              : "dict_values";
    case Kind::kIterator:
      return iterator_ref().type_name;
  }
  return "object";
}

// --- str() and repr() ----------------------------------------------------------------------------

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  // The shortest round-trip digits (what Python's repr uses), laid out by Python's rules:
  // positional when -4 < decimal-point position <= 16, else d.ddde±XX.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const std::size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exp10 = std::stoi(sci.substr(e + 1));
  const int decpt = exp10 + 1;
  const int n = static_cast<int>(digits.size());
  std::string out;
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out = "0." + std::string(-decpt, '0') + digits;
    } else if (decpt >= n) {
      out = digits + std::string(decpt - n, '0') + ".0";
    } else {
      out = digits.substr(0, decpt) + "." + digits.substr(decpt);
    }
  } else {
    out = digits.substr(0, 1);
    if (n > 1) out += "." + digits.substr(1);
    const int x = decpt - 1;
    out += fmt::format("e{}{:02d}", x < 0 ? '-' : '+', x < 0 ? -x : x);
  }
  return sign + out;
}

namespace {

std::string value_join_repr(const ValueList& items) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    out += repr(items[i]);
  }
  return out;
}

std::string value_dict_repr(const Dict& d) {
  std::string out = "{";
  for (std::size_t i = 0; i < d.items.size(); ++i) {
    if (i) out += ", ";
    out += repr(d.items[i].first) + ": " + repr(d.items[i].second);
  }
  return out + "}";
}

}  // namespace

std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return "";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return v.as_bool() ? "True" : "False";
    case Kind::kInt:
      return std::to_string(v.as_int());
    case Kind::kFloat:
      return float_repr(v.as_double());
    case Kind::kString:
      return v.str();
    case Kind::kList:
      return "[" + value_join_repr(v.items()) + "]";
    case Kind::kTuple:
      if (v.is_range()) throw_py("unsupported", "printing a range (convert it with |list)");
      return "(" + value_join_repr(v.items()) + (v.items().size() == 1 ? ",)" : ")");
    case Kind::kDict:
      return value_dict_repr(v.dict_ref());
    case Kind::kNamespace:
      return "<Namespace " + value_dict_repr(v.dict_ref()) + ">";
    case Kind::kView:
      return v.type_name() + "([" + value_join_repr(v.items()) + "])";
    case Kind::kCallable:
      throw_py("unsupported",
               fmt::format("printing the function '{}' (Python prints its address)", v.callable_ref().name));
    case Kind::kLoop:
      throw_py("unsupported", "printing the loop object");
    case Kind::kIterator:
      throw_py("unsupported", fmt::format("printing a {} (Python prints its address; convert it with |list)",
                                          v.iterator_ref().type_name));
  }
  return "";
}

std::string repr(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kString:
      return v.is_markup() ? "Markup(" + pystr::repr(v.str()) + ")" : pystr::repr(v.str());
    default:
      return to_str(v);
  }
}

// --- comparisons ---------------------------------------------------------------------------------

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  const Kind ka = a.kind();
  if (ka != b.kind() || a.is_range() != b.is_range()) return false;
  switch (ka) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return a.str() == b.str();
    case Kind::kList:
    case Kind::kTuple: {
      const ValueList& x = a.items();
      const ValueList& y = b.items();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i)
        if (!equals(x[i], y[i])) return false;
      return true;
    }
    case Kind::kDict: {
      const Dict& x = a.dict_ref();
      const Dict& y = b.dict_ref();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* w = y.find(k);
        if (!w || !equals(v, *w)) return false;
      }
      return true;
    }
    default:
      return a.same_object(b);
  }
}

bool compare(const Value& a, const Value& b, std::string_view op) {
  if (a.is_undefined()) a.fail_undefined();
  if (b.is_undefined()) b.fail_undefined();
  int c = 0;  // <0, 0, >0
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      const double x = a.as_double(), y = b.as_double();
      if (std::isnan(x) || std::isnan(y)) return false;
      c = x < y ? -1 : x > y ? 1 : 0;
    } else {
      c = a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
    }
  } else if (a.is_string() && b.is_string()) {
    c = a.str().compare(b.str());  // UTF-8 byte order is code point order
  } else if ((a.is_list() && b.is_list()) || (a.is_tuple() && b.is_tuple() && !a.is_range() && !b.is_range())) {
    const ValueList& x = a.items();
    const ValueList& y = b.items();
    std::size_t i = 0;
    while (i < x.size() && i < y.size() && equals(x[i], y[i])) ++i;
    if (i < x.size() && i < y.size()) return compare(x[i], y[i], op);
    c = x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  } else {
    const char* sym = op == "lt" ? "<" : op == "le" ? "<=" : op == "gt" ? ">" : ">=";
    throw_py("TypeError",
             fmt::format("'{}' not supported between instances of '{}' and '{}'", sym, a.type_name(), b.type_name()));
  }
  if (op == "lt") return c < 0;
  if (op == "le") return c <= 0;
  if (op == "gt") return c > 0;
  return c >= 0;
}

namespace {

void value_check_hashable(const Value& key) {
  if (key.is_list() || key.is_dict() || key.is_namespace() || key.is_loop())
    throw_py("TypeError", fmt::format("unhashable type: '{}'", key.type_name()));
  if (key.is_tuple())
    for (const Value& v : key.items()) value_check_hashable(v);
}

}  // namespace

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::kString:
      if (!item.is_string())
        throw_py("TypeError", fmt::format("'in <string>' requires string as left operand, not {}", item.type_name()));
      return container.str().find(item.str()) != std::string::npos;
    case Kind::kList:
    case Kind::kTuple:
      for (const Value& v : container.items())
        if (equals(v, item)) return true;
      return false;
    case Kind::kDict:
      value_check_hashable(item);
      return container.dict_ref().find(item) != nullptr;
    case Kind::kView:
      if (container.view_kind() == ViewKind::kKeys) value_check_hashable(item);
      for (const Value& v : container.items())
        if (equals(v, item)) return true;
      return false;
    case Kind::kIterator: {
      IteratorState& it = container.iterator_ref();
      while (it.pos < it.items.size())
        if (equals(it.items[it.pos++], item)) return true;
      return false;
    }
    case Kind::kUndefined:
      return false;
    default:
      throw_py("TypeError", fmt::format("argument of type '{}' is not iterable", container.type_name()));
  }
}

ValueList iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::kList:
    case Kind::kTuple:
    case Kind::kView:
      return v.items();
    case Kind::kIterator: {
      IteratorState& it = v.iterator_ref();
      ValueList rest(it.items.begin() + static_cast<std::ptrdiff_t>(it.pos), it.items.end());
      it.pos = it.items.size();
      return rest;
    }
    case Kind::kString: {
      ValueList out;
      for (char32_t c : pystr::decode(v.str())) {
        std::string s;
        pystr::append_utf8(s, c);
        out.push_back(Value::string(std::move(s)));  // Markup's characters are plain str
      }
      return out;
    }
    case Kind::kDict: {
      ValueList out;
      for (const auto& kv : v.dict_ref().items) out.push_back(kv.first);
      return out;
    }
    case Kind::kUndefined:
      return {};
    default:
      throw_py("TypeError", fmt::format("'{}' object is not iterable", v.type_name()));
  }
}

int64_t length(const Value& v) {
  switch (v.kind()) {
    case Kind::kString:
      return pystr::length(v.str());
    case Kind::kList:
    case Kind::kTuple:
    case Kind::kView:
      return static_cast<int64_t>(v.items().size());
    case Kind::kDict:
      return static_cast<int64_t>(v.dict_ref().size());
    case Kind::kUndefined:
      return 0;
    default:
      throw_py("TypeError", fmt::format("object of type '{}' has no len()", v.type_name()));
  }
}

// --- json.dumps ----------------------------------------------------------------------------------

namespace {

void value_json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out.push_back('"');
  for (char32_t c : pystr::decode(s)) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || (ensure_ascii && c > 0x7E)) {
          if (c > 0xFFFF) {  // a UTF-16 surrogate pair, as json.dumps writes it
            const char32_t v = c - 0x10000;
            out += fmt::format("\\u{:04x}\\u{:04x}", static_cast<unsigned>(0xD800 | (v >> 10)),
                               static_cast<unsigned>(0xDC00 | (v & 0x3FF)));
          } else {
            out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
          }
        } else {
          pystr::append_utf8(out, c);
        }
    }
  }
  out.push_back('"');
}

std::string value_json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
  return float_repr(d);
}

struct JsonWriter {
  const JsonDumpOptions& options;
  std::string item_sep;
  std::string key_sep;
  std::string out;

  void newline(int level) {
    out.push_back('\n');
    for (int i = 0; i < level; ++i) out += *options.indent;
  }

  std::string key_text(const Value& k) {
    switch (k.kind()) {
      case Kind::kString:
        return k.str();
      case Kind::kFloat:
        return value_json_float(k.as_double());
      case Kind::kBool:
        return k.as_bool() ? "true" : "false";
      case Kind::kInt:
        return std::to_string(k.as_int());
      case Kind::kNone:
        return "null";
      default:
        throw_py("TypeError", fmt::format("keys must be str, int, float, bool or None, not {}", k.type_name()));
    }
  }

  void write(const Value& v, int level) {
    switch (v.kind()) {
      case Kind::kNone:
        out += "null";
        return;
      case Kind::kBool:
        out += v.as_bool() ? "true" : "false";
        return;
      case Kind::kInt:
        out += std::to_string(v.as_int());
        return;
      case Kind::kFloat:
        out += value_json_float(v.as_double());
        return;
      case Kind::kString:
        value_json_string(out, v.str(), options.ensure_ascii);
        return;
      case Kind::kList:
      case Kind::kTuple: {
        if (v.is_range()) throw_py("TypeError", "Object of type range is not JSON serializable");
        const ValueList& items = v.items();
        if (items.empty()) {
          out += "[]";
          return;
        }
        out.push_back('[');
        if (options.indent) newline(level + 1);
        for (std::size_t i = 0; i < items.size(); ++i) {
          if (i) {
            out += item_sep;
            if (options.indent) newline(level + 1);
          }
          write(items[i], level + 1);
        }
        if (options.indent) newline(level);
        out.push_back(']');
        return;
      }
      case Kind::kDict: {
        std::vector<const std::pair<Value, Value>*> items;
        for (const auto& kv : v.dict_ref().items) items.push_back(&kv);
        if (items.empty()) {
          out += "{}";
          return;
        }
        if (options.sort_keys) {
          std::stable_sort(items.begin(), items.end(),
                           [](const auto* a, const auto* b) { return compare(a->first, b->first, "lt"); });
        }
        out.push_back('{');
        if (options.indent) newline(level + 1);
        for (std::size_t i = 0; i < items.size(); ++i) {
          if (i) {
            out += item_sep;
            if (options.indent) newline(level + 1);
          }
          value_json_string(out, key_text(items[i]->first), options.ensure_ascii);
          out += key_sep;
          write(items[i]->second, level + 1);
        }
        if (options.indent) newline(level);
        out.push_back('}');
        return;
      }
      default:
        throw_py("TypeError", fmt::format("Object of type {} is not JSON serializable", v.type_name()));
    }
  }
};

}  // namespace

std::string json_dumps(const Value& v, const JsonDumpOptions& options) {
  JsonWriter w{options, options.indent ? "," : ", ", ": ", {}};
  if (options.separators) {
    w.item_sep = options.separators->first;
    w.key_sep = options.separators->second;
  }
  w.write(v, 0);
  return std::move(w.out);
}

}  // namespace rlft::tokenizer::jinja
