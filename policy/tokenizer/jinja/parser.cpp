#include "policy/tokenizer/jinja/parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>

#include "policy/tokenizer/jinja/resolve.h"

namespace rlft::tokenizer::jinja {

namespace {

using EndTokens = std::vector<std::string>;

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

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Body parse() {
    Body body = subparse(nullptr);
    return body;
  }

 private:
  std::vector<Token> tokens_;
  std::size_t i_ = 0;
  std::vector<std::string> tag_stack_;
  std::vector<const EndTokens*> end_stack_;
  std::vector<int> loop_depth_{0};

  // --- token helpers ----------------------------------------------------------------------------

  const Token& cur() const { return tokens_[i_]; }
  const Token& look() const { return tokens_[std::min(i_ + 1, tokens_.size() - 1)]; }
  const Token& next() {
    const Token& t = tokens_[i_];
    if (i_ + 1 < tokens_.size()) ++i_;
    return t;
  }
  static Pos pos_of(const Token& t) { return {t.line, t.column}; }

  static bool is_name(const Token& t, const char* name) { return t.type == TokenType::kName && t.value == name; }
  static bool is_op(const Token& t, const char* op) { return t.type == TokenType::kOperator && t.value == op; }
  bool skip_name(const char* name) {
    if (!is_name(cur(), name)) return false;
    next();
    return true;
  }
  bool skip_op(const char* op) {
    if (!is_op(cur(), op)) return false;
    next();
    return true;
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::kData:
        return "template data";
      case TokenType::kVariableBegin:
        return "begin of print statement";
      case TokenType::kVariableEnd:
        return "end of print statement";
      case TokenType::kBlockBegin:
        return "begin of statement block";
      case TokenType::kBlockEnd:
        return "end of statement block";
      case TokenType::kEof:
        return "end of template";
      case TokenType::kString:
        return "string";
      case TokenType::kInteger:
      case TokenType::kFloat:
        return t.value;
      default:
        return t.value;
    }
  }

  [[noreturn]] void fail(const Token& t, std::string message) const {
    throw SyntaxError{std::move(message), t.line, t.column};
  }
  [[noreturn]] void fail_unexpected(const Token& t) const { fail(t, fmt::format("unexpected '{}'", describe(t))); }

  const Token& expect_name(const char* name = nullptr) {
    const Token& t = cur();
    if (t.type != TokenType::kName || (name && t.value != name)) {
      if (t.type == TokenType::kEof) fail_eof(nullptr);
      fail(t, fmt::format("expected token '{}', got '{}'", name ? name : "name", describe(t)));
    }
    return next();
  }
  void expect_op(const char* op) {
    const Token& t = cur();
    if (!is_op(t, op)) {
      if (t.type == TokenType::kEof) fail_eof(nullptr);
      fail(t, fmt::format("expected token '{}', got '{}'", op, describe(t)));
    }
    next();
  }
  void expect_type(TokenType type) {
    const Token& t = cur();
    if (t.type != type) {
      if (t.type == TokenType::kEof) fail_eof(nullptr);
      const Token want{type, ""};
      fail(t, fmt::format("expected token '{}', got '{}'", describe(want), describe(t)));
    }
    next();
  }

  // Jinja2's messages for a tag it does not know and for an early end of the template.
  [[noreturn]] void fail_tag(const Token& t, const std::string* name, const EndTokens* extra) const {
    std::vector<const EndTokens*> stack = end_stack_;
    if (extra) stack.push_back(extra);
    std::string message = name ? fmt::format("Encountered unknown tag '{}'.", *name) : "Unexpected end of template.";
    if (!stack.empty()) {
      std::string looking;
      for (const std::string& e : *stack.back()) looking += (looking.empty() ? "'" : " or '") + e + "'";
      bool expected = false;
      if (name)
        for (const EndTokens* s : stack) expected |= std::find(s->begin(), s->end(), *name) != s->end();
      message += expected ? fmt::format(
                                " You probably made a nesting mistake. Jinja is expecting this tag, but currently "
                                "looking for {}.",
                                looking)
                          : fmt::format(" Jinja was looking for the following tags: {}.", looking);
    }
    if (!tag_stack_.empty())
      message += fmt::format(" The innermost block that needs to be closed is '{}'.", tag_stack_.back());
    fail(t, message);
  }
  [[noreturn]] void fail_eof(const EndTokens* extra) const { fail_tag(cur(), nullptr, extra); }

