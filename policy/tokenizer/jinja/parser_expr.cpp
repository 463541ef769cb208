// The expression half of the parser (parser_impl.h): Jinja2's precedence from conditional
// expressions down to primaries, postfix subscripts, calls, filters and tests.
#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>

#include "policy/tokenizer/jinja/parser_impl.h"

namespace rlft::tokenizer::jinja::parser_detail {
namespace {

bool parser_is_compare_op(const std::string& op) {
  return op == "==" || op == "!=" || op == "<" || op == "<=" || op == ">" || op == ">=";
}

std::string parser_compare_name(const std::string& op) {
  if (op == "==") return "eq";
  if (op == "!=") return "ne";
  if (op == "<") return "lt";
  if (op == "<=") return "lteq";
  if (op == ">") return "gt";
  return "gteq";
}

}  // namespace

bool Parser::is_const_name(const std::string& n) {
  return n == "true" || n == "false" || n == "none" || n == "True" || n == "False" || n == "None";
}

ExprPtr Parser::parse_assign_target(bool with_tuple, bool name_only, const EndTokens* extra_end, bool with_namespace) {
  if (with_namespace && cur().type == TokenType::kName && is_op(look(), ".")) {
    const Token& name = next();
    auto e = node(ExprType::kNsRef, pos_of(name));
    e->name = name.value;
    next();  // the dot
    e->attr = expect_name().value;
    return e;
  }
  ExprPtr target;
  if (name_only) {
    const Token& name = expect_name();
    target = node(ExprType::kName, pos_of(name));
    target->name = name.value;
  } else if (with_tuple) {
    target = parse_tuple(true, true, extra_end, false);
  } else {
    target = parse_primary();
  }
  check_assignable(*target);
  return target;
}

void Parser::check_assignable(const Expr& e) const {
  if (e.type == ExprType::kName && !is_const_name(e.name)) return;
  if (e.type == ExprType::kTuple) {
    for (const ExprPtr& x : e.items) check_assignable(*x);
    return;
  }
  const char* what = e.type == ExprType::kConst     ? "const"
                     : e.type == ExprType::kGetattr ? "getattr"
                     : e.type == ExprType::kGetitem ? "getitem"
                     : e.type == ExprType::kCall    ? "call"
                                                    : "expression";
  throw SyntaxError{fmt::format("can't assign to '{}'", what), e.pos.line, e.pos.column};
}

bool Parser::is_tuple_end(const EndTokens* extra_end) const {
  const Token& t = cur();
  if (t.type == TokenType::kVariableEnd || t.type == TokenType::kBlockEnd || is_op(t, ")")) return true;
  if (extra_end && t.type == TokenType::kName)
    return std::find(extra_end->begin(), extra_end->end(), t.value) != extra_end->end();
  return false;
}

ExprPtr Parser::parse_tuple(bool simplified, bool with_condexpr, const EndTokens* extra_end,
                            bool explicit_parentheses) {
  const Pos pos = pos_of(cur());
  std::vector<ExprPtr> args;
  bool is_tuple = false;
  while (true) {
    if (!args.empty()) expect_op(",");
    if (is_tuple_end(extra_end)) break;
    args.push_back(simplified ? parse_primary() : parse_expression(with_condexpr));
    if (is_op(cur(), ",")) {
      is_tuple = true;
    } else {
      break;
    }
  }
  if (!is_tuple) {
    if (!args.empty()) return std::move(args[0]);
    if (!explicit_parentheses) {
      if (cur().type == TokenType::kEof) fail_eof(nullptr);
      fail(cur(), fmt::format("Expected an expression, got '{}'", describe(cur())));
    }
  }
  auto e = node(ExprType::kTuple, pos);
  e->items = std::move(args);
  return e;
}

ExprPtr Parser::parse_condexpr() {
  Pos pos = pos_of(cur());
  ExprPtr expr1 = parse_or();
  while (skip_name("if")) {
    auto e = node(ExprType::kCond, pos);
    e->a = parse_or();
    e->b = std::move(expr1);
    if (skip_name("else")) e->c = parse_condexpr();
    expr1 = std::move(e);
    pos = pos_of(cur());
  }
  return expr1;
}

ExprPtr Parser::parse_or() {
  ExprPtr left = parse_and();
  while (is_name(cur(), "or")) {
    auto e = node(ExprType::kOr, pos_of(next()));
    e->a = std::move(left);
    e->b = parse_and();
    left = std::move(e);
  }
  return left;
}

ExprPtr Parser::parse_and() {
  ExprPtr left = parse_not();
  while (is_name(cur(), "and")) {
    auto e = node(ExprType::kAnd, pos_of(next()));
    e->a = std::move(left);
    e->b = parse_not();
    left = std::move(e);
  }
  return left;
}

ExprPtr Parser::parse_not() {
  if (is_name(cur(), "not")) {
    auto e = node(ExprType::kNot, pos_of(next()));
    e->a = parse_not();
    return e;
  }
  return parse_compare();
}

ExprPtr Parser::parse_compare() {
  const Pos pos = pos_of(cur());
  ExprPtr expr = parse_math1();
  ExprPtr cmp;
  while (true) {
    const Token& t = cur();
    std::string op;
    if (t.type == TokenType::kOperator && parser_is_compare_op(t.value)) {
      op = parser_compare_name(t.value);
      next();
    } else if (is_name(t, "in")) {
      op = "in";
      next();
    } else if (is_name(t, "not") && is_name(look(), "in")) {
      op = "notin";
      next();
      next();
    } else {
      break;
    }
    if (!cmp) {
      cmp = node(ExprType::kCompare, pos);
      cmp->a = std::move(expr);
    }
    cmp->ops.push_back(op);
    cmp->items.push_back(parse_math1());
  }
  return cmp ? std::move(cmp) : std::move(expr);
}

ExprPtr Parser::binary(ExprPtr left, const Token& op, ExprPtr right) {
  auto e = node(ExprType::kBinary, pos_of(op));
  e->name = op.value;
  e->a = std::move(left);
  e->b = std::move(right);
  return e;
}

ExprPtr Parser::parse_math1() {
  ExprPtr left = parse_concat();
  while (is_op(cur(), "+") || is_op(cur(), "-")) {
    const Token& op = next();
    left = binary(std::move(left), op, parse_concat());
  }
  return left;
}

ExprPtr Parser::parse_concat() {
  const Pos pos = pos_of(cur());
  ExprPtr first = parse_math2();
  if (!is_op(cur(), "~")) return first;
  auto e = node(ExprType::kConcat, pos);
  e->items.push_back(std::move(first));
  while (skip_op("~")) e->items.push_back(parse_math2());
  return e;
}

ExprPtr Parser::parse_math2() {
  ExprPtr left = parse_pow();
  while (is_op(cur(), "*") || is_op(cur(), "/") || is_op(cur(), "//") || is_op(cur(), "%")) {
    const Token& op = next();
    left = binary(std::move(left), op, parse_pow());
  }
  return left;
}

ExprPtr Parser::parse_pow() {
  ExprPtr left = parse_unary(true);
  while (is_op(cur(), "**")) {
    const Token& op = next();
    left = binary(std::move(left), op, parse_unary(true));
  }
  return left;
}

ExprPtr Parser::parse_unary(bool with_filter) {
  ExprPtr e;
  if (is_op(cur(), "-") || is_op(cur(), "+")) {
    const Token& op = next();
    e = node(op.value == "-" ? ExprType::kNeg : ExprType::kPos, pos_of(op));
    e->a = parse_unary(false);
  } else {
    e = parse_primary();
  }
  e = parse_postfix(std::move(e));
  if (with_filter) e = parse_filter_expr(std::move(e));
  return e;
}

ExprPtr Parser::parse_primary() {
  const Token& t = cur();
  const Pos pos = pos_of(t);
  switch (t.type) {
    case TokenType::kName: {
      auto e = node(ExprType::kConst, pos);
      if (t.value == "true" || t.value == "True") {
        e->constant = Value::boolean(true);
      } else if (t.value == "false" || t.value == "False") {
        e->constant = Value::boolean(false);
      } else if (t.value == "none" || t.value == "None") {
        e->constant = Value::none();
      } else {
        e->type = ExprType::kName;
        e->name = t.value;
      }
      next();
      return e;
    }
    case TokenType::kString: {
      std::string s;
      while (cur().type == TokenType::kString) s += next().value;
      auto e = node(ExprType::kConst, pos);
      e->constant = Value::string(std::move(s));
      return e;
    }
    case TokenType::kInteger:
    case TokenType::kFloat: {
      auto e = node(ExprType::kConst, pos);
      e->constant = t.type == TokenType::kInteger ? Value::integer(t.int_value) : Value::number(t.float_value);
      next();
      return e;
    }
    case TokenType::kOperator:
      if (t.value == "(") {
        next();
        ExprPtr e = parse_tuple(false, true, nullptr, true);
        expect_op(")");
        return e;
      }
      if (t.value == "[") return parse_list();
      if (t.value == "{") return parse_dict();
      break;
    case TokenType::kEof:
      fail_eof(nullptr);
    default:
      break;
  }
  fail_unexpected(t);
}

ExprPtr Parser::parse_list() {
  auto e = node(ExprType::kList, pos_of(next()));
  while (!is_op(cur(), "]")) {
    if (!e->items.empty()) expect_op(",");
    if (is_op(cur(), "]")) break;
    e->items.push_back(parse_expression(true));
  }
  expect_op("]");
  return e;
}

ExprPtr Parser::parse_dict() {
  auto e = node(ExprType::kDict, pos_of(next()));
  while (!is_op(cur(), "}")) {
    if (!e->items.empty()) expect_op(",");
    if (is_op(cur(), "}")) break;
    e->items.push_back(parse_expression(true));
    expect_op(":");
    e->items.push_back(parse_expression(true));
  }
  expect_op("}");
  return e;
}

ExprPtr Parser::parse_postfix(ExprPtr e) {
  while (true) {
    if (is_op(cur(), ".") || is_op(cur(), "[")) {
      e = parse_subscript(std::move(e));
    } else if (is_op(cur(), "(")) {
      e = parse_call(std::move(e));
    } else {
      return e;
    }
  }
}

ExprPtr Parser::parse_filter_expr(ExprPtr e) {
  while (true) {
    if (is_op(cur(), "|")) {
      e = parse_filter(std::move(e), false);
    } else if (is_name(cur(), "is")) {
      e = parse_test(std::move(e));
    } else if (is_op(cur(), "(")) {
      e = parse_call(std::move(e));
    } else {
      return e;
    }
  }
}

ExprPtr Parser::parse_subscript(ExprPtr obj) {
  const Token& t = next();
  if (t.value == ".") {
    const Token& attr = next();
    if (attr.type == TokenType::kName) {
      auto e = node(ExprType::kGetattr, pos_of(t));
      e->a = std::move(obj);
      e->name = attr.value;
      return e;
    }
    if (attr.type != TokenType::kInteger) fail(attr, "expected name or number");
    auto e = node(ExprType::kGetitem, pos_of(t));
    e->a = std::move(obj);
    e->b = node(ExprType::kConst, pos_of(attr));
    e->b->constant = Value::integer(attr.int_value);
    return e;
  }
  std::vector<ExprPtr> args;
  while (!is_op(cur(), "]")) {
    if (!args.empty()) expect_op(",");
    args.push_back(parse_subscribed());
  }
  expect_op("]");
  auto e = node(ExprType::kGetitem, pos_of(t));
  e->a = std::move(obj);
  if (args.size() == 1) {
    e->b = std::move(args[0]);
  } else {
    e->b = node(ExprType::kTuple, pos_of(t));
    e->b->items = std::move(args);
  }
  return e;
}

ExprPtr Parser::parse_subscribed() {
  const Pos pos = pos_of(cur());
  std::vector<ExprPtr> parts;
  if (is_op(cur(), ":")) {
    next();
    parts.push_back(nullptr);
  } else {
    ExprPtr e = parse_expression(true);
    if (!is_op(cur(), ":")) return e;
    next();
    parts.push_back(std::move(e));
  }
  if (is_op(cur(), ":")) {
    parts.push_back(nullptr);
  } else if (!is_op(cur(), "]") && !is_op(cur(), ",")) {
    parts.push_back(parse_expression(true));
  } else {
    parts.push_back(nullptr);
  }
  if (is_op(cur(), ":")) {
    next();
    if (!is_op(cur(), "]") && !is_op(cur(), ",")) {
      parts.push_back(parse_expression(true));
    } else {
      parts.push_back(nullptr);
    }
  } else {
    parts.push_back(nullptr);
  }
  auto e = node(ExprType::kSlice, pos);
  e->items = std::move(parts);
  return e;
}

void Parser::parse_call_args(Expr& e) {
  const Token& open = cur();
  expect_op("(");
  bool require_comma = false;
  while (!is_op(cur(), ")")) {
    if (require_comma) {
      expect_op(",");
      if (is_op(cur(), ")")) break;
    }
    if (is_op(cur(), "*") || is_op(cur(), "**")) fail(cur(), "*args and **kwargs in calls are not supported");
    if (cur().type == TokenType::kName && is_op(look(), "=")) {
      const std::string key = next().value;
      next();
      e.kwargs.emplace_back(key, parse_expression(true));
    } else {
      if (!e.kwargs.empty()) fail(open, "invalid syntax for function call expression");
      e.items.push_back(parse_expression(true));
    }
    require_comma = true;
  }
  expect_op(")");
}

ExprPtr Parser::parse_call(ExprPtr callee) {
  auto e = node(ExprType::kCall, pos_of(cur()));
  e->a = std::move(callee);
  parse_call_args(*e);
  return e;
}

std::string Parser::dotted_name() {
  std::string name = expect_name().value;
  while (skip_op(".")) name += "." + expect_name().value;
  return name;
}

ExprPtr Parser::parse_filter(ExprPtr input, bool start_inline) {
  while (is_op(cur(), "|") || start_inline) {
    if (!start_inline) next();
    const Pos pos = pos_of(cur());
    auto e = node(ExprType::kFilter, pos);
    e->name = dotted_name();
    if (is_op(cur(), "(")) parse_call_args(*e);
    e->a = std::move(input);
    input = std::move(e);
    start_inline = false;
  }
  return input;
}

ExprPtr Parser::parse_test(ExprPtr value) {
  const Token& is = next();
  const bool negated = skip_name("not");
  auto e = node(ExprType::kTest, pos_of(is));
  e->a = std::move(value);
  e->name = dotted_name();
  const Token& t = cur();
  if (is_op(t, "(")) {
    parse_call_args(*e);
  } else if ((t.type == TokenType::kName || t.type == TokenType::kString || t.type == TokenType::kInteger ||
              t.type == TokenType::kFloat || is_op(t, "[") || is_op(t, "{")) &&
             !is_name(t, "else") && !is_name(t, "or") && !is_name(t, "and")) {
    if (is_name(t, "is")) fail(t, "You cannot chain multiple tests with is");
    e->items.push_back(parse_postfix(parse_primary()));
  }
  if (!negated) return e;
  auto n = node(ExprType::kNot, pos_of(is));
  n->a = std::move(e);
  return n;
}

}  // namespace rlft::tokenizer::jinja::parser_detail
