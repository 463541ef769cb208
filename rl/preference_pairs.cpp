#include "rl/preference_pairs.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <map>

#include "core/error.h"
#include "core/log.h"
#include "core/sqlite.h"
#include "data/feedback.h"
#include "data/feedback_import.h"
#include "data/jsonl.h"
#include "data/store.h"

namespace rlft::rl {
namespace {

std::string render_turns(const data::Turns& t) {
  if (!t.is_chat()) return t.text;
  std::string out;
  for (const auto& m : t.messages) out += m.role + ": " + m.content + "\n";
  return out;
}

// A reply as the policy writes it: the text, or a chat reply's contents.
std::string reply_text(const data::Turns& t) {
  if (!t.is_chat()) return t.text;
  std::string out;
  for (const auto& m : t.messages) out += (out.empty() ? "" : "\n") + m.content;
  return out;
}

PreferenceText from_pair(const data::PreferencePair& p, const std::string& origin) {
  PreferenceText t;
  t.prompt = render_turns(p.prompt);
  t.chosen = render_turns(p.chosen);
  t.rejected = render_turns(p.rejected);
  t.margin = p.margin.value_or(0.0);
  t.origin = origin;
  t.prompt_messages = p.prompt.as_messages("user");
  t.chosen_reply = reply_text(p.chosen);
  t.rejected_reply = reply_text(p.rejected);
  return t;
}

void swap_sides(PreferenceText& t) {
  std::swap(t.chosen, t.rejected);
  std::swap(t.chosen_reply, t.rejected_reply);
}

// Adds `t` unless its two replies are the same text.
void add_pair(PreferenceSet& set, PreferenceText t) {
  if (t.chosen == t.rejected) {
    ++set.identical;
    return;
  }
  set.pairs.push_back(std::move(t));
}

}  // namespace

PreferenceSet load_preference_texts(const PreferenceSource& o, const std::string& store_path,
                                    const std::string& section) {
  PreferenceSet out;
  if (o.pairs != "store") {
    std::ifstream in(o.pairs);
    RLFT_CHECK(in.good(), "{}.pairs = {}: cannot read the file", section, o.pairs);
    const auto formats = data::builtin_preference_formats();
    const auto& format = formats.get(o.format);
    data::ImportOptions io;
    io.path = o.pairs;
    io.format = o.format;
    std::string line;
    for (int64_t n = 1; std::getline(in, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json row;
      try {
        row = nlohmann::json::parse(line);
      } catch (const nlohmann::json::parse_error& e) {
        throw data::InputError(o.pairs, n, 0, "", fmt::format("not JSON: {}", e.what()));
      }
      // The import formats refuse a line whose two replies are the same (`rlft feedback import`
      // reports it as invalid); a trainer reading the file skips and counts it.
      if (row.is_object() && row.contains("chosen") && row.contains("rejected") && row["chosen"] == row["rejected"]) {
        ++out.identical;
        continue;
      }
      for (auto& p : format.parse(row, io, o.pairs, n)) {
        data::unify_turns(p);
        add_pair(out, from_pair(p, fmt::format("{}:{}", o.pairs, n)));
      }
    }
  } else {
    auto store = data::Store::open(store_path, false);
    data::FeedbackStore fb(store);
    data::PairFilter filter;
    filter.source_file = o.source_file;
    std::map<int64_t, data::PreferencePair> by_id;
    for (const auto& p : fb.pairs(filter)) {
      by_id[p.id] = p;
      add_pair(out, from_pair(p, fmt::format("pair {}", p.id)));
    }
    // People's labels from `rlft serve`: each one a preference of its own.
    for (const auto& l : fb.labels()) {
      if (l.choice != "chosen" && l.choice != "rejected") continue;
      const bool first_wins = l.choice == "chosen";
      if (l.pair_id) {
        auto it = by_id.find(*l.pair_id);
        if (it == by_id.end()) continue;  // filtered out by source_file
        auto t = from_pair(it->second, fmt::format("label {}", l.id));
        if (!first_wins) swap_sides(t);
        add_pair(out, std::move(t));
      } else if (l.rollout_a && l.rollout_b) {
        sqlite::Statement q(store.db(), "SELECT prompt, completion FROM rollouts WHERE id = ?");
        q.bind(1, *l.rollout_a);
        if (!q.step()) continue;
        PreferenceText t;
        t.prompt = q.column_text(0);
        t.chosen = t.chosen_reply = q.column_text(1);
        sqlite::Statement q2(store.db(), "SELECT completion FROM rollouts WHERE id = ?");
        q2.bind(1, *l.rollout_b);
        if (!q2.step()) continue;
        t.rejected = t.rejected_reply = q2.column_text(0);
        t.prompt_rendered = true;  // stored as the policy saw it
        t.origin = fmt::format("label {}", l.id);
        if (!first_wins) swap_sides(t);
        add_pair(out, std::move(t));
      }
    }
  }
  if (out.identical > 0)
    log::warn("{}: {} preference pairs skipped: their chosen and rejected replies are the same text", section,
              out.identical);
  return out;
}

void check_enough_pairs(const PreferenceSet& set, const std::string& command) {
  RLFT_CHECK(set.pairs.size() >= 2,
             "{}: {} preference pairs{}; at least 2 are needed (import some with `rlft feedback import`, or label "
             "some in `rlft serve`)",
             command, set.pairs.size(),
             set.identical > 0 ? fmt::format(" ({} more skipped: chosen = rejected)", set.identical) : "");
}

PreferenceSplit split_preferences(const std::vector<PreferenceText>& all, double eval_fraction, uint64_t seed) {
  const auto perm = data::epoch_order(static_cast<int64_t>(all.size()), seed, -1);
  const int64_t n_eval = static_cast<int64_t>(std::floor(eval_fraction * static_cast<double>(all.size())));
  PreferenceSplit s;
  for (size_t i = 0; i < perm.size(); ++i)
    (static_cast<int64_t>(i) < n_eval ? s.eval : s.train).push_back(&all[static_cast<size_t>(perm[i])]);
  RLFT_CHECK(!s.train.empty(), "no training pairs left after holding out {} of {}", n_eval, all.size());
  return s;
}

}  // namespace rlft::rl
