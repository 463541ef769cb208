#include "app/serve/dashboard.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <regex>

#include "app/serve/html.h"
#include "app/svg_plot.h"
#include "core/error.h"

namespace rlft::app::serve {
namespace {

/// The charts a reader looks for first; other metrics follow by name.
const char* const kPreferredMetrics[] = {"reward/mean",
                                         "reward/std",
                                         "accuracy",
                                         "kl",
                                         "entropy",
                                         "response_length/mean",
                                         "loss",
                                         "loss_scale",
                                         "tokens_per_s",
                                         "rollout/staleness",
                                         "time/rollout_overlap",
                                         "time/rollout_wait"};

int64_t run_steps(data::Store& store, int64_t run_id) {
  sqlite::Statement q(store.db(), "SELECT coalesce(max(step), 0) FROM metrics WHERE run_id = ?");
  q.bind(1, run_id);
  q.step();
  return q.column_int(0);
}

std::string status_html(const std::string& status) {
  return fmt::format(R"(<span class="status status-{0}">{0}</span>)", esc(status));
}

bool is_expert_load(const std::string& name) {
  return name.rfind("moe/load/", 0) == 0;
}

/// White for a balanced expert (share 1/E), towards red when over-loaded and blue when idle;
/// a factor of 4 either way is full colour.
std::string load_colour(double share, int64_t n_experts) {
  if (!std::isfinite(share)) return "#ccc";
  const double ratio = std::max(share * static_cast<double>(n_experts), 1e-6);
  const double t = std::min(1.0, std::abs(std::log2(ratio)) / 2.0);
  const int fade = static_cast<int>(std::lround(255.0 * (1.0 - t)));
  return ratio >= 1.0 ? fmt::format("rgb(255,{0},{0})", fade) : fmt::format("rgb({0},{0},255)", fade);
}

}  // namespace

data::RunRecord require_run(data::Store& store, int64_t run_id) {
  for (auto& r : store.list_runs())
    if (r.id == run_id) return r;
  throw Error(fmt::format("no run with id {} in {}", run_id, store.path()));
}

std::string runs_body(data::Store& store) {
  const auto runs = store.list_runs();
  std::string rows;
  for (const auto& r : runs) {
    std::string reward = "";
    for (const auto& m : store.last_metrics(r.id))
      if (m.name == "reward/mean") reward = fmt::format("{:.4g}", m.value);
    rows += fmt::format(
        R"(<tr data-run="{id}"><td><a href="/runs/{id}">{name}</a></td><td>{kind}</td><td>{status}</td><td>{started}</td>)"
        R"(<td class="num">{steps}</td><td class="num">{reward}</td><td><a href="/runs/{id}/rollouts">rollouts</a> · )"
        R"(<a href="/label?source=run:{id}">label</a></td></tr>)"
        "\n",
        fmt::arg("id", r.id), fmt::arg("name", esc(r.name)), fmt::arg("kind", esc(r.kind)),
        fmt::arg("status", status_html(r.status)), fmt::arg("started", format_time_utc(r.started_at)),
        fmt::arg("steps", run_steps(store, r.id)), fmt::arg("reward", reward));
  }
  if (runs.empty()) return fmt::format(R"(<div id="live"><p>No runs in {} yet.</p></div>)", esc(store.path()));
  return fmt::format(R"(<div id="live"><table id="runs"><thead><tr><th>run</th><th>kind</th><th>status</th>)"
                     R"(<th>started (UTC)</th><th>steps</th><th>reward/mean</th><th></th></tr></thead><tbody>
{}</tbody></table></div>)",
                     rows);
}

