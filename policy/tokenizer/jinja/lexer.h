#pragma once
// Jinja2's lexer, with the environment transformers uses: trim_blocks and lstrip_blocks on,
// newlines normalised to "\n" and one trailing newline of the source dropped
// (keep_trailing_newline off).
//
// Whitespace control, as Jinja2 3.1 does it:
//   {%- / {{- / {#-   strip all whitespace before the tag (newlines included);
//   -%} / -}} / -#}   strip all whitespace after it;
//   lstrip_blocks     spaces and tabs from the start of a line up to a {% or {# tag are removed
//                     (not before {{, and not when the tag is written {%+);
//   trim_blocks       the first newline after a %} or #} is removed (not after -%} or +%}, nor
//                     after the %} of {% raw %}).

#include <cstdint>
#include <string>
#include <vector>

namespace rlft::tokenizer::jinja {

enum class TokenType {
  kData,
  kVariableBegin,
  kVariableEnd,
  kBlockBegin,
  kBlockEnd,
  kName,
  kString,
  kInteger,
  kFloat,
  kOperator,
  kEof,
};

struct Token {
  TokenType type;
  std::string value;  ///< data text, name, decoded string literal, or operator
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
  int column = 1;
};

/// Thrown by the lexer and parser; Template::parse turns it into a TemplateError.
struct SyntaxError {
  std::string message;
  int line;
  int column;
};

/// The Jinja2 source normalisation: \r\n and \r become \n, one trailing newline goes.
std::string normalize_source(const std::string& source);

/// Tokens of normalised `source`, ending with kEof. Throws SyntaxError.
std::vector<Token> tokenize(const std::string& source);

}  // namespace rlft::tokenizer::jinja
