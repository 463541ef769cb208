// `rlft feedback import FILE --format F`: preference data into the store's feedback tables;
// `rlft feedback export OUT`: the stored pairs as JSONL (imports back to the same pairs);
// `rlft feedback stats`: what the store holds. docs/feedback.md has the formats.
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "app/cli.h"
#include "core/error.h"
#include "data/feedback_import.h"

namespace rlft::app {
namespace {

struct ImportArgs {
  data::ImportOptions options;
  std::string store = "runs/rlft.db";
  int64_t max_line_bytes = static_cast<int64_t>(data::kDefaultMaxLineBytes);
};

/// Removes an SQLite file with its WAL and shared-memory files.
void remove_store_files(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) std::remove((path + suffix).c_str());
}

void run_import(const ImportArgs& a) {
  const auto formats = data::builtin_preference_formats();
  if (!formats.contains(a.options.format))
    throw UsageError(
        fmt::format("--format {}: known formats are {}", a.options.format, fmt::join(formats.names(), ", ")));
  if (!(a.options.score_gap > 0)) throw UsageError(fmt::format("--score-gap {}: must be > 0", a.options.score_gap));
  if (a.max_line_bytes < 1024) throw UsageError("--max-line-bytes: must be at least 1024");
  data::ImportOptions o = a.options;
  o.max_line_bytes = static_cast<std::size_t>(a.max_line_bytes);
  // A dry run against a store that does not exist yet checks against an empty one and
  // leaves nothing behind.
  std::string store_path = a.store;
  std::string scratch;
  if (o.dry_run && !std::filesystem::exists(a.store)) {
    scratch = (std::filesystem::temp_directory_path() / fmt::format("rlft-dry-run-{}.db", ::getpid())).string();
    store_path = scratch;
  }
  data::ImportReport r;
  try {
    data::Store store = data::Store::open(store_path, /*create=*/true);
    r = data::import_preferences(store, o, formats);
  } catch (...) {
    if (!scratch.empty()) remove_store_files(scratch);
    throw;
  }
  if (!scratch.empty()) remove_store_files(scratch);

  for (const auto& bad : r.bad) std::cerr << fmt::format("skipped {}\n", bad.message);
  if (r.n_invalid > static_cast<int64_t>(r.bad.size()))
    std::cerr << fmt::format("… and {} more bad lines\n", r.n_invalid - static_cast<int64_t>(r.bad.size()));
  std::cout << fmt::format("{} {} pairs from {} ({} lines read; {} pairs found, {} already stored{}{})\n",
                           o.dry_run ? "would import" : "imported", r.n_inserted, o.path, r.n_lines, r.n_found,
                           r.n_duplicates, r.n_no_pairs ? fmt::format(", {} lines gave no pair", r.n_no_pairs) : "",
                           r.n_invalid ? fmt::format(", {} bad lines skipped", r.n_invalid) : "");
}

void run_export(const std::string& store_path, const std::string& out_path, const data::PairFilter& filter) {
  data::Store store = data::Store::open(store_path, /*create=*/false);
  int64_t n = 0;
  if (out_path == "-") {
    n = data::export_preferences(store, filter, std::cout);
  } else {
    // Written beside the target and renamed, so a failed export leaves no half file.
    const std::string tmp = out_path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      RLFT_CHECK(out.good(), "cannot write '{}'", tmp);
      try {
        n = data::export_preferences(store, filter, out);
        out.flush();
        RLFT_CHECK(out.good(), "writing '{}' failed", tmp);
      } catch (...) {
        std::remove(tmp.c_str());
        throw;
      }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, out_path, ec);
    RLFT_CHECK(!ec, "cannot move '{}' to '{}': {}", tmp, out_path, ec.message());
    std::cerr << fmt::format("exported {} pairs to {}\n", n, out_path);
  }
}

