#include "policy/tokenizer/jinja/resolve.h"

#include <fmt/format.h>

#include "policy/tokenizer/jinja/lexer.h"

namespace rlft::tokenizer::jinja {

namespace {

// Whether a macro (or call block) body names caller, varargs or kwargs.
void resolve_scan_expr(const Expr* e, Stmt& m) {
  if (!e) return;
  if (e->type == ExprType::kName) {
    m.uses_caller |= e->name == "caller";
    m.uses_varargs |= e->name == "varargs";
    m.uses_kwargs |= e->name == "kwargs";
  }
  resolve_scan_expr(e->a.get(), m);
  resolve_scan_expr(e->b.get(), m);
  resolve_scan_expr(e->c.get(), m);
  for (const ExprPtr& x : e->items) resolve_scan_expr(x.get(), m);
  for (const auto& kv : e->kwargs) resolve_scan_expr(kv.second.get(), m);
}
void resolve_scan_body(const Body& body, Stmt& m) {
  for (const StmtPtr& s : body) {
    resolve_scan_expr(s->expr.get(), m);
    resolve_scan_expr(s->cond.get(), m);
    for (const auto& [test, b] : s->branches) {
      resolve_scan_expr(test.get(), m);
      resolve_scan_body(b, m);
    }
    for (const auto& [t, v] : s->assigns) resolve_scan_expr(v.get(), m);
    for (const MacroParam& p : s->params) resolve_scan_expr(p.default_value.get(), m);
    resolve_scan_body(s->body, m);
    resolve_scan_body(s->else_body, m);
  }
}

// --- filter and test lookup (after parsing, as Jinja2's compiler does it) ------------------------

// Looks up the filters and tests of `e`; `soft` is true inside an `if` statement or a
// conditional expression, where an unknown name is left for evaluation to report.
void resolve_expr(Expr* e, bool soft) {
  if (!e) return;
  if (e->type == ExprType::kCond) soft = true;
  if (e->type == ExprType::kFilter || e->type == ExprType::kTest) {
    bool unsupported = false;
    const bool is_filter = e->type == ExprType::kFilter;
    const bool found = is_filter ? (e->filter = find_filter(e->name, &unsupported)) != nullptr
                                 : (e->test = find_test(e->name, &unsupported)) != nullptr;
    if (!found && !soft) {
      const char* what = is_filter ? "filter" : "test";
      throw SyntaxError{unsupported ? fmt::format("the {} '{}' is not supported by rlft's Jinja engine", what, e->name)
                                    : fmt::format("No {} named '{}'.", what, e->name),
                        e->pos.line, e->pos.column};
    }
  }
  resolve_expr(e->a.get(), soft);
  resolve_expr(e->b.get(), soft);
  resolve_expr(e->c.get(), soft);
  for (ExprPtr& x : e->items) resolve_expr(x.get(), soft);
  for (auto& kv : e->kwargs) resolve_expr(kv.second.get(), soft);
}

void resolve_body(Body& body, bool soft) {
  for (StmtPtr& s : body) {
    switch (s->type) {
      case StmtType::kIf:
        for (auto& [test, b] : s->branches) {
          resolve_expr(test.get(), true);
          resolve_body(b, true);
        }
        resolve_body(s->else_body, true);
        break;
      case StmtType::kFor:
        resolve_expr(s->expr.get(), soft);
        resolve_expr(s->cond.get(), false);
        resolve_body(s->body, false);
        resolve_body(s->else_body, false);
        break;
      case StmtType::kWith:
        for (auto& [target, value] : s->assigns) resolve_expr(value.get(), soft);
        resolve_body(s->body, false);
        break;
      case StmtType::kMacro:
      case StmtType::kCallBlock:
        for (MacroParam& p : s->params) resolve_expr(p.default_value.get(), false);
        resolve_expr(s->expr.get(), soft);
        resolve_body(s->body, false);
        break;
      case StmtType::kSetBlock:
      case StmtType::kFilterBlock:
      case StmtType::kScope:
        resolve_expr(s->expr.get(), false);
        resolve_body(s->body, false);
        break;
      default:
        resolve_expr(s->expr.get(), soft);
        resolve_expr(s->target.get(), soft);
        break;
    }
  }
}

}  // namespace

void scan_macro_names(Stmt& m) {
  resolve_scan_body(m.body, m);
  for (const MacroParam& p : m.params) resolve_scan_expr(p.default_value.get(), m);
}

void resolve_names(Body& body) {
  resolve_body(body, false);
}

}  // namespace rlft::tokenizer::jinja
