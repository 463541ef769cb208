// `rlft template render --tokenizer DIR [--template FILE] [--add-generation-prompt] FILE|-`:
// each input line a JSON object {"messages": […]} (optionally "tools", and any other key as a
// template argument, e.g. "enable_thinking": false), each output line the rendered text as a
// JSON string: exactly what the model sees (docs/tokenizer.md, "Chat templates").
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>

#include "app/cli.h"
#include "core/error.h"
#include "policy/tokenizer/chat_template.h"

namespace rlft::app {
namespace {

struct TemplateRenderCli {
  std::string tokenizer, template_file, input;
  bool add_generation_prompt = false;
};

int render_lines(const TemplateRenderCli& o) {
  std::optional<tokenizer::ChatTemplate> tmpl;
  if (!o.template_file.empty()) {
    tmpl = tokenizer::ChatTemplate::from_file(o.template_file, o.tokenizer);
  } else {
    RLFT_CHECK_AS(UsageError, !o.tokenizer.empty(), "give --tokenizer DIR (or --template FILE.jinja)");
    tmpl = tokenizer::ChatTemplate::from_tokenizer_dir(o.tokenizer);
    RLFT_CHECK(tmpl.has_value(),
               "{} has no chat template (neither chat_template.jinja nor a chat_template in tokenizer_config.json); "
               "give one with --template FILE.jinja",
               o.tokenizer);
  }
  std::ifstream file;
  if (o.input != "-") {
    file.open(o.input);
    RLFT_CHECK_AS(UsageError, file.good(), "cannot read {}", o.input);
  }
  std::istream& in = o.input == "-" ? std::cin : file;
  const std::string name = o.input == "-" ? "<stdin>" : o.input;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::ordered_json row;
    try {
      row = nlohmann::ordered_json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}:{}: not JSON: {}", name, n, e.what()));
    }
    RLFT_CHECK(row.is_object() && row.contains("messages"), "{}:{}: expected an object with \"messages\"", name, n);
    nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();
    for (const auto& [k, v] : row.items())
      if (k != "messages" && k != "tools") kwargs[k] = v;
    try {
      const auto text =
          tmpl->render(row["messages"], o.add_generation_prompt, row.value("tools", nlohmann::ordered_json()), kwargs);
      std::cout << nlohmann::ordered_json(text).dump() << "\n";
    } catch (const tokenizer::jinja::RaisedError& e) {
      throw Error(
          fmt::format("{}:{}: the chat template refused the conversation: TemplateError: {}", name, n, e.what()));
    } catch (const Error& e) {
      throw Error(fmt::format("{}:{}: {}", name, n, e.what()));
    }
  }
  return 0;
}

}  // namespace

void add_template_command(CLI::App& app) {
  CLI::App* t = app.add_subcommand("template", "Chat templates: render conversations as the model sees them");
  t->require_subcommand(1);
  auto o = std::make_shared<TemplateRenderCli>();
  CLI::App* r = t->add_subcommand("render", "Render JSONL conversations with a tokenizer's chat template");
  r->add_option("input", o->input, "a JSONL file of {\"messages\": [...]} lines, or - for standard input")->required();
  r->add_option("--tokenizer", o->tokenizer,
                "a model or tokenizer directory (chat_template.jinja or tokenizer_config.json)");
  r->add_option("--template", o->template_file, "a .jinja file instead of the directory's template");
  r->add_flag("--add-generation-prompt", o->add_generation_prompt, "open the assistant's turn after the messages");
  r->callback([o] { render_lines(*o); });
}

}  // namespace rlft::app
