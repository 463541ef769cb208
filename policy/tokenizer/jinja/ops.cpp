#include "policy/tokenizer/jinja/ops.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>

#include "policy/tokenizer/jinja/pystr.h"

namespace rlft::tokenizer::jinja {

namespace {

[[noreturn]] void ops_unsupported_operands(const std::string& op, const Value& a, const Value& b) {
  throw_py("TypeError",
           fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(), b.type_name()));
}

[[noreturn]] void ops_overflow() {
  throw_py("unsupported", "integer overflow (Python's ints are unbounded, rlft's are 64-bit)");
}

int64_t ops_add(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) ops_overflow();
  return r;
}
int64_t ops_sub(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_sub_overflow(a, b, &r)) ops_overflow();
  return r;
}
int64_t ops_mul(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) ops_overflow();
  return r;
}

// Python's float floor division and modulo (Objects/floatobject.c float_divmod).
void ops_float_divmod(double vx, double wx, double& floordiv, double& mod) {
  mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0.0) {
    if ((wx < 0) != (mod < 0)) {
      mod += wx;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, wx);
  }
  if (div != 0.0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
}

int64_t ops_floor_div(int64_t a, int64_t b) {
  if (a == INT64_MIN && b == -1) ops_overflow();
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t ops_int_pow(int64_t base, int64_t exp) {
  int64_t result = 1;
  while (exp > 0) {
    if (exp & 1) result = ops_mul(result, base);
    exp >>= 1;
    if (exp) base = ops_mul(base, base);
  }
  return result;
}

Value ops_repeat(const Value& seq, int64_t n) {
  if (seq.is_string()) {
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.str();
    return Value::string(std::move(out), seq.is_markup());
  }
  ValueList out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.items().begin(), seq.items().end());
  return seq.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

}  // namespace

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "%" && a.is_string()) {  // str.__mod__ goes first, even with an Undefined operand
    if (a.is_markup()) throw_py("unsupported", "'%' formatting of a Markup string");
    return Value::string(percent_format(a.str(), b));
  }
  if (a.is_undefined()) a.fail_undefined();
  if (b.is_undefined()) b.fail_undefined();
  const bool nums = a.is_number() && b.is_number();
  const bool floats = nums && (a.is_float() || b.is_float());
  if (op == "+") {
    if (nums) {
      if (floats) return Value::number(a.as_double() + b.as_double());
      return Value::integer(ops_add(a.as_int(), b.as_int()));
    }
    if (a.is_string() && b.is_string()) {
      if (a.is_markup() || b.is_markup()) {
        // Markup + str escapes the str (markupsafe's __add__ / __radd__).
        const std::string x = a.is_markup() ? a.str() : html_escape(a.str());
        const std::string y = b.is_markup() ? b.str() : html_escape(b.str());
        return Value::string(x + y, true);
      }
      return Value::string(a.str() + b.str());
    }
    if ((a.is_list() && b.is_list()) || (a.is_tuple() && b.is_tuple() && !a.is_range() && !b.is_range())) {
      ValueList out = a.items();
      out.insert(out.end(), b.items().begin(), b.items().end());
      return a.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
    }
    if ((a.is_string() && !a.is_markup()) || a.is_list() || (a.is_tuple() && !a.is_range()))
      throw_py("TypeError",
               fmt::format("can only concatenate {} (not \"{}\") to {}", a.type_name(), b.type_name(), a.type_name()));
    ops_unsupported_operands(op, a, b);
  }
  if (op == "*") {
    if (nums) {
      if (floats) return Value::number(a.as_double() * b.as_double());
      return Value::integer(ops_mul(a.as_int(), b.as_int()));
    }
    const bool a_seq = a.is_string() || a.is_list() || (a.is_tuple() && !a.is_range());
    const bool b_seq = b.is_string() || b.is_list() || (b.is_tuple() && !b.is_range());
    if (a_seq && (b.is_int() || b.is_bool())) return ops_repeat(a, b.as_int());
    if (b_seq && (a.is_int() || a.is_bool())) return ops_repeat(b, a.as_int());
    if (a_seq && !b_seq && !b.is_number())
      throw_py("TypeError", fmt::format("can't multiply sequence by non-int of type '{}'", b.type_name()));
    if (a_seq && b.is_float())
      throw_py("TypeError", fmt::format("can't multiply sequence by non-int of type '{}'", b.type_name()));
    ops_unsupported_operands(op, a, b);
  }
  if (!nums) ops_unsupported_operands(op, a, b);
  if (op == "-") {
    if (floats) return Value::number(a.as_double() - b.as_double());
    return Value::integer(ops_sub(a.as_int(), b.as_int()));
  }
  if (op == "/") {
    if (b.as_double() == 0.0) throw_py("ZeroDivisionError", floats ? "float division by zero" : "division by zero");
    return Value::number(a.as_double() / b.as_double());
  }
  if (op == "//" || op == "%") {
    if (floats) {
      if (b.as_double() == 0.0)
        throw_py("ZeroDivisionError", op == "//" ? "float floor division by zero" : "float modulo");
      double q, m;
      ops_float_divmod(a.as_double(), b.as_double(), q, m);
      return Value::number(op == "//" ? q : m);
    }
    if (b.as_int() == 0)
      throw_py("ZeroDivisionError", op == "//" ? "integer division or modulo by zero" : "integer modulo by zero");
    const int64_t q = ops_floor_div(a.as_int(), b.as_int());
    if (op == "//") return Value::integer(q);
    return Value::integer(ops_sub(a.as_int(), ops_mul(q, b.as_int())));
  }
  if (op == "**") {
    if (!floats && b.as_int() >= 0) return Value::integer(ops_int_pow(a.as_int(), b.as_int()));
    if (a.as_double() == 0.0 && b.as_double() < 0)
      throw_py("ZeroDivisionError", "0.0 cannot be raised to a negative power");
    const double r = std::pow(a.as_double(), b.as_double());
    if (std::isinf(r) && std::isfinite(a.as_double()) && std::isfinite(b.as_double()))
      throw_py("OverflowError", "(34, 'Numerical result out of range')");
    if (std::isnan(r) && !std::isnan(a.as_double()) && !std::isnan(b.as_double()))
      throw_py("unsupported", "a negative number to a fractional power (Python gives a complex number)");
    return Value::number(r);
  }
  throw_py("unsupported", fmt::format("the operator '{}'", op));
}

