// `rlft template render` and the checkpoint's chat template in a run: the text is Jinja2's
// with transformers' context (scripts/reference/jinja_render.py), byte for byte; a run renders
// its chat prompts and SFT replies with the template it found beside the tokenizer and keeps
// the template in its checkpoints; bad input names the file and line.
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "policy/tokenizer/chat_template.h"
#include "reward/combine.h"
#include "reward/reward_model.h"
#include "tests/rl/preference_test_util.h"
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

// A tokenizer trained by a tiny SFT run, in its own directory with `tmpl` as its chat template:
// what a checkpoint with a template looks like, at the tiny size.
std::string chat_tokenizer_dir(const TempDir& tmp, const std::string& name, const std::string& tmpl) {
  if (!fs::exists(tmp.file("base/tokenizer.json"))) {
    rlft::test::TinyRun run(
        rlft::test::tiny_job(tmp, "base", rlft::rl::JobKind::kSft,
                             {"sft.steps=1", "tokenizer.special_tokens=[\"<|endoftext|>\", \"<|im_end|>\"]"}),
        "sft", false);
    CHECK(run.job.chat_template() == nullptr);  // a trained tokenizer has none
  }
  const std::string dir = tmp.file(name);
  fs::create_directories(dir);
  fs::copy_file(tmp.file("base/tokenizer.json"), dir + "/tokenizer.json", fs::copy_options::overwrite_existing);
  std::ofstream(dir + "/tokenizer_config.json")
      << TemplateJson{{"chat_template", tmpl}, {"eos_token", "<|im_end|>"}}.dump();
  return dir;
}

