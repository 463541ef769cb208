#include "policy/tokenizer/chat_template.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace rlft::tokenizer {
namespace fs = std::filesystem;
namespace {

std::string chat_template_read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  RLFT_CHECK(in.good(), "cannot read {}", p.string());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

std::optional<std::string> config_special_token(const nlohmann::json& cfg, const char* key, const std::string& file) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  throw Error(fmt::format("{}: {}: expected a token string or {{\"content\": …}}", file, key));
}

std::string config_chat_template(const nlohmann::json& cfg) {
  auto it = cfg.find("chat_template");
  if (it == cfg.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array())  // [{"name": "default", "template": …}, …]
    for (const auto& e : *it)
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
        return e["template"].get<std::string>();
  return "";
}

ChatTemplateFiles read_chat_template_files(const std::string& path) {
  const fs::path dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
  ChatTemplateFiles f;
  const auto config_path = dir / "tokenizer_config.json";
  nlohmann::json cfg = nlohmann::json::object();
  if (fs::exists(config_path)) {
    try {
      cfg = nlohmann::json::parse(chat_template_read(config_path));
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: not JSON: {}", config_path.string(), e.what()));
    }
    RLFT_CHECK(cfg.is_object(), "{}: expected a JSON object", config_path.string());
    for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"})
      if (auto t = config_special_token(cfg, key, config_path.string())) f.special_tokens[key] = *t;
  }
  if (fs::exists(dir / "chat_template.jinja")) {
    f.origin = (dir / "chat_template.jinja").string();
    f.source = chat_template_read(dir / "chat_template.jinja");
    return f;
  }
  f.source = config_chat_template(cfg);
  if (!f.source.empty()) {
    f.origin = config_path.string();
  } else if (auto it = cfg.find("chat_template"); it != cfg.end() && !it->is_null()) {
    // Present but unusable: say so rather than render without a template.
    RLFT_CHECK(!it->is_array(), "{}: chat_template is a list without a \"default\" template", config_path.string());
    throw Error(fmt::format("{}: chat_template must be a string or a list of named templates", config_path.string()));
  }
  return f;
}

ChatTemplate::ChatTemplate(std::string source, std::string origin, nlohmann::ordered_json special_tokens)
    : template_(jinja::Template::parse(std::move(source), std::move(origin))),
      special_tokens_(std::move(special_tokens)) {}

std::optional<ChatTemplate> ChatTemplate::from_tokenizer_dir(const std::string& dir) {
  auto f = read_chat_template_files(dir);
  if (f.source.empty()) return std::nullopt;
  return ChatTemplate(std::move(f.source), std::move(f.origin), std::move(f.special_tokens));
}

ChatTemplate ChatTemplate::from_file(const std::string& path, const std::string& tokenizer_dir) {
  nlohmann::ordered_json specials = nlohmann::ordered_json::object();
  if (!tokenizer_dir.empty()) specials = read_chat_template_files(tokenizer_dir).special_tokens;
  return ChatTemplate(chat_template_read(path), path, std::move(specials));
}

nlohmann::ordered_json ChatTemplate::context(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                             const nlohmann::ordered_json& tools,
                                             const nlohmann::ordered_json& kwargs) const {
  RLFT_CHECK(messages.is_array(), "messages must be a list of {{\"role\", \"content\"}} objects, got {}",
             messages.type_name());
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    RLFT_CHECK(m.is_object() && m.contains("role") && m["role"].is_string(),
               "messages[{}] must be an object with a string \"role\", got {}", i, m.dump());
  }
  RLFT_CHECK(kwargs.is_object(), "chat template arguments must be an object");
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  context["messages"] = messages;
  context["tools"] = tools;
  context["documents"] = nullptr;
  context["add_generation_prompt"] = add_generation_prompt;
  for (const auto& [k, v] : special_tokens_.items()) context[k] = v;
  for (const auto& [k, v] : kwargs.items()) context[k] = v;
  return context;
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                 const nlohmann::ordered_json& tools, const nlohmann::ordered_json& kwargs) const {
  return template_.render(context(messages, add_generation_prompt, tools, kwargs));
}

ChatTemplate::Conversation ChatTemplate::render_conversation(const nlohmann::ordered_json& messages,
                                                             const nlohmann::ordered_json& kwargs) const {
  Conversation c;
  if (has_generation_blocks()) {
    jinja::RenderOptions options;
    options.generation_spans = &c.assistant_spans;
    c.text = template_.render(context(messages, false, nullptr, kwargs), options);
    // Empty blocks mark nothing.
    c.assistant_spans.erase(std::remove_if(c.assistant_spans.begin(), c.assistant_spans.end(),
                                           [](const auto& s) { return s.first == s.second; }),
                            c.assistant_spans.end());
    return c;
  }
  c.text = render(messages, false, nullptr, kwargs);
  auto starts = [&](const std::string& prefix) { return c.text.compare(0, prefix.size(), prefix) == 0; };
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].value("role", "") != "assistant") continue;
    nlohmann::ordered_json before = nlohmann::ordered_json::array(), through;
    for (size_t j = 0; j < i; ++j) before.push_back(messages[j]);
    through = before;
    through.push_back(messages[i]);
    const std::string head = render(before, true, nullptr, kwargs);
    const std::string turn = render(through, false, nullptr, kwargs);
    RLFT_CHECK(starts(head) && starts(turn) && turn.size() >= head.size(),
               "{}: the template renders the conversation before assistant turn messages[{}] differently once later "
               "turns follow, so the turn's text cannot be located by rendering prefixes; a template with "
               "{{% generation %}} blocks marks it instead",
               origin(), i);
    if (turn.size() > head.size()) c.assistant_spans.emplace_back(head.size(), turn.size());
  }
  return c;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& m : messages) list.push_back({{"role", m.role}, {"content", m.content}});
  return render(list, add_generation_prompt);
}

}  // namespace rlft::tokenizer
