#include "rl/grpo_rollout_ranks.h"

#include <fmt/format.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "rl/step_log.h"

namespace rlft::rl {
namespace {

constexpr char kGroupsTag = 'G';  // a message of groups
constexpr char kErrorTag = 'E';   // a rollout rank's error, its text follows

std::string start_key(int j) {
  return fmt::format("rlft/rollout/start/{}", j);
}
std::string groups_key(int64_t step, int t, int j) {
  return fmt::format("rlft/rollout/groups/{}/{}/{}", step, t, j);
}
std::string control_key(int64_t version, int j) {
  return fmt::format("rlft/rollout/control/{}/{}", version, j);
}
std::string done_key(int j) {
  return fmt::format("rlft/rollout/done/{}", j);
}

// What a version carries, in the same order on every rank: the trainable parameters and the
// buffers (a frozen base never changes, so it is never sent). Detached: the broadcast writes
// into them in place.
std::vector<at::Tensor> version_tensors(const policy::CausalLM& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model->parameters())
    if (p.requires_grad()) out.push_back(p.detach());
  for (const auto& b : model->buffers()) out.push_back(b.detach());
  return out;
}

// The local groups [begin, end) of trainer rank t's share that rollout rank j samples.
std::pair<int64_t, int64_t> part_of(int64_t local_count, int j, int rollout_ranks) {
  return {local_count * j / rollout_ranks, local_count * (j + 1) / rollout_ranks};
}

class Writer {
 public:
  std::string bytes;
  template <typename T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable<T>::value, "raw bytes");
    bytes.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  template <typename T>
  void put_vec(const std::vector<T>& v) {
    put<int64_t>(static_cast<int64_t>(v.size()));
    bytes.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  }
  void put_str(const std::string& s) {
    put<int64_t>(static_cast<int64_t>(s.size()));
    bytes.append(s);
  }
};

class Reader {
 public:
  explicit Reader(const std::string& bytes) : bytes_(bytes) {}
  template <typename T>
  T get() {
    T v;
    std::memcpy(&v, take(sizeof(T)), sizeof(T));
    return v;
  }
  int64_t count(size_t unit) {
    const auto n = get<int64_t>();
    RLFT_CHECK(n >= 0 && static_cast<size_t>(n) <= (bytes_.size() - at_) / std::max<size_t>(unit, 1),
               "a rollout message is corrupt: a count of {} at byte {}", n, at_);
    return n;
  }
  template <typename T>
  std::vector<T> get_vec() {
    std::vector<T> v(static_cast<size_t>(count(sizeof(T))));
    if (!v.empty()) std::memcpy(v.data(), take(v.size() * sizeof(T)), v.size() * sizeof(T));
    return v;
  }
  std::string get_str() {
    const auto n = static_cast<size_t>(count(1));
    return std::string(take(n), n);
  }
  bool done() const { return at_ == bytes_.size(); }

 private:
  const char* take(size_t n) {
    RLFT_CHECK(n <= bytes_.size() - at_, "a rollout message is corrupt: it ends at byte {} of {} needed", bytes_.size(),
               at_ + n);
    const char* p = bytes_.data() + at_;
    at_ += n;
    return p;
  }
  const std::string& bytes_;
  size_t at_ = 0;
};

// The part [begin, end) of `all` (groups in order; scores row p·G + k).
CollectedGroups slice(const ScoredGroups& all, size_t begin, size_t end, int64_t group_size) {
  CollectedGroups out;
  std::vector<size_t> rows;
  for (size_t p = begin; p < end; ++p) {
    out.kept.groups.push_back(all.groups[p]);
    out.kept.examples.push_back(all.examples[p]);
    for (int64_t k = 0; k < group_size; ++k)
      rows.push_back(p * static_cast<size_t>(group_size) + static_cast<size_t>(k));
    out.zero_variance_groups += zero_variance_group(all.scores.total.data() + p * group_size, group_size);
  }
  out.kept.scores = all.scores.select(rows);
  out.drawn_groups = static_cast<int64_t>(end - begin);
  return out;
}

}  // namespace

