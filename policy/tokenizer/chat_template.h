#pragma once
// A checkpoint's own chat template (Jinja), rendered as transformers' apply_chat_template
// renders it (policy/tokenizer/jinja/jinja.h): the context is `messages`, `tools` (None when
// there are none), `documents` (None), `add_generation_prompt`, the special tokens' strings
// (bos_token, eos_token, pad_token, unk_token, where tokenizer_config.json names them) and any
// extra keyword arguments (e.g. Qwen3's enable_thinking).
//
// Where a template comes from, as transformers looks for it: DIR/chat_template.jinja, else
// tokenizer_config.json's `chat_template` (a string, or the "default" entry of a list of named
// templates). The text it renders already holds the template's special tokens (BOS …): encode
// it without adding them again (add_special_tokens = false, as apply_chat_template does).

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "policy/tokenizer/jinja/jinja.h"
#include "policy/tokenizer/prompt.h"

namespace rlft::tokenizer {

class ChatTemplate {
 public:
  /// `source`: the template text; `origin` names it in errors ("DIR/tokenizer_config.json");
  /// `special_tokens`: {"bos_token": "<s>", …}. Throws jinja::TemplateError for a template that
  /// does not parse (origin:line:column).
  ChatTemplate(std::string source, std::string origin,
               nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object());

  /// The template of tokenizer directory `dir` (or the directory of a tokenizer.json path);
  /// nullopt when it has none.
  static std::optional<ChatTemplate> from_tokenizer_dir(const std::string& dir);
  /// A .jinja file, with `dir`'s special tokens when `dir` is given.
  static ChatTemplate from_file(const std::string& path, const std::string& tokenizer_dir = "");

  /// `messages` must be a list of objects, each with a string "role" (content may be a string,
  /// a list of parts or null, as templates allow); otherwise rlft::Error naming the index.
  /// jinja::RaisedError when the template rejects the conversation.
  std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                     const nlohmann::ordered_json& tools = nullptr,
                     const nlohmann::ordered_json& kwargs = nlohmann::ordered_json::object()) const;
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

  /// A whole conversation rendered for training on its assistant turns: the text (no
  /// generation prompt) and the byte ranges [begin, end) of what the assistant says in it.
  struct Conversation {
    std::string text;
    std::vector<std::pair<std::size_t, std::size_t>> assistant_spans;
  };
  /// With {% generation %} blocks in the template, their spans (what transformers'
  /// return_assistant_tokens_mask marks). Without, each assistant turn i by rendering prefixes:
  /// from the end of messages[0, i) rendered with the generation prompt to the end of
  /// messages[0, i] rendered without it; both must begin the whole rendering, or rlft::Error
  /// naming the turn (a template that renders earlier turns differently once later ones follow,
  /// as Qwen3 drops earlier turns' reasoning, cannot be split this way).
  Conversation render_conversation(const nlohmann::ordered_json& messages,
                                   const nlohmann::ordered_json& kwargs = nlohmann::ordered_json::object()) const;
  /// Whether the template marks assistant text with {% generation %} blocks.
  bool has_generation_blocks() const { return template_.has_generation_blocks(); }

  const std::string& source() const { return template_.source(); }
  const std::string& origin() const { return template_.origin(); }

 private:
  nlohmann::ordered_json context(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                 const nlohmann::ordered_json& tools, const nlohmann::ordered_json& kwargs) const;

  jinja::Template template_;
  nlohmann::ordered_json special_tokens_;
};

/// tokenizer_config.json's reading, shared with Tokenizer::load: a special token's string
/// ("…" or an AddedToken {"content": "…"}; nullopt when absent; rlft::Error naming `file` for
/// anything else), and the chat template (a string, or the "default" of a list of named
/// templates; "" when there is none of those).
std::optional<std::string> config_special_token(const nlohmann::json& cfg, const char* key, const std::string& file);
std::string config_chat_template(const nlohmann::json& cfg);

/// The template text and the special tokens' strings of a tokenizer directory, as read from
/// its files; empty source when it has none.
struct ChatTemplateFiles {
  std::string source, origin;
  nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object();
};
ChatTemplateFiles read_chat_template_files(const std::string& dir);

}  // namespace rlft::tokenizer