void run_stats(const std::string& store_path, bool json) {
  data::Store store = data::Store::open(store_path, /*create=*/false);
  const data::FeedbackStats s = data::FeedbackStore(store).stats();
  if (json) {
    nlohmann::ordered_json j;
    j["pairs"] = s.n_pairs;
    j["chat_pairs"] = s.n_chat;
    j["imports"] = s.n_imports;
    j["conflicting_pairs"] = s.n_conflicting;
    j["margins"] = {{"count", s.n_with_margin}, {"min", s.margin_min}, {"mean", s.margin_mean}, {"max", s.margin_max}};
    j["mean_chars"] = {
        {"prompt", s.mean_prompt_chars}, {"chosen", s.mean_chosen_chars}, {"rejected", s.mean_rejected_chars}};
    j["sources"] = nlohmann::ordered_json::array();
    for (const auto& src : s.sources)
      j["sources"].push_back({{"file", src.file}, {"format", src.format}, {"pairs", src.n_pairs}});
    j["annotators"] = nlohmann::ordered_json::object();
    for (const auto& [name, n] : s.annotators) j["annotators"][name.empty() ? "(none)" : name] = n;
    j["labels"] = {{"count", s.n_labels}, {"choices", nlohmann::ordered_json::object()}};
    for (const auto& [choice, n] : s.label_choices) j["labels"]["choices"][choice] = n;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("pairs       {} ({} chat) from {} imports\n", s.n_pairs, s.n_chat, s.n_imports);
  if (s.n_pairs == 0) return;
  std::cout << fmt::format("conflicts   {} pairs whose reverse is stored too\n", s.n_conflicting);
  if (s.n_with_margin > 0)
    std::cout << fmt::format("margins     {} pairs: min {:.4g}, mean {:.4g}, max {:.4g}\n", s.n_with_margin,
                             s.margin_min, s.margin_mean, s.margin_max);
  else
    std::cout << "margins     none\n";
  std::cout << fmt::format("mean chars  prompt {:.0f}, chosen {:.0f}, rejected {:.0f}\n", s.mean_prompt_chars,
                           s.mean_chosen_chars, s.mean_rejected_chars);
  std::cout << fmt::format("\n{:<48} {:<8} {:>8}\n", "SOURCE", "FORMAT", "PAIRS");
  for (const auto& src : s.sources) std::cout << fmt::format("{:<48} {:<8} {:>8}\n", src.file, src.format, src.n_pairs);
  std::cout << fmt::format("\n{:<48} {:>8}\n", "ANNOTATOR", "PAIRS");
  for (const auto& [name, n] : s.annotators)
    std::cout << fmt::format("{:<48} {:>8}\n", name.empty() ? "(none)" : name, n);
  if (s.n_labels > 0) {
    std::cout << fmt::format("\nlabels      {}:", s.n_labels);
    for (const auto& [choice, n] : s.label_choices) std::cout << fmt::format(" {} {}", choice, n);
    std::cout << "\n";
  }
}

}  // namespace

void add_feedback_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("feedback", "Import, export and summarise preference data");
  cmd->require_subcommand(1);

  auto imp = std::make_shared<ImportArgs>();
  std::string format_help = "pairs | ranked | scores | hh:";
  for (const auto& name : data::builtin_preference_formats().names())
    format_help += fmt::format("\n  {:<7} {}", name, data::builtin_preference_formats().get(name).description);
  CLI::App* i =
      cmd->add_subcommand("import", "Import a JSONL file of preferences (all or nothing unless --skip-invalid)");
  i->add_option("file", imp->options.path, "the JSONL file ('-' = standard input)")->required();
  i->add_option("--format", imp->options.format, format_help)->required();
  i->add_option("--store", imp->store, "the SQLite store")->capture_default_str();
  i->add_flag("--skip-invalid", imp->options.skip_invalid, "import the good lines and report the bad ones");
  i->add_option("--annotator", imp->options.annotator, "annotator for lines without an \"annotator\" field");
  i->add_option("--score-gap", imp->options.score_gap, "scores: the smallest score difference that makes a pair")
      ->capture_default_str();
  i->add_flag("--margin-from-scores", imp->options.margin_from_scores,
              "scores: set each pair's margin to its score gap");
  i->add_option("--max-line-bytes", imp->max_line_bytes, "a longer line is invalid")->capture_default_str();
  i->add_flag("--dry-run", imp->options.dry_run, "validate and count, write nothing");
  i->callback([imp] { run_import(*imp); });

  auto store = std::make_shared<std::string>("runs/rlft.db");
  auto out = std::make_shared<std::string>();
  auto filter = std::make_shared<data::PairFilter>();
  CLI::App* e = cmd->add_subcommand("export", "Write the stored pairs as JSONL in the `pairs` format");
  e->add_option("out", *out, "the output file ('-' = standard output)")->required();
  e->add_option("--store", *store, "the SQLite store")->capture_default_str();
  e->add_option("--source", filter->source_file, "only pairs imported from this file (as it was given)");
  e->add_option("--annotator", filter->annotator, "only pairs of this annotator");
  e->add_option("--limit", filter->limit, "at most this many pairs (-1 = all)")->capture_default_str();
  e->callback([store, out, filter] { run_export(*store, *out, *filter); });

  auto json = std::make_shared<bool>(false);
  CLI::App* s = cmd->add_subcommand("stats", "Summarise the stored preferences");
  s->add_option("--store", *store, "the SQLite store")->capture_default_str();
  s->add_flag("--json", *json, "print one JSON object");
  s->callback([store, json] { run_stats(*store, *json); });
}

}  // namespace rlft::app
