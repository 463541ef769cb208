// `rlft template render` and the checkpoint's chat template in a run: the text is Jinja2's
// with transformers' context (scripts/reference/jinja_render.py), byte for byte; a run renders
// its chat prompts and SFT replies with the template it found beside the tokenizer and keeps
// the template in its checkpoints; bad input names the file and line.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "policy/tokenizer/chat_template.h"
#include "tests/rl/trainer_test_util.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

namespace fs = std::filesystem;
using rlft::test::TempDir;
using TemplateJson = nlohmann::ordered_json;

namespace {

std::string template_test_read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A tokenizer directory whose tokenizer_config.json holds the Qwen3 template (the model's own).
std::string qwen3_tokenizer_dir(const TempDir& tmp) {
  const std::string dir = tmp.file("qwen3");
  fs::create_directories(dir);
  TemplateJson cfg = {{"eos_token", "<|im_end|>"},
                      {"pad_token", "<|endoftext|>"},
                      {"chat_template", template_test_read(std::string(RLFT_SOURCE_DIR) +
                                                           "/tests/fixtures/chat_templates/qwen3.jinja")}};
  std::ofstream(dir + "/tokenizer_config.json") << cfg.dump(2);
  return dir;
}

}  // namespace

TEST_CASE("rlft template render: the checkpoint's template as transformers renders it, byte for byte") {
  if (rlft::test::run_process({"/usr/bin/python3", "-c", "import jinja2"}).exit_code != 0) {
    MESSAGE("skipped: /usr/bin/python3 has no jinja2 (scripts/setup.sh --test installs python3-jinja2)");
    return;
  }
  TempDir tmp;
  const auto dir = qwen3_tokenizer_dir(tmp);
  const std::vector<TemplateJson> rows = {
      TemplateJson::parse(R"({"messages": [{"role": "user", "content": "What is 2 + 2?"}]})"),
      TemplateJson::parse(R"({"messages": [{"role": "system", "content": "Be brief."},
          {"role": "user", "content": "你好 👋"}, {"role": "assistant", "content": "<think>\nhi\n</think>\n\nHello!"},
          {"role": "user", "content": "Again"}], "enable_thinking": false})"),
      TemplateJson::parse(R"({"messages": [{"role": "user", "content": "Weather in Paris?"}],
          "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
          "properties": {"city": {"type": "string"}}}}}]})")};
  std::string input;
  for (const auto& r : rows) input += r.dump() + "\n";
  std::ofstream(tmp.file("chats.jsonl")) << input;
  for (const bool gen : {false, true}) {
    std::vector<std::string> args = {"template", "render", "--tokenizer", dir, tmp.file("chats.jsonl")};
    if (gen) args.push_back("--add-generation-prompt");
    const auto r = rlft::test::run_rlft(args);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    // The reference: Jinja2 with the context transformers passes.
    std::string requests;
    for (const auto& row : rows) {
      TemplateJson context = {{"messages", row["messages"]}, {"tools", row.value("tools", TemplateJson())},
                              {"documents", nullptr},        {"add_generation_prompt", gen},
                              {"eos_token", "<|im_end|>"},   {"pad_token", "<|endoftext|>"}};
      if (row.contains("enable_thinking")) context["enable_thinking"] = row["enable_thinking"];
      requests += TemplateJson{{"config_file", dir + "/tokenizer_config.json"}, {"context", context}}.dump() + "\n";
    }
    const auto ref = rlft::test::run_process(
        {"/usr/bin/python3", std::string(RLFT_SOURCE_DIR) + "/scripts/reference/jinja_render.py"}, {}, requests);
    REQUIRE_MESSAGE(ref.exit_code == 0, ref.err);
    std::istringstream ours(r.out), theirs(ref.out);
    std::string a, b;
    int compared = 0;
    while (std::getline(ours, a) && std::getline(theirs, b)) {
      const auto expected = TemplateJson::parse(b);
      REQUIRE_MESSAGE(expected.contains("output"), b);
      CHECK(TemplateJson::parse(a).get<std::string>() == expected["output"].get<std::string>());
      ++compared;
    }
    CHECK(compared == 3);
  }
}

