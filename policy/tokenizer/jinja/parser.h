#pragma once
// Jinja2's parser (jinja2/parser.py) over lexer.h's tokens: the same grammar, precedence and
// statement forms, giving ast.h's nodes. Filters and tests are then looked up as Jinja2's
// compiler does: an unknown name is an error at parse time, except inside an `if` statement or
// a conditional expression, where it fails only when evaluated.

#include <string>

#include "policy/tokenizer/jinja/ast.h"
#include "policy/tokenizer/jinja/lexer.h"

namespace rlft::tokenizer::jinja {

/// The statements of normalised `source`; `has_generation`, when given, is set to whether it has
/// a {% generation %} block. Throws SyntaxError.
Body parse_template(const std::string& source, bool* has_generation = nullptr);

}  // namespace rlft::tokenizer::jinja
