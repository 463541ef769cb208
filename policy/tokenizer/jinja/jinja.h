#pragma once
// A Jinja2 renderer for Hugging Face chat templates: rendering a chat gives, byte for byte, the
// text that transformers' apply_chat_template gives. transformers renders with Jinja2 3.x set up
// as ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[
// AssistantTracker, loopcontrols]) plus a tojson filter (json.dumps with ensure_ascii=False) and
// the globals raise_exception(msg) and strftime_now(fmt); this engine reproduces that
// environment, checked against Jinja2 3.1 itself (tests/policy/jinja_reference_test.cpp,
// scripts/reference/jinja_render.py).
//
// Supported, with Jinja2's and Python's semantics (their error messages included):
//   statements   if/elif/else; for (else, `if` filter, tuple targets, loop.index/index0/
//                revindex/revindex0/first/last/length/previtem/nextitem/depth/cycle/changed);
//                break/continue; set (names, tuples, namespace attributes, {% set x | f %}…
//                {% endset %}); macro (defaults, varargs, kwargs, caller); call; filter; with;
//                print; raw; generation (transformers' tag: its body, and
//                its span when RenderOptions asks); comments;
//                whitespace control (-, +, trim_blocks, lstrip_blocks) and newline handling
//   expressions  literals, lists, tuples, dicts, + - * / // % ** ~, chained comparisons,
//                and/or/not, in/not in, a if c else b, subscripts and slices, attribute and
//                item lookup (each falling back to the other), calls with keyword arguments
//   values       None/bool/int/float/str/list/tuple/dict (insertion ordered), dict views,
//                one-shot generators (from |select, |map …), Undefined; str() and repr() as
//                Python prints them
//   methods      str: strip lstrip rstrip split rsplit splitlines startswith endswith replace
//                upper lower title capitalize find rfind index rindex count join center ljust
//                rjust zfill partition rpartition removeprefix removesuffix format is*;
//                dict: items keys values get copy; list/tuple: index count copy, list.pop and
//                list.clear; the sandbox's SecurityError for list.append, dict.update and the
//                other mutators, as in transformers
//   filters      Jinja2's builtins (filters.cpp) but filesizeformat groupby pprint random
//                striptags urlencode urlize wordwrap xmlattr; tojson as transformers defines it
//   tests        all of Jinja2's builtin tests (tests.cpp)
//   globals      range, dict, namespace, joiner, raise_exception, strftime_now
// Anything else is a TemplateError that names it, never a silent difference: an unknown or
// unsupported filter, test, statement (include, import, extends, block …) or method; recursive
// loops; *args/**kwargs in calls; non-ASCII identifiers; printing what Python prints with a
// memory address (generators, functions) or a range; str methods on Markup (|safe) values;
// str.format specs; Unicode-dependent isalpha/isdigit/wordcount on non-ASCII text;
// strftime_now's %f; a list changed (list.pop) while a loop iterates it; ints beyond 64 bits.
//
// Errors: TemplateError for a template that does not parse or fails while rendering (the
// message is "origin:line:column: what", e.g. "…: UndefinedError: 'x' is undefined");
// RaisedError for the template's own raise_exception(message), whose what() is exactly it.
//
// Thread safety: a Template is immutable after parse(); render() may run concurrently.

#include <nlohmann/json.hpp>

#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace rlft::tokenizer::jinja {

/// A template that cannot be parsed or rendered: a syntax error, an unsupported construct, or a
/// Python-level error while rendering (TypeError, UndefinedError, SecurityError …).
class TemplateError : public rlft::Error {
 public:
  /// what() = "origin:line:column: message" (line and column count from 1, the column in
  /// characters).
  TemplateError(std::string origin, int line, int column, std::string message);
  const std::string& origin() const { return origin_; }
  int line() const { return line_; }
  int column() const { return column_; }
  /// The message without the location.
  const std::string& message() const { return message_; }

 private:
  std::string origin_;
  int line_;
  int column_;
  std::string message_;
};

/// The template called raise_exception(message): it rejects the conversation. transformers
/// surfaces this as jinja2.TemplateError(message); what() is exactly the message.
class RaisedError : public rlft::Error {
 public:
  RaisedError(std::string message, std::string origin, int line, int column);
  const std::string& origin() const { return origin_; }
  int line() const { return line_; }
  int column() const { return column_; }

 private:
  std::string origin_;
  int line_;
  int column_;
};

struct RenderOptions {
  /// The local time that strftime_now() formats (date and time of day; the weekday and day of
  /// the year are derived); empty: the current local time.
  std::function<std::tm()> now;
  /// When set, receives the byte range [begin, end) of the output that each {% generation %}
  /// block wrote, in rendering order (transformers' AssistantTracker, which
  /// apply_chat_template(return_assistant_tokens_mask=True) reads). A generation block whose
  /// output does not go straight to the template's output (inside a macro, call, filter or set
  /// block) has no place in it: TemplateError.
  std::vector<std::pair<std::size_t, std::size_t>>* generation_spans = nullptr;
};

struct TemplateImpl;

class Template {
 public:
  /// Parses `source` (a chat_template string); `origin` names it in error messages (a file name
  /// or "chat_template"). Throws TemplateError on a syntax error or an unsupported filter,
  /// test or statement.
  static Template parse(std::string source, std::string origin = "chat_template");

  /// Renders with the variables of `context` (a JSON object, e.g. {"messages": […], "tools":
  /// null, "add_generation_prompt": true, "bos_token": "<s>", …}: the caller passes what
  /// transformers would). Throws TemplateError or RaisedError.
  std::string render(const nlohmann::ordered_json& context, const RenderOptions& options = {}) const;

  const std::string& origin() const;
  const std::string& source() const;
  /// Whether the template marks text with {% generation %} blocks (RenderOptions::generation_spans).
  bool has_generation_blocks() const;

 private:
  explicit Template(std::shared_ptr<const TemplateImpl> impl);
  std::shared_ptr<const TemplateImpl> impl_;
};

}  // namespace rlft::tokenizer::jinja
