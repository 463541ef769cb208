#pragma once
// Prompt templates and chat rendering: the text a policy sees before it is tokenized.
//
// A PromptTemplate is text with {name} placeholders ({{ and }} are literal braces), e.g. the
// DeepSeek-R1-Zero template of algorithms.md §3.4 with {prompt} where the question goes. A
// ChatFormat renders a list of messages with one format per role ("{content}" is the message)
// — the common chat templates (ChatML for Qwen, DeepSeek-V3's) are presets; full Jinja is not
// needed for them and not implemented.
//
// YAML (a run's `prompt:` section; parse_prompt_options()):
//   prompt:
//     template: r1_zero            # a built-in name, or text with {prompt}
//     chat:                        # optional: render chat-style datasets
//       preset: chatml             # chatml | deepseek_v3 | plain
//       roles: {user: "…{content}…"}   # override or add roles
//       prefix: "…"                # before the first message
//       generation_prompt: "…"     # opens the assistant's turn when generating
//       system: "…"                # a system message for chats that have none
//     chat_template: auto          # auto | none | FILE.jinja: the checkpoint's own Jinja template
//     chat_template_kwargs: {}     # extra template arguments, e.g. {enable_thinking: false}
//
// Chat data is rendered with the checkpoint's Jinja chat template (chat_template.h) unless the
// config gives `template` or `chat:` (hand-written formats, kept for checkpoints without one) or
// sets chat_template: none.

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rlft {
class ConfigView;
}

namespace rlft::tokenizer {

class PromptTemplate {
 public:
  /// "{prompt}": the prompt as it is.
  PromptTemplate();
  /// Parses `text`; throws rlft::Error for an unclosed or empty placeholder or a stray brace.
  explicit PromptTemplate(std::string text);

  /// A built-in template: "plain" ({prompt}), "r1_zero" (DeepSeek-R1-Zero, verbatim, with
  /// {prompt}), "r1_zero_think" (the same ending in "Assistant: <think>", as
  /// understand-r1-zero's apply_r1_template). Unknown names are errors listing the known.
  static PromptTemplate builtin(const std::string& name);
  static std::vector<std::string> builtin_names();
  /// A built-in name, or else template text.
  static PromptTemplate from_spec(const std::string& name_or_text);

  /// The text with every placeholder replaced. Throws rlft::Error naming a placeholder that
  /// `values` lacks (values the template does not use are ignored).
  std::string render(const std::map<std::string, std::string>& values) const;
  /// render({{"prompt", prompt}}).
  std::string render_prompt(const std::string& prompt) const;

  const std::string& text() const { return text_; }
  /// Placeholder names in order of first use.
  const std::vector<std::string>& placeholders() const { return names_; }

 private:
  struct Part {
    bool placeholder;
    std::string text;  ///< literal text, or the placeholder's name
  };
  std::string text_;
  std::vector<Part> parts_;
  std::vector<std::string> names_;
};

struct ChatMessage {
  std::string role;
  std::string content;
};

struct ChatFormatOptions {
  /// Role → format of one message of that role, with {content}.
  std::map<std::string, std::string> roles;
  /// Text before the first message (e.g. a BOS token).
  std::string prefix;
  /// Appended after the messages when the model is to answer.
  std::string generation_prompt;
  /// A system message put first when a chat has none ("" = none).
  std::string default_system;

  /// Built-ins: "chatml" (Qwen), "deepseek_v3", "plain" ("Role: content" lines).
  static ChatFormatOptions preset(const std::string& name);
  static std::vector<std::string> preset_names();
  /// Reads a `prompt.chat:` section: `preset` (default chatml), then prefix,
  /// generation_prompt, system and roles.<role> over it. An unknown preset is a ConfigError.
  static ChatFormatOptions from_config(const ConfigView& section);
  /// Throws rlft::OptionError ("roles.user", "prefix" …) unless every role format uses only
  /// {content} and prefix and generation_prompt use none.
  void validate() const;
};

class ChatFormat {
 public:
  explicit ChatFormat(ChatFormatOptions options);
  /// The chat as one text; a role without a format is an error that lists the known roles.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;
  const ChatFormatOptions& options() const { return options_; }

 private:
  ChatFormatOptions options_;
  std::map<std::string, PromptTemplate> formats_;
};

struct PromptOptions {
  PromptTemplate prompt_template;
  bool template_given = false;  ///< `template` is in the config (not the default)
  std::optional<ChatFormatOptions> chat;
  /// `chat_template`: "auto" (the checkpoint's Jinja template, when it has one and neither
  /// `template` nor `chat` is given), "none", or a .jinja file (policy/tokenizer/chat_template.h).
  std::string chat_template = "auto";
  /// `chat_template_kwargs`: extra template arguments (a mapping, kept as JSON text), e.g.
  /// {enable_thinking: false}.
  std::string chat_template_kwargs = "{}";
};

/// Reads a `prompt:` section (see the top of this file); errors name the dotted key.
PromptOptions parse_prompt_options(const ConfigView& view);

}  // namespace rlft::tokenizer