  ExprPtr node(ExprType type, Pos pos) {
    auto e = std::make_unique<Expr>();
    e->type = type;
    e->pos = pos;
    return e;
  }
  StmtPtr stmt(StmtType type, Pos pos) {
    auto s = std::make_unique<Stmt>();
    s->type = type;
    s->pos = pos;
    return s;
  }

  // --- statements -------------------------------------------------------------------------------

  Body subparse(const EndTokens* end_tokens) {
    Body body;
    if (end_tokens) end_stack_.push_back(end_tokens);
    while (cur().type != TokenType::kEof) {
      const Token& t = cur();
      if (t.type == TokenType::kData) {
        auto s = stmt(StmtType::kData, pos_of(t));
        s->text = t.value;
        body.push_back(std::move(s));
        next();
      } else if (t.type == TokenType::kVariableBegin) {
        next();
        auto s = stmt(StmtType::kOutput, pos_of(cur()));
        s->expr = parse_tuple(false, true, nullptr, false);
        expect_type(TokenType::kVariableEnd);
        body.push_back(std::move(s));
      } else if (t.type == TokenType::kBlockBegin) {
        next();
        if (end_tokens && cur().type == TokenType::kName &&
            std::find(end_tokens->begin(), end_tokens->end(), cur().value) != end_tokens->end()) {
          end_stack_.pop_back();
          return body;
        }
        for (StmtPtr& s : parse_statement()) body.push_back(std::move(s));
        expect_type(TokenType::kBlockEnd);
      } else {
        fail_unexpected(t);
      }
    }
    if (end_tokens) end_stack_.pop_back();
    return body;
  }

  Body parse_statements(const EndTokens& end_tokens, bool drop_needle) {
    skip_op(":");
    expect_type(TokenType::kBlockEnd);
    Body body = subparse(&end_tokens);
    if (cur().type == TokenType::kEof) fail_eof(&end_tokens);
    if (drop_needle) next();
    return body;
  }

  Body parse_statement() {
    const Token& t = cur();
    if (t.type != TokenType::kName) fail(t, "tag name expected");
    const std::string name = t.value;
    static const char* const kUnsupported[] = {"block", "extends", "include", "import", "from", "autoescape"};
    for (const char* u : kUnsupported)
      if (name == u)
        fail(t, fmt::format("the '{}' statement is not supported (rlft's Jinja renders one template)", name));
    tag_stack_.push_back(name);
    Body out;
    if (name == "for") {
      out.push_back(parse_for());
    } else if (name == "if") {
      out.push_back(parse_if());
    } else if (name == "set") {
      out.push_back(parse_set());
    } else if (name == "macro") {
      out.push_back(parse_macro());
    } else if (name == "call") {
      out.push_back(parse_call_block());
    } else if (name == "filter") {
      out.push_back(parse_filter_block());
    } else if (name == "with") {
      out.push_back(parse_with());
    } else if (name == "print") {
      out = parse_print();
    } else if (name == "break" || name == "continue") {
      if (loop_depth_.back() == 0) fail(t, fmt::format("'{}' outside loop", name));
      out.push_back(stmt(name == "break" ? StmtType::kBreak : StmtType::kContinue, pos_of(t)));
      next();
    } else if (name == "generation") {
      // transformers' AssistantTracker: the body rendered as a call block (its own scope).
      auto s = stmt(StmtType::kScope, pos_of(next()));
      loop_depth_.push_back(0);
      s->body = parse_statements({"endgeneration"}, true);
      loop_depth_.pop_back();
      out.push_back(std::move(s));
    } else {
      tag_stack_.pop_back();
      fail_tag(t, &name, nullptr);
    }
    tag_stack_.pop_back();
    return out;
  }