Value unary_op(char op, const Value& a) {
  if (a.is_undefined()) a.fail_undefined();
  if (!a.is_number()) throw_py("TypeError", fmt::format("bad operand type for unary {}: '{}'", op, a.type_name()));
  if (op == '+') return a.is_float() ? a : Value::integer(a.as_int());
  if (a.is_float()) return Value::number(-a.as_double());
  return Value::integer(ops_sub(0, a.as_int()));
}

std::string percent_format(const std::string& format, const Value& args) {
  // The values: a tuple gives them in order; a dict serves %(name)s; anything else is one value.
  // Python does not complain about unused values when they come in something subscriptable
  // (list, dict, range, Undefined: its PyMapping_Check).
  const bool is_tuple = args.is_tuple() && !args.is_range();
  const bool mapping_like = args.is_list() || args.is_dict() || args.is_range() || args.is_undefined();
  const ValueList single{args};
  const ValueList& values = is_tuple ? args.items() : single;
  std::size_t next = 0;
  bool used_mapping = false;
  std::string out;
  for (std::size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out.push_back(format[i]);
      continue;
    }
    if (++i >= format.size()) throw_py("ValueError", "incomplete format");
    const Value* value = nullptr;
    if (format[i] == '(') {
      const std::size_t close = format.find(')', i);
      if (close == std::string::npos) throw_py("ValueError", "incomplete format key");
      if (!args.is_dict()) throw_py("TypeError", "format requires a mapping");
      const Value key = Value::string(format.substr(i + 1, close - i - 1));
      value = args.dict_ref().find(key);
      if (!value) throw_py("KeyError", pystr::repr(key.str()));
      used_mapping = true;
      i = close + 1;
    }
    std::string flags;
    while (i < format.size() && std::string_view("-+ 0#").find(format[i]) != std::string_view::npos)
      flags.push_back(format[i++]);
    std::string width, precision;
    while (i < format.size() && format[i] >= '0' && format[i] <= '9') width.push_back(format[i++]);
    if (i < format.size() && format[i] == '.') {
      precision = ".";
      ++i;
      while (i < format.size() && format[i] >= '0' && format[i] <= '9') precision.push_back(format[i++]);
    }
    if (i >= format.size()) throw_py("ValueError", "incomplete format");
    const char conv = format[i];
    if (conv == '%' && flags.empty() && width.empty() && precision.empty()) {
      out.push_back('%');
      continue;
    }
    if (std::string_view("srdif").find(conv) == std::string_view::npos)
      throw_py("unsupported", fmt::format("the printf conversion '%{}'", conv));
    if (flags.find_first_of("+ #") != std::string::npos)
      throw_py("unsupported", fmt::format("the printf flags '{}'", flags));
    if (!value) {
      if (next >= values.size()) throw_py("TypeError", "not enough arguments for format string");
      value = &values[next++];
    }
    std::string text;
    if (conv == 's' || conv == 'r') {
      text = conv == 's' ? to_str(*value) : repr(*value);
      if (precision.size() > 1) {
        const std::u32string u = pystr::decode(text);
        text = pystr::encode(std::u32string_view(u).substr(0, std::stoul(precision.substr(1))));
      }
    } else {
      if (value->is_undefined()) value->fail_undefined();
      if (!value->is_number())
        throw_py("TypeError", fmt::format("%{} format: a real number is required, not {}", conv, value->type_name()));
      if (conv == 'f') {
        const int prec = precision.empty() ? 6 : precision.size() == 1 ? 0 : std::stoi(precision.substr(1));
        text = fmt::format("{:.{}f}", value->as_double(), prec);
      } else {
        const int64_t n = value->is_float() ? static_cast<int64_t>(std::trunc(value->as_double())) : value->as_int();
        text = std::to_string(n);
      }
    }
    const std::size_t w = width.empty() ? 0 : std::stoul(width);
    const auto len = static_cast<std::size_t>(pystr::length(text));
    if (len < w) {
      if (flags.find('-') != std::string::npos) {
        text += std::string(w - len, ' ');
      } else if (flags.find('0') != std::string::npos && conv != 's' && conv != 'r') {
        const bool neg = !text.empty() && text[0] == '-';
        text.insert(neg ? 1 : 0, std::string(w - len, '0'));
      } else {
        text.insert(0, std::string(w - len, ' '));
      }
    }
    out += text;
  }
  if (!used_mapping && !mapping_like && next < values.size())
    throw_py("TypeError", "not all arguments converted during string formatting");
  return out;
}

