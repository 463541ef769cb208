// Prompt templates and chat formats (see prompt.h).
#include "policy/tokenizer/prompt.h"

#include <nlohmann/json.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <optional>

#include "core/config.h"
#include "core/error.h"

namespace rlft::tokenizer {
namespace {

// `chat_template_kwargs`: a mapping (YAML scalars as JSON booleans, numbers or strings), or the
// same as JSON text. Returned as JSON text.
std::string read_template_kwargs(const ConfigView& view) {
  if (!view.has("chat_template_kwargs")) return "{}";
  nlohmann::json kwargs = nlohmann::json::object();
  std::optional<ConfigView> map;
  try {
    map = view.section("chat_template_kwargs");
  } catch (const ConfigError&) {  // not a mapping: JSON text
  }
  if (map) {
    for (const auto& key : map->keys()) {
      // The first type the scalar reads as: bool, integer, number, else string.
      try {
        kwargs[key] = map->get<bool>(key, false);
        continue;
      } catch (const ConfigError&) {
      }
      try {
        kwargs[key] = map->get<int64_t>(key, 0);
        continue;
      } catch (const ConfigError&) {
      }
      try {
        kwargs[key] = map->get<double>(key, 0.0);
        continue;
      } catch (const ConfigError&) {
      }
      kwargs[key] = map->get<std::string>(key, "");
    }
    return kwargs.dump();
  }
  const auto text = view.get<std::string>("chat_template_kwargs", "{}");
  try {
    kwargs = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    view.check(false, "chat_template_kwargs", fmt::format("a mapping of template arguments, or JSON: {}", e.what()));
  }
  view.check(kwargs.is_object(), "chat_template_kwargs",
             "a mapping of template arguments, e.g. {enable_thinking: false}");
  return kwargs.dump();
}

// DeepSeek-R1-Zero's template ([R1v1] Table 1, algorithms.md §3.4), verbatim, one paragraph.
const char* const kR1Preamble =
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The assistant "
    "first thinks about the reasoning process in the mind and then provides the user with the answer. The reasoning "
    "process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., <think> "
    "reasoning process here </think> <answer> answer here </answer>.";

bool is_name_char(char c, bool first) {
  return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9');
}

}  // namespace

PromptTemplate::PromptTemplate() : PromptTemplate("{prompt}") {}

PromptTemplate::PromptTemplate(std::string text) : text_(std::move(text)) {
  std::string literal;
  for (std::size_t i = 0; i < text_.size(); ++i) {
    const char c = text_[i];
    if ((c == '{' || c == '}') && i + 1 < text_.size() && text_[i + 1] == c) {
      literal += c;
      ++i;
      continue;
    }
    RLFT_CHECK(c != '}', "prompt template: a stray '}}' at offset {} (write '}}}}' for a literal brace)", i);
    if (c != '{') {
      literal += c;
      continue;
    }
    const std::size_t close = text_.find('}', i + 1);
    RLFT_CHECK(close != std::string::npos,
               "prompt template: the '{{' at offset {} is not closed (write '{{{{' for a literal brace)", i);
    const std::string name = text_.substr(i + 1, close - i - 1);
    bool ok = !name.empty();
    for (std::size_t k = 0; k < name.size() && ok; ++k) ok = is_name_char(name[k], k == 0);
    RLFT_CHECK(ok, "prompt template: '{{{}}}' at offset {} is not a placeholder name (letters, digits, _)", name, i);
    if (!literal.empty()) parts_.push_back({false, std::move(literal)});
    literal.clear();
    parts_.push_back({true, name});
    if (std::find(names_.begin(), names_.end(), name) == names_.end()) names_.push_back(name);
    i = close;
  }
  if (!literal.empty()) parts_.push_back({false, std::move(literal)});
}

std::vector<std::string> PromptTemplate::builtin_names() {
  return {"plain", "r1_zero", "r1_zero_think"};
}

PromptTemplate PromptTemplate::builtin(const std::string& name) {
  if (name == "plain") return PromptTemplate("{prompt}");
  if (name == "r1_zero") return PromptTemplate(std::string(kR1Preamble) + " User: {prompt}. Assistant:");
  if (name == "r1_zero_think") return PromptTemplate(std::string(kR1Preamble) + "\nUser: {prompt}\nAssistant: <think>");
  throw Error(
      fmt::format("unknown prompt template '{}': built-in templates are {}", name, fmt::join(builtin_names(), ", ")));
}

PromptTemplate PromptTemplate::from_spec(const std::string& name_or_text) {
  const auto names = builtin_names();
  if (std::find(names.begin(), names.end(), name_or_text) != names.end()) return builtin(name_or_text);
  return PromptTemplate(name_or_text);
}

std::string PromptTemplate::render(const std::map<std::string, std::string>& values) const {
  std::string out;
  for (const Part& p : parts_) {
    if (!p.placeholder) {
      out += p.text;
      continue;
    }
    auto it = values.find(p.text);
    if (it == values.end()) {
      std::vector<std::string> given;
      for (const auto& kv : values) given.push_back(kv.first);
      throw Error(fmt::format("prompt template: no value for {{{}}} (given: {})", p.text,
                              given.empty() ? std::string("none") : fmt::format("{}", fmt::join(given, ", "))));
    }
    out += it->second;
  }
  return out;
}

std::string PromptTemplate::render_prompt(const std::string& prompt) const {
  return render({{"prompt", prompt}});
}

std::vector<std::string> ChatFormatOptions::preset_names() {
  return {"chatml", "deepseek_v3", "plain"};
}

ChatFormatOptions ChatFormatOptions::preset(const std::string& name) {
  ChatFormatOptions o;
  if (name == "chatml") {  // Qwen2 / Qwen3
    for (const char* role : {"system", "user", "assistant", "tool"})
      o.roles[role] = fmt::format("<|im_start|>{}\n{{content}}<|im_end|>\n", role);
    o.generation_prompt = "<|im_start|>assistant\n";
  } else if (name == "deepseek_v3") {  // its chat_template without tool calls
    o.prefix = "<｜begin▁of▁sentence｜>";
    o.roles["system"] = "{content}";
    o.roles["user"] = "<｜User｜>{content}";
    o.roles["assistant"] = "<｜Assistant｜>{content}<｜end▁of▁sentence｜>";
    o.generation_prompt = "<｜Assistant｜>";
  } else if (name == "plain") {
    o.roles["system"] = "{content}\n\n";
    o.roles["user"] = "User: {content}\n";
    o.roles["assistant"] = "Assistant: {content}\n";
    o.generation_prompt = "Assistant:";
  } else {
    throw Error(fmt::format("unknown chat preset '{}': presets are {}", name, fmt::join(preset_names(), ", ")));
  }
  return o;
}

ChatFormatOptions ChatFormatOptions::from_config(const ConfigView& chat) {
  ChatFormatOptions c = chat.get_parsed("preset", "chatml", preset);
  c.prefix = chat.get<std::string>("prefix", c.prefix);
  c.generation_prompt = chat.get<std::string>("generation_prompt", c.generation_prompt);
  c.default_system = chat.get<std::string>("system", c.default_system);
  const ConfigView roles = chat.section("roles");
  for (const std::string& role : roles.keys()) c.roles[role] = roles.get<std::string>(role, "");
  return c;
}

void ChatFormatOptions::validate() const {
  // The placeholders of `text`; a template that does not parse fails as the field `key`.
  const auto placeholders = [](const std::string& key, const std::string& text) {
    try {
      return PromptTemplate(text).placeholders();
    } catch (const Error& e) {
      throw OptionError(key, text, e.what());
    }
  };
  RLFT_CHECK_OPTION(!roles.empty(), "roles", "{}", "chat format: no roles");
  for (const auto& [role, format] : roles)
    for (const std::string& n : placeholders("roles." + role, format))
      RLFT_CHECK_OPTION(n == "content", "roles." + role, format,
                        "chat format for role '{}': unknown placeholder {{{}}} (only {{content}})", role, n);
  RLFT_CHECK_OPTION(placeholders("prefix", prefix).empty(), "prefix", prefix,
                    "chat format: prefix takes no placeholders (write {{{{ for a brace)");
  RLFT_CHECK_OPTION(placeholders("generation_prompt", generation_prompt).empty(), "generation_prompt",
                    generation_prompt, "chat format: generation_prompt takes no placeholders (write {{{{ for a brace)");
}

ChatFormat::ChatFormat(ChatFormatOptions options) : options_(std::move(options)) {
  options_.validate();
  for (const auto& [role, format] : options_.roles) formats_.emplace(role, PromptTemplate(format));
}

std::string ChatFormat::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  const auto one = [&](const ChatMessage& m) {
    auto it = formats_.find(m.role);
    if (it == formats_.end()) {
      std::vector<std::string> known;
      for (const auto& kv : formats_) known.push_back(kv.first);
      throw Error(fmt::format("chat: role '{}' has no format (roles: {})", m.role, fmt::join(known, ", ")));
    }
    return it->second.render({{"content", m.content}});
  };
  std::string out = PromptTemplate(options_.prefix).render({});
  const bool has_system = !messages.empty() && messages.front().role == "system";
  if (!has_system && !options_.default_system.empty()) out += one({"system", options_.default_system});
  for (const ChatMessage& m : messages) out += one(m);
  if (add_generation_prompt) out += PromptTemplate(options_.generation_prompt).render({});
  return out;
}

PromptOptions parse_prompt_options(const ConfigView& view) {
  PromptOptions o;
  o.template_given = view.has("template");
  const std::string spec = view.get<std::string>("template", "plain");
  try {
    o.prompt_template = PromptTemplate::from_spec(spec);
  } catch (const Error& e) {
    view.check(false, "template", e.what());
  }
  if (view.has("chat")) o.chat = read_options<ChatFormatOptions>(view.section("chat"));
  o.chat_template = view.get<std::string>("chat_template", o.chat_template);
  view.check(!o.chat_template.empty(), "chat_template", "auto, none or a .jinja file");
  if (o.chat_template != "auto" && o.chat_template != "none")
    view.check(std::filesystem::exists(o.chat_template), "chat_template",
               fmt::format("no such file: {} (auto, none or a .jinja file)", o.chat_template));
  o.chat_template_kwargs = read_template_kwargs(view);
  view.reject_unknown_keys();
  return o;
}

}  // namespace rlft::tokenizer
