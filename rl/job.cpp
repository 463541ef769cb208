#include "rl/job.h"

#include <nlohmann/json.hpp>

#include <ATen/Parallel.h>
#include <malloc.h>
#include <torch/cuda.h>
#include <torch/nn/module.h>
#include <torch/utils.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/log.h"
#include "core/version_info.h"
#include "policy/arch/arch.h"
#include "policy/checkpoint/file_io.h"
#include "policy/model_io.h"
#include "policy/tokenizer/trainer.h"
#include "rl/optimizer.h"

namespace rlft::rl {
namespace fs = std::filesystem;

namespace {

// "cuda" and "auto" give each local rank its own GPU (LOCAL_RANK modulo the GPUs present).
at::Device resolve_device(const std::string& name, int local_rank) {
  if (name == "cpu") return at::kCPU;
  const bool have_cuda = torch::cuda::is_available();
  if (name == "auto" && !have_cuda) return at::kCPU;
  RLFT_CHECK(have_cuda, "run.device = {}: this build of LibTorch sees no CUDA device", name);
  if (name == "auto" || name == "cuda")
    return at::Device(at::kCUDA,
                      static_cast<at::DeviceIndex>(local_rank % static_cast<int>(torch::cuda::device_count())));
  return at::Device(name);
}

// Every weight and buffer of a model, by name (what ranks compare and broadcast).
std::vector<std::pair<std::string, at::Tensor>> model_state(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : m.named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}

// `lora:` beside an adapter being loaded must describe it.
void check_adapter_matches(const policy::LoraOptions& yaml, const policy::LoraOptions& file, const std::string& dir) {
  auto fail = [&](const std::string& key, const std::string& a, const std::string& b) {
    throw ConfigError(
        fmt::format("lora.{} = {}: the adapter {} has {}; drop the key or make it agree", key, a, dir, b));
  };
  if (yaml.rank != file.rank) fail("rank", std::to_string(yaml.rank), std::to_string(file.rank));
  if (yaml.alpha != file.alpha) fail("alpha", fmt::format("{}", yaml.alpha), fmt::format("{}", file.alpha));
  if (yaml.rslora != file.rslora) fail("rslora", yaml.rslora ? "true" : "false", file.rslora ? "true" : "false");
}

// An example's chat as a chat template takes it.
nlohmann::ordered_json chat_messages(const data::Example& example) {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  for (const auto& m : example.messages) messages.push_back({{"role", m.role}, {"content", m.content}});
  return messages;
}

std::string default_run_name(const std::string& config_file) {
  const auto stem = fs::path(config_file).stem().string();
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return fmt::format("{}-{}", stem.empty() ? "run" : stem, buf);
}

}  // namespace

ParsedJob parse_job(const ConfigView& view, JobKind kind) {
  ParsedJob parsed;
  JobSpec& s = parsed.spec;
  TrainerSections& t = parsed.trainers;
  s.config_file = view.file();
  s.kind = kind;
  s.run = read_options<RunOptions>(view.section("run"));
  s.policy = read_options<PolicySource>(view.section("policy"));
  const auto archs = policy::builtin_architectures();
  if (view.has("model")) s.model = policy::read_model_config_yaml(view.section("model"), archs);
  const bool trains = kind != JobKind::kAny;
  if (trains && s.policy.path.empty())
    view.section("policy").check(
        s.model.has_value(), "path",
        "give policy.path (a model directory) or a `model:` section to build one from scratch");
  s.tokenizer = read_options<TokenizerSource>(view.section("tokenizer"));
  s.prompt = tokenizer::parse_prompt_options(view.section("prompt"));
  s.precision = read_options<PrecisionOptions>(view.section("precision"));
  s.optim = read_options<OptimOptions>(view.section("optim"));
  s.checkpoint = read_options<CheckpointOptions>(view.section("checkpoint"));
  s.memory = read_options<MemoryOptions>(view.section("memory"));
  if (view.has("lora")) s.lora = read_options<policy::LoraOptions>(view.section("lora"));
  // Activation checkpointing recomputes each layer in backward with gradients on, where the
  // adapters' dropout would draw a mask the forward (gradients off) never used.
  if (s.lora && s.lora->dropout > 0 && s.memory.activation_checkpointing)
    view.section("lora").check(false, "dropout",
                               "must be 0 with memory.activation_checkpointing: true (the recomputed layer would "
                               "draw another dropout mask than the forward)");
  s.distributed = read_options<DistributedOptions>(view.section("distributed"));
  s.eval = read_options<EvalOptions>(view.section("eval"));
  if (kind == JobKind::kGrpo || view.has("grpo")) t.grpo = read_options<GrpoOptions>(view.section("grpo"));
  // Under LoRA the reference is the base with adapters off; resetting it would change the base
  // the adapter files describe their change from.
  if (t.grpo && t.grpo->ref_reset_every > 0 && (s.lora || !s.policy.adapter.empty()))
    view.section("grpo").check(false, "ref_reset_every",
                               "must be 0 under LoRA: the KL reference is the adapters' base (adapters off), which "
                               "stays what adapter_config.json names; train without `lora:` to reset the reference");
  if (s.distributed.rollout_ranks > 0) {
    const auto d = view.section("distributed");
    d.check(kind == JobKind::kGrpo || kind == JobKind::kAny, "rollout_ranks",
            "splits the ranks of a GRPO run (rlft train) into rollout and trainer ranks; set it to 0 for this trainer");
    if (t.grpo) {
      d.check(!t.grpo->dynamic_sampling, "rollout_ranks",
              "not with grpo.dynamic_sampling (its resampling rounds need the trainer ranks' counts before the next "
              "prompts are drawn); set one of them off");
      d.check(t.grpo->rollout.workers == 1, "rollout_ranks",
              "each rollout rank samples with one generator: grpo.rollout.workers must be 1 (add rollout ranks "
              "instead)");
    }
  }
  if (kind == JobKind::kSft || view.has("sft")) t.sft = read_options<SftOptions>(view.section("sft"));
  if (kind == JobKind::kRm || view.has("rm")) t.rm = read_options<RmOptions>(view.section("rm"));
  if (kind == JobKind::kDpo || view.has("dpo")) t.dpo = read_options<DpoOptions>(view.section("dpo"));
  // Preference trainers learn from pairs, not from `data:`.
  const bool pairs_only = kind == JobKind::kRm || kind == JobKind::kDpo;
  if ((trains && !pairs_only) || view.has("data"))
    s.dataset = data::load_dataset(view.section("data"), data::builtin_sources());
  if (view.has("rewards")) {
    reward::RewardContext ctx;
    ctx.device = s.run.device;
    ctx.seed = s.run.seed;
    s.rewards = std::make_shared<reward::RewardSet>(
        reward::RewardSet::from_config(view.section("rewards"), reward::builtin_rewards(), ctx));
  }
  if (kind == JobKind::kGrpo)
    view.check(s.rewards != nullptr, "rewards", "rlft train needs a `rewards:` section (what GRPO maximises)");
  if (!s.eval.accuracy_reward.empty() && s.rewards) {
    const auto names = s.rewards->names();
    view.section("eval").check(std::find(names.begin(), names.end(), s.eval.accuracy_reward) != names.end(),
                               "accuracy_reward", fmt::format("not a part of `rewards:` ({})", fmt::join(names, ", ")));
  }
  view.reject_unknown_keys();
  if (s.rewards) {
    s.rewards->filter_prompts(s.dataset.train);
    s.rewards->filter_prompts(s.dataset.eval);
    s.rewards->check_examples(s.dataset.train);
    s.rewards->check_examples(s.dataset.eval);
  }
  if (kind == JobKind::kSft) {
    for (const auto& e : s.dataset.train)
      RLFT_CHECK(!e.completion.empty(), "rlft sft: example {} has no demonstration (completion)", e.id);
  }
  if (s.run.name.empty()) s.run.name = default_run_name(s.config_file);
  if (s.run.output_dir.empty()) s.run.output_dir = (fs::path("runs") / s.run.name).string();
  s.config_yaml = view.to_yaml();
  s.config_hash = view.run_hash();
  s.legacy_config_hash = view.hash();
  return parsed;
}

std::string latest_checkpoint(const std::string& output_dir) {
  const fs::path dir = fs::path(output_dir) / "checkpoints";
  if (!fs::is_directory(dir)) return "";
  std::string best;
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (name.rfind("step-", 0) != 0 || !e.is_directory()) continue;
    if (!fs::exists(e.path() / "trainer_state" / "state.json")) continue;
    if (best.empty() || name > fs::path(best).filename().string()) best = e.path().string();
  }
  return best;
}

