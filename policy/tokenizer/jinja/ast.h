#pragma once
// The parsed template: expression and statement nodes, each with its line and column.
// Filters and tests are looked up once parsing is done (resolve.h), so the nodes hold the
// builtin itself.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "policy/tokenizer/jinja/value.h"

namespace rlft::tokenizer::jinja {

struct Expr;
struct Stmt;
struct FilterDef;
struct TestDef;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Pos {
  int line = 1;
  int column = 1;
};

enum class ExprType {
  kConst,    ///< constant
  kName,     ///< name
  kList,     ///< items
  kTuple,    ///< items
  kDict,     ///< items: key, value, key, value …
  kGetattr,  ///< a.name
  kGetitem,  ///< a[b]
  kSlice,    ///< items: start, stop, step (null when absent)
  kCall,     ///< a(items…, kwargs…)
  kFilter,   ///< a|name(items…, kwargs…); a null in a filter block's chain
  kTest,     ///< a is name(items…, kwargs…)
  kNeg,      ///< -a
  kPos,      ///< +a
  kNot,      ///< not a
  kBinary,   ///< a name b, name one of + - * / // % **
  kConcat,   ///< items joined with ~
  kCompare,  ///< a ops[0] items[0] ops[1] items[1] …
  kAnd,      ///< a and b
  kOr,       ///< a or b
  kCond,     ///< b if a else c (c null: undefined)
  kNsRef,    ///< name.attr as an assignment target
};

struct Expr {
  ExprType type;
  Pos pos;
  Value constant;
  std::string name;  ///< variable, attribute, filter, test or operator name
  std::string attr;  ///< kNsRef's attribute
  ExprPtr a, b, c;
  std::vector<ExprPtr> items;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  ///< kCompare: eq ne lt lteq gt gteq in notin
  const FilterDef* filter = nullptr;
  const TestDef* test = nullptr;
};

enum class StmtType {
  kData,         ///< text
  kOutput,       ///< {{ expr }}
  kIf,           ///< branches (test, body), else_body
  kFor,          ///< target in expr [if cond]: body, else_body
  kSet,          ///< target = expr
  kSetBlock,     ///< {% set target | filter %}body{% endset %}
  kMacro,        ///< {% macro name(params) %}body
  kCallBlock,    ///< {% call(params) expr %}body
  kFilterBlock,  ///< {% filter chain %}body
  kWith,         ///< {% with targets = values %}body
  kBreak,
  kContinue,
  kScope,  ///< a body rendered as is ({% generation %})
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  ///< null when required
};

struct Stmt {
  StmtType type;
  Pos pos;
  std::string text;  ///< kData text, kMacro name
  ExprPtr expr;      ///< output, for iterable, set value, call expression, filter chain
  ExprPtr target;    ///< for / set target
  ExprPtr cond;      ///< for's filter
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::vector<MacroParam> params;                    ///< macro and call-block parameters
  std::vector<std::pair<ExprPtr, ExprPtr>> assigns;  ///< with: target, value
  bool uses_caller = false;                          ///< the macro body refers to caller
  bool uses_varargs = false;                         ///< … to varargs
  bool uses_kwargs = false;                          ///< … to kwargs
};

class Interpreter;

/// A builtin filter: `input` is the value filtered; `args` what follows the name.
struct FilterDef {
  const char* name;
  Value (*fn)(Interpreter& in, const Value& input, CallArgs& args);
};

/// A builtin test (`value is name(args)`).
struct TestDef {
  const char* name;
  bool (*fn)(Interpreter& in, const Value& value, CallArgs& args);
};

/// The builtin filter (filters.cpp) or test (tests.cpp) called `name`; nullptr when there is
/// none, with `unsupported` set when Jinja2 has it and this engine does not.
const FilterDef* find_filter(const std::string& name, bool* unsupported);
const TestDef* find_test(const std::string& name, bool* unsupported);

}  // namespace rlft::tokenizer::jinja