std::string encode_groups(const CollectedGroups& c, int64_t version, const std::vector<data::Example>& train) {
  Writer w;
  w.put(kGroupsTag);
  w.put(version);
  w.put(c.drawn_groups);
  w.put(c.zero_variance_groups);
  const auto& k = c.kept;
  const auto& gs = k.generate;
  for (const int64_t v :
       {gs.prefill_tokens, gs.decode_tokens, gs.decode_steps, gs.joins, gs.drafted_tokens, gs.accepted_tokens})
    w.put(v);
  for (const double v :
       {gs.prefill_seconds, gs.decode_seconds, gs.sampling_seconds, k.rollout_seconds, k.reward_seconds})
    w.put(v);
  w.put<int64_t>(static_cast<int64_t>(k.groups.size()));
  for (size_t p = 0; p < k.groups.size(); ++p) {
    const auto& g = k.groups[p];
    w.put<int64_t>(static_cast<int64_t>(k.examples[p] - train.data()));
    w.put(g.request_id);
    w.put(g.policy_version);
    w.put_vec(g.prompt);
    w.put<int64_t>(static_cast<int64_t>(g.samples.size()));
    for (const auto& s : g.samples) {
      w.put_vec(s.tokens);
      w.put_vec(s.logprobs);
      w.put<int32_t>(static_cast<int32_t>(s.finish));
      w.put_str(s.text);
      w.put<int64_t>(static_cast<int64_t>(s.routing.size()));
      for (const auto& r : s.routing) {  // expert ids fit 32 bits: half the bytes of int64
        const auto t = r.to(at::kCPU, at::kInt).contiguous();
        w.put<int64_t>(t.size(0));
        w.put<int64_t>(t.size(1));
        w.put_vec(std::vector<int32_t>(t.data_ptr<int32_t>(), t.data_ptr<int32_t>() + t.numel()));
      }
    }
  }
  const auto& sc = k.scores;
  w.put_vec(sc.total);
  w.put_vec(sc.weights);
  w.put_vec(sc.seconds);
  w.put<int64_t>(static_cast<int64_t>(sc.names.size()));
  for (const auto& n : sc.names) w.put_str(n);
  w.put<int64_t>(static_cast<int64_t>(sc.parts.size()));
  for (const auto& part : sc.parts) w.put_vec(part);
  return w.bytes;
}

CollectedGroups decode_groups(const std::string& bytes, int64_t& version, const std::vector<data::Example>& train,
                              at::Device device) {
  Reader r(bytes);
  RLFT_CHECK(r.get<char>() == kGroupsTag, "a rollout message is corrupt: it does not start with groups");
  CollectedGroups c;
  version = r.get<int64_t>();
  c.drawn_groups = r.get<int64_t>();
  c.zero_variance_groups = r.get<int64_t>();
  auto& k = c.kept;
  auto& gs = k.generate;
  for (int64_t* v :
       {&gs.prefill_tokens, &gs.decode_tokens, &gs.decode_steps, &gs.joins, &gs.drafted_tokens, &gs.accepted_tokens})
    *v = r.get<int64_t>();
  for (double* v :
       {&gs.prefill_seconds, &gs.decode_seconds, &gs.sampling_seconds, &k.rollout_seconds, &k.reward_seconds})
    *v = r.get<double>();
  const int64_t n = r.count(1);
  for (int64_t p = 0; p < n; ++p) {
    const int64_t example = r.get<int64_t>();
    RLFT_CHECK(example >= 0 && example < static_cast<int64_t>(train.size()),
               "a rollout message names example {} of {}: the ranks hold different training data", example,
               train.size());
    k.examples.push_back(&train[static_cast<size_t>(example)]);
    rollout::Group g;
    g.request_id = r.get<uint64_t>();
    g.policy_version = r.get<int64_t>();
    g.prompt = r.get_vec<int64_t>();
    const int64_t samples = r.count(1);
    for (int64_t i = 0; i < samples; ++i) {
      rollout::Sample s;
      s.tokens = r.get_vec<int64_t>();
      s.logprobs = r.get_vec<float>();
      s.finish = static_cast<rollout::FinishReason>(r.get<int32_t>());
      s.text = r.get_str();
      const int64_t layers = r.count(16);
      for (int64_t l = 0; l < layers; ++l) {
        const int64_t rows = r.get<int64_t>(), cols = r.get<int64_t>();
        auto ids = r.get_vec<int32_t>();
        RLFT_CHECK(rows >= 0 && cols >= 0 && static_cast<int64_t>(ids.size()) == rows * cols,
                   "a rollout message is corrupt: routing of {} ids for [{}, {}]", ids.size(), rows, cols);
        s.routing.push_back(at::from_blob(ids.data(), {rows, cols}, at::kInt).to(device, at::kLong));
      }
      g.samples.push_back(std::move(s));
    }
    k.groups.push_back(std::move(g));
  }
  auto& sc = k.scores;
  sc.total = r.get_vec<double>();
  sc.weights = r.get_vec<double>();
  sc.seconds = r.get_vec<double>();
  const int64_t names = r.count(8);
  for (int64_t i = 0; i < names; ++i) sc.names.push_back(r.get_str());
  const int64_t parts = r.count(8);
  for (int64_t i = 0; i < parts; ++i) sc.parts.push_back(r.get_vec<double>());
  RLFT_CHECK(r.done(), "a rollout message is corrupt: bytes follow its end");
  return c;
}