Job::Job(JobSpec spec, const std::string& kind_name, bool resume) : spec_(std::move(spec)) {
  const auto env = dist::Env::from_environment();
  device_ = resolve_device(spec_.run.device, env.local_rank);
  dist_ = dist::Context::create(env, spec_.distributed.group, device_);
  world_ = dist_;
  // Before anything is written: the split must leave a rank to train.
  const bool split = spec_.kind == JobKind::kGrpo && spec_.distributed.rollout_ranks > 0;
  if (split && spec_.distributed.rollout_ranks >= dist_->world_size())
    throw ConfigError(
        fmt::format("{}: distributed.rollout_ranks = {} with {} rank(s) leaves no trainer rank (the first world size − "
                    "rollout_ranks ranks train): launch more ranks (rlft launch --nproc) or lower it",
                    spec_.config_file, spec_.distributed.rollout_ranks, dist_->world_size()));
  if (dist_->world_size() > 1) {
    if (!dist_->is_main() && log::level() < log::Level::kWarn) log::set_level(log::Level::kWarn);
    check_same_config();
    // Outside the config hash (a resume may change it), but every rank must split alike.
    dist_->check_consistent("distributed.rollout_ranks", std::to_string(spec_.distributed.rollout_ranks));
    // Identical optimizer steps need identical reductions: the same intra-op thread count
    // (ATen's parallel sums split by it) on every rank.
    dist_->check_consistent("the intra-op thread count (run.threads, OMP_NUM_THREADS)",
                            std::to_string(at::get_num_threads()));
    // A name derived from the clock may differ by a second between ranks: rank 0's is the run's.
    dist_->broadcast_string(spec_.run.name);
    dist_->broadcast_string(spec_.run.output_dir);
  }
  out_dir_ = spec_.run.output_dir;
  dist_->on_main("open the run", [&] { open_run(kind_name, resume); });
  dist_->broadcast_string(resume_from_);
  if (spec_.prompt.chat) chat_ = std::make_unique<tokenizer::ChatFormat>(*spec_.prompt.chat);
  setup_tokenizer();
  setup_chat_template();
  setup_policy();
  if (split) split_rollout_ranks();
  // What the run page shows about the policy (step 0; not charted).
  int64_t total = 0, trainable = 0;
  for (const auto& p : model_->parameters()) total += p.numel();
  for (const auto& [name, p] : trainable_parameters(*model_)) trainable += p.numel();
  std::vector<std::pair<std::string, double>> about = {{"model/parameters", static_cast<double>(total)},
                                                       {"model/trainable_parameters", static_cast<double>(trainable)}};
  if (model_->lora) {
    about.emplace_back("model/lora_rank", static_cast<double>(model_->lora->options.rank));
    about.emplace_back("model/lora_alpha", model_->lora->options.alpha);
  }
  log_metrics(0, about);
}

