#pragma once
// What is settled after parsing, as Jinja2's compiler settles it: which builtin each filter and
// test names, and which of caller, varargs and kwargs a macro body uses.

#include "policy/tokenizer/jinja/ast.h"

namespace rlft::tokenizer::jinja {

/// Sets each filter and test node's builtin. An unknown (or unsupported) name is a SyntaxError
/// at its node, except inside an `if` statement or a conditional expression ("soft" frames in
/// Jinja2's compiler), where it is left null for evaluation to report when it runs.
void resolve_names(Body& body);

/// Sets m.uses_caller, uses_varargs and uses_kwargs from the names its body and defaults read.
void scan_macro_names(Stmt& m);

}  // namespace rlft::tokenizer::jinja