RolloutRankLink::RolloutRankLink(Job& job, const GrpoOptions& g, int64_t first_step, int64_t total_steps,
                                 int64_t cursor)
    : job_(job),
      lag_(g.rollout.lag()),
      first_step_(first_step),
      total_steps_(total_steps),
      first_cursor_(cursor),
      prompts_per_step_(g.prompts_per_step),
      trainers_(job.world().world_size() - job.rollout_ranks()),
      rollout_ranks_(job.rollout_ranks()),
      next_version_(first_step + 1) {
  if (!job.is_main()) return;
  for (int j = 0; j < rollout_ranks_; ++j) job.world().put(start_key(j), fmt::format("{} {}", first_step, cursor));
}

AsyncStep RolloutRankLink::pop(int64_t step) {
  const auto t0 = std::chrono::steady_clock::now();
  auto& world = job_.world();
  const auto& train = job_.spec().dataset.train;
  const int t = job_.dist().rank();
  AsyncStep out;
  auto& c = out.collected;
  for (int j = 0; j < rollout_ranks_; ++j) {
    const int from = trainers_ + j;
    const auto bytes =
        world.take(groups_key(step, t, j), from, fmt::format("step {}'s groups from rollout rank {}", step + 1, from));
    if (!bytes.empty() && bytes[0] == kErrorTag)
      throw Error(fmt::format("rollout rank {} failed at step {}: {}", from, step + 1, bytes.substr(1)));
    int64_t version = 0;
    auto part = decode_groups(bytes, version, train, job_.device());
    out.version = version;
    // Parts sampled side by side: counts add up, times are the slowest rank's.
    auto& k = c.kept;
    for (auto& group : part.kept.groups) k.groups.push_back(std::move(group));
    k.examples.insert(k.examples.end(), part.kept.examples.begin(), part.kept.examples.end());
    k.scores.append(part.kept.scores);
    k.generate.add_counts(part.kept.generate);
    k.generate.prefill_seconds = std::max(k.generate.prefill_seconds, part.kept.generate.prefill_seconds);
    k.generate.decode_seconds = std::max(k.generate.decode_seconds, part.kept.generate.decode_seconds);
    k.rollout_seconds = std::max(k.rollout_seconds, part.kept.rollout_seconds);
    k.reward_seconds = std::max(k.reward_seconds, part.kept.reward_seconds);
    c.drawn_groups += part.drawn_groups;
    c.zero_variance_groups += part.zero_variance_groups;
  }
  out.cursor_after = first_cursor_ + (step - first_step_ + 1) * prompts_per_step_;
  out.wait_seconds = seconds_since(t0);
  return out;
}

void RolloutRankLink::publish(const policy::CausalLM& policy, int64_t version) {
  auto* weights = job_.weight_sync();
  if (!job_.is_main() || !weights) return;
  // Step s samples with max(s0, s − k): version v is needed by step v + k, if there is one.
  if (version + lag_ >= total_steps_) return;
  RLFT_CHECK(version == next_version_, "weights version {} published out of order (expected {})", version,
             next_version_);
  for (int j = 0; j < rollout_ranks_; ++j) job_.world().put(control_key(version, j), "weights");
  auto tensors = version_tensors(policy);
  try {
    weights->broadcast(tensors, 0);
  } catch (const Error&) {
    // A rollout rank that failed left its reason where the trainers wait: show that.
    for (int64_t s = version; s <= version + lag_ + 1 && s < total_steps_; ++s)
      for (int j = 0; j < rollout_ranks_; ++j) {
        const auto key = groups_key(s, 0, j);
        if (!job_.world().has(key)) continue;
        const auto bytes = job_.world().take(key, trainers_ + j, "a rollout rank's error");
        if (!bytes.empty() && bytes[0] == kErrorTag)
          throw Error(fmt::format("rollout rank {} failed at step {}: {}", trainers_ + j, s + 1, bytes.substr(1)));
      }
    throw;
  }
  ++next_version_;
}