  StmtPtr parse_for() {
    auto s = stmt(StmtType::kFor, pos_of(next()));
    const EndTokens in_end{"in"};
    s->target = parse_assign_target(true, false, &in_end, false);
    expect_name("in");
    const EndTokens recursive_end{"recursive"};
    s->expr = parse_tuple(false, false, &recursive_end, false);
    if (skip_name("if")) s->cond = parse_expression(true);
    if (is_name(cur(), "recursive")) fail(cur(), "recursive for loops are not supported");
    ++loop_depth_.back();
    s->body = parse_statements({"endfor", "else"}, false);
    --loop_depth_.back();
    if (next().value != "endfor") s->else_body = parse_statements({"endfor"}, true);
    return s;
  }

  StmtPtr parse_if() {
    auto s = stmt(StmtType::kIf, pos_of(next()));
    while (true) {
      ExprPtr test = parse_tuple(false, false, nullptr, false);
      Body body = parse_statements({"elif", "else", "endif"}, false);
      s->branches.emplace_back(std::move(test), std::move(body));
      const Token& t = next();
      if (t.value == "elif") continue;
      if (t.value == "else") s->else_body = parse_statements({"endif"}, true);
      break;
    }
    return s;
  }

  StmtPtr parse_set() {
    const Pos pos = pos_of(next());
    ExprPtr target = parse_assign_target(true, false, nullptr, true);
    if (skip_op("=")) {
      auto s = stmt(StmtType::kSet, pos);
      s->target = std::move(target);
      s->expr = parse_tuple(false, true, nullptr, false);
      return s;
    }
    auto s = stmt(StmtType::kSetBlock, pos);
    s->target = std::move(target);
    s->expr = parse_filter(nullptr, false);
    s->body = parse_statements({"endset"}, true);
    return s;
  }

  StmtPtr parse_macro() {
    auto s = stmt(StmtType::kMacro, pos_of(next()));
    s->text = expect_name().value;
    parse_signature(*s);
    loop_depth_.push_back(0);
    s->body = parse_statements({"endmacro"}, true);
    loop_depth_.pop_back();
    scan_macro_names(*s);
    return s;
  }

  void parse_signature(Stmt& s) {
    expect_op("(");
    while (!is_op(cur(), ")")) {
      if (!s.params.empty()) expect_op(",");
      MacroParam p;
      const Token& name = expect_name();
      if (name.value == "true" || name.value == "false" || name.value == "none" || name.value == "True" ||
          name.value == "False" || name.value == "None")
        fail(name, "can't assign to 'const'");
      p.name = name.value;
      if (skip_op("=")) {
        p.default_value = parse_expression(true);
      } else if (!s.params.empty() && s.params.back().default_value) {
        fail(cur(), "non-default argument follows default argument");
      }
      s.params.push_back(std::move(p));
    }
    expect_op(")");
  }

  StmtPtr parse_call_block() {
    auto s = stmt(StmtType::kCallBlock, pos_of(next()));
    if (is_op(cur(), "(")) parse_signature(*s);
    s->expr = parse_expression(true);
    if (s->expr->type != ExprType::kCall) fail(tokens_[i_ - 1], "expected call");
    loop_depth_.push_back(0);
    s->body = parse_statements({"endcall"}, true);
    loop_depth_.pop_back();
    scan_macro_names(*s);
    return s;
  }

  StmtPtr parse_filter_block() {
    auto s = stmt(StmtType::kFilterBlock, pos_of(next()));
    s->expr = parse_filter(nullptr, true);
    s->body = parse_statements({"endfilter"}, true);
    return s;
  }

  StmtPtr parse_with() {
    auto s = stmt(StmtType::kWith, pos_of(next()));
    while (cur().type != TokenType::kBlockEnd) {
      if (!s->assigns.empty()) expect_op(",");
      ExprPtr target = parse_assign_target(true, false, nullptr, false);
      expect_op("=");
      ExprPtr value = parse_expression(true);
      s->assigns.emplace_back(std::move(target), std::move(value));
    }
    s->body = parse_statements({"endwith"}, true);
    return s;
  }

