#include "policy/tokenizer/jinja/render.h"

#include <fmt/format.h>

#include <cmath>
#include <ctime>

#include <locale.h>
#include <time.h>

#include "policy/tokenizer/jinja/methods.h"
#include "policy/tokenizer/jinja/ops.h"

namespace rlft::tokenizer::jinja {

namespace {

// Nested macro calls; Jinja2 stops near here too (Python's recursion limit of 1000 frames, a few
// frames per call), and it keeps the C++ stack small.
constexpr int kRenderMaxMacroDepth = 250;

ScopePtr render_child(const ScopePtr& parent) {
  auto s = std::make_shared<Scope>();
  s->parent = parent;
  return s;
}

}  // namespace

const Value* Scope::find(const std::string& name) const {
  for (const Scope* s = this; s; s = s->parent.get()) {
    auto it = s->vars.find(name);
    if (it != s->vars.end()) return &it->second;
  }
  return nullptr;
}

Interpreter::Interpreter(const RenderOptions& options, const std::string& origin)
    : options_(options), origin_(origin) {}

Interpreter::~Interpreter() {
  // Macros hold the scope they were defined in, which holds them: break those cycles.
  for (const ScopePtr& s : macro_scopes_) s->vars.clear();
}

std::string Interpreter::render(const Body& body, const ScopePtr& globals) {
  std::string out;
  top_ = &out;
  exec(body, render_child(globals), out);
  top_ = nullptr;
  return out;
}

void Interpreter::fail(const Pos& pos, const PyError& e) const {
  if (e.type == "raise") throw RaisedError(e.message, origin_, pos.line, pos.column);
  const std::string prefix = e.type == "unsupported" ? "unsupported by rlft's Jinja engine" : e.type;
  throw TemplateError(origin_, pos.line, pos.column, prefix + ": " + e.message);
}

// --- statements ----------------------------------------------------------------------------------

Interpreter::Flow Interpreter::exec(const Body& body, const ScopePtr& scope, std::string& out) {
  for (const StmtPtr& s : body) {
    const Flow f = exec_stmt(*s, scope, out);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec_stmt(const Stmt& s, const ScopePtr& scope, std::string& out) {
  try {
    switch (s.type) {
      case StmtType::kData:
        out += s.text;
        return Flow::kNormal;
      case StmtType::kOutput: {
        const Value v = eval(*s.expr, scope);
        try {
          out += to_str(v);
        } catch (const PyError& e) {
          fail(s.expr->pos, e);
        }
        return Flow::kNormal;
      }
      case StmtType::kIf:
        for (const auto& [test, body] : s.branches)
          if (eval(*test, scope).truthy()) return exec(body, scope, out);
        return exec(s.else_body, scope, out);
      case StmtType::kFor:
        return exec_for(s, scope, out);
      case StmtType::kSet:
        assign(*s.target, eval(*s.expr, scope), scope);
        return Flow::kNormal;
      case StmtType::kSetBlock: {
        const ScopePtr inner = render_child(scope);
        std::string text;
        // Jinja2 compiles the body inline: a break or continue in it leaves the block unassigned.
        if (const Flow f = exec(s.body, inner, text); f != Flow::kNormal) return f;
        Value value = Value::string(std::move(text));
        if (s.expr) value = eval_filter(*s.expr, inner, &value);
        assign(*s.target, value, scope);
        return Flow::kNormal;
      }
      case StmtType::kMacro:
        scope->vars[s.text] = make_macro(s, scope, s.text);
        return Flow::kNormal;
      case StmtType::kCallBlock: {
        const Expr& call = *s.expr;
        CallArgs args = eval_args(call, scope);
        args.kwargs.emplace_back("caller", make_macro(s, scope, "caller"));
        Value result;
        try {
          if (call.a->type == ExprType::kGetattr) {
            const Value obj = eval(*call.a->a, scope);
            result = call_value(get_attr(obj, call.a->name), args);
          } else {
            result = call_value(eval(*call.a, scope), args);
          }
          out += to_str(result);
        } catch (const PyError& e) {
          fail(call.pos, e);
        }
        return Flow::kNormal;
      }
      case StmtType::kFilterBlock: {
        const ScopePtr inner = render_child(scope);
        std::string text;
        if (const Flow f = exec(s.body, inner, text); f != Flow::kNormal) return f;
        const Value value = Value::string(std::move(text));
        const Value result = eval_filter(*s.expr, inner, &value);
        try {
          out += to_str(result);
        } catch (const PyError& e) {
          fail(s.pos, e);
        }
        return Flow::kNormal;
      }
      case StmtType::kWith: {
        const ScopePtr inner = render_child(scope);
        for (const auto& [target, value] : s.assigns) assign(*target, eval(*value, scope), inner);
        return exec(s.body, inner, out);
      }
      case StmtType::kScope: {  // {% generation %}
        if (options_.generation_spans != nullptr && &out != top_)
          throw_py("unsupported",
                   "a {% generation %} block inside a macro, call, filter or set block: its place in the output "
                   "is not known while it renders");
        const std::size_t begin = out.size();
        exec(s.body, render_child(scope), out);
        if (options_.generation_spans != nullptr) options_.generation_spans->emplace_back(begin, out.size());
        return Flow::kNormal;
      }
      case StmtType::kBreak:
        return Flow::kBreak;
      case StmtType::kContinue:
        return Flow::kContinue;
    }
  } catch (const PyError& e) {
    fail(s.pos, e);
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec_for(const Stmt& s, const ScopePtr& scope, std::string& out) {
  const Value source = eval(*s.expr, scope);
  ValueList items = iterate(source);
  // Python iterates a list live; this loop iterates a copy, which is the same while nothing
  // pops from the list meanwhile (list.pop and list.clear are the only ways to change one).
  const std::size_t source_size = source.is_list() ? source.items().size() : 0;
  if (s.cond) {
    ValueList kept;
    for (Value& item : items) {
      const ScopePtr test_scope = render_child(scope);
      assign(*s.target, item, test_scope);
      if (eval(*s.cond, test_scope).truthy()) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  auto state = std::make_shared<LoopState>();
  state->items = std::move(items);
  const Value loop = Value::loop(state);
  bool body_completed = false;
  for (std::size_t i = 0; i < state->items.size(); ++i) {
    state->index0 = i;
    const ScopePtr iteration = render_child(scope);
    iteration->vars["loop"] = loop;
    assign(*s.target, state->items[i], iteration);
    const Flow flow = exec(s.body, iteration, out);
    if (source.is_list() && source.items().size() != source_size)
      throw_py("unsupported", "changing a list while a for loop iterates over it");
    if (flow == Flow::kBreak) break;
    body_completed |= flow == Flow::kNormal;
  }
  // Jinja2 clears its "no iteration" flag at the end of the body, which a break or continue
  // skips: `else` runs unless some iteration ran its body to the end.
  if (!body_completed) exec(s.else_body, render_child(scope), out);
  return Flow::kNormal;
}

void Interpreter::assign(const Expr& target, const Value& value, const ScopePtr& scope) {
  switch (target.type) {
    case ExprType::kName:
      scope->vars[target.name] = value;
      return;
    case ExprType::kTuple: {
      if (!value.is_string() && !value.is_sequence() && !value.is_dict() && !value.is_view() && !value.is_iterator() &&
          !value.is_undefined())
        throw_py("TypeError", fmt::format("cannot unpack non-iterable {} object", value.type_name()));
      const ValueList items = iterate(value);
      const std::size_t n = target.items.size();
      if (items.size() < n)
        throw_py("ValueError", fmt::format("not enough values to unpack (expected {}, got {})", n, items.size()));
      if (items.size() > n) throw_py("ValueError", fmt::format("too many values to unpack (expected {})", n));
      for (std::size_t i = 0; i < n; ++i) assign(*target.items[i], items[i], scope);
      return;
    }
    case ExprType::kNsRef: {
      const Value* ns = scope->find(target.name);
      if (!ns || !ns->is_namespace())
        throw_py("TemplateRuntimeError", "cannot assign attribute on non-namespace object");
      ns->dict_ref().set(Value::string(target.attr), value);
      return;
    }
    default:
      throw_py("unsupported", "this assignment target");
  }
}

// --- macros --------------------------------------------------------------------------------------

Value Interpreter::make_macro(const Stmt& m, const ScopePtr& scope, const std::string& name) {
  macro_scopes_.push_back(scope);
  const Stmt* def = &m;
  ScopePtr defining = scope;
  return Value::callable(name, [def, defining, name](Interpreter& in, CallArgs& args) {
    return in.call_macro(*def, defining, name, args);
  });
}

Value Interpreter::call_macro(const Stmt& m, const ScopePtr& defining, const std::string& name, CallArgs& args) {
  if (depth_ >= kRenderMaxMacroDepth) throw_py("RecursionError", "maximum recursion depth exceeded in macro calls");
  struct DepthGuard {
    int& depth;
    explicit DepthGuard(int& d) : depth(d) { ++depth; }
    ~DepthGuard() { --depth; }
  } guard(depth_);
  const ScopePtr scope = render_child(defining);
  const bool is_call_block = m.type == StmtType::kCallBlock;
  std::vector<bool> bound(m.params.size(), false);
  ValueList varargs;
  Dict kwargs;
  for (std::size_t i = 0; i < args.args.size(); ++i) {
    if (i < m.params.size()) {
      scope->vars[m.params[i].name] = args.args[i];
      bound[i] = true;
    } else if (m.uses_varargs) {
      varargs.push_back(args.args[i]);
    } else {
      throw_py("TypeError", fmt::format("macro '{}' takes not more than {} argument(s)", name, m.params.size()));
    }
  }
  bool caller_given = false;
  for (const auto& [key, value] : args.kwargs) {
    std::size_t i = 0;
    while (i < m.params.size() && m.params[i].name != key) ++i;
    if (i < m.params.size()) {
      if (bound[i]) throw_py("TypeError", fmt::format("macro '{}' got multiple values for argument '{}'", name, key));
      scope->vars[key] = value;
      bound[i] = true;
    } else if (key == "caller" && !is_call_block && m.uses_caller) {
      scope->vars["caller"] = value;
      caller_given = true;
    } else if (m.uses_kwargs) {
      kwargs.set(Value::string(key), value);
    } else {
      throw_py("TypeError", fmt::format("macro '{}' takes no keyword argument '{}'", name, key));
    }
  }
  for (std::size_t i = 0; i < m.params.size(); ++i) {
    if (bound[i]) continue;
    scope->vars[m.params[i].name] =
        m.params[i].default_value ? eval(*m.params[i].default_value, scope)
                                  : Value::undefined(fmt::format("parameter '{}' was not provided", m.params[i].name));
  }
  if (m.uses_varargs) scope->vars["varargs"] = Value::tuple(std::move(varargs));
  if (m.uses_kwargs) scope->vars["kwargs"] = Value::dict(std::move(kwargs));
  if (m.uses_caller && !caller_given && !is_call_block) scope->vars["caller"] = Value::undefined("No caller defined");
  std::string out;
  exec(m.body, scope, out);
  return Value::string(std::move(out));
}

Value Interpreter::call_value(const Value& callee, CallArgs& args) {
  if (callee.is_callable()) return callee.callable_ref().fn(*this, args);
  if (callee.is_undefined()) callee.fail_undefined();
  throw_py("TypeError", fmt::format("'{}' object is not callable", callee.type_name()));
}

Value Interpreter::apply_filter(const std::string& name, const Value& input, CallArgs& args) {
  bool unsupported = false;
  const FilterDef* f = find_filter(name, &unsupported);
  if (!f) {
    if (unsupported) throw_py("unsupported", fmt::format("the filter '{}'", name));
    throw_py("TemplateRuntimeError", fmt::format("No filter named '{}' found.", name));
  }
  return f->fn(*this, input, args);
}

bool Interpreter::apply_test(const std::string& name, const Value& value, CallArgs& args) {
  bool unsupported = false;
  const TestDef* t = find_test(name, &unsupported);
  if (!t) throw_py("TemplateRuntimeError", fmt::format("No test named '{}' found.", name));
  return t->fn(*this, value, args);
}

// --- expressions ---------------------------------------------------------------------------------

Value Interpreter::eval(const Expr& e, const ScopePtr& scope) {
  try {
    return eval_node(e, scope);
  } catch (const PyError& err) {
    fail(e.pos, err);
  }
}

CallArgs Interpreter::eval_args(const Expr& e, const ScopePtr& scope) {
  CallArgs args;
  args.args.reserve(e.items.size());
  for (const ExprPtr& x : e.items) args.args.push_back(eval(*x, scope));
  for (const auto& [key, x] : e.kwargs) args.kwargs.emplace_back(key, eval(*x, scope));
  return args;
}

Value Interpreter::eval_filter(const Expr& e, const ScopePtr& scope, const Value* block_input) {
  try {
    Value input;
    if (e.a) {
      input = e.a->type == ExprType::kFilter ? eval_filter(*e.a, scope, block_input) : eval(*e.a, scope);
    } else {
      input = *block_input;
    }
    CallArgs args = eval_args(e, scope);
    if (!e.filter) return apply_filter(e.name, input, args);
    return e.filter->fn(*this, input, args);
  } catch (const PyError& err) {
    fail(e.pos, err);
  }
}

bool Interpreter::eval_compare(const Expr& e, const ScopePtr& scope) {
  Value left = eval(*e.a, scope);
  for (std::size_t i = 0; i < e.ops.size(); ++i) {
    Value right = eval(*e.items[i], scope);
    const std::string& op = e.ops[i];
    bool ok;
    if (op == "eq") {
      ok = equals(left, right);
    } else if (op == "ne") {
      ok = !equals(left, right);
    } else if (op == "in") {
      ok = contains(right, left);
    } else if (op == "notin") {
      ok = !contains(right, left);
    } else {
      ok = compare(left, right, op == "lteq" ? "le" : op == "gteq" ? "ge" : op);
    }
    if (!ok) return false;
    left = std::move(right);
  }
  return true;
}

Value Interpreter::eval_call(const Expr& e, const ScopePtr& scope) {
  if (e.a->type == ExprType::kGetattr) {
    const Value obj = eval(*e.a->a, scope);
    if (obj.is_undefined()) obj.fail_undefined();
    CallArgs args = eval_args(e, scope);
    if (auto r = call_method(obj, e.a->name, args)) return *r;
    return call_value(get_attr(obj, e.a->name), args);
  }
  const Value callee = eval(*e.a, scope);
  CallArgs args = eval_args(e, scope);
  return call_value(callee, args);
}

Value Interpreter::eval_node(const Expr& e, const ScopePtr& scope) {
  switch (e.type) {
    case ExprType::kConst:
      return e.constant;
    case ExprType::kName: {
      if (const Value* v = scope->find(e.name)) return *v;
      return Value::undefined(fmt::format("'{}' is undefined", e.name));
    }
    case ExprType::kList:
    case ExprType::kTuple: {
      ValueList items;
      items.reserve(e.items.size());
      for (const ExprPtr& x : e.items) items.push_back(eval(*x, scope));
      return e.type == ExprType::kList ? Value::list(std::move(items)) : Value::tuple(std::move(items));
    }
    case ExprType::kDict: {
      Dict d;
      for (std::size_t i = 0; i + 1 < e.items.size(); i += 2) {
        Value key = eval(*e.items[i], scope);
        if (key.is_list() || key.is_dict() || key.is_namespace())
          throw_py("TypeError", fmt::format("unhashable type: '{}'", key.type_name()));
        d.set(std::move(key), eval(*e.items[i + 1], scope));
      }
      return Value::dict(std::move(d));
    }
    case ExprType::kGetattr:
      return get_attr(eval(*e.a, scope), e.name);
    case ExprType::kGetitem: {
      const Value obj = eval(*e.a, scope);
      if (e.b->type != ExprType::kSlice) return get_item(obj, eval(*e.b, scope));
      auto part = [&](std::size_t i) { return e.b->items[i] ? eval(*e.b->items[i], scope) : Value::none(); };
      const Value start = part(0), stop = part(1), step = part(2);
      if (obj.is_undefined()) obj.fail_undefined();
      if (obj.is_range()) throw_py("unsupported", "slicing a range");
      if (obj.is_string() || obj.is_sequence()) return slice_of(obj, start, stop, step);
      return Value::undefined(fmt::format("{} object has no element slice({}, {}, {})", obj.type_name(), repr(start),
                                          repr(stop), repr(step)));
    }
    case ExprType::kCall:
      return eval_call(e, scope);
    case ExprType::kFilter:
      return eval_filter(e, scope, nullptr);
    case ExprType::kTest: {
      const Value value = eval(*e.a, scope);
      CallArgs args = eval_args(e, scope);
      if (!e.test) return Value::boolean(apply_test(e.name, value, args));
      return Value::boolean(e.test->fn(*this, value, args));
    }
    case ExprType::kNeg:
      return unary_op('-', eval(*e.a, scope));
    case ExprType::kPos:
      return unary_op('+', eval(*e.a, scope));
    case ExprType::kNot:
      return Value::boolean(!eval(*e.a, scope).truthy());
    case ExprType::kBinary: {
      const Value a = eval(*e.a, scope);
      const Value b = eval(*e.b, scope);
      if (e.name == "**" && a.is_number() && std::signbit(a.as_double()) && fold(*e.a) && !fold(*e.b)) {
        // Jinja2 folds a constant left operand and writes it into the Python it generates as
        // "-3 ** y", which Python reads as -(3 ** y).
        return unary_op('-', binary_op("**", unary_op('-', a), b));
      }
      return binary_op(e.name, a, b);
    }
    case ExprType::kConcat: {
      std::string out;
      for (const ExprPtr& x : e.items) out += to_str(eval(*x, scope));
      return Value::string(std::move(out));
    }
    case ExprType::kCompare:
      return Value::boolean(eval_compare(e, scope));
    case ExprType::kAnd: {
      Value a = eval(*e.a, scope);
      return a.truthy() ? eval(*e.b, scope) : a;
    }
    case ExprType::kOr: {
      Value a = eval(*e.a, scope);
      return a.truthy() ? a : eval(*e.b, scope);
    }
    case ExprType::kCond:
      if (eval(*e.a, scope).truthy()) return eval(*e.b, scope);
      if (e.c) return eval(*e.c, scope);
      return Value::undefined(fmt::format(
          "the inline if-expression on line {} evaluated to false and no else section was defined.", e.pos.line));
    case ExprType::kSlice:
    case ExprType::kNsRef:
      break;
  }
  throw_py("unsupported", "this expression");
}

// What Jinja2's optimizer folds at compile time (nodes.py as_const): an expression of constants
// with the operators, filters and tests applied; nullopt when it stays an expression.
std::optional<Value> Interpreter::fold(const Expr& e) {
  static const char* const kContextFilters[] = {"map", "select", "reject", "selectattr", "rejectattr"};
  try {
    switch (e.type) {
      case ExprType::kConst:
        return e.constant;
      case ExprType::kNeg:
      case ExprType::kPos:
      case ExprType::kNot: {
        const auto a = fold(*e.a);
        if (!a) return std::nullopt;
        if (e.type == ExprType::kNot) return Value::boolean(!a->truthy());
        return unary_op(e.type == ExprType::kNeg ? '-' : '+', *a);
      }
      case ExprType::kBinary: {
        const auto a = fold(*e.a);
        const auto b = a ? fold(*e.b) : std::nullopt;
        if (!b) return std::nullopt;
        return binary_op(e.name, *a, *b);
      }
      case ExprType::kAnd:
      case ExprType::kOr: {
        const auto a = fold(*e.a);
        if (!a || a->truthy() == (e.type == ExprType::kOr)) return a;
        return fold(*e.b);
      }
      case ExprType::kCond: {
        const auto test = fold(*e.a);
        if (!test) return std::nullopt;
        if (test->truthy()) return fold(*e.b);
        return e.c ? fold(*e.c) : std::nullopt;
      }
      case ExprType::kCompare: {
        auto left = fold(*e.a);
        for (std::size_t i = 0; left && i < e.ops.size(); ++i) {
          const auto right = fold(*e.items[i]);
          if (!right) return std::nullopt;
          const std::string& op = e.ops[i];
          bool ok;
          if (op == "eq" || op == "ne") {
            ok = equals(*left, *right) == (op == "eq");
          } else if (op == "in" || op == "notin") {
            ok = contains(*right, *left) == (op == "in");
          } else {
            ok = compare(*left, *right, op == "lteq" ? "le" : op == "gteq" ? "ge" : op);
          }
          if (!ok) return Value::boolean(false);
          left = right;
        }
        return left ? std::optional<Value>(Value::boolean(true)) : std::nullopt;
      }
      case ExprType::kConcat: {
        std::string out;
        for (const ExprPtr& x : e.items) {
          const auto v = fold(*x);
          if (!v) return std::nullopt;
          out += to_str(*v);
        }
        return Value::string(std::move(out));
      }
      case ExprType::kFilter:
      case ExprType::kTest: {
        if (!e.a || (e.type == ExprType::kFilter ? !e.filter : !e.test)) return std::nullopt;
        for (const char* name : kContextFilters)
          if (e.type == ExprType::kFilter && e.name == name) return std::nullopt;
        const auto input = fold(*e.a);
        if (!input) return std::nullopt;
        CallArgs args;
        for (const ExprPtr& x : e.items) {
          const auto v = fold(*x);
          if (!v) return std::nullopt;
          args.args.push_back(*v);
        }
        for (const auto& [key, x] : e.kwargs) {
          const auto v = fold(*x);
          if (!v) return std::nullopt;
          args.kwargs.emplace_back(key, *v);
        }
        if (e.type == ExprType::kTest) return Value::boolean(e.test->fn(*this, *input, args));
        return e.filter->fn(*this, *input, args);
      }
      default:
        return std::nullopt;  // names, calls, lookups: evaluated when rendering
    }
  } catch (const PyError&) {
    return std::nullopt;  // as_const raising makes it Impossible to fold
  }
}

// --- globals -------------------------------------------------------------------------------------

namespace {

Value render_range(Interpreter&, CallArgs& args) {
  if (!args.kwargs.empty()) throw_py("TypeError", "range() takes no keyword arguments");
  if (args.args.empty() || args.args.size() > 3)
    throw_py("TypeError", fmt::format("range expected at most 3 arguments, got {}", args.args.size()));
  int64_t start = 0, stop, step = 1;
  if (args.args.size() == 1) {
    stop = int_arg(args.args[0], "range");
  } else {
    start = int_arg(args.args[0], "range");
    stop = int_arg(args.args[1], "range");
    if (args.args.size() == 3) step = int_arg(args.args[2], "range");
  }
  if (step == 0) throw_py("ValueError", "range() arg 3 must not be zero");
  ValueList items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (items.size() >= 100000)
      throw_py("OverflowError", "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    items.push_back(Value::integer(i));
  }
  return Value::range(std::move(items));
}

// dict(*args, **kwargs) as Python builds one (also namespace()'s attributes).
Dict render_build_dict(const char* fname, CallArgs& args) {
  if (args.args.size() > 1)
    throw_py("TypeError", fmt::format("{} expected at most 1 argument, got {}", fname, args.args.size()));
  Dict d;
  if (!args.args.empty()) {
    const Value& src = args.args[0];
    if (src.is_dict() || src.is_namespace()) {
      d = src.dict_ref();
    } else {
      for (const Value& pair : iterate(src)) {
        const ValueList kv = iterate(pair);
        if (kv.size() != 2)
          throw_py("ValueError",
                   fmt::format("dictionary update sequence element has length {}; 2 is required", kv.size()));
        d.set(kv[0], kv[1]);
      }
    }
  }
  for (auto& [k, v] : args.kwargs) d.set(Value::string(k), v);
  return d;
}

Value render_dict(Interpreter&, CallArgs& args) {
  return Value::dict(render_build_dict("dict", args));
}
Value render_namespace(Interpreter&, CallArgs& args) {
  return Value::namespace_(render_build_dict("Namespace", args));
}

Value render_joiner(Interpreter&, CallArgs& args) {
  const auto a = bind_args("joiner", args, {"sep"}, 0);
  const std::string sep = a[0] ? to_str(*a[0]) : ", ";
  auto used = std::make_shared<bool>(false);
  return Value::callable("joiner", [sep, used](Interpreter&, CallArgs& call) {
    bind_args("joiner", call, {}, 0);
    if (!*used) {
      *used = true;
      return Value::string("");
    }
    return Value::string(sep);
  });
}

Value render_raise_exception(Interpreter&, CallArgs& args) {
  const auto a = bind_args("raise_exception", args, {"message"}, 1);
  throw_py("raise", to_str(*a[0]));
}

// datetime.now().strftime(format): C's strftime in the C locale (as Python's, which leaves
// LC_TIME alone), except what datetime formats itself: %z and %Z are empty for a naive time,
// and %f (microseconds) is refused.
Value render_strftime_now(Interpreter& in, CallArgs& args) {
  const auto a = bind_args("strftime_now", args, {"format"}, 1);
  const std::string& format = str_arg(*a[0], "strftime_now");
  std::string c_format;
  for (std::size_t i = 0; i < format.size(); ++i) {
    if (format[i] == '%' && i + 1 < format.size()) {
      const char d = format[i + 1];
      if (d == 'f') throw_py("unsupported", "strftime_now's %f (microseconds)");
      ++i;
      if (d != 'z' && d != 'Z') c_format += {'%', d};
      continue;
    }
    c_format.push_back(format[i]);
  }
  if (c_format.empty()) return Value::string("");
  std::tm tm{};
  if (in.options().now) {
    tm = in.options().now();
    timegm(&tm);  // fills in the weekday and the day of the year from the date
  } else {
    const std::time_t t = std::time(nullptr);
    localtime_r(&t, &tm);
  }
  const locale_t c_locale = newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(nullptr));
  std::string buf(256 + c_format.size() * 16, '\0');
  const std::size_t n = strftime_l(buf.data(), buf.size(), c_format.c_str(), &tm, c_locale);
  freelocale(c_locale);
  buf.resize(n);
  return Value::string(std::move(buf));
}

Value render_unsupported_global(const char* name) {
  return Value::callable(name, [name](Interpreter&, CallArgs&) -> Value {
    throw_py("unsupported", fmt::format("the global '{}'", name));
  });
}

}  // namespace

void add_globals(Scope& scope) {
  scope.vars["range"] = Value::callable("range", render_range);
  scope.vars["dict"] = Value::callable("dict", render_dict);
  scope.vars["namespace"] = Value::callable("namespace", render_namespace);
  scope.vars["joiner"] = Value::callable("joiner", render_joiner);
  scope.vars["cycler"] = render_unsupported_global("cycler");
  scope.vars["lipsum"] = render_unsupported_global("lipsum");
  scope.vars["raise_exception"] = Value::callable("raise_exception", render_raise_exception);
  scope.vars["strftime_now"] = Value::callable("strftime_now", render_strftime_now);
}

}  // namespace rlft::tokenizer::jinja
