// Where a checkpoint's chat template comes from (chat_template.jinja before tokenizer_config.json;
// a string or the "default" of named templates), the context it sees (special tokens, tools,
// add_generation_prompt, extra arguments), and bad messages.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "policy/tokenizer/chat_template.h"
#include "tests/support/temp_dir.h"

#include "tests/support/doctest_last.h"  // last (see there)

namespace fs = std::filesystem;
using rlft::tokenizer::ChatTemplate;
using ChatJson = nlohmann::ordered_json;

TEST_CASE("a chat template from a tokenizer directory, rendered with transformers' context") {
  rlft::test::TempDir tmp;
  const std::string dir = tmp.file("tok");
  fs::create_directories(dir);
  CHECK_FALSE(ChatTemplate::from_tokenizer_dir(dir).has_value());
  ChatJson cfg = {{"bos_token", {{"content", "<s>"}, {"lstrip", false}}},
                  {"eos_token", "</s>"},
                  {"chat_template",
                   "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}"
                   "{% if tools %}tools={{ tools | length }}{% endif %}{% if add_generation_prompt %}[assistant]"
                   "{% endif %}{% if think is defined %} think={{ think }}{% endif %}"}};
  std::ofstream(dir + "/tokenizer_config.json") << cfg.dump();
  auto t = ChatTemplate::from_tokenizer_dir(dir + "/tokenizer.json");  // a tokenizer.json path names its directory
  REQUIRE(t.has_value());
  CHECK(t->origin() == dir + "/tokenizer_config.json");
  const auto messages = ChatJson::parse(R"([{"role": "user", "content": "hi"}])");
  CHECK(t->render(messages, true) == "<s>[user] hi</s>[assistant]");
  CHECK(t->render(messages, false, ChatJson::parse(R"([{"type": "function"}])"), {{"think", false}}) ==
        "<s>[user] hi</s>tools=1 think=False");
  CHECK(t->render(std::vector<rlft::tokenizer::ChatMessage>{{"system", "s"}, {"user", "u"}}, false) ==
        "<s>[system] s</s>[user] u</s>");

  // Named templates: the "default" one.
  cfg["chat_template"] =
      ChatJson::parse(R"([{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}])");
  std::ofstream(dir + "/tokenizer_config.json") << cfg.dump();
  CHECK(ChatTemplate::from_tokenizer_dir(dir)->render(messages, false) == "D");
  // chat_template.jinja wins over tokenizer_config.json, as in transformers.
  std::ofstream(dir + "/chat_template.jinja") << "J{{ messages | length }}";
  CHECK(ChatTemplate::from_tokenizer_dir(dir)->render(messages, false) == "J1");
  CHECK(ChatTemplate::from_tokenizer_dir(dir)->origin() == dir + "/chat_template.jinja");

  // Messages that are not a list of role/content objects.
  CHECK_THROWS_WITH(t->render(ChatJson::parse(R"({"role": "user"})"), false),
                    doctest::Contains("messages must be a list"));
  CHECK_THROWS_WITH(t->render(ChatJson::parse(R"([{"role": "user", "content": "a"}, {"content": "b"}])"), false),
                    doctest::Contains("messages[1] must be an object with a string \"role\""));
  // A template that does not parse names its file, line and column.
  std::ofstream(dir + "/chat_template.jinja") << "ok\n{% if %}";
  CHECK_THROWS_WITH(ChatTemplate::from_tokenizer_dir(dir),
                    doctest::Contains((dir + "/chat_template.jinja:2:").c_str()));
}

namespace {

std::vector<std::string> conversation_span_texts(const ChatTemplate::Conversation& c) {
  std::vector<std::string> out;
  for (const auto& [b, e] : c.assistant_spans) out.push_back(c.text.substr(b, e - b));
  return out;
}

ChatTemplate fixture_template(const std::string& name) {
  return ChatTemplate::from_file(std::string(RLFT_SOURCE_DIR) + "/tests/fixtures/chat_templates/" + name + ".jinja");
}

}  // namespace

TEST_CASE("a conversation's assistant turns: by rendering prefixes, or where {% generation %} blocks say") {
  const auto chat = ChatJson::parse(R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "2+2?"},
      {"role": "assistant", "content": "4"}])");
  // Qwen2.5's template has no generation blocks: each turn runs from the generation prompt to
  // the end of the turn as the template writes it.
  const auto qwen = fixture_template("qwen2_5");
  CHECK_FALSE(qwen.has_generation_blocks());
  const auto c = qwen.render_conversation(chat);
  CHECK(c.text == qwen.render(chat, false));
  CHECK(conversation_span_texts(c) == std::vector<std::string>{"Hello.<|im_end|>\n", "4<|im_end|>\n"});
  CHECK(c.text.substr(0, c.assistant_spans[0].first).size() > 0);
  CHECK(c.text.compare(c.assistant_spans[0].first - 22, 22, "<|im_start|>assistant\n") == 0);

  // The same format with the assistant's text in generation blocks: the blocks decide.
  const ChatTemplate marked(
      "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' }}{% if m.role == 'assistant' %}{% generation %}"
      "{{ m.content + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}{% else %}{{ m.content + '<|im_end|>\\n' }}"
      "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
      "marked");
  CHECK(marked.has_generation_blocks());
  const auto m = marked.render_conversation(chat);
  CHECK(m.text == c.text);
  CHECK(conversation_span_texts(m) == std::vector<std::string>{"Hello.<|im_end|>", "4<|im_end|>"});

  // Qwen3 writes a reasoning block into an assistant turn only while no user turn follows it:
  // an earlier turn cannot be located by prefixes, and the error says which and what would.
  const auto qwen3 = fixture_template("qwen3");
  CHECK_THROWS_WITH_AS(qwen3.render_conversation(chat),
                       doctest::Contains("before assistant turn messages[2] differently once later turns follow"),
                       rlft::Error);
  // The final turn alone can (with the empty reasoning block the template writes there).
  const auto last = qwen3.render_conversation(ChatJson::parse(R"([{"role": "user", "content": "2+2?"},
      {"role": "assistant", "content": "4"}])"));
  CHECK(conversation_span_texts(last) == std::vector<std::string>{"<think>\n\n</think>\n\n4<|im_end|>\n"});
}