void RolloutRankLink::finish() {
  if (!job_.is_main()) return;
  auto& world = job_.world();
  for (int j = 0; j < rollout_ranks_; ++j) world.put(control_key(next_version_, j), "stop");
  for (int j = 0; j < rollout_ranks_; ++j)
    world.take(done_key(j), trainers_ + j, fmt::format("rollout rank {} to finish", trainers_ + j));
}

int64_t run_rollout_rank(Job& job, const GrpoOptions& g, const GroupSource& source) {
  auto& world = job.world();
  const int R = job.rollout_ranks(), T = world.world_size() - R, j = world.rank() - T;
  const int64_t lag = g.rollout.lag();
  // A stop signal is for the trainer ranks to act on (they checkpoint, then stop this rank).
  install_stop_handlers();
  int64_t first_step = 0, cursor = 0;
  {
    const auto start = world.take(start_key(j), 0, "the run's first step from rank 0");
    char* end = nullptr;
    first_step = std::strtoll(start.c_str(), &end, 10);
    cursor = std::strtoll(end, &end, 10);
    RLFT_CHECK(end && *end == '\0', "rollout rank {}: the start message '{}' is not two numbers", world.rank(), start);
  }
  auto& model = job.model();
  model->eval();
  auto tensors = version_tensors(model);
  log::info("rollout rank {}: sampling steps {}..{} for {} trainer rank(s), {} step(s) behind", world.rank(),
            first_step + 1, g.steps, T, lag);
  int64_t version = first_step, sampled = 0;
  std::vector<RankGroups> layouts;
  for (int t = 0; t < T; ++t) layouts.emplace_back(g.prompts_per_step, g.mini_batches, T, t);
  int64_t step = first_step;
  try {
    for (; step < g.steps; ++step) {
      const int64_t need = sampling_version(step, first_step, lag);
      bool stop = false;
      while (version < need && !stop) {
        const auto control = world.take(control_key(version + 1, j), 0,
                                        fmt::format("the weights after step {} from rank 0", version + 1));
        stop = control == "stop";
        if (stop) break;
        job.weight_sync()->broadcast(tensors, 0);
        ++version;
      }
      if (stop) break;
      std::vector<int64_t> positions;
      std::vector<size_t> ends;  // per trainer rank: where its part ends in `positions`
      for (int t = 0; t < T; ++t) {
        const auto [lo, hi] = part_of(layouts[static_cast<size_t>(t)].local_count(), j, R);
        for (int64_t i = lo; i < hi; ++i) positions.push_back(cursor + layouts[static_cast<size_t>(t)].global(i));
        ends.push_back(positions.size());
      }
      ScoredGroups all = positions.empty() ? ScoredGroups{} : source(positions);
      for (auto& group : all.groups) group.policy_version = version;
      for (int t = 0; t < T; ++t) {
        const size_t begin = t == 0 ? 0 : ends[static_cast<size_t>(t) - 1], end = ends[static_cast<size_t>(t)];
        auto part = slice(all, begin, end, g.group_size);
        if (t == 0) {  // this rank's counters and times travel once, with trainer rank 0's part
          part.kept.generate = all.generate;
          part.kept.rollout_seconds = all.rollout_seconds;
          part.kept.reward_seconds = all.reward_seconds;
        }
        world.put(groups_key(step, t, j), encode_groups(part, version, job.spec().dataset.train));
      }
      cursor += g.prompts_per_step;
      ++sampled;
    }
  } catch (const std::exception& e) {
    // The trainer ranks wait for this step's groups: they show why they will not come.
    try {
      for (int t = 0; t < T; ++t) world.put(groups_key(step, t, j), std::string(1, kErrorTag) + e.what());
    } catch (const std::exception&) {
      // The store went with rank 0: nobody waits.
    }
    throw;
  }
  world.put(done_key(j), "done");
  log::info("rollout rank {}: sampled {} step(s)", world.rank(), sampled);
  return sampled;
}

}  // namespace rlft::rl