void Job::split_rollout_ranks() {
  const int W = world_->world_size();
  const int R = static_cast<int>(spec_.distributed.rollout_ranks);
  const int T = W - R, me = world_->rank();
  std::vector<int> trainers, rollout, weights{0};
  for (int r = 0; r < W; ++r) (r < T ? trainers : rollout).push_back(r);
  weights.insert(weights.end(), rollout.begin(), rollout.end());
  // Every member makes its groups in the same order: trainers, then weights, then rollout.
  if (me < T) dist_ = world_->subgroup("trainers", trainers);
  if (me == 0 || me >= T) weight_sync_ = world_->subgroup("weights", weights);
  if (me >= T) dist_ = world_->subgroup("rollout", rollout);
  rollout_ranks_ = R;
  log::info("distributed: ranks 0..{} train, ranks {}..{} are rollout ranks", T - 1, T, W - 1);
}

void Job::check_same_config() {
  const auto hashes = dist_->all_gather_string(spec_.config_hash);
  int other = -1;
  for (int r = 1; r < dist_->world_size() && other < 0; ++r)
    if (hashes[static_cast<size_t>(r)] != hashes[0]) other = r;
  if (other < 0) return;
  // Name the first line of the resolved configs that differs.
  const auto yamls = dist_->all_gather_string(spec_.config_yaml);
  auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    size_t b = 0;
    for (size_t e; (e = text.find('\n', b)) != std::string::npos; b = e + 1) out.push_back(text.substr(b, e - b));
    if (b < text.size()) out.push_back(text.substr(b));
    return out;
  };
  const auto a = lines(yamls[0]), b = lines(yamls[static_cast<size_t>(other)]);
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  throw ConfigError(fmt::format(
      "config hash differs between ranks: rank 0 has {}, rank {} has {}; first difference at line {} of the "
      "resolved config: rank 0 has '{}', rank {} has '{}' (start every rank with the same config and --set)",
      hashes[0].substr(0, 16), other, hashes[static_cast<size_t>(other)].substr(0, 16), i + 1,
      i < a.size() ? a[i] : "(end)", other, i < b.size() ? b[i] : "(end)"));
}

