// Jinja2's builtin tests (jinja2/tests.py): `value is name(args)` with the semantics of the
// Python originals (`is sequence` is true for an Undefined, `is number` for a bool …).
#include <fmt/format.h>

#include "policy/tokenizer/jinja/ast.h"
#include "policy/tokenizer/jinja/ops.h"
#include "policy/tokenizer/jinja/pystr.h"

namespace rlft::tokenizer::jinja {

namespace {

bool test_no_args(const char* name, CallArgs& args) {
  bind_args(name, args, {}, 0);
  return true;
}

bool test_defined(Interpreter&, const Value& v, CallArgs& a) {
  return test_no_args("defined", a) && !v.is_undefined();
}
bool test_undefined(Interpreter&, const Value& v, CallArgs& a) {
  return test_no_args("undefined", a) && v.is_undefined();
}
bool test_none(Interpreter&, const Value& v, CallArgs& a) {
  return test_no_args("none", a) && v.is_none();
}
bool test_boolean(Interpreter&, const Value& v, CallArgs& a) {
  return test_no_args("boolean", a) && v.is_bool();
}
bool test_false(Interpreter&, const Value& v, CallArgs& a) {
  return test_no_args("false", a) && v.is_bool() && !v.as_bool();
}
bool test_true(Interpreter&, const Value& v, CallArgs& a) {
  return test_no_args("true", a) && v.is_bool() && v.as_bool();
}
bool test_integer(Interpreter&, const Value& v, CallArgs& a) {
  return test_no_args("integer", a) && v.is_int();
}
bool test_float(Interpreter&, const Value& v, CallArgs& a) {
  return test_no_args("float", a) && v.is_float();
}
bool test_string(Interpreter&, const Value& v, CallArgs& a) {
  return test_no_args("string", a) && v.is_string();
}
bool test_mapping(Interpreter&, const Value& v, CallArgs& a) {
  return test_no_args("mapping", a) && v.is_dict();
}
bool test_number(Interpreter&, const Value& v, CallArgs& a) {
  return test_no_args("number", a) && v.is_number();
}
bool test_escaped(Interpreter&, const Value& v, CallArgs& a) {
  return test_no_args("escaped", a) && v.is_markup();
}

bool test_lower(Interpreter&, const Value& v, CallArgs& a) {
  test_no_args("lower", a);
  return pystr::is_lower(to_str(v));
}
bool test_upper(Interpreter&, const Value& v, CallArgs& a) {
  test_no_args("upper", a);
  return pystr::is_upper(to_str(v));
}

// len(value) and value.__getitem__ both work.
bool test_sequence(Interpreter&, const Value& v, CallArgs& a) {
  test_no_args("sequence", a);
  return v.is_undefined() || v.is_string() || v.is_sequence() || v.is_dict();
}

bool test_iterable(Interpreter&, const Value& v, CallArgs& a) {
  test_no_args("iterable", a);
  return v.is_undefined() || v.is_string() || v.is_sequence() || v.is_dict() || v.is_view() || v.is_iterator() ||
         v.is_loop();
}

bool test_callable(Interpreter&, const Value& v, CallArgs& a) {
  test_no_args("callable", a);
  return v.is_callable() || v.is_undefined() || v.is_loop();
}

bool test_odd(Interpreter&, const Value& v, CallArgs& a) {
  test_no_args("odd", a);
  return equals(binary_op("%", v, Value::integer(2)), Value::integer(1));
}
bool test_even(Interpreter&, const Value& v, CallArgs& a) {
  test_no_args("even", a);
  return equals(binary_op("%", v, Value::integer(2)), Value::integer(0));
}
bool test_divisibleby(Interpreter&, const Value& v, CallArgs& a) {
  const auto b = bind_args("divisibleby", a, {"num"}, 1);
  return equals(binary_op("%", v, *b[0]), Value::integer(0));
}

bool test_sameas(Interpreter&, const Value& v, CallArgs& a) {
  const auto b = bind_args("sameas", a, {"other"}, 1);
  const Value& o = *b[0];
  const bool by_value = v.is_int() || v.is_float() || v.is_string() || o.is_int() || o.is_float() || o.is_string();
  if (by_value && v.kind() == o.kind())
    throw_py("unsupported", "'sameas' on numbers or strings (the answer depends on Python's object caching)");
  return v.same_object(o);
}

bool test_in(Interpreter&, const Value& v, CallArgs& a) {
  const auto b = bind_args("in", a, {"seq"}, 1);
  return contains(*b[0], v);
}

bool test_filter(Interpreter&, const Value& v, CallArgs& a) {
  test_no_args("filter", a);
  bool unsupported = false;
  return v.is_string() && (find_filter(v.str(), &unsupported) || unsupported);
}

bool test_test(Interpreter&, const Value& v, CallArgs& a) {
  test_no_args("test", a);
  bool unsupported = false;
  return v.is_string() && (find_test(v.str(), &unsupported) || unsupported);
}

template <int Op>
bool test_compare(Interpreter&, const Value& v, CallArgs& a) {
  const auto b = bind_args("compare", a, {"other"}, 1);
  switch (Op) {
    case 0:
      return equals(v, *b[0]);
    case 1:
      return !equals(v, *b[0]);
    case 2:
      return compare(v, *b[0], "gt");
    case 3:
      return compare(v, *b[0], "ge");
    case 4:
      return compare(v, *b[0], "lt");
    default:
      return compare(v, *b[0], "le");
  }
}

const TestDef kTests[] = {
    {"odd", test_odd},
    {"even", test_even},
    {"divisibleby", test_divisibleby},
    {"defined", test_defined},
    {"undefined", test_undefined},
    {"filter", test_filter},
    {"test", test_test},
    {"none", test_none},
    {"boolean", test_boolean},
    {"false", test_false},
    {"true", test_true},
    {"integer", test_integer},
    {"float", test_float},
    {"lower", test_lower},
    {"upper", test_upper},
    {"string", test_string},
    {"mapping", test_mapping},
    {"number", test_number},
    {"sequence", test_sequence},
    {"iterable", test_iterable},
    {"callable", test_callable},
    {"sameas", test_sameas},
    {"escaped", test_escaped},
    {"in", test_in},
    {"==", test_compare<0>},
    {"eq", test_compare<0>},
    {"equalto", test_compare<0>},
    {"!=", test_compare<1>},
    {"ne", test_compare<1>},
    {">", test_compare<2>},
    {"gt", test_compare<2>},
    {"greaterthan", test_compare<2>},
    {">=", test_compare<3>},
    {"ge", test_compare<3>},
    {"<", test_compare<4>},
    {"lt", test_compare<4>},
    {"lessthan", test_compare<4>},
    {"<=", test_compare<5>},
    {"le", test_compare<5>},
};

}  // namespace

const TestDef* find_test(const std::string& name, bool* unsupported) {
  for (const TestDef& t : kTests)
    if (name == t.name) return &t;
  *unsupported = false;
  return nullptr;
}

}  // namespace rlft::tokenizer::jinja
