#pragma once
// A synthetic preference in a real store, for the trainers that learn from pairs (reward
// models, DPO): correct and brief answers beat wrong or wordy ones.

#include <fmt/format.h>

#include <cstdint>
#include <random>
#include <string>

#include "data/feedback.h"
#include "data/store.h"

namespace rlft::test {

// Prompt "What is a + b?"; chosen: the right answer in the tag; rejected: a wrong answer
// (off by 1..5) or the right one followed by chatter. Pairs repeat (100 prompts), so fewer than
// `n` distinct ones are stored.
inline void add_synthetic_pairs(const std::string& store_path, int n, uint32_t seed) {
  auto store = data::Store::open(store_path, true);
  data::FeedbackStore fb(store);
  std::mt19937 rng(seed);
  const auto import_id = fb.begin_import("synthetic", "pairs");
  int added = 0;
  for (int i = 0; added < n && i < 50 * n; ++i) {
    const int a = static_cast<int>(rng() % 10), b = static_cast<int>(rng() % 10);
    data::PreferencePair p;
    p.prompt.text = fmt::format("What is {} + {}?\n", a, b);
    p.chosen.text = fmt::format("<answer>{}</answer>", a + b);
    if (rng() % 2) {
      int off = static_cast<int>(rng() % 5) + 1;
      if (rng() % 2) off = -off;
      p.rejected.text = fmt::format("<answer>{}</answer>", a + b + off);
    } else {
      p.rejected.text = fmt::format("<answer>{}</answer> I added the two numbers and I am fairly sure.", a + b);
    }
    p.import_id = import_id;
    p.source_file = "synthetic";
    p.source_line = i + 1;
    p.source_format = "pairs";
    added += fb.add_pair(p);
  }
  fb.finish_import(import_id, n, added, 0, 0);
}

}  // namespace rlft::test