void Job::open_run(const std::string& kind_name, bool resume) {
  fs::create_directories(out_dir_);
  store_ = std::make_unique<data::Store>(data::Store::open(spec_.run.store, true));

  if (resume) {
    resume_from_ = latest_checkpoint(out_dir_);
    RLFT_CHECK(!resume_from_.empty(), "--resume: no checkpoint under {}/checkpoints to resume run '{}' from", out_dir_,
               spec_.run.name);
    const auto run = store_->find_run(spec_.run.name);
    RLFT_CHECK(run.has_value(), "--resume: run '{}' is not in the store {}", spec_.run.name, spec_.run.store);
    // Runs recorded before run_hash() existed stored the hash of the whole resolved config.
    RLFT_CHECK(run->config_hash == spec_.config_hash || run->config_hash == spec_.legacy_config_hash,
               "--resume: the config differs from the one run '{}' started with (hash {} vs {}); resume with the "
               "same config and overrides",
               spec_.run.name, spec_.config_hash, run->config_hash);
    run_id_ = run->id;
    store_->reopen_run(run_id_);
  } else {
    RLFT_CHECK(!store_->find_run(spec_.run.name).has_value(),
               "run '{}' already exists in {}: pick another run.name, or continue it with --resume", spec_.run.name,
               spec_.run.store);
    data::RunRecord r;
    r.name = spec_.run.name;
    r.kind = kind_name;
    r.status = "running";
    r.config = spec_.config_yaml;
    r.config_hash = spec_.config_hash;
    r.git_revision = RLFT_GIT_REVISION;
    run_id_ = store_->create_run(r);
  }
  checkpoint::write_file_atomic((fs::path(out_dir_) / "config.yaml").string(), spec_.config_yaml);
}

data::Store& Job::store() {
  RLFT_CHECK(store_ != nullptr, "rank {}: only rank 0 opens the store", dist_->rank());
  return *store_;
}

