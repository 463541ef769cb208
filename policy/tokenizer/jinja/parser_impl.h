#pragma once
// The parser's class, shared by its two files: parser.cpp (tokens and statements) and
// parser_expr.cpp (expressions). Only parser.h's parse_template() is public.

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

#include "policy/tokenizer/jinja/ast.h"
#include "policy/tokenizer/jinja/lexer.h"

namespace rlft::tokenizer::jinja::parser_detail {

using EndTokens = std::vector<std::string>;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Body parse() {
    Body body = subparse(nullptr);
    return body;
  }
  /// Whether the template has a {% generation %} block (after parse()).
  bool has_generation() const { return has_generation_; }

 private:
  std::vector<Token> tokens_;
  std::size_t i_ = 0;
  std::vector<std::string> tag_stack_;
  std::vector<const EndTokens*> end_stack_;
  std::vector<int> loop_depth_{0};
  bool has_generation_ = false;

  // --- token helpers ----------------------------------------------------------------------------

  const Token& cur() const { return tokens_[i_]; }
  const Token& look() const { return tokens_[std::min(i_ + 1, tokens_.size() - 1)]; }
  const Token& next();
  static Pos pos_of(const Token& t) { return {t.line, t.column}; }

  static bool is_name(const Token& t, const char* name) { return t.type == TokenType::kName && t.value == name; }
  static bool is_op(const Token& t, const char* op) { return t.type == TokenType::kOperator && t.value == op; }
  bool skip_name(const char* name);
  bool skip_op(const char* op);
  static std::string describe(const Token& t);
  [[noreturn]] void fail(const Token& t, std::string message) const;
  [[noreturn]] void fail_unexpected(const Token& t) const { fail(t, fmt::format("unexpected '{}'", describe(t))); }

  const Token& expect_name(const char* name = nullptr);
  void expect_op(const char* op);
  void expect_type(TokenType type);

  // Jinja2's messages for a tag it does not know and for an early end of the template.
  [[noreturn]] void fail_tag(const Token& t, const std::string* name, const EndTokens* extra) const;
  [[noreturn]] void fail_eof(const EndTokens* extra) const { fail_tag(cur(), nullptr, extra); }

  ExprPtr node(ExprType type, Pos pos);
  StmtPtr stmt(StmtType type, Pos pos);

  // --- statements -------------------------------------------------------------------------------

  Body subparse(const EndTokens* end_tokens);
  Body parse_statements(const EndTokens& end_tokens, bool drop_needle);
  Body parse_statement();
  StmtPtr parse_for();
  StmtPtr parse_if();
  StmtPtr parse_set();
  StmtPtr parse_macro();
  void parse_signature(Stmt& s);
  StmtPtr parse_call_block();
  StmtPtr parse_filter_block();
  StmtPtr parse_with();
  Body parse_print();

  // --- expressions ------------------------------------------------------------------------------

  static bool is_const_name(const std::string& n);
  ExprPtr parse_assign_target(bool with_tuple, bool name_only, const EndTokens* extra_end, bool with_namespace);
  void check_assignable(const Expr& e) const;
  bool is_tuple_end(const EndTokens* extra_end) const;
  ExprPtr parse_tuple(bool simplified, bool with_condexpr, const EndTokens* extra_end, bool explicit_parentheses);

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr();
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  ExprPtr binary(ExprPtr left, const Token& op, ExprPtr right);
  ExprPtr parse_math1();
  ExprPtr parse_concat();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  ExprPtr parse_unary(bool with_filter);
  ExprPtr parse_primary();
  ExprPtr parse_list();
  ExprPtr parse_dict();
  ExprPtr parse_postfix(ExprPtr e);
  ExprPtr parse_filter_expr(ExprPtr e);
  ExprPtr parse_subscript(ExprPtr obj);
  ExprPtr parse_subscribed();
  void parse_call_args(Expr& e);
  ExprPtr parse_call(ExprPtr callee);
  std::string dotted_name();

  ExprPtr parse_filter(ExprPtr input, bool start_inline);
  ExprPtr parse_test(ExprPtr value);
};

}  // namespace rlft::tokenizer::jinja::parser_detail