  Body parse_print() {
    next();
    Body out;
    while (cur().type != TokenType::kBlockEnd) {
      if (!out.empty()) expect_op(",");
      auto s = stmt(StmtType::kOutput, pos_of(cur()));
      s->expr = parse_expression(true);
      out.push_back(std::move(s));
    }
    return out;
  }

  // --- expressions ------------------------------------------------------------------------------

  static bool is_const_name(const std::string& n) {
    return n == "true" || n == "false" || n == "none" || n == "True" || n == "False" || n == "None";
  }

  ExprPtr parse_assign_target(bool with_tuple, bool name_only, const EndTokens* extra_end, bool with_namespace) {
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

  void check_assignable(const Expr& e) const {
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

  bool is_tuple_end(const EndTokens* extra_end) const {
    const Token& t = cur();
    if (t.type == TokenType::kVariableEnd || t.type == TokenType::kBlockEnd || is_op(t, ")")) return true;
    if (extra_end && t.type == TokenType::kName)
      return std::find(extra_end->begin(), extra_end->end(), t.value) != extra_end->end();
    return false;
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr, const EndTokens* extra_end, bool explicit_parentheses) {
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

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
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

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name(cur(), "or")) {
      auto e = node(ExprType::kOr, pos_of(next()));
      e->a = std::move(left);
      e->b = parse_and();
      left = std::move(e);
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name(cur(), "and")) {
      auto e = node(ExprType::kAnd, pos_of(next()));
      e->a = std::move(left);
      e->b = parse_not();
      left = std::move(e);
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name(cur(), "not")) {
      auto e = node(ExprType::kNot, pos_of(next()));
      e->a = parse_not();
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
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

  ExprPtr binary(ExprPtr left, const Token& op, ExprPtr right) {
    auto e = node(ExprType::kBinary, pos_of(op));
    e->name = op.value;
    e->a = std::move(left);
    e->b = std::move(right);
    return e;
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op(cur(), "+") || is_op(cur(), "-")) {
      const Token& op = next();
      left = binary(std::move(left), op, parse_concat());
    }
    return left;
  }

  ExprPtr parse_concat() {
    const Pos pos = pos_of(cur());
    ExprPtr first = parse_math2();
    if (!is_op(cur(), "~")) return first;
    auto e = node(ExprType::kConcat, pos);
    e->items.push_back(std::move(first));
    while (skip_op("~")) e->items.push_back(parse_math2());
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op(cur(), "*") || is_op(cur(), "/") || is_op(cur(), "//") || is_op(cur(), "%")) {
      const Token& op = next();
      left = binary(std::move(left), op, parse_pow());
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op(cur(), "**")) {
      const Token& op = next();
      left = binary(std::move(left), op, parse_unary(true));
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
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

  ExprPtr parse_primary() {
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

  ExprPtr parse_list() {
    auto e = node(ExprType::kList, pos_of(next()));
    while (!is_op(cur(), "]")) {
      if (!e->items.empty()) expect_op(",");
      if (is_op(cur(), "]")) break;
      e->items.push_back(parse_expression(true));
    }
    expect_op("]");
    return e;
  }

  ExprPtr parse_dict() {
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

  ExprPtr parse_postfix(ExprPtr e) {
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

  ExprPtr parse_filter_expr(ExprPtr e) {
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

  ExprPtr parse_subscript(ExprPtr obj) {
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

  ExprPtr parse_subscribed() {
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

  void parse_call_args(Expr& e) {
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

  ExprPtr parse_call(ExprPtr callee) {
    auto e = node(ExprType::kCall, pos_of(cur()));
    e->a = std::move(callee);
    parse_call_args(*e);
    return e;
  }

  std::string dotted_name() {
    std::string name = expect_name().value;
    while (skip_op(".")) name += "." + expect_name().value;
    return name;
  }

  ExprPtr parse_filter(ExprPtr input, bool start_inline) {
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

  ExprPtr parse_test(ExprPtr value) {
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
};

}  // namespace

Body parse_template(const std::string& source) {
  Body body = Parser(tokenize(source)).parse();
  resolve_names(body);
  return body;
}

}  // namespace rlft::tokenizer::jinja