Job::~Job() {
  if (store_ && !finished_) {
    try {
      store_->finish_run(run_id_, "failed", "the process ended without finishing the run");
    } catch (...) {
    }
  }
}

void Job::finish(const std::string& status, const std::string& error) {
  if (store_) store_->finish_run(run_id_, status, error);
  finished_ = true;
}

void Job::setup_tokenizer() {
  const auto& t = spec_.tokenizer;
  const fs::path run_copy = fs::path(out_dir_) / "tokenizer.json";
  std::string json;
  // Rank 0 finds, copies or trains the tokenizer into the run directory; every rank gets its text.
  dist_->on_main("set up the tokenizer", [&] {
    setup_tokenizer_file();
    std::ifstream in(run_copy, std::ios::binary);
    json.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  });
  dist_->broadcast_string(json);
  tokenizer_path_ = run_copy.string();
  tok_ = std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::from_json(json, {}, tokenizer_path_));
  const auto eos = tok_->token_to_id(t.eos_token);
  RLFT_CHECK(eos.has_value(), "tokenizer.eos_token = '{}' is not a token of {}", t.eos_token, tokenizer_path_);
  eos_id_ = *eos;
}

void Job::setup_tokenizer_file() {
  const auto& t = spec_.tokenizer;
  const fs::path run_copy = fs::path(out_dir_) / "tokenizer.json";
  std::string path = t.path;
  if (path.empty() && !resume_from_.empty() && fs::exists(run_copy)) path = run_copy.string();
  if (path.empty() && !spec_.policy.path.empty() && fs::exists(fs::path(spec_.policy.path) / "tokenizer.json"))
    path = (fs::path(spec_.policy.path) / "tokenizer.json").string();
  if (path.empty()) {
    // Train a byte-level BPE on the run's own text: prompts as rendered, demonstrations and
    // references. Deterministic: the same data gives the same tokenizer.
    tokenizer::BpeTrainerOptions o;
    o.vocab_size = t.vocab_size;
    o.special_tokens = t.special_tokens;
    if (std::find(o.special_tokens.begin(), o.special_tokens.end(), t.eos_token) == o.special_tokens.end())
      o.special_tokens.push_back(t.eos_token);
    tokenizer::BpeTrainer trainer(o);
    for (const auto* split : {&spec_.dataset.train, &spec_.dataset.eval})
      for (const auto& e : *split) {
        trainer.feed(prompt_text(e), e.id);
        if (!e.completion.empty()) trainer.feed(e.completion, e.id);
        if (!e.reference.empty()) trainer.feed(e.reference, e.id);
      }
    for (const auto& text : spec_.tokenizer_corpus) trainer.feed(text, "preference pairs");
    const std::string json = trainer.train();
    checkpoint::write_file_atomic(run_copy.string(), json);
    log::info("tokenizer: trained a byte-level BPE of {} ids on {} bytes of the run's text -> {}",
              trainer.stats().vocab_size, trainer.stats().bytes, run_copy.string());
    path = run_copy.string();
  } else if (fs::absolute(path) != fs::absolute(run_copy)) {
    const fs::path src = fs::is_directory(path) ? fs::path(path) / "tokenizer.json" : fs::path(path);
    std::ifstream in(src, std::ios::binary);
    RLFT_CHECK(in.good(), "tokenizer.path = {}: cannot read {}", t.path, src.string());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    checkpoint::write_file_atomic(run_copy.string(), text);
    // What the tokenizer's directory says beside it: special tokens, the chat template.
    for (const char* name : {"tokenizer_config.json", "chat_template.jinja"})
      if (fs::exists(src.parent_path() / name))
        fs::copy_file(src.parent_path() / name, fs::path(out_dir_) / name, fs::copy_options::overwrite_existing);
  }
}

