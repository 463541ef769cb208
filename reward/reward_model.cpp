#include "reward/reward_model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/utils.h>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/config.h"
#include "core/error.h"
#include "policy/arch/arch.h"
#include "policy/checkpoint/file_io.h"
#include "policy/checkpoint/safetensors.h"
#include "policy/model_io.h"

namespace rlft::reward {
namespace fs = std::filesystem;

RewardModelImpl::RewardModelImpl(policy::CausalLM backbone_in, uint64_t seed) : backbone(std::move(backbone_in)) {
  register_module("model", backbone);
  const int64_t D = backbone->config().hidden_size;
  const auto opts = at::TensorOptions().dtype(at::kFloat).device(backbone->options().device);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x5c0e5c0eULL);
  auto w = at::empty({1, D}, at::kFloat).normal_(0.0, backbone->config().initializer_range, gen);
  score_weight = register_parameter("score_weight", w.to(opts.device()));
  score_bias = register_parameter("score_bias", at::zeros({1}, opts));
}

at::Tensor RewardModelImpl::forward(const at::Tensor& tokens, const at::Tensor& attention_mask) {
  policy::ForwardInputs in;
  in.tokens = tokens;
  in.attention_mask = attention_mask;
  in.logits = policy::LogitsScope::kNone;
  in.return_hidden = true;
  const auto out = backbone->forward(in);
  const auto last = out.hidden.select(1, tokens.size(1) - 1).to(at::kFloat);  // [B, D]
  return at::linear(last, score_weight, score_bias).squeeze(-1);              // [B]
}

RewardModel load_reward_model(const std::string& dir, const policy::ModelOptions& options) {
  const fs::path meta = fs::path(dir) / "reward_model.json";
  RLFT_CHECK(fs::exists(meta),
             "{} is not a reward-model directory: it has no reward_model.json (train one with "
             "`rlft rm train`)",
             dir);
  policy::ModelOptions mo = options;
  mo.mtp = false;
  RewardModel rm(policy::load_model(dir, mo, policy::builtin_architectures()), 0);
  load_reward_head(rm, dir);
  return rm;
}

void save_reward_head(const RewardModel& model, const std::string& dir, const RewardInput& input) {
  checkpoint::TensorMap t;
  t["score.weight"] = model->score_weight.detach().to(at::kCPU).contiguous();
  t["score.bias"] = model->score_bias.detach().to(at::kCPU).contiguous();
  checkpoint::write_safetensors((fs::path(dir) / "score.safetensors").string(), t, {{"format", "pt"}});
  nlohmann::ordered_json j = {{"format", "rlft-reward-model-1"},
                              {"pooling", "last_token"},
                              {"append_eos", true},
                              {"head", "score.safetensors"},
                              {"input", input.chat_template ? "chat_template" : "text"},
                              {"eos_token_id", input.eos_id}};
  if (input.chat_template) j["chat_template_kwargs"] = input.chat_template_kwargs;
  checkpoint::write_file_atomic((fs::path(dir) / "reward_model.json").string(), j.dump(2) + "\n");
}

void load_reward_head(RewardModel& model, const std::string& dir) {
  const auto path = (fs::path(dir) / "score.safetensors").string();
  RLFT_CHECK(fs::exists(path), "{}: missing score.safetensors (the reward head)", dir);
  const auto t = checkpoint::read_safetensors(path);
  for (const char* name : {"score.weight", "score.bias"}) RLFT_CHECK(t.count(name), "{}: no tensor {}", path, name);
  const auto& w = t.at("score.weight");
  RLFT_CHECK(w.sizes() == model->score_weight.sizes(), "{}: score.weight is {}, expected [1, {}]", path,
             fmt::format("{}", fmt::join(w.sizes(), ", ")), model->score_weight.size(1));
  torch::NoGradGuard ng;
  model->score_weight.copy_(w.to(at::kFloat));
  model->score_bias.copy_(t.at("score.bias").to(at::kFloat).reshape({1}));
}

std::string reward_prompt_text(const std::vector<data::ChatMessage>& prompt) {
  if (prompt.size() == 1 && prompt.front().role == "user") return prompt.front().content;
  std::string out;
  for (const auto& m : prompt) out += m.role + ": " + m.content + "\n";
  return out;
}

namespace {

std::vector<int64_t> reward_row(const std::vector<tokenizer::TokenId>& ids, int64_t eos_id, int64_t max_length) {
  std::vector<int64_t> out(ids.begin(), ids.end());
  out.push_back(eos_id);
  if (max_length > 0 && static_cast<int64_t>(out.size()) > max_length) out.erase(out.begin(), out.end() - max_length);
  return out;
}

}  // namespace

std::vector<int64_t> RewardInput::ids(const tokenizer::Tokenizer& tok, const std::vector<data::ChatMessage>& prompt,
                                      const std::string& reply) const {
  if (!chat_template) return reward_row(tok.encode(reward_prompt_text(prompt) + reply, true), eos_id, max_length);
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  for (const auto& m : prompt) messages.push_back({{"role", m.role}, {"content", m.content}});
  messages.push_back({{"role", "assistant"}, {"content", reply}});
  return reward_row(tok.encode(chat_template->render(messages, false, nullptr, chat_template_kwargs), false), eos_id,
                    max_length);
}

std::vector<int64_t> RewardInput::ids_after(const tokenizer::Tokenizer& tok, const std::string& rendered_prompt,
                                            const std::string& reply) const {
  return reward_row(tok.encode(rendered_prompt + reply, !chat_template), eos_id, max_length);
}