// The tiny job's YAML without its prompt.template (which keeps the hand-written format).
std::string chat_job_yaml(const TempDir& tmp, const std::string& name) {
  auto yaml = rlft::test::tiny_job_yaml(tmp.path(), name, "");
  yaml.replace(yaml.find("prompt:\n"), std::string("prompt:\n  template: \"{prompt}\\n\"\n").size(), "");
  return tmp.write(name + ".yaml", yaml);
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
  const std::string tmpl =
      "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>\n{% endfor %}"
      "{% if add_generation_prompt %}<assistant>{% endif %}";
  const std::string dir = chat_tokenizer_dir(tmp, "tok", tmpl);
  const auto path = chat_job_yaml(tmp, "chat");
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

TEST_CASE("SFT on every assistant turn: the loss counts what the chat template marks as the assistant's") {
  TempDir tmp;
  rlft::data::Example e;
  e.id = "x";
  e.messages = {{"system", "S"}, {"user", "1 + 2 ="}, {"assistant", "3"}, {"user", "and 2 + 2 ="}};
  // The decoded text of a sequence's untrained and trained completion tokens.
  auto split = [](const rlft::rl::Job& job, const rlft::rl::Sequence& s) {
    REQUIRE(s.token_mask.size() == s.completion.size());
    std::string trained, other;
    for (size_t i = 0; i < s.completion.size(); ++i)
      (s.token_mask[i] ? trained : other) += job.decode({s.completion[i]});
    return std::make_pair(trained, other);
  };
  {  // No generation blocks: the turns are found by rendering prefixes.
    const std::string dir =
        chat_tokenizer_dir(tmp, "plain",
                           "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>\n{% endfor %}"
                           "{% if add_generation_prompt %}<assistant>{% endif %}");
    auto parsed = rlft::rl::parse_job(
        rlft::ConfigView::load(chat_job_yaml(tmp, "turns"),
                               {"tokenizer.path=" + dir, "sft.steps=2", "sft.train_on=assistant_turns"}),
        rlft::rl::JobKind::kSft);
    rlft::test::TinyRun run(std::move(parsed), "sft", false);
    const auto s = run.job.encode_conversation(e, "4");
    CHECK(run.job.decode(s.prompt) == "<system>S</system>\n<user>1 + 2 =</user>\n<assistant>");
    const auto [trained, other] = split(run.job, s);
    CHECK(trained == "3</assistant>\n4</assistant>\n");
    CHECK(other == "<user>and 2 + 2 =</user>\n<assistant>");
    // The whole conversation, token for token, is the prompt then the completion.
    CHECK(run.job.decode(s.prompt) + run.job.decode(s.completion) ==
          "<system>S</system>\n<user>1 + 2 =</user>\n<assistant>3</assistant>\n<user>and 2 + 2 =</user>\n"
          "<assistant>4</assistant>\n");
    // An SFT run trains on them.
    CHECK(run.sft().steps == 2);
  }
  {  // Generation blocks: exactly their text (here without the newline after each turn).
    const std::string dir = chat_tokenizer_dir(
        tmp, "marked",
        "{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' %}{% generation %}{{ m.content }}"
        "</assistant>{% endgeneration %}{% else %}{{ m.content }}</{{ m.role }}>{% endif %}{{ '\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}");
    auto parsed = rlft::rl::parse_job(
        rlft::ConfigView::load(chat_job_yaml(tmp, "marked_run"),
                               {"tokenizer.path=" + dir, "sft.steps=1", "sft.train_on=assistant_turns"}),
        rlft::rl::JobKind::kSft);
    rlft::test::TinyRun run(std::move(parsed), "sft", false);
    const auto [trained, other] = split(run.job, run.job.encode_conversation(e, "4"));
    CHECK(trained == "3</assistant>4</assistant>");
    CHECK(other == "\n<user>and 2 + 2 =</user>\n<assistant>\n");
    // Training on the final reply only (the default) takes its block too; the rest is prompt.
    const auto last = run.job.encode_conversation(e, "4", false);
    CHECK(run.job.decode(last.prompt) ==
          "<system>S</system>\n<user>1 + 2 =</user>\n<assistant>3</assistant>\n<user>and 2 + 2 =</user>\n<assistant>");
    CHECK(split(run.job, last).first == "4</assistant>");
  }
  // Without a chat template there are no turns to find: a config error naming the key.
  auto parsed = rlft::test::tiny_job(tmp, "none", rlft::rl::JobKind::kSft, {"sft.train_on=assistant_turns"});
  rlft::test::TinyRun run(std::move(parsed), "sft", false);
  CHECK_THROWS_WITH_AS(run.sft(), doctest::Contains("sft.train_on = assistant_turns"), rlft::ConfigError);
  CHECK_THROWS_WITH_AS(rlft::test::tiny_job(tmp, "bad", rlft::rl::JobKind::kSft, {"sft.train_on=everything"}),
                       doctest::Contains("sft.train_on"), rlft::ConfigError);
}

TEST_CASE("a reward model trained under a chat template reads conversations as the template renders them") {
  TempDir tmp;
  const std::string tmpl =
      "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>\n{% endfor %}"
      "{% if add_generation_prompt %}<assistant>{% endif %}";
  const std::string dir = chat_tokenizer_dir(tmp, "tok", tmpl);
  rlft::test::add_synthetic_pairs(tmp.file("rlft.db"), 200, 3);
  const auto r = rlft::test::run_rlft({"rm",
                                       "train",
                                       std::string(RLFT_SOURCE_DIR) + "/configs/rm/example.yaml",
                                       "--set",
                                       "run.store=" + tmp.file("rlft.db"),
                                       "--set",
                                       "run.output_dir=" + tmp.file("rm"),
                                       "--set",
                                       "tokenizer.path=" + dir,
                                       "--set",
                                       "model.vocab_size=512",
                                       "--set",
                                       "model.num_hidden_layers=1",
                                       "--set",
                                       "model.hidden_size=32",
                                       "--set",
                                       "rm.steps=2",
                                       "--set",
                                       "rm.eval_every=2",
                                       "--set",
                                       "checkpoint.every=0"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const std::string final_dir = tmp.file("rm/final");
  const auto meta = TemplateJson::parse(template_test_read(final_dir + "/reward_model.json"));
  CHECK(meta["input"] == "chat_template");
  const auto tok = rlft::tokenizer::Tokenizer::load(final_dir);
  // The EOS each scored text ends with: the config's tokenizer.eos_token, recorded.
  CHECK(meta["eos_token_id"].get<int64_t>() == *tok.token_to_id("<|endoftext|>"));
  const auto input = rlft::reward::RewardInput::of_dir(final_dir, 0, 0);
  REQUIRE(input.chat_template.has_value());
  const std::vector<rlft::data::ChatMessage> prompt = {{"system", "S"}, {"user", "What is 4 + 5?"}};
  const auto ids = input.ids(tok, prompt, "<answer>9</answer>");
  CHECK(ids.back() == input.eos_id);
  CHECK(tok.decode({ids.begin(), ids.end() - 1}, false) ==
        "<system>S</system>\n<user>What is 4 + 5?</user>\n<assistant><answer>9</answer></assistant>\n");

  // In a GRPO run's reward set, and through `rlft rm score --jsonl` with messages, the same scores.
  auto model = rlft::reward::load_reward_model(final_dir, {});
  model->eval();
  const auto direct = rlft::reward::score_ids(model, {ids}, 1);
  const auto cfg =
      tmp.write("rewards.yaml", "rewards:\n  pref:\n    type: reward_model\n    path: " + final_dir + "\n");
  auto set = rlft::reward::RewardSet::from_config(rlft::ConfigView::load(cfg).section("rewards"),
                                                  rlft::reward::builtin_rewards());
  rlft::data::Example ex;
  ex.id = "x";
  ex.messages = prompt;
  rlft::reward::ScoreBatch batch;
  batch.add(ex, "<answer>9</answer>");
  CHECK(std::abs(set.score(batch).total[0] - direct[0]) < 1e-5);
  const auto lines = tmp.write(
      "score.jsonl",
      R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "What is 4 + 5?"}], "completion": "<answer>9</answer>"})"
      "\n{\"prompt\": \"What is 4 + 5?\", \"completion\": \"<answer>9</answer>\"}\n");
  const auto out = rlft::test::run_rlft({"rm", "score", final_dir, "--jsonl", lines});
  REQUIRE_MESSAGE(out.exit_code == 0, out.err);
  const auto first = TemplateJson::parse(out.out.substr(0, out.out.find('\n')));
  CHECK(first.contains("messages"));
  CHECK(std::abs(first["score"].get<double>() - direct[0]) < 1e-5);
  const auto bad =
      tmp.write("bad.jsonl", "{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}], \"completion\": \"y\"}\n");
  const auto b = rlft::test::run_rlft({"rm", "score", final_dir, "--jsonl", bad});
  CHECK(b.exit_code != 0);
  CHECK_MESSAGE(b.err.find("bad.jsonl:1: messages[0].role") != std::string::npos, b.err);
}