void Job::setup_chat_template() {
  const auto& p = spec_.prompt;
  chat_template_kwargs_ = nlohmann::ordered_json::parse(p.chat_template_kwargs);
  // auto: the checkpoint's template, unless the config chose a hand-written format.
  const bool from_file = p.chat_template != "auto" && p.chat_template != "none";
  if (p.chat_template == "none" || (p.chat_template == "auto" && (p.chat || p.template_given))) return;
  std::string source, origin, specials;
  dist_->on_main("read the chat template", [&] {
    auto files = tokenizer::read_chat_template_files(out_dir_);
    if (from_file) {
      std::ifstream in(p.chat_template, std::ios::binary);
      RLFT_CHECK(in.good(), "prompt.chat_template = {}: cannot read it", p.chat_template);
      files.source.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      files.origin = p.chat_template;
      // The run (and its checkpoints) keep the template they render with.
      checkpoint::write_file_atomic((fs::path(out_dir_) / "chat_template.jinja").string(), files.source);
    }
    source = files.source;
    origin = files.origin;
    specials = files.special_tokens.dump();
  });
  dist_->broadcast_string(source);
  dist_->broadcast_string(origin);
  dist_->broadcast_string(specials);
  if (source.empty()) return;  // the tokenizer has no template: prompt.template renders
  const auto special_tokens = nlohmann::ordered_json::parse(specials);
  chat_template_ = std::make_unique<tokenizer::ChatTemplate>(source, origin, special_tokens);
  log::info("prompt: chat data rendered with the chat template of {}", origin);
  // The template ends an assistant turn with the checkpoint's eos_token (Qwen's <|im_end|>): so
  // do completions, unless the config names another.
  if (!spec_.tokenizer.eos_given && special_tokens.contains("eos_token")) {
    const auto name = special_tokens["eos_token"].get<std::string>();
    const auto id = tok_->token_to_id(name);
    RLFT_CHECK(id.has_value(), "{}: eos_token '{}' is not a token of {}", origin, name, tokenizer_path_);
    eos_id_ = *id;
    log::info("prompt: completions end at the chat template's eos_token {} (id {})", name, eos_id_);
  }
}

void Job::setup_policy() {
  const auto archs = policy::builtin_architectures();
  policy::ModelOptions mo;
  mo.dtype = at::kFloat;  // fp32 master weights; bf16/fp16 compute is autocast
  mo.device = device_;
  mo.mtp = spec_.policy.mtp;
  mo.logits_chunk_mib = spec_.memory.logits_chunk_mb;
  mo.activation_checkpointing = spec_.memory.activation_checkpointing;
  // LoRA freezes the base: on the CPU it stays in the mapped checkpoint files, not copied.
  mo.share_weights = uses_lora() && device_.is_cpu();
  const bool resumed = !resume_from_.empty();
  const bool lora = uses_lora();
  dist_->together("set up the policy", [&] {
    if (resumed && dist_->is_main() && !lora) {
      model_ = policy::load_model(resume_from_, mo, archs);
      log::info("policy: resumed from {}", resume_from_);
    } else if (!spec_.policy.path.empty()) {
      model_ = policy::load_model(spec_.policy.path, mo, archs);
      log::info("policy: loaded {}", spec_.policy.path);
    } else {
      auto cfg = *spec_.model;
      cfg.eos_token_id = {eos_id_};
      model_ = policy::build_model(cfg, mo, archs);
      model_->init_weights(static_cast<uint64_t>(spec_.run.seed));
      log::info("policy: built {} from `model:` (seed {})", cfg.architecture, spec_.run.seed);
    }
    if (lora) setup_adapters();
  });
  if (dist_->world_size() > 1) {
    auto state = model_state(*model_);
    if (resumed) {
      // The checkpoint is rank 0's (its disk); the other ranks built the model's shape.
      std::vector<at::Tensor> tensors;
      for (auto& [name, t] : state) tensors.push_back(t.detach());
      torch::NoGradGuard ng;
      dist_->broadcast(tensors, 0);
    } else {
      dist_->check_consistent("initial weights hash", dist::tensors_hash(state));
    }
  }
  RLFT_CHECK(model_->config().vocab_size >= tok_->vocab_size(),
             "the policy's vocab_size {} is smaller than the tokenizer's {} ({}): ids would fall outside the "
             "embedding",
             model_->config().vocab_size, tok_->vocab_size(), tokenizer_path_);
  const auto counts = model_->param_counts();
  log::info("policy: {} — {:.2f}M parameters, {:.2f}M active per token, device {}", model_->config().architecture,
            counts.total / 1e6, counts.active / 1e6, device_.str());
  if (model_->lora)
    log::info("policy: LoRA r = {}, alpha = {}, on {} layers; {:.3f}M trainable parameters (base {})",
              model_->lora->options.rank, model_->lora->options.alpha, model_->lora->adapted.size(),
              policy::lora_trainable_count(*model_) / 1e6, adapter_base_);
}

