#pragma once
// A progress bar on a terminal ("train ████░░░░ 120/500 3.1 it/s ETA 2m02s"), plain log
// lines when stderr is not a terminal (one every `plain_every_s` seconds and at the end).

#include <chrono>
#include <cstdint>
#include <string>

namespace rlft {

class Progress {
 public:
  /// `total` = 0 means unknown (no ETA).
  Progress(std::string label, int64_t total, double plain_every_s = 10.0);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// Advances by `n` and redraws; `note` is shown after the rate (e.g. "reward=0.41").
  void advance(int64_t n = 1, const std::string& note = "");
  /// Draws the final state and a newline. Called by the destructor if not before.
  void finish();

  /// "1h02m", "3m05s", "12s" — for ETAs and summaries.
  static std::string format_duration(double seconds);

 private:
  void draw(bool final);

  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  double plain_every_s_;
  bool tty_;
  bool finished_ = false;
  std::string note_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace rlft
