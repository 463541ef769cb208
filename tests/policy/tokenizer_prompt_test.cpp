// Prompt templates and chat formats (policy/tokenizer/prompt.h).
#include <doctest/doctest.h>

#include "core/config.h"
#include "core/error.h"
#include "policy/tokenizer/prompt.h"

using rlft::tokenizer::ChatFormat;
using rlft::tokenizer::ChatFormatOptions;
using rlft::tokenizer::ChatMessage;
using rlft::tokenizer::PromptTemplate;

namespace {
bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
}  // namespace

TEST_CASE("a template replaces its placeholders and keeps doubled braces") {
  const PromptTemplate t("Q: {question}\nA ({{braces}}): {answer}{question}");
  CHECK(t.placeholders() == std::vector<std::string>{"question", "answer"});
  CHECK(t.render({{"question", "2+2?"}, {"answer", "4"}, {"unused", "x"}}) == "Q: 2+2?\nA ({braces}): 42+2?");
  CHECK_THROWS_WITH_AS(t.render({{"question", "q"}}), doctest::Contains("no value for {answer} (given: question)"),
                       rlft::Error);
  CHECK(PromptTemplate().render_prompt("as is") == "as is");
}

TEST_CASE("malformed templates are errors that point at the offset") {
  CHECK_THROWS_WITH_AS(PromptTemplate("a {open"), doctest::Contains("the '{' at offset 2 is not closed"), rlft::Error);
  CHECK_THROWS_WITH_AS(PromptTemplate("a } b"), doctest::Contains("a stray '}' at offset 2"), rlft::Error);
  CHECK_THROWS_WITH_AS(PromptTemplate("{}"), doctest::Contains("'{}' at offset 0 is not a placeholder name"),
                       rlft::Error);
  CHECK_THROWS_WITH_AS(PromptTemplate("{a b}"), doctest::Contains("not a placeholder name"), rlft::Error);
}

TEST_CASE("the R1-Zero template is DeepSeek-R1's, verbatim") {
  const std::string r = PromptTemplate::builtin("r1_zero").render_prompt("What is 1+1?");
  CHECK(r.rfind("A conversation between User and Assistant. The user asks a question, and the Assistant solves it.",
                0) == 0);
  CHECK(r.find(
            "<think> reasoning process here </think> <answer> answer here </answer>. User: What is 1+1?. Assistant:") !=
        std::string::npos);
  CHECK(ends_with(r, ". Assistant:"));
  const std::string t = PromptTemplate::builtin("r1_zero_think").render_prompt("Q");
  CHECK(ends_with(t, "</answer>.\nUser: Q\nAssistant: <think>"));
  CHECK(PromptTemplate::from_spec("r1_zero").text() == PromptTemplate::builtin("r1_zero").text());
  CHECK(PromptTemplate::from_spec("Solve: {prompt}").render_prompt("x") == "Solve: x");
  CHECK_THROWS_WITH_AS(PromptTemplate::builtin("r2"),
                       doctest::Contains("built-in templates are plain, r1_zero, r1_zero_think"), rlft::Error);
}