// LoRA: the adapters (a resumed run's, policy.adapter's, or fresh ones from `lora:`), and the
// base every adapter file names. A base built from `model:` is written once to OUT/base.
void Job::setup_adapters() {
  const auto& src = spec_.policy;
  if (model_->lora) {
    // policy.path was itself an adapter directory: its base is the base.
    adapter_base_ = fs::absolute(policy::adapter_base_dir(src.path)).string();
  } else if (!src.path.empty()) {
    adapter_base_ = fs::absolute(src.path).string();
  } else {
    adapter_base_ = fs::absolute(fs::path(out_dir_) / "base").string();
    if (dist_->is_main() && !fs::exists(fs::path(adapter_base_) / "config.json")) {
      policy::SaveModelOptions so;
      so.dtype = at::kFloat;
      so.copy_files["tokenizer.json"] = tokenizer_path_;
      policy::save_model(model_, adapter_base_, so, policy::builtin_architectures());
    }
    // The frozen base from its file, as a loaded one (mapped on the CPU), on a resume too:
    // the same tensors as the run started with, to the byte and the layout.
    if (dist_->is_main()) {
      model_ = policy::load_model(adapter_base_, model_->options(), policy::builtin_architectures());
      // The built copy's blocks (most below the mmap threshold) went back to the heap: hand
      // them to the kernel, or they stay resident beside the mapped base for the whole run.
      ::malloc_trim(0);
    }
  }
  if (model_->lora) {
    if (!resume_from_.empty() && dist_->is_main()) {
      // Back to the base, then the checkpoint's adapter.
      model_ = policy::load_model(adapter_base_, model_->options(), policy::builtin_architectures());
    } else {
      return;
    }
  }
  const std::string from = !resume_from_.empty() && dist_->is_main() ? resume_from_ : src.adapter;
  if (!from.empty()) {
    policy::load_adapter(*model_, from);
    if (spec_.lora) check_adapter_matches(*spec_.lora, model_->lora->options, from);
    log::info("policy: adapter {}", from);
  } else {
    try {
      policy::attach_lora(*model_, *spec_.lora, static_cast<uint64_t>(spec_.run.seed));
    } catch (const OptionError& e) {
      throw e.renamed("lora." + e.key());
    }
  }
}

policy::CausalLM Job::initial_policy() const {
  const auto archs = policy::builtin_architectures();
  if (!spec_.policy.path.empty()) return policy::load_model(spec_.policy.path, model_->options(), archs);
  auto m = policy::build_model(model_->config(), model_->options(), archs);
  m->init_weights(static_cast<uint64_t>(spec_.run.seed));
  return m;
}

std::string Job::prompt_text(const data::Example& example) const {
  if (chat_template_) {
    try {
      return chat_template_->render(chat_messages(example), true, nullptr, chat_template_kwargs_);
    } catch (const Error& e) {
      throw Error(fmt::format("example {}: {}", example.id, e.what()));
    }
  }
  if (chat_) {
    std::vector<tokenizer::ChatMessage> msgs;
    for (const auto& m : example.messages) msgs.push_back({m.role, m.content});
    return chat_->render(msgs, true);
  }
  return spec_.prompt.prompt_template.render_prompt(example.prompt());
}

