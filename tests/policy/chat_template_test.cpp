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