TEST_CASE("rlft template render: bad input names the file and line; a template's own refusal is shown") {
  TempDir tmp;
  const auto dir = qwen3_tokenizer_dir(tmp);
  std::ofstream(tmp.file("bad.jsonl")) << R"({"messages": [{"role": "user", "content": "ok"}]})"
                                       << "\n{not json\n";
  auto r = rlft::test::run_rlft({"template", "render", "--tokenizer", dir, tmp.file("bad.jsonl")});
  CHECK(r.exit_code != 0);
  CHECK_MESSAGE(r.err.find(tmp.file("bad.jsonl") + ":2: not JSON") != std::string::npos, r.err);
  std::ofstream(tmp.file("roles.jsonl")) << R"({"messages": [{"content": "no role"}]})"
                                         << "\n";
  r = rlft::test::run_rlft({"template", "render", "--tokenizer", dir, tmp.file("roles.jsonl")});
  CHECK(r.exit_code != 0);
  CHECK_MESSAGE(r.err.find(":1: messages[0] must be an object with a string \"role\"") != std::string::npos, r.err);
  // Gemma 3's template refuses turns that do not alternate: its own message, as transformers shows it.
  std::ofstream(tmp.file("twice.jsonl"))
      << R"({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})"
      << "\n";
  r = rlft::test::run_rlft({"template", "render", "--template",
                            std::string(RLFT_SOURCE_DIR) + "/tests/fixtures/chat_templates/gemma3.jinja",
                            tmp.file("twice.jsonl")});
  CHECK(r.exit_code != 0);
  CHECK_MESSAGE(r.err.find(tmp.file("twice.jsonl") +
                           ":1: the chat template refused the conversation: TemplateError: "
                           "Conversation roles must alternate user/assistant/user/assistant/...") != std::string::npos,
                r.err);
  // A template that does not parse: its line and column.
  std::ofstream(tmp.file("broken.jinja")) << "{% for m in messages %}\n{{ m.content }\n{% endfor %}";
  r = rlft::test::run_rlft({"template", "render", "--template", tmp.file("broken.jinja"), tmp.file("bad.jsonl")});
  CHECK(r.exit_code != 0);
  CHECK_MESSAGE(r.err.find(tmp.file("broken.jinja") + ":2:") != std::string::npos, r.err);
  // A directory without a template.
  fs::create_directories(tmp.file("plain"));
  r = rlft::test::run_rlft({"template", "render", "--tokenizer", tmp.file("plain"), tmp.file("bad.jsonl")});
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("has no chat template") != std::string::npos);
}

TEST_CASE("a run renders chat prompts and SFT replies with the tokenizer's chat template and keeps it") {
  TempDir tmp;
  // A first run trains a tokenizer; a directory with it and a chat template stands for a checkpoint's.
  {
    rlft::test::TinyRun run(
        rlft::test::tiny_job(tmp, "base", rlft::rl::JobKind::kSft,
                             {"sft.steps=1", "tokenizer.special_tokens=[\"<|endoftext|>\", \"<|im_end|>\"]"}),
        "sft", false);
    CHECK(run.job.chat_template() == nullptr);  // a trained tokenizer has none
  }
  const std::string dir = tmp.file("tok");
  fs::create_directories(dir);
  fs::copy_file(tmp.file("base/tokenizer.json"), dir + "/tokenizer.json");
  const std::string tmpl =
      "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>\n{% endfor %}"
      "{% if add_generation_prompt %}<assistant>{% endif %}";
  std::ofstream(dir + "/tokenizer_config.json")
      << TemplateJson{{"chat_template", tmpl}, {"eos_token", "<|im_end|>"}}.dump();
  // The tiny job sets prompt.template, which keeps the hand-written format: drop it to use the template.
  auto yaml = rlft::test::tiny_job_yaml(tmp.path(), "chat", "");
  yaml.replace(yaml.find("prompt:\n"), std::string("prompt:\n  template: \"{prompt}\\n\"\n").size(), "");
  const auto path = tmp.write("chat.yaml", yaml);
  auto parsed = rlft::rl::parse_job(rlft::ConfigView::load(path, {"tokenizer.path=" + dir, "sft.steps=2"}),
                                    rlft::rl::JobKind::kSft);
  rlft::test::TinyRun run(std::move(parsed), "sft", false);
  REQUIRE(run.job.chat_template() != nullptr);
  // Completions end where the template's turns end: tokenizer_config.json's eos_token.
  CHECK(run.job.eos_id() == *run.job.tok().token_to_id("<|im_end|>"));
  rlft::data::Example e;
  e.id = "x";
  e.messages = {{"user", "1 + 2 ="}};
  CHECK(run.job.prompt_text(e) == "<user>1 + 2 =</user>\n<assistant>");
  // The reply is what the chat with it adds after the prompt: "3</assistant>\n".
  CHECK(run.job.decode(run.job.encode_reply(e, "3")) == "3</assistant>\n");
  CHECK(run.sft().steps == 2);
  CHECK(fs::exists(tmp.file("chat/final/tokenizer_config.json")));
  CHECK(rlft::tokenizer::ChatTemplate::from_tokenizer_dir(tmp.file("chat/final"))->source() == tmpl);
  // rlft generate --chat renders a prompt as a user message with the directory's template.
  const auto g = rlft::test::run_rlft({"generate", tmp.file("chat/final"), "-p", "1 + 2 =", "--chat", "--system", "S",
                                       "--max-new-tokens", "2", "--temperature", "0"});
  REQUIRE_MESSAGE(g.exit_code == 0, g.err);
  CHECK(TemplateJson::parse(g.out.substr(0, g.out.find('\n')))["prompt"].get<std::string>() ==
        "<system>S</system>\n<user>1 + 2 =</user>\n<assistant>");
}