std::vector<int64_t> Job::encode_prompt(const data::Example& example) const {
  // A chat template writes its own special tokens (BOS …): the tokenizer adds none.
  const auto ids = tok_->encode(prompt_text(example), chat_template_ == nullptr);
  return {ids.begin(), ids.end()};
}

std::vector<int64_t> Job::encode_reply(const data::Example& example, const std::string& reply) const {
  if (!chat_template_) return encode_completion(reply);
  const std::string prompt = prompt_text(example);
  auto messages = chat_messages(example);
  messages.push_back({{"role", "assistant"}, {"content", reply}});
  std::string full;
  try {
    full = chat_template_->render(messages, false, nullptr, chat_template_kwargs_);
  } catch (const Error& e) {
    throw Error(fmt::format("example {}: {}", example.id, e.what()));
  }
  RLFT_CHECK(full.compare(0, prompt.size(), prompt) == 0,
             "example {}: the chat template ({}) renders the conversation differently before the assistant's reply "
             "once the reply follows, so the reply's tokens cannot be told apart; set prompt.chat_template: none "
             "or give prompt.chat",
             example.id, chat_template_->origin());
  const auto ids = tok_->encode(std::string_view(full).substr(prompt.size()), false);
  return {ids.begin(), ids.end()};
}

Sequence Job::encode_conversation(const data::Example& example, const std::string& reply, bool all_turns) const {
  RLFT_CHECK(chat_template_ != nullptr, "example {}: training on every assistant turn needs a chat template",
             example.id);
  auto messages = chat_messages(example);
  messages.push_back({{"role", "assistant"}, {"content", reply}});
  tokenizer::ChatTemplate::Conversation c;
  try {
    c = chat_template_->render_conversation(messages, chat_template_kwargs_);
  } catch (const Error& e) {
    throw Error(fmt::format("example {}: {}", example.id, e.what()));
  }
  auto spans = c.assistant_spans;
  std::sort(spans.begin(), spans.end());
  RLFT_CHECK(!spans.empty(), "example {}: the chat template ({}) marks no assistant text in the conversation",
             example.id, chat_template_->origin());
  if (!all_turns) spans.erase(spans.begin(), spans.end() - 1);
  RLFT_CHECK(spans.front().first > 0, "example {}: the conversation begins with assistant text: there is no prompt",
             example.id);
  Sequence s;
  auto add = [&](std::size_t begin, std::size_t end, bool trained) {
    if (begin >= end) return;
    const auto ids = tok_->encode(std::string_view(c.text).substr(begin, end - begin), false);
    auto& to = s.completion.empty() && !trained ? s.prompt : s.completion;
    to.insert(to.end(), ids.begin(), ids.end());
    if (&to == &s.completion) s.token_mask.insert(s.token_mask.end(), ids.size(), trained ? 1 : 0);
  };
  std::size_t at = 0;
  for (const auto& [begin, end] : spans) {  // nested or overlapping blocks: their union
    add(at, std::max(at, begin), false);
    add(std::max(at, begin), std::max(at, end), true);
    at = std::max(at, end);
  }
  add(at, c.text.size(), false);
  return s;
}

std::vector<int64_t> Job::encode_completion(const std::string& text) const {
  const auto ids = tok_->encode(text, false);
  std::vector<int64_t> out(ids.begin(), ids.end());
  out.push_back(eos_id_);
  return out;
}

std::string Job::decode(const std::vector<int64_t>& ids) const {
  return tok_->decode(std::vector<tokenizer::TokenId>(ids.begin(), ids.end()), true);
}

void Job::log_metrics(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  if (store_) store_->log_metrics(run_id_, step, values);
}

}  // namespace rlft::rl
