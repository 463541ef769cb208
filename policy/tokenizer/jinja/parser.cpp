#include "policy/tokenizer/jinja/parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>

#include "policy/tokenizer/jinja/parser_impl.h"
#include "policy/tokenizer/jinja/resolve.h"

namespace rlft::tokenizer::jinja {
namespace parser_detail {

const Token& Parser::next() {
  const Token& t = tokens_[i_];
  if (i_ + 1 < tokens_.size()) ++i_;
  return t;
}

bool Parser::skip_name(const char* name) {
  if (!is_name(cur(), name)) return false;
  next();
  return true;
}

bool Parser::skip_op(const char* op) {
  if (!is_op(cur(), op)) return false;
  next();
  return true;
}

std::string Parser::describe(const Token& t) {
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

[[noreturn]] void Parser::fail(const Token& t, std::string message) const {
  throw SyntaxError{std::move(message), t.line, t.column};
}

const Token& Parser::expect_name(const char* name) {
  const Token& t = cur();
  if (t.type != TokenType::kName || (name && t.value != name)) {
    if (t.type == TokenType::kEof) fail_eof(nullptr);
    fail(t, fmt::format("expected token '{}', got '{}'", name ? name : "name", describe(t)));
  }
  return next();
}

void Parser::expect_op(const char* op) {
  const Token& t = cur();
  if (!is_op(t, op)) {
    if (t.type == TokenType::kEof) fail_eof(nullptr);
    fail(t, fmt::format("expected token '{}', got '{}'", op, describe(t)));
  }
  next();
}

void Parser::expect_type(TokenType type) {
  const Token& t = cur();
  if (t.type != type) {
    if (t.type == TokenType::kEof) fail_eof(nullptr);
    const Token want{type, ""};
    fail(t, fmt::format("expected token '{}', got '{}'", describe(want), describe(t)));
  }
  next();
}

[[noreturn]] void Parser::fail_tag(const Token& t, const std::string* name, const EndTokens* extra) const {
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

ExprPtr Parser::node(ExprType type, Pos pos) {
  auto e = std::make_unique<Expr>();
  e->type = type;
  e->pos = pos;
  return e;
}

StmtPtr Parser::stmt(StmtType type, Pos pos) {
  auto s = std::make_unique<Stmt>();
  s->type = type;
  s->pos = pos;
  return s;
}

Body Parser::subparse(const EndTokens* end_tokens) {
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

Body Parser::parse_statements(const EndTokens& end_tokens, bool drop_needle) {
  skip_op(":");
  expect_type(TokenType::kBlockEnd);
  Body body = subparse(&end_tokens);
  if (cur().type == TokenType::kEof) fail_eof(&end_tokens);
  if (drop_needle) next();
  return body;
}

Body Parser::parse_statement() {
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
    has_generation_ = true;
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

StmtPtr Parser::parse_for() {
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

StmtPtr Parser::parse_if() {
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

StmtPtr Parser::parse_set() {
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

StmtPtr Parser::parse_macro() {
  auto s = stmt(StmtType::kMacro, pos_of(next()));
  s->text = expect_name().value;
  parse_signature(*s);
  loop_depth_.push_back(0);
  s->body = parse_statements({"endmacro"}, true);
  loop_depth_.pop_back();
  scan_macro_names(*s);
  return s;
}

void Parser::parse_signature(Stmt& s) {
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

StmtPtr Parser::parse_call_block() {
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

StmtPtr Parser::parse_filter_block() {
  auto s = stmt(StmtType::kFilterBlock, pos_of(next()));
  s->expr = parse_filter(nullptr, true);
  s->body = parse_statements({"endfilter"}, true);
  return s;
}

StmtPtr Parser::parse_with() {
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

Body Parser::parse_print() {
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

}  // namespace parser_detail

Body parse_template(const std::string& source, bool* has_generation) {
  parser_detail::Parser parser(tokenize(source));
  Body body = parser.parse();
  resolve_names(body);
  if (has_generation) *has_generation = parser.has_generation();
  return body;
}

}  // namespace rlft::tokenizer::jinja