TEST_CASE("chat presets render as the models' own chat templates do") {
  const std::vector<ChatMessage> chat{
      {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "2+2?"}};
  CHECK(ChatFormat(ChatFormatOptions::preset("chatml")).render(chat, true) ==
        "<|im_start|>system\nBe "
        "brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
  CHECK(ChatFormat(ChatFormatOptions::preset("deepseek_v3")).render(chat, true) ==
        "<｜begin▁of▁sentence｜>Be "
        "brief.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜>");
  CHECK(ChatFormat(ChatFormatOptions::preset("plain")).render({{"user", "Hi"}}, false) == "User: Hi\n");
}

TEST_CASE("a chat format can add a default system message and rejects unknown roles") {
  ChatFormatOptions o = ChatFormatOptions::preset("chatml");
  o.default_system = "You are helpful.";
  const ChatFormat f(o);
  CHECK(f.render({{"user", "x"}}, false) ==
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nx<|im_end|>\n");
  CHECK(f.render({{"system", "S"}, {"user", "x"}}, false) ==
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nx<|im_end|>\n");
  CHECK_THROWS_WITH_AS(f.render({{"narrator", "x"}}, false),
                       doctest::Contains("role 'narrator' has no format (roles: assistant"), rlft::Error);
  o.roles["user"] = "{content} {oops}";
  CHECK_THROWS_WITH_AS(ChatFormat{o}, doctest::Contains("unknown placeholder {oops}"), rlft::Error);
  CHECK_THROWS_WITH_AS(ChatFormatOptions::preset("llama9"), doctest::Contains("presets are chatml, deepseek_v3, plain"),
                       rlft::Error);
}

TEST_CASE("prompt options come from a run's YAML with errors that name the key") {
  const auto view = rlft::ConfigView::parse(R"(prompt:
  template: r1_zero
  chat:
    preset: deepseek_v3
    roles:
      tool: "<tool>{content}</tool>"
    system: "Think step by step."
)",
                                            "run.yaml");
  const auto o = rlft::tokenizer::parse_prompt_options(view.section("prompt"));
  CHECK(o.prompt_template.text() == PromptTemplate::builtin("r1_zero").text());
  REQUIRE(o.chat.has_value());
  const ChatFormat f(*o.chat);
  CHECK(f.render({{"user", "x"}, {"tool", "y"}}, true) ==
        "<｜begin▁of▁sentence｜>Think step by step.<｜User｜>x<tool>y</tool><｜Assistant｜>");

  const auto bad = rlft::ConfigView::parse("prompt:\n  template: \"{unclosed\"\n", "run.yaml");
  CHECK_THROWS_WITH_AS(rlft::tokenizer::parse_prompt_options(bad.section("prompt")),
                       doctest::Contains("prompt.template"), rlft::ConfigError);
  const auto typo = rlft::ConfigView::parse("prompt:\n  templat: r1_zero\n", "run.yaml");
  CHECK_THROWS_WITH_AS(rlft::tokenizer::parse_prompt_options(typo.section("prompt")),
                       doctest::Contains("did you mean 'template'"), rlft::ConfigError);
  const auto preset = rlft::ConfigView::parse("prompt:\n  chat:\n    preset: nope\n", "run.yaml");
  CHECK_THROWS_WITH_AS(rlft::tokenizer::parse_prompt_options(preset.section("prompt")),
                       doctest::Contains("prompt.chat.preset"), rlft::ConfigError);
}

TEST_CASE("prompt.chat_template and its arguments: a mapping of YAML scalars, or JSON text") {
  auto parse = [](const std::string& yaml) {
    return rlft::tokenizer::parse_prompt_options(rlft::ConfigView::parse(yaml, "run.yaml").section("prompt"));
  };
  const auto o = parse("prompt:\n  chat_template_kwargs: {enable_thinking: false, n: 3, x: 0.5, s: hi}\n");
  CHECK(o.chat_template == "auto");
  CHECK_FALSE(o.template_given);
  CHECK(o.chat_template_kwargs == R"({"enable_thinking":false,"n":3,"s":"hi","x":0.5})");
  CHECK(parse("prompt:\n  template: plain\n  chat_template_kwargs: '{\"a\": [1, 2]}'\n").chat_template_kwargs ==
        R"({"a":[1,2]})");
  CHECK(parse("prompt:\n  template: plain\n").template_given);
  CHECK_THROWS_WITH_AS(parse("prompt:\n  chat_template_kwargs: '[1]'\n"),
                       doctest::Contains("prompt.chat_template_kwargs"), rlft::ConfigError);
  CHECK_THROWS_WITH_AS(parse("prompt:\n  chat_template: /no/such/template.jinja\n"),
                       doctest::Contains("prompt.chat_template = /no/such/template.jinja: no such file"),
                       rlft::ConfigError);
}
