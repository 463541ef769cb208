#include "data/dataset.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/config.h"
#include "core/error.h"
#include "data/dataset_jsonl.h"
#include "data/dataset_rng.h"
#include "data/tasks/arithmetic.h"
#include "data/tasks/countdown.h"

namespace rlft::data {
namespace {

const std::string kEmpty;

/// Walks a template, calling literal(text) and placeholder(name) in order.
template <typename Literal, typename Placeholder>
void walk_template(const std::string& t, Literal literal, Placeholder placeholder) {
  std::size_t i = 0;
  while (i < t.size()) {
    const char c = t[i];
    if (c == '{' && i + 1 < t.size() && t[i + 1] == '{') {
      literal("{");
      i += 2;
    } else if (c == '}' && i + 1 < t.size() && t[i + 1] == '}') {
      literal("}");
      i += 2;
    } else if (c == '{') {
      const auto close = t.find('}', i + 1);
      RLFT_CHECK(close != std::string::npos, "unclosed '{{' at offset {} (write '{{{{' for a literal brace)", i);
      const std::string name = t.substr(i + 1, close - i - 1);
      RLFT_CHECK(!name.empty() && name.find('{') == std::string::npos, "bad placeholder '{{{}}}' at offset {}", name,
                 i);
      placeholder(name);
      i = close + 1;
    } else if (c == '}') {
      throw Error(fmt::format("unmatched '}}' at offset {} (write '}}}}' for a literal brace)", i));
    } else {
      const auto next = t.find_first_of("{}", i);
      const std::size_t end = next == std::string::npos ? t.size() : next;
      literal(std::string_view(t).substr(i, end - i));
      i = end;
    }
  }
}

}  // namespace

const std::string& Example::prompt() const {
  for (auto it = messages.rbegin(); it != messages.rend(); ++it)
    if (it->role == "user") return it->content;
  return kEmpty;
}

const std::string& Example::system() const {
  for (const auto& m : messages)
    if (m.role == "system") return m.content;
  return kEmpty;
}

std::string render_template(const std::string& text, const std::map<std::string, std::string>& vars) {
  std::string out;
  walk_template(
      text, [&](std::string_view s) { out += s; },
      [&](const std::string& name) {
        auto it = vars.find(name);
        if (it == vars.end()) {
          std::vector<std::string> known;
          for (const auto& kv : vars) known.push_back("{" + kv.first + "}");
          throw Error(fmt::format("unknown placeholder {{{}}} (known: {})", name, fmt::join(known, ", ")));
        }
        out += it->second;
      });
  return out;
}

std::vector<std::string> template_placeholders(const std::string& text) {
  std::vector<std::string> out;
  walk_template(
      text, [](std::string_view) {}, [&](const std::string& name) { out.push_back(name); });
  return out;
}

SplitOptions SplitOptions::from_config(const ConfigView& c) {
  SplitOptions o;
  o.seed = c.get<int64_t>("seed", o.seed);
  o.shuffle = c.get<bool>("shuffle", o.shuffle);
  o.eval_size = c.get<int64_t>("eval_size", o.eval_size);
  o.eval_fraction = c.get<double>("eval_fraction", o.eval_fraction);
  o.max_examples = c.get<int64_t>("max_examples", o.max_examples);
  return o;
}

void SplitOptions::validate() const {
  RLFT_CHECK_OPTION(seed >= 0, "seed", seed, "must be >= 0");
  RLFT_CHECK_OPTION(eval_size >= 0, "eval_size", eval_size, "must be >= 0");
  RLFT_CHECK_OPTION(eval_fraction >= 0.0 && eval_fraction < 1.0, "eval_fraction", eval_fraction, "must be in [0, 1)");
  RLFT_CHECK_OPTION(max_examples >= 0, "max_examples", max_examples, "must be >= 0 (0 = all)");
}

Dataset split_examples(std::vector<Example> examples, const SplitOptions& o) {
  const int64_t n = static_cast<int64_t>(examples.size());
  int64_t n_eval = o.eval_size > 0 ? o.eval_size : static_cast<int64_t>(std::floor(o.eval_fraction * n));
  RLFT_CHECK(n_eval < n || n == 0, "the eval split ({} examples) would leave no training example of {}", n_eval, n);
  RLFT_CHECK(n > 0, "the source has no examples");

  Dataset d;
  std::vector<char> is_eval(examples.size(), 0);
  if (n_eval > 0) {
    std::vector<int64_t> idx(examples.size());
    std::iota(idx.begin(), idx.end(), 0);
    DataRng rng(static_cast<uint64_t>(o.seed), "split");
    rng.shuffle(idx);
    for (int64_t i = 0; i < n_eval; ++i) is_eval[idx[i]] = 1;
  }
  for (std::size_t i = 0; i < examples.size(); ++i) (is_eval[i] ? d.eval : d.train).push_back(std::move(examples[i]));
  if (o.shuffle) {
    DataRng rng(static_cast<uint64_t>(o.seed), "shuffle");
    rng.shuffle(d.train);
  }
  if (o.max_examples > 0 && static_cast<int64_t>(d.train.size()) > o.max_examples) d.train.resize(o.max_examples);
  return d;
}

Dataset load_dataset(const ConfigView& c, const SourceRegistry& sources) {
  const std::string source = c.get<std::string>("source", "jsonl");
  c.check(sources.contains(source), "source",
          fmt::format("unknown data source '{}': known sources are {}", source, fmt::join(sources.names(), ", ")));
  std::unique_ptr<ExampleSource> src = sources.get(source)(c.section(source));
  SplitOptions split = read_options<SplitOptions>(c);

  SourceData loaded = src->load(static_cast<uint64_t>(split.seed));
  Dataset d;
  if (loaded.eval) {
    c.check(split.eval_size == 0 && split.eval_fraction == 0.0, split.eval_size > 0 ? "eval_size" : "eval_fraction",
            "the source has its own eval set (eval_path): hold nothing out");
    SplitOptions no_holdout = split;
    no_holdout.eval_size = 0;
    no_holdout.eval_fraction = 0.0;
    d = split_examples(std::move(loaded.examples), no_holdout);
    d.eval = std::move(*loaded.eval);
  } else {
    d = split_examples(std::move(loaded.examples), split);
  }
  d.description = fmt::format("{}: {} train, {} eval", src->describe(), d.train.size(), d.eval.size());
  return d;
}

std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<std::size_t>(std::max<int64_t>(n, 0)));
  std::iota(order.begin(), order.end(), 0);
  DataRng rng(seed ^ (static_cast<uint64_t>(epoch) * 0x9E3779B97F4A7C15ull), "epoch");
  rng.shuffle(order);
  return order;
}

void register_builtin_sources(SourceRegistry& registry) {
  registry.add("jsonl", make_jsonl_source);
  registry.add("arithmetic", tasks::make_arithmetic_source);
  registry.add("countdown", tasks::make_countdown_source);
}

SourceRegistry builtin_sources() {
  SourceRegistry r("data source");
  register_builtin_sources(r);
  return r;
}

}  // namespace rlft::data