namespace {

std::string with_commas(double value) {
  std::string digits = fmt::format("{:.0f}", value), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// "LoRA r = 8 (alpha 16) · 94,208 trainable of 820,000 parameters (11.5%)", or full
// fine-tuning, from the model/* values the run logged at step 0 ("" for runs without them).
std::string policy_line(data::Store& store, int64_t run_id) {
  auto first = [&](const std::string& name) -> std::optional<double> {
    const auto s = store.metric_series(run_id, name);
    if (s.empty()) return std::nullopt;
    return s.front().value;
  };
  const auto total = first("model/parameters"), trainable = first("model/trainable_parameters");
  if (!total || !trainable || *total <= 0) return "";
  const auto rank = first("model/lora_rank"), alpha = first("model/lora_alpha");
  const std::string how =
      rank ? fmt::format("LoRA r = {:.0f}{}", *rank, alpha ? fmt::format(" (alpha {:g})", *alpha) : std::string())
           : std::string("full fine-tuning");
  return fmt::format(R"(<p id="policy">policy: {} · {} trainable of {} parameters ({:.2f}%)</p>)", how,
                     with_commas(*trainable), with_commas(*total), 100.0 * *trainable / *total);
}

// "rollout: async on 1 rollout rank · steps sampled 1 step back · 0.154 s of rollout per step
// beside training (92%) · 0.013 s waiting", from the rollout stage's metrics ("" for sync runs
// without rollout ranks).
std::string rollout_line(data::Store& store, int64_t run_id) {
  auto mean = [](const std::vector<data::MetricPoint>& s) {
    double sum = 0;
    for (const auto& p : s) sum += p.value;
    return s.empty() ? 0.0 : sum / static_cast<double>(s.size());
  };
  const auto overlap = store.metric_series(run_id, "time/rollout_overlap");
  if (overlap.empty()) return "";
  double max_staleness = 0;
  for (const auto& p : store.metric_series(run_id, "rollout/staleness"))
    max_staleness = std::max(max_staleness, p.value);
  const double hidden = mean(overlap), wait = mean(store.metric_series(run_id, "time/rollout_wait"));
  const auto ranks = store.metric_series(run_id, "rollout/ranks");
  const std::string where = ranks.empty() ? "" : fmt::format(" on {:.0f} rollout rank(s)", ranks.back().value);
  return fmt::format(
      R"(<p id="rollout-stage">rollout: {}{} · sampled up to {:.0f} step(s) back · {:.3f} s of rollout per step )"
      R"(beside training ({:.0f}%) · {:.3f} s per step waiting for it</p>)",
      max_staleness > 0 ? "async" : "sync", where, max_staleness, hidden,
      100.0 * hidden / std::max(hidden + wait, 1e-9), wait);
}

}  // namespace

std::string run_body(data::Store& store, int64_t run_id) {
  const data::RunRecord run = require_run(store, run_id);
  std::vector<std::string> names;
  for (auto& n : store.metric_names(run_id))
    if (!is_expert_load(n) && n.rfind("model/", 0) != 0 && n != "rollout/ranks") names.push_back(n);
  std::stable_sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    auto rank = [](const std::string& n) {
      const auto* end = std::end(kPreferredMetrics);
      return std::find(std::begin(kPreferredMetrics), end, n) - std::begin(kPreferredMetrics);
    };
    return rank(a) < rank(b);
  });
  std::vector<Series> series;
  for (const auto& n : names) {
    Series s{n, {}};
    for (const auto& p : store.metric_series(run_id, n)) s.points.emplace_back(static_cast<double>(p.step), p.value);
    series.push_back(std::move(s));
  }
  std::string checkpoints;
  for (const auto& c : store.checkpoints(run_id))
    checkpoints += fmt::format("<li>step {} · <code>{}</code></li>", c.step, esc(c.path));

  std::string out = fmt::format(
      R"(<div id="live"><p>kind {kind} · {status} · started {started} UTC{ended} · {steps} steps · )"
      R"(<a href="/runs/{id}/rollouts">rollouts</a> · <a href="/label?source=run:{id}">label its rollouts</a></p>)",
      fmt::arg("kind", esc(run.kind)), fmt::arg("status", status_html(run.status)),
      fmt::arg("started", format_time_utc(run.started_at)),
      fmt::arg("ended", run.ended_at ? " · ended " + format_time_utc(*run.ended_at) + " UTC" : std::string()),
      fmt::arg("steps", run_steps(store, run_id)), fmt::arg("id", run_id));
  if (!run.error.empty()) out += fmt::format(R"(<p class="error">{}</p>)", esc(run.error));
  out += policy_line(store, run_id);
  out += rollout_line(store, run_id);
  out += "<h2>Metrics</h2>\n";
  out += series.empty() ? std::string("<p class=\"muted\">No metrics yet.</p>")
                        : "<div id=\"charts\">" + svg_line_charts(series) + "</div>";
  const std::string heat = expert_heatmaps(store, run_id);
  if (!heat.empty()) out += "<h2>Expert load</h2>\n<div id=\"experts\">" + heat + "</div>";
  if (!checkpoints.empty()) out += "<h2>Checkpoints</h2><ul>" + checkpoints + "</ul>";
  out += "</div>\n<h2>Resolved config</h2>\n<pre id=\"config\">" + esc(run.config) + "</pre>\n";
  return out;
}

