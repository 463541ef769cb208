#include "policy/tokenizer/jinja/jinja.h"

#include <fmt/format.h>

#include "policy/tokenizer/jinja/lexer.h"
#include "policy/tokenizer/jinja/parser.h"
#include "policy/tokenizer/jinja/pystr.h"
#include "policy/tokenizer/jinja/render.h"

namespace rlft::tokenizer::jinja {

TemplateError::TemplateError(std::string origin, int line, int column, std::string message)
    : rlft::Error(fmt::format("{}:{}:{}: {}", origin, line, column, message)),
      origin_(std::move(origin)),
      line_(line),
      column_(column),
      message_(std::move(message)) {}

RaisedError::RaisedError(std::string message, std::string origin, int line, int column)
    : rlft::Error(message), origin_(std::move(origin)), line_(line), column_(column) {}

struct TemplateImpl {
  std::string origin;
  std::string source;
  Body body;
  bool has_generation = false;
};

Template::Template(std::shared_ptr<const TemplateImpl> impl) : impl_(std::move(impl)) {}

Template Template::parse(std::string source, std::string origin) {
  auto impl = std::make_shared<TemplateImpl>();
  std::size_t bad = 0;
  if (!pystr::valid_utf8(source, &bad)) {
    int line = 1;
    std::size_t start = 0;
    for (std::size_t i = 0; i < bad; ++i) {
      if (source[i] == '\n') {
        ++line;
        start = i + 1;
      }
    }
    throw TemplateError(origin, line,
                        static_cast<int>(pystr::length(std::string_view(source).substr(start, bad - start))) + 1,
                        fmt::format("invalid UTF-8 (byte {})", bad));
  }
  try {
    impl->body = parse_template(normalize_source(source), &impl->has_generation);
  } catch (const SyntaxError& e) {
    throw TemplateError(origin, e.line, e.column, e.message);
  }
  impl->origin = std::move(origin);
  impl->source = std::move(source);
  return Template(std::move(impl));
}

std::string Template::render(const nlohmann::ordered_json& context, const RenderOptions& options) const {
  RLFT_CHECK(context.is_object(), "{}: the render context must be a JSON object, not {}", impl_->origin,
             context.type_name());
  auto globals = std::make_shared<Scope>();
  add_globals(*globals);
  auto vars = std::make_shared<Scope>();
  vars->parent = globals;
  for (const auto& [key, value] : context.items()) {
    try {
      vars->vars[key] = Value::from_json(value);
    } catch (const PyError& e) {
      throw rlft::Error(fmt::format("{}: render context '{}': {}", impl_->origin, key, e.message));
    }
  }
  Interpreter interpreter(options, impl_->origin);
  return interpreter.render(impl_->body, vars);
}

const std::string& Template::origin() const {
  return impl_->origin;
}
const std::string& Template::source() const {
  return impl_->source;
}
bool Template::has_generation_blocks() const {
  return impl_->has_generation;
}

}  // namespace rlft::tokenizer::jinja