namespace {

int64_t ops_slice_index(const Value& v) {
  if (v.is_int() || v.is_bool()) return v.as_int();
  if (v.is_undefined()) v.fail_undefined();
  throw_py("TypeError", "slice indices must be integers or None or have an __index__ method");
}

}  // namespace

Value slice_of(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v) {
  const int64_t step = step_v.is_none() ? 1 : ops_slice_index(step_v);
  if (step == 0) throw_py("ValueError", "slice step cannot be zero");
  std::u32string chars;
  int64_t len;
  if (obj.is_string()) {
    chars = pystr::decode(obj.str());
    len = static_cast<int64_t>(chars.size());
  } else {
    len = static_cast<int64_t>(obj.items().size());
  }
  const int64_t lower = step < 0 ? -1 : 0;
  const int64_t upper = step < 0 ? len - 1 : len;
  auto clamp = [&](const Value& v, int64_t fallback) {
    if (v.is_none()) return fallback;
    int64_t i = ops_slice_index(v);
    if (i < 0) {
      i += len;
      if (i < lower) i = lower;
    } else if (i > upper) {
      i = upper;
    }
    return i;
  };
  const int64_t start = clamp(start_v, step < 0 ? upper : lower);
  const int64_t stop = clamp(stop_v, step < 0 ? lower : upper);
  std::vector<int64_t> picks;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) picks.push_back(i);
  if (obj.is_string()) {
    std::u32string out;
    for (int64_t i : picks) out.push_back(chars[static_cast<std::size_t>(i)]);
    return Value::string(pystr::encode(out), obj.is_markup());
  }
  ValueList out;
  for (int64_t i : picks) out.push_back(obj.items()[static_cast<std::size_t>(i)]);
  return obj.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

int64_t int_arg(const Value& v, const char* what) {
  if (v.is_int() || v.is_bool()) return v.as_int();
  if (v.is_undefined()) v.fail_undefined();
  throw_py("TypeError", fmt::format("{}: '{}' object cannot be interpreted as an integer", what, v.type_name()));
}

const std::string& str_arg(const Value& v, const char* what) {
  if (v.is_string()) return v.str();
  if (v.is_undefined()) v.fail_undefined();
  throw_py("TypeError", fmt::format("{}: expected str, got {}", what, v.type_name()));
}

std::vector<std::optional<Value>> bind_args(const std::string& fname, const CallArgs& args,
                                            std::initializer_list<const char*> names, std::size_t n_required) {
  std::vector<std::optional<Value>> out(names.size());
  if (args.args.size() > names.size())
    throw_py("TypeError", fmt::format("{}() takes at most {} argument{} ({} given)", fname, names.size(),
                                      names.size() == 1 ? "" : "s", args.args.size()));
  for (std::size_t i = 0; i < args.args.size(); ++i) out[i] = args.args[i];
  for (const auto& [key, value] : args.kwargs) {
    std::size_t i = 0;
    for (const char* n : names) {
      if (key == n) break;
      ++i;
    }
    if (i == names.size())
      throw_py("TypeError", fmt::format("{}() got an unexpected keyword argument '{}'", fname, key));
    if (out[i]) throw_py("TypeError", fmt::format("{}() got multiple values for argument '{}'", fname, key));
    out[i] = value;
  }
  for (std::size_t i = 0; i < n_required; ++i) {
    if (!out[i]) throw_py("TypeError", fmt::format("{}() missing required argument '{}'", fname, *(names.begin() + i)));
  }
  return out;
}

}  // namespace rlft::tokenizer::jinja