std::string rollouts_body(data::Store& store, int64_t run_id, const RolloutQuery& query) {
  const data::RunRecord run = require_run(store, run_id);
  sqlite::Statement q(
      store.db(),
      "SELECT id, step, prompt_index, sample_index, prompt, completion, reward, reward_parts, advantage, "
      "finish_reason FROM rollouts WHERE run_id = ?1 AND (?2 IS NULL OR step = ?2) AND (?3 = '' OR "
      "instr(prompt, ?3) > 0 OR instr(completion, ?3) > 0) ORDER BY step DESC, prompt_index, "
      "sample_index LIMIT ?4 OFFSET ?5");
  q.bind(1, run_id);
  if (query.step)
    q.bind(2, *query.step);
  else
    q.bind_null(2);
  q.bind(3, query.search).bind(4, query.limit).bind(5, query.offset);
  std::string rows;
  int64_t n = 0;
  while (q.step()) {
    ++n;
    std::string parts;
    const auto j = nlohmann::json::parse(q.column_text(7), nullptr, false);
    if (j.is_object())
      for (auto it = j.begin(); it != j.end(); ++it)
        if (it.value().is_number()) parts += fmt::format("{}={:.4g}<br>", esc(it.key()), it.value().get<double>());
    rows += fmt::format(
        R"(<tr data-rollout="{}"><td>{}</td><td>{}/{}</td><td class="text">{}</td><td class="text completion">{}</td>)"
        R"(<td>{:.4g}</td><td>{}</td><td>{:.4g}</td><td>{}</td></tr>)"
        "\n",
        q.column_int(0), q.column_int(1), q.column_int(2), q.column_int(3), esc(q.column_text(4)),
        esc(q.column_text(5)), q.column_double(6), parts, q.column_double(8), esc(q.column_text(9)));
  }
  auto link = [&](int64_t offset) {
    return fmt::format("/runs/{}/rollouts?q={}&step={}&offset={}", run_id, url_encode(query.search),
                       query.step ? std::to_string(*query.step) : std::string(), offset);
  };
  std::string nav;
  if (query.offset > 0)
    nav += fmt::format(R"(<a href="{}">newer</a> )", esc(link(std::max<int64_t>(0, query.offset - query.limit))));
  if (n == query.limit) nav += fmt::format(R"(<a href="{}">older</a>)", esc(link(query.offset + query.limit)));
  return fmt::format(
      R"(<p><a href="/runs/{id}">{name}</a> · {status}</p>
<form method="get" action="/runs/{id}/rollouts" id="search"><input name="q" value="{q}" placeholder="search prompt or completion">
<input name="step" value="{step}" placeholder="step" size="6"><button type="submit">search</button></form>
<table id="rollouts"><thead><tr><th>step</th><th>prompt/sample</th><th>prompt</th><th>completion</th><th>reward</th>
<th>parts</th><th>advantage</th><th>finish</th></tr></thead><tbody>
{rows}</tbody></table><p>{count} rows · {nav}</p>)",
      fmt::arg("id", run_id), fmt::arg("name", esc(run.name)), fmt::arg("status", status_html(run.status)),
      fmt::arg("q", esc(query.search)), fmt::arg("step", query.step ? std::to_string(*query.step) : std::string()),
      fmt::arg("rows", rows), fmt::arg("count", n), fmt::arg("nav", nav));
}

