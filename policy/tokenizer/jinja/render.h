#pragma once
// The interpreter: renders parsed statements with Jinja2's scoping.
//
// Scopes, as Jinja2 compiles them: `set` writes to the innermost scope; each for-loop
// iteration, macro call, call/filter/set block body and `with` body gets a new scope whose
// parent is the scope it was written in (so a `set` inside a loop is gone after it, which is
// why templates use namespace()); `if` bodies share their scope. Names are looked up through
// the chain at the time of use, ending in the render context and the globals.

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "policy/tokenizer/jinja/ast.h"
#include "policy/tokenizer/jinja/jinja.h"

namespace rlft::tokenizer::jinja {

struct Scope {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Scope> parent;

  /// The value of `name` here or in a parent; nullptr when unset.
  const Value* find(const std::string& name) const;
};
using ScopePtr = std::shared_ptr<Scope>;

class Interpreter {
 public:
  Interpreter(const RenderOptions& options, const std::string& origin);
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  /// Renders `body` in a scope below `globals`.
  std::string render(const Body& body, const ScopePtr& globals);

  /// Calls a callable value (macro, global, bound method); TypeError for anything else.
  Value call_value(const Value& callee, CallArgs& args);
  /// Runs macro (or call block) `m` defined in `defining` with `args`; its output.
  Value call_macro(const Stmt& m, const ScopePtr& defining, const std::string& name, CallArgs& args);
  /// Applies the filter or test called `name` (for map(), select() …); TemplateRuntimeError
  /// naming it when there is none.
  Value apply_filter(const std::string& name, const Value& input, CallArgs& args);
  bool apply_test(const std::string& name, const Value& value, CallArgs& args);

  const RenderOptions& options() const { return options_; }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Flow exec(const Body& body, const ScopePtr& scope, std::string& out);
  Flow exec_stmt(const Stmt& s, const ScopePtr& scope, std::string& out);
  Flow exec_for(const Stmt& s, const ScopePtr& scope, std::string& out);
  void exec_macro(const Stmt& s, const ScopePtr& scope);
  Value make_macro(const Stmt& s, const ScopePtr& scope, const std::string& name);
  void assign(const Expr& target, const Value& value, const ScopePtr& scope);

  Value eval(const Expr& e, const ScopePtr& scope);
  Value eval_node(const Expr& e, const ScopePtr& scope);
  Value eval_call(const Expr& e, const ScopePtr& scope);
  Value eval_filter(const Expr& e, const ScopePtr& scope, const Value* block_input);
  CallArgs eval_args(const Expr& e, const ScopePtr& scope);
  bool eval_compare(const Expr& e, const ScopePtr& scope);
  std::optional<Value> fold(const Expr& e);

  /// Rethrows a PyError as TemplateError (or RaisedError) at `pos`.
  [[noreturn]] void fail(const Pos& pos, const PyError& e) const;

  const RenderOptions& options_;
  const std::string& origin_;
  std::string* top_ = nullptr;          ///< the template's own output (generation spans index it)
  int depth_ = 0;                       ///< nested macro calls, bounded to catch runaway recursion
  std::vector<ScopePtr> macro_scopes_;  ///< scopes that macros captured, cleared at the end
};

/// The global functions every template sees: range, dict, namespace, cycler, joiner,
/// raise_exception, strftime_now.
void add_globals(Scope& scope);

}  // namespace rlft::tokenizer::jinja
