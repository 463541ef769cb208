#pragma once
// Python's operators on template values: arithmetic (+ - * / // % ** and unary - +), printf-style
// `str % args`, slicing, and the argument conversions the builtins share. Every failure is
// Python's exception (TypeError, ZeroDivisionError …) as a PyError; an operand that is
// Undefined raises its UndefinedError, as Jinja2's Undefined does.

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "policy/tokenizer/jinja/value.h"

namespace rlft::tokenizer::jinja {

/// a OP b for OP one of + - * / // % **.
Value binary_op(const std::string& op, const Value& a, const Value& b);
/// -a or +a.
Value unary_op(char op, const Value& a);
/// `format % args` (printf-style: %s %r %d %i %f %%, widths and precisions, %(name)s).
std::string percent_format(const std::string& format, const Value& args);

/// markupsafe.escape's text: & < > " ' as &amp; &lt; &gt; &#34; &#39;.
std::string html_escape(const std::string& s);

/// obj[start:stop:step] of a list, tuple or string (Python's slice rules).
Value slice_of(const Value& obj, const Value& start, const Value& stop, const Value& step);

/// An int argument (bools count); TypeError naming `what` otherwise.
int64_t int_arg(const Value& v, const char* what);
/// A str argument; TypeError otherwise.
const std::string& str_arg(const Value& v, const char* what);

/// Python-style binding of a call's arguments to `names` (in signature order): the first
/// `n_required` must be given. TypeError for too many, unknown or repeated arguments.
std::vector<std::optional<Value>> bind_args(const std::string& fname, const CallArgs& args,
                                            std::initializer_list<const char*> names, std::size_t n_required);

}  // namespace rlft::tokenizer::jinja