RewardInput RewardInput::of_dir(const std::string& dir, int64_t eos_id, int64_t max_length) {
  RewardInput in;
  in.eos_id = eos_id;
  in.max_length = max_length;
  const auto meta_path = (fs::path(dir) / "reward_model.json").string();
  std::ifstream f(meta_path);
  RLFT_CHECK(f.good(), "cannot read {}", meta_path);
  nlohmann::ordered_json meta;
  try {
    meta = nlohmann::ordered_json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not JSON: {}", meta_path, e.what()));
  }
  RLFT_CHECK(meta.is_object(), "{}: expected a JSON object", meta_path);
  if (meta.contains("eos_token_id")) {
    RLFT_CHECK(meta["eos_token_id"].is_number_integer(), "{}: eos_token_id must be an integer", meta_path);
    in.eos_id = meta["eos_token_id"].get<int64_t>();
  }
  const auto mode = meta.value("input", std::string("text"));
  RLFT_CHECK(mode == "text" || mode == "chat_template", "{}: input is '{}': expected text or chat_template", meta_path,
             mode);
  if (mode == "chat_template") {
    in.chat_template = tokenizer::ChatTemplate::from_tokenizer_dir(dir);
    RLFT_CHECK(in.chat_template.has_value(),
               "{}: the model reads chat-template renderings, and {} has no chat template (chat_template.jinja or "
               "tokenizer_config.json's chat_template)",
               meta_path, dir);
    in.chat_template_kwargs = meta.value("chat_template_kwargs", nlohmann::ordered_json::object());
    RLFT_CHECK(in.chat_template_kwargs.is_object(), "{}: chat_template_kwargs must be an object", meta_path);
  }
  return in;
}

std::pair<at::Tensor, at::Tensor> left_pad(const std::vector<std::vector<int64_t>>& rows, const at::Device& device) {
  int64_t T = 0;
  for (const auto& r : rows) T = std::max<int64_t>(T, static_cast<int64_t>(r.size()));
  const int64_t B = static_cast<int64_t>(rows.size());
  auto tokens = at::zeros({B, T}, at::kLong);
  auto mask = at::zeros({B, T}, at::kBool);
  for (int64_t r = 0; r < B; ++r) {
    const int64_t n = static_cast<int64_t>(rows[static_cast<size_t>(r)].size());
    tokens[r].narrow(0, T - n, n).copy_(at::tensor(rows[static_cast<size_t>(r)], at::kLong));
    mask[r].narrow(0, T - n, n).fill_(true);
  }
  return {tokens.to(device), mask.to(device)};
}

std::vector<double> score_ids(RewardModel& model, const std::vector<std::vector<int64_t>>& rows, int64_t batch_size) {
  torch::NoGradGuard ng;
  const auto device = model->backbone->options().device;
  std::vector<double> out;
  for (size_t b = 0; b < rows.size(); b += static_cast<size_t>(batch_size)) {
    const size_t e = std::min(rows.size(), b + static_cast<size_t>(batch_size));
    const auto [tokens, mask] =
        left_pad(std::vector<std::vector<int64_t>>(rows.begin() + static_cast<std::ptrdiff_t>(b),
                                                   rows.begin() + static_cast<std::ptrdiff_t>(e)),
                 device);
    const auto s = model->forward(tokens, mask).to(at::kCPU, at::kDouble);
    for (int64_t i = 0; i < s.size(0); ++i) out.push_back(s[i].item<double>());
  }
  return out;
}

namespace {

class RewardModelReward : public RewardFn {
 public:
  RewardModelReward(const std::string& name, std::string dir, int64_t batch_size, int64_t max_length,
                    const std::string& device)
      : RewardFn(name), tok_(tokenizer::Tokenizer::load(dir)), batch_size_(batch_size), model_(nullptr) {
    policy::ModelOptions mo;
    mo.device = at::Device(device);
    model_ = load_reward_model(dir, mo);
    model_->eval();
    const auto& eos = model_->backbone->config().eos_token_id;
    RLFT_CHECK(!eos.empty(), "{}/config.json: the reward model needs an eos_token_id", dir);
    input_ = RewardInput::of_dir(dir, eos.front(), max_length);
  }
  std::vector<double> score(const ScoreBatch& batch) override {
    std::vector<std::vector<int64_t>> rows;
    for (size_t i = 0; i < batch.examples.size(); ++i)
      rows.push_back(input_.ids(tok_, batch.examples[i]->messages, batch.completions[i]));
    return score_ids(model_, rows, batch_size_);
  }

 private:
  tokenizer::Tokenizer tok_;
  int64_t batch_size_;
  RewardInput input_;
  RewardModel model_;
};

}  // namespace

std::unique_ptr<RewardFn> make_reward_model_reward(const std::string& name, const ConfigView& s,
                                                   const RewardContext& context) {
  const auto path = s.get<std::string>("path", "");
  const auto batch = s.get<int64_t>("batch_size", 32);
  const auto max_length = s.get<int64_t>("max_length", 0);
  auto device = s.get<std::string>("device", "");
  s.check(!path.empty(), "path", "a reward-model directory (from `rlft rm train`) is required");
  s.check(fs::exists(fs::path(path) / "reward_model.json"), "path",
          "not a reward-model directory (no reward_model.json)");
  s.check(batch >= 1, "batch_size", "must be >= 1");
  s.check(max_length >= 0, "max_length", "must be >= 0 (0 = no limit)");
  if (device.empty()) device = context.device == "auto" ? "cpu" : context.device;
  return std::make_unique<RewardModelReward>(name, path, batch, max_length, device);
}

}  // namespace rlft::reward
