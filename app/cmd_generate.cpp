// `rlft generate DIR`: sample (or beam-search) completions from a model directory and print
// one JSON object per completion (JSONL).
//   prompts: --prompt TEXT (repeatable), --prompts-file FILE (one per line; "-" = stdin),
//            --ids 1,2,3 (repeatable; token ids, no tokenizer needed)
//   sampling: --temperature --top-k --top-p --min-p --repetition-penalty --presence-penalty
//             --num-samples --seed --max-new-tokens --stop STR --stop-id ID; or --num-beams N
//   output: JSONL to stdout or -o FILE; --logprobs adds per-token log-probs.
#include <torch/torch.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>

#include "app/cli.h"
#include "app/token_ids.h"
#include "core/error.h"
#include "core/threads.h"
#include "policy/arch/arch.h"
#include "policy/model_io.h"
#include "policy/tokenizer/chat_template.h"
#include "policy/tokenizer/tokenizer.h"
#include "rollout/beam.h"
#include "rollout/generator.h"

namespace rlft::app {
namespace {

namespace fs = std::filesystem;

struct GenerateCli {
  std::string dir, prompts_file, out, dtype = "float32", system;
  bool chat = false;
  std::vector<std::string> prompts, ids, stops;
  std::vector<int64_t> stop_ids;
  rollout::SamplingOptions sampling;
  int64_t max_new_tokens = 64, num_samples = 1, num_beams = 0, speculative = 0;
  double length_penalty = 1.0;
  bool early_stopping = false, logprobs = false, no_eos = false;
  uint64_t seed = 0;
  int threads = 0;
};

std::vector<std::string> read_lines(std::istream& in) {
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

void run_generate(const GenerateCli& o) {
  apply_thread_count(o.threads);
  o.sampling.validate();
  // Prompts: texts (tokenised) and id lists.
  std::vector<std::string> texts = o.prompts;
  if (!o.prompts_file.empty()) {
    if (o.prompts_file == "-") {
      const auto lines = read_lines(std::cin);
      texts.insert(texts.end(), lines.begin(), lines.end());
    } else {
      std::ifstream f(o.prompts_file);
      RLFT_CHECK_AS(UsageError, f.good(), "--prompts-file: cannot read {}", o.prompts_file);
      const auto lines = read_lines(f);
      texts.insert(texts.end(), lines.begin(), lines.end());
    }
  }
  std::unique_ptr<tokenizer::Tokenizer> tok;
  if (fs::exists(fs::path(o.dir) / "tokenizer.json"))
    tok = std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::load(o.dir));
  RLFT_CHECK_AS(UsageError, texts.empty() || tok, "{} has no tokenizer.json: give prompts as token ids with --ids",
                o.dir);
  std::vector<rollout::Request> requests;
  std::vector<std::string> shown;
  // --chat: each prompt is a user message, rendered with the model's own chat template (which
  // writes its special tokens itself).
  std::optional<tokenizer::ChatTemplate> chat;
  if (o.chat) {
    chat = tokenizer::ChatTemplate::from_tokenizer_dir(o.dir);
    RLFT_CHECK_AS(UsageError, chat.has_value(),
                  "--chat: {} has no chat template (chat_template.jinja or tokenizer_config.json's chat_template)",
                  o.dir);
  }
  for (const auto& t : texts) {
    std::string text = t;
    if (chat) {
      std::vector<tokenizer::ChatMessage> messages;
      if (!o.system.empty()) messages.push_back({"system", o.system});
      messages.push_back({"user", t});
      text = chat->render(messages, true);
    }
    const auto ids = tok->encode(text, !chat.has_value());
    requests.push_back({std::vector<int64_t>(ids.begin(), ids.end()), o.num_samples, requests.size()});
    shown.push_back(text);
  }
  for (const auto& s : o.ids) {
    requests.push_back({parse_token_ids(s, "--ids"), o.num_samples, requests.size()});
    shown.push_back(s);
  }
  RLFT_CHECK_AS(UsageError, !requests.empty(),
                "empty prompt list: give --prompt TEXT, --prompts-file FILE (- = stdin) or --ids 1,2,3");

  policy::ModelOptions mo;
  mo.dtype = policy::parse_dtype(o.dtype);
  RLFT_CHECK_AS(UsageError, o.speculative >= 0 && o.speculative <= 15, "--speculative {}: must be in 0..15 (0 = off)",
                o.speculative);
  mo.mtp = o.speculative > 0;  // the MTP module is only read to draft
  auto model = policy::load_model(o.dir, mo, policy::builtin_architectures());
  RLFT_CHECK_AS(UsageError, o.speculative == 0 || model->can_draft(),
                "--speculative {}: {} has no MTP module to draft with (num_nextn_predict_layers = {}); leave it out",
                o.speculative, o.dir, model->config().num_nextn_predict_layers);
  model->eval();

  std::function<std::string(const std::vector<int64_t>&)> detok;
  if (tok)
    detok = [&tok](const std::vector<int64_t>& ids) {
      return tok->decode(std::vector<tokenizer::TokenId>(ids.begin(), ids.end()), true);
    };

  std::ofstream file;
  if (!o.out.empty()) {
    file.open(o.out);
    RLFT_CHECK(file.good(), "-o: cannot write {}", o.out);
  }
  std::ostream& out = o.out.empty() ? std::cout : file;
  auto emit = [&](size_t r, int64_t sample, const std::vector<int64_t>& ids, const std::vector<float>& lps,
                  const char* finish, std::optional<double> score) {
    nlohmann::json j;
    j["prompt_index"] = r;
    j["prompt"] = shown[r];
    j["sample"] = sample;
    j["token_ids"] = ids;
    if (detok) j["text"] = detok(ids);
    j["finish_reason"] = finish;
    if (score) j["score"] = *score;
    if (o.logprobs) j["logprobs"] = lps;
    out << j.dump() << "\n";
  };

  if (o.num_beams > 0) {
    rollout::BeamOptions b;
    b.num_beams = o.num_beams;
    b.length_penalty = o.length_penalty;
    b.early_stopping = o.early_stopping;
    b.max_new_tokens = o.max_new_tokens;
    b.stop_token_ids = o.stop_ids;
    b.use_model_eos = !o.no_eos;
    b.num_return = std::min(o.num_samples, o.num_beams);
    for (size_t r = 0; r < requests.size(); ++r) {
      const auto hyps = rollout::beam_search(model, requests[r].prompt, b);
      for (size_t h = 0; h < hyps.size(); ++h)
        emit(r, static_cast<int64_t>(h), hyps[h].tokens, hyps[h].logprobs, rollout::finish_reason_name(hyps[h].finish),
             hyps[h].score);
    }
    return;
  }
  rollout::GenerateOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.stop_token_ids = o.stop_ids;
  g.use_model_eos = !o.no_eos;
  g.stop_strings = o.stops;
  g.detokenize = detok;
  g.seed = o.seed;
  g.speculative_tokens = o.speculative;
  if (tok) g.vocab_limit = tok->vocab_size();
  rollout::Generator gen(model);
  rollout::GenerateStats stats;
  const auto groups = gen.generate(requests, o.sampling, g, &stats);
  if (o.speculative > 0)
    std::cerr << fmt::format("speculative: {} of {} drafted tokens kept ({:.1f}%)\n", stats.accepted_tokens,
                             stats.drafted_tokens, 100.0 * stats.draft_acceptance());
  for (size_t r = 0; r < groups.size(); ++r)
    for (size_t s = 0; s < groups[r].samples.size(); ++s) {
      const auto& sm = groups[r].samples[s];
      emit(r, static_cast<int64_t>(s), sm.tokens, sm.logprobs, rollout::finish_reason_name(sm.finish), std::nullopt);
    }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateCli>();
  CLI::App* cmd = app.add_subcommand("generate", "Sample completions from a model directory (JSONL out)");
  cmd->add_option("dir", o->dir, "model directory (config.json, model.safetensors[, tokenizer.json])")->required();
  cmd->add_option("--prompt,-p", o->prompts, "prompt text (repeatable; needs tokenizer.json)");
  cmd->add_option("--prompts-file", o->prompts_file, "one prompt per line; - = stdin");
  cmd->add_flag("--chat", o->chat,
                "render each prompt as a user message with the model's chat template (and the generation prompt)");
  cmd->add_option("--system", o->system, "with --chat: a system message first");
  cmd->add_option("--ids", o->ids, "a prompt as token ids, e.g. 1,2,3 (repeatable)");
  cmd->add_option("--max-new-tokens", o->max_new_tokens, "new tokens per completion at most")->capture_default_str();
  cmd->add_option("--num-samples,-n", o->num_samples, "completions per prompt (beam: hypotheses returned)")
      ->capture_default_str();
  cmd->add_option("--temperature", o->sampling.temperature, "softmax temperature; 0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", o->sampling.top_k, "keep the k likeliest tokens; 0 = off")->capture_default_str();
  cmd->add_option("--top-p", o->sampling.top_p, "nucleus mass in (0, 1]; 1 = off")->capture_default_str();
  cmd->add_option("--min-p", o->sampling.min_p, "min-p in [0, 1); 0 = off")->capture_default_str();
  cmd->add_option("--repetition-penalty", o->sampling.repetition_penalty, "CTRL penalty > 0; 1 = off")
      ->capture_default_str();
  cmd->add_option("--presence-penalty", o->sampling.presence_penalty, "subtracted from generated tokens; 0 = off")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "run seed")->capture_default_str();
  cmd->add_option("--speculative", o->speculative,
                  "draft this many tokens per step with the model's MTP module (0..15; 0 = off); the samples keep "
                  "the model's distribution")
      ->capture_default_str();
  cmd->add_option("--stop", o->stops, "stop string (repeatable; needs tokenizer.json)");
  cmd->add_option("--stop-id", o->stop_ids, "stop token id (repeatable)");
  cmd->add_flag("--no-eos", o->no_eos, "do not stop on the model's eos_token_id");
  CLI::Option* beams =
      cmd->add_option("--num-beams", o->num_beams, "beam search with N beams instead of sampling (>= 1)");
  cmd->add_option("--length-penalty", o->length_penalty, "beam: score = sum logp / length^penalty")
      ->capture_default_str();
  cmd->add_flag("--early-stopping", o->early_stopping, "beam: stop once num_beams hypotheses are finished");
  cmd->add_flag("--logprobs", o->logprobs, "add per-token log-probs (log_softmax(logits / T), fp32)");
  cmd->add_option("--dtype", o->dtype, "float32 | bfloat16 | float16")->capture_default_str();
  cmd->add_option("--threads", o->threads, "intra-op threads (0 = every core)");
  cmd->add_option("-o,--out", o->out, "write JSONL to FILE instead of stdout");
  cmd->callback([o, beams] {
    // Absent = sampling; given, it must be >= 1.
    if (beams->count() > 0)
      RLFT_CHECK_AS(UsageError, o->num_beams >= 1, "--num-beams = {}: must be >= 1", o->num_beams);
    run_generate(*o);
  });
}

}  // namespace rlft::app
