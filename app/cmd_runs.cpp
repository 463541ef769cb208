// `rlft runs [--store PATH]`: the runs in a store; `rlft runs show NAME`: a run's status and
// the newest value of each of its metrics.
#include <CLI/CLI.hpp>

#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "app/cli.h"
#include "app/svg_plot.h"
#include "core/config.h"
#include "core/error.h"
#include "data/store.h"

namespace rlft::app {
namespace {

std::string format_time(double unix_s) {
  const std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

void list_runs(const std::string& store_path) {
  data::Store store = data::Store::open(store_path, /*create=*/false);
  const auto runs = store.list_runs();
  if (runs.empty()) {
    std::cout << fmt::format("no runs in {}\n", store_path);
    return;
  }
  std::cout << fmt::format("{:<28} {:<6} {:<12} {:<20} {:>8}\n", "NAME", "KIND", "STATUS", "STARTED", "STEPS");
  for (const auto& r : runs) {
    int64_t steps = 0;
    for (const auto& m : store.last_metrics(r.id)) steps = std::max(steps, m.step);
    std::cout << fmt::format("{:<28} {:<6} {:<12} {:<20} {:>8}\n", r.name, r.kind, r.status, format_time(r.started_at),
                             steps);
  }
}

data::RunRecord require_run(data::Store& store, const std::string& name) {
  const auto run = store.find_run(name);
  if (!run) {
    std::vector<std::string> names;
    for (const auto& r : store.list_runs()) names.push_back(r.name);
    throw Error(fmt::format("no run named '{}' in {}{}", name, store.path(),
                            names.empty() ? "" : fmt::format(" (runs: {})", fmt::join(names, ", "))));
  }
  return *run;
}

void show_run(const std::string& store_path, const std::string& name, const std::vector<std::string>& series) {
  data::Store store = data::Store::open(store_path, /*create=*/false);
  const data::RunRecord found = require_run(store, name);
  if (!series.empty()) {
    // One metric (or several) over steps: STEP then one column per metric.
    const auto known = store.metric_names(found.id);
    std::map<int64_t, std::map<std::string, double>> rows;
    for (const auto& m : series) {
      if (std::find(known.begin(), known.end(), m) == known.end()) {
        std::string msg = fmt::format("run '{}' has no metric '{}'", name, m);
        if (auto s = closest_match(m, known)) msg += fmt::format(" (did you mean '{}'?)", *s);
        throw UsageError(msg);
      }
      for (const auto& p : store.metric_series(found.id, m)) rows[p.step][m] = p.value;
    }
    std::cout << fmt::format("{:>8}", "STEP");
    for (const auto& m : series) std::cout << fmt::format(" {:>20}", m);
    std::cout << "\n";
    for (const auto& [step, values] : rows) {
      std::cout << fmt::format("{:>8}", step);
      for (const auto& m : series) {
        auto it = values.find(m);
        std::cout << (it == values.end() ? fmt::format(" {:>20}", "") : fmt::format(" {:>20.6g}", it->second));
      }
      std::cout << "\n";
    }
    return;
  }
  const data::RunRecord* run = &found;
  std::cout << fmt::format("run       {}\nkind      {}\nstatus    {}\nstarted   {}\n", run->name, run->kind,
                           run->status, format_time(run->started_at));
  if (run->ended_at) std::cout << fmt::format("ended     {}\n", format_time(*run->ended_at));
  if (!run->error.empty()) std::cout << fmt::format("error     {}\n", run->error);
  std::cout << fmt::format("git       {}\nconfig    {}\n", run->git_revision, run->config_hash);
  const auto ckpts = store.checkpoints(run->id);
  if (!ckpts.empty()) std::cout << fmt::format("checkpoint step {} at {}\n", ckpts.back().step, ckpts.back().path);
  const auto metrics = store.last_metrics(run->id);
  if (metrics.empty()) {
    std::cout << "no metrics yet\n";
    return;
  }
  std::cout << fmt::format("\n{:<32} {:>8} {:>14}\n", "METRIC", "STEP", "VALUE");
  for (const auto& m : metrics) std::cout << fmt::format("{:<32} {:>8} {:>14.6g}\n", m.name, m.step, m.value);
}

void plot_run(const std::string& store_path, const std::string& name, const std::string& metrics,
              const std::string& out) {
  data::Store store = data::Store::open(store_path, /*create=*/false);
  const data::RunRecord run = require_run(store, name);
  const auto known = store.metric_names(run.id);
  std::vector<std::string> wanted;
  std::stringstream ss(metrics);
  for (std::string m; std::getline(ss, m, ',');)
    if (!m.empty()) wanted.push_back(m);
  if (wanted.empty()) wanted = known;
  std::vector<Series> series;
  for (const auto& m : wanted) {
    if (std::find(known.begin(), known.end(), m) == known.end()) {
      std::string msg = fmt::format("run '{}' has no metric '{}'", name, m);
      if (auto s = closest_match(m, known)) msg += fmt::format(" (did you mean '{}'?)", *s);
      throw UsageError(msg + fmt::format("; its metrics are: {}", fmt::join(known, ", ")));
    }
    Series s{m, {}};
    for (const auto& p : store.metric_series(run.id, m)) s.points.emplace_back(static_cast<double>(p.step), p.value);
    series.push_back(std::move(s));
  }
  const std::string svg = svg_line_charts(series);
  if (out.empty() || out == "-") {
    std::cout << svg;
    return;
  }
  std::ofstream f(out);
  f << svg;
  f.close();
  RLFT_CHECK(f.good(), "cannot write {}", out);
  std::cout << fmt::format("wrote {} chart(s) to {}\n", series.size(), out);
}

}  // namespace

void add_runs_command(CLI::App& app) {
  auto store_path = std::make_shared<std::string>("runs/rlft.db");
  auto name = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("runs", "List the runs in a store, or show one");
  cmd->add_option("--store", *store_path, "the SQLite store")->capture_default_str();
  CLI::App* show = cmd->add_subcommand("show", "A run's status and its newest metrics");
  show->add_option("name", *name, "run name")->required();
  show->add_option("--store", *store_path, "the SQLite store")->capture_default_str();
  auto series = std::make_shared<std::vector<std::string>>();
  show->add_option("--series", *series, "print these metrics over every step instead (repeatable)");
  show->callback([store_path, name, series] { show_run(*store_path, *name, *series); });
  struct PlotArgs {
    std::string name, metrics, out;
  };
  auto plot = std::make_shared<PlotArgs>();
  CLI::App* plot_cmd = cmd->add_subcommand("plot", "Draw a run's metrics over steps as an SVG file");
  plot_cmd->add_option("name", plot->name, "run name")->required();
  plot_cmd->add_option("--metrics", plot->metrics, "comma-separated metric names (default: all)");
  plot_cmd->add_option("-o,--output", plot->out, "the SVG file to write (default: standard output)");
  plot_cmd->add_option("--store", *store_path, "the SQLite store")->capture_default_str();
  plot_cmd->callback([store_path, plot] { plot_run(*store_path, plot->name, plot->metrics, plot->out); });
  cmd->callback([cmd, store_path] {
    if (cmd->get_subcommands().empty()) list_runs(*store_path);
  });
}

}  // namespace rlft::app
