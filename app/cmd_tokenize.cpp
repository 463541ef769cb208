// `rlft tokenize …` (look at tokens; turn JSONL texts into ids and back) and
// `rlft tokenizer train …` (train a byte-level BPE tokenizer.json). See docs/tokenizer.md.
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "app/cli.h"
#include "app/token_ids.h"
#include "core/error.h"
#include "core/log.h"
#include "policy/tokenizer/byte_level.h"
#include "policy/tokenizer/tokenizer.h"
#include "policy/tokenizer/trainer.h"
#include "policy/tokenizer/unicode.h"

namespace rlft::app {
namespace {

using tokenizer::TokenId;
using tokenizer::Tokenizer;

struct TokenizeOptions {
  std::string tokenizer;
  std::string input;  ///< TEXT, or "-" for stdin (a file with --jsonl)
  bool ids = false;
  bool jsonl = false;
  bool decode = false;
  bool no_special = false;
  bool skip_special = false;
  bool info = false;
  std::string invalid_utf8 = "error";
  int threads = 0;
};

std::string read_all(std::istream& in) {
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The positional input: the text itself, or stdin for "-".
std::string input_text(const std::string& input) {
  return input == "-" ? read_all(std::cin) : input;
}

/// --jsonl: each input line a JSON string (or, with --decode, a JSON list of ids); each output
/// line its ids (or its text). Lines are processed in batches across threads.
void run_jsonl(const Tokenizer& tok, const TokenizeOptions& o) {
  std::ifstream file;
  if (o.input != "-") {
    file.open(o.input, std::ios::binary);
    RLFT_CHECK(file, "cannot open '{}'", o.input);
  }
  std::istream& in = o.input == "-" ? std::cin : file;
  constexpr std::size_t kBatch = 4096;
  std::vector<std::string> texts;
  std::vector<std::vector<TokenId>> id_lists;
  std::size_t line_no = 0;
  std::string out;
  const auto flush = [&] {
    if (o.decode) {
      for (const std::string& t : tok.decode_batch(id_lists, o.skip_special)) out += nlohmann::json(t).dump() + "\n";
      id_lists.clear();
    } else {
      for (const auto& ids : tok.encode_batch(texts, !o.no_special, o.threads))
        out += nlohmann::json(ids).dump() + "\n";
      texts.clear();
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    out.clear();
  };
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{} line {}: not JSON: {}", o.input == "-" ? "stdin" : o.input, line_no, e.what()));
    }
    if (o.decode) {
      RLFT_CHECK(j.is_array(), "{} line {}: expected a JSON list of token ids", o.input == "-" ? "stdin" : o.input,
                 line_no);
      std::vector<TokenId> ids;
      for (const auto& v : j) {
        RLFT_CHECK(v.is_number_integer(), "line {}: {} is not a token id", line_no, v.dump());
        ids.push_back(v.get<TokenId>());
      }
      id_lists.push_back(std::move(ids));
      if (id_lists.size() == kBatch) flush();
    } else {
      RLFT_CHECK(j.is_string(), "{} line {}: expected a JSON string", o.input == "-" ? "stdin" : o.input, line_no);
      texts.push_back(j.get<std::string>());
      if (texts.size() == kBatch) flush();
    }
  }
  flush();
}

/// What one token stands for: its text, or its bytes in hex when they are part of a character.
std::string piece_of(const Tokenizer& tok, TokenId id) {
  const std::string token = tok.id_to_token(id).value_or("");
  std::string bytes;
  if (!tok.is_special(id) && tokenizer::byte_level::decode(token, bytes) &&
      tokenizer::unicode::find_invalid_utf8(bytes)) {
    std::string hex = "<";
    for (std::size_t i = 0; i < bytes.size(); ++i)
      hex += fmt::format("{}{:02x}", i ? " " : "", static_cast<uint8_t>(bytes[i]));
    return hex + ">";
  }
  return nlohmann::json(tok.decode({id})).dump();
}

/// One line per token: id, the vocabulary entry, and the text it stands for.
void show_tokens(const Tokenizer& tok, const std::string& text, const std::vector<TokenId>& ids) {
  std::string out;
  for (TokenId id : ids)
    out += fmt::format("{:>8}  {:<24} {}{}\n", id, nlohmann::json(tok.id_to_token(id).value_or("?")).dump(),
                       piece_of(tok, id), tok.is_special(id) ? "  (special)" : "");
  out += fmt::format("{} tokens, {} bytes\n", ids.size(), text.size());
  std::fwrite(out.data(), 1, out.size(), stdout);
}

void run_tokenize(const TokenizeOptions& o) {
  tokenizer::TokenizerOptions topt;
  if (o.invalid_utf8 == "replace")
    topt.invalid_utf8 = tokenizer::InvalidUtf8::kReplace;
  else
    RLFT_CHECK_AS(UsageError, o.invalid_utf8 == "error", "--invalid-utf8 {}: expected error or replace",
                  o.invalid_utf8);
  const Tokenizer tok = Tokenizer::load(o.tokenizer, topt);
  if (o.info) {
    std::cout << tok.summary();
    if (o.input.empty()) return;
  }
  if (o.jsonl) {
    RLFT_CHECK_AS(UsageError, !o.input.empty(), "--jsonl needs an input file, or - for stdin");
    return run_jsonl(tok, o);
  }
  RLFT_CHECK_AS(UsageError, !o.input.empty(), "give the text to tokenize, or - to read it from stdin");
  const std::string text = input_text(o.input);
  if (o.decode) {
    const auto ids = parse_token_ids(text, "--decode", true);
    const std::string decoded = tok.decode(std::vector<TokenId>(ids.begin(), ids.end()), o.skip_special);
    std::fwrite(decoded.data(), 1, decoded.size(), stdout);
    std::fputc('\n', stdout);
    return;
  }
  const std::vector<TokenId> ids = tok.encode(text, !o.no_special);
  if (o.ids) {
    std::string line;
    for (std::size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
    std::cout << line << "\n";
    return;
  }
  show_tokens(tok, text, ids);
}

struct TrainCommandOptions {
  tokenizer::BpeTrainerOptions trainer;
  std::vector<std::string> files;
  std::string output;
  bool no_nfc = false;
};

void run_train(TrainCommandOptions o) {
  o.trainer.nfc = !o.no_nfc;
  tokenizer::BpeTrainer trainer(o.trainer);
  for (const std::string& f : o.files) {
    std::ifstream in(f, std::ios::binary);
    RLFT_CHECK(in, "cannot open training file '{}'", f);
    trainer.feed(read_all(in), f);
  }
  const std::string json = trainer.train();
  const std::string tmp = o.output + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    RLFT_CHECK(out, "cannot write '{}'", tmp);
    out << json;
    RLFT_CHECK(out.good(), "writing '{}' failed", tmp);
  }
  RLFT_CHECK(std::rename(tmp.c_str(), o.output.c_str()) == 0, "cannot rename '{}' to '{}'", tmp, o.output);
  // What was written must load: the same check a user would do next.
  const Tokenizer check = Tokenizer::load(o.output);
  const tokenizer::TrainStats& s = trainer.stats();
  std::cout << fmt::format("wrote {}: {} ids ({} special, 256 bytes, {} merges) from {} bytes, {} distinct words\n",
                           o.output, check.vocab_size(), o.trainer.special_tokens.size(), s.n_merges, s.bytes,
                           s.n_words);
}

}  // namespace

void add_tokenize_commands(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Show the tokens of a text; turn JSONL texts into ids and back");
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json, or a model directory holding one")->required();
  cmd->add_option("input", o->input, "the text, or - for stdin (with --jsonl: a JSONL file, or -)");
  cmd->add_flag("--ids", o->ids, "print only the ids, on one line");
  cmd->add_flag("--jsonl", o->jsonl, "each input line a JSON string → each output line a JSON list of ids");
  cmd->add_flag("--decode", o->decode, "the reverse: ids (JSON lists with --jsonl) → text");
  cmd->add_flag("--no-special", o->no_special, "do not let the post-processor add special tokens (BOS …)");
  cmd->add_flag("--skip-special", o->skip_special, "with --decode: leave special tokens out of the text");
  cmd->add_option("--invalid-utf8", o->invalid_utf8, "input that is not UTF-8: error | replace (with U+FFFD)")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "threads for --jsonl (0 = every core)")->capture_default_str();
  cmd->add_flag("--info", o->info, "print the tokenizer's components first");
  cmd->callback([o] { run_tokenize(*o); });

  CLI::App* tool = app.add_subcommand("tokenizer", "Tokenizer tools (train)");
  tool->require_subcommand(1);
  auto t = std::make_shared<TrainCommandOptions>();
  CLI::App* train = tool->add_subcommand(
      "train", "Train a byte-level BPE tokenizer (Qwen2's pre-tokenizer, NFC) and write tokenizer.json");
  train->add_option("--vocab-size", t->trainer.vocab_size, "ids in all: special tokens + 256 bytes + merges")
      ->required();
  train->add_option("--special", t->trainer.special_tokens, "a special token (repeat the option; ids 0, 1, … in order)")
      ->allow_extra_args(false)
      ->take_all();
  train->add_option("--min-frequency", t->trainer.min_frequency, "merge only pairs seen at least this often")
      ->capture_default_str();
  train->add_flag("--no-nfc", t->no_nfc, "write no normalizer (the default is NFC, as Qwen2)");
  train->add_option("-o,--output", t->output, "where to write tokenizer.json")->required();
  train->add_option("files", t->files, "UTF-8 text files to train on")->required();
  train->callback([t] { run_train(*t); });
}

}  // namespace rlft::app