std::string expert_heatmaps(data::Store& store, int64_t run_id) {
  static const std::regex kLoad(R"(moe/load/layer(\d+)/expert(\d+))");
  // layer → expert → step → share
  std::map<int64_t, std::map<int64_t, std::map<int64_t, double>>> load;
  for (const auto& name : store.metric_names(run_id)) {
    std::smatch m;
    if (!std::regex_match(name, m, kLoad)) continue;
    auto& cells = load[std::stoll(m[1])][std::stoll(m[2])];
    for (const auto& p : store.metric_series(run_id, name)) cells[p.step] = p.value;
  }
  std::string out;
  constexpr int kCellH = 12, kMaxColumns = 160, kLeft = 70, kTop = 8, kPlotWidth = 640;
  for (const auto& [layer, experts] : load) {
    const int64_t n_experts = experts.rbegin()->first + 1;
    std::vector<int64_t> steps;
    for (const auto& [e, cells] : experts)
      for (const auto& [s, v] : cells) steps.push_back(s);
    std::sort(steps.begin(), steps.end());
    steps.erase(std::unique(steps.begin(), steps.end()), steps.end());
    // With more steps than columns, a column averages consecutive steps.
    const std::size_t per_col = (steps.size() + kMaxColumns - 1) / kMaxColumns;
    const std::size_t n_cols = (steps.size() + per_col - 1) / per_col;
    // Few steps get wide cells, many get narrow ones: the map keeps about kPlotWidth pixels.
    const int cell_w = std::clamp(kPlotWidth / static_cast<int>(n_cols), 3, 40);
    const int width = kLeft + static_cast<int>(n_cols) * cell_w + 10;
    const int height = kTop + static_cast<int>(n_experts) * kCellH + 24;
    std::string svg = fmt::format(
        R"(<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" data-layer="{}" data-experts="{}" data-columns="{}" )"
        R"(width="{}" height="{}" viewBox="0 0 {} {}" font-family="sans-serif" font-size="10">)",
        layer, n_experts, n_cols, width, height, width, height);
    for (int64_t e = 0; e < n_experts; ++e) {
      const int y = kTop + static_cast<int>(e) * kCellH;
      svg += fmt::format(R"(<text x="{}" y="{}" text-anchor="end">expert {}</text>)", kLeft - 4, y + kCellH - 2, e);
      const auto it = experts.find(e);
      for (std::size_t c = 0; c < n_cols; ++c) {
        double sum = 0;
        int n = 0;
        for (std::size_t k = c * per_col; k < std::min(steps.size(), (c + 1) * per_col); ++k) {
          if (it == experts.end()) continue;
          const auto v = it->second.find(steps[k]);
          if (v != it->second.end()) sum += v->second, ++n;
        }
        const double share = n ? sum / n : NAN;
        svg += fmt::format(
            R"(<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>step {} expert {}: {:.3g}</title></rect>)",
            kLeft + static_cast<int>(c) * cell_w, y, cell_w, kCellH, load_colour(share, n_experts), steps[c * per_col],
            e, share);
      }
    }
    svg +=
        fmt::format(R"(<text x="{}" y="{}">step {} … {}</text></svg>)", kLeft, height - 6, steps.front(), steps.back());
    std::string balance;
    const auto b = store.metric_series(run_id, fmt::format("moe/balance/layer{}", layer));
    if (!b.empty())
      balance = fmt::format(" · moe/balance/layer{} = {:.4g} at step {}", layer, b.back().value, b.back().step);
    out += fmt::format("<h3>layer {}{}</h3>\n{}\n", layer, balance, svg);
  }
  return out;
}

}  // namespace rlft::app::serve
