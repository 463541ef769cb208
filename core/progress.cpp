#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

#include "core/log.h"

namespace rlft {

Progress::Progress(std::string label, int64_t total, double plain_every_s)
    : label_(std::move(label)),
      total_(total),
      plain_every_s_(plain_every_s),
      tty_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  finish();
}

std::string Progress::format_duration(double s) {
  if (!(s >= 0) || s > 1e7) return "?";
  const auto total = static_cast<int64_t>(s + 0.5);
  if (total >= 3600) return fmt::format("{}h{:02}m", total / 3600, (total % 3600) / 60);
  if (total >= 60) return fmt::format("{}m{:02}s", total / 60, total % 60);
  return fmt::format("{}s", total);
}

void Progress::advance(int64_t n, const std::string& note) {
  done_ += n;
  note_ = note;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (tty_ ? since >= 0.1 : since >= plain_every_s_) draw(false);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  const auto now = std::chrono::steady_clock::now();
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  std::string eta;
  if (total_ > 0 && rate > 0 && done_ < total_)
    eta = " ETA " + format_duration(static_cast<double>(total_ - done_) / rate);
  const std::string count = total_ > 0 ? fmt::format("{}/{}", done_, total_) : fmt::format("{}", done_);
  const std::string tail = fmt::format("{} {:.2f} it/s{}{}{}", count, rate, eta, note_.empty() ? "" : " ", note_);
  if (!tty_) {
    log::info("{} {}{}", label_, tail, final ? fmt::format(" done in {}", format_duration(elapsed)) : "");
    return;
  }
  constexpr int kWidth = 24;
  std::string bar;
  const int filled = total_ > 0 ? static_cast<int>(kWidth * std::min<double>(1.0, double(done_) / double(total_))) : 0;
  for (int i = 0; i < kWidth; ++i) bar += i < filled ? "\u2588" : "\u2591";
  std::string line = fmt::format("\r{} {} {}\033[K", label_, bar, tail);
  if (final) line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace rlft
