#include <doctest/doctest.h>

#include <sys/resource.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "data/feedback.h"
#include "data/feedback_hash.h"
#include "data/feedback_import.h"
#include "tests/support/temp_dir.h"
#include "tests/support/text_util.h"

using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::read_all;

using namespace rlft;
using namespace rlft::data;

namespace {

struct Fixture {
  test::TempDir dir;
  Store store = Store::open(dir.file("runs/rlft.db"), true);
  PreferenceFormatRegistry formats = builtin_preference_formats();

  ImportReport import(const std::string& name, const std::string& text, const std::string& format,
                      bool skip_invalid = false) {
    ImportOptions o;
    o.path = dir.write(name, text);
    o.format = format;
    o.skip_invalid = skip_invalid;
    return import_preferences(store, o, formats);
  }
  std::vector<PreferencePair> pairs() { return FeedbackStore(store).pairs(); }
  int64_t count(const std::string& table) {
    sqlite::Statement q(store.db(), "SELECT count(*) FROM " + table);
    q.step();
    return q.column_int(0);
  }
};

Turns text(const std::string& s) {
  Turns t;
  t.text = s;
  return t;
}

}  // namespace

TEST_CASE("SHA-256 matches the FIPS 180-4 test vectors") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256_hex(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  CHECK(sha256_hex(std::string(55, 'x')).size() == 64);  // the padding edge: 55 and 56 bytes
  CHECK(sha256_hex(std::string(56, 'x')) != sha256_hex(std::string(55, 'x')));
}

TEST_CASE("the store migrates to the feedback schema") {
  Fixture f;
  CHECK(store_schema_version() >= 2);
  CHECK(f.count("feedback_pairs") == 0);
  CHECK(f.count("feedback_labels") == 0);
  CHECK(f.count("feedback_imports") == 0);
}

TEST_CASE("pairs format: text and chat, margin and annotator, with provenance") {
  Fixture f;
  const auto r = f.import(
      "p.jsonl",
      R"({"prompt": "2+2?", "chosen": "4", "rejected": "5", "margin": 1.5, "annotator": "ann"})"
      "\n\n"
      R"({"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "hello"}], "rejected": "go away", "extra": 1})"
      "\n",
      "pairs");
  CHECK(r.n_lines == 2);
  CHECK(r.n_inserted == 2);
  CHECK(r.n_invalid == 0);
  const auto pairs = f.pairs();
  REQUIRE(pairs.size() == 2);
  CHECK(pairs[0].prompt.text == "2+2?");
  CHECK(pairs[0].chosen.text == "4");
  CHECK(pairs[0].rejected.text == "5");
  CHECK(pairs[0].margin == 1.5);
  CHECK(pairs[0].annotator == "ann");
  CHECK(pairs[0].source_file == f.dir.file("p.jsonl"));
  CHECK(pairs[0].source_line == 1);
  CHECK(pairs[0].source_format == "pairs");
  CHECK(pairs[0].imported_at > 0);
  CHECK(pairs[0].content_hash == pair_content_hash(text("2+2?"), text("4"), text("5")));
  // The second line mixes chat and text: the text reply is lifted into an assistant message.
  CHECK(pairs[1].source_line == 3);
  CHECK(pairs[1].prompt.messages == std::vector<ChatMessage>{{"user", "hi"}});
  CHECK(pairs[1].rejected.messages == std::vector<ChatMessage>{{"assistant", "go away"}});
  CHECK_FALSE(pairs[1].margin.has_value());
  CHECK(pairs[1].annotator.empty());
}

TEST_CASE("ranked lists give every implied pair; equal ranks give none") {
  Fixture f;
  const auto r = f.import("r.jsonl",
                          R"({"prompt": "p", "completions": ["a", "b", "c", "d"], "ranking": [2, 1, 3, 2]})"
                          "\n",
                          "ranked");
  // ranks: b=1; a=2, d=2; c=3 → b>a, b>d, b>c, a>c, d>c (a and d tie: no pair)
  CHECK(r.n_found == 5);
  std::set<std::pair<std::string, std::string>> got;
  for (const auto& p : f.pairs()) got.insert({p.chosen.text, p.rejected.text});
  CHECK(got ==
        std::set<std::pair<std::string, std::string>>{{"b", "a"}, {"b", "d"}, {"b", "c"}, {"a", "c"}, {"d", "c"}});
}

TEST_CASE("per-completion scores give pairs at or above the gap") {
  Fixture f;
  const auto r = f.import(
      "s.jsonl",
      R"({"instruction": "p", "completions": [{"response": "a", "overall_score": 9}, {"text": "b", "score": 8.5}, {"response": "c", "overall_score": 6}]})"
      "\n"
      R"({"prompt": "q", "completions": ["x", "y"], "scores": [1, 1.5]})"
      "\n",
      "scores");
  // gap 1: a>c (3), b>c (2.5); a-b = 0.5 is below the gap. Line 2: 0.5 apart, no pair.
  CHECK(r.n_found == 2);
  CHECK(r.n_no_pairs == 1);
  std::set<std::pair<std::string, std::string>> got;
  for (const auto& p : f.pairs()) got.insert({p.chosen.text, p.rejected.text});
  CHECK(got == std::set<std::pair<std::string, std::string>>{{"a", "c"}, {"b", "c"}});

  Fixture g;
  ImportOptions o;
  o.path = g.dir.write("s.jsonl", R"({"prompt": "p", "completions": ["x", "y"], "scores": [1, 3]})"
                                  "\n");
  o.format = "scores";
  o.score_gap = 0.5;
  o.margin_from_scores = true;
  import_preferences(g.store, o, g.formats);
  REQUIRE(g.pairs().size() == 1);
  CHECK(g.pairs()[0].chosen.text == "y");
  CHECK(g.pairs()[0].margin == 2.0);
}

TEST_CASE("Anthropic HH transcripts are split after the last shared Assistant turn") {
  Fixture f;
  nlohmann::json line = {
      {"chosen", "\n\nHuman: What is 2+2?\n\nAssistant: It is 4.\n\nHuman: Sure?\n\nAssistant: Yes, 4."},
      {"rejected", "\n\nHuman: What is 2+2?\n\nAssistant: It is 4.\n\nHuman: Sure?\n\nAssistant: No idea."}};
  f.import("hh.jsonl", line.dump() + "\n", "hh");
  const auto pairs = f.pairs();
  REQUIRE(pairs.size() == 1);
  CHECK(pairs[0].prompt.text == "\n\nHuman: What is 2+2?\n\nAssistant: It is 4.\n\nHuman: Sure?\n\nAssistant:");
  CHECK(pairs[0].chosen.text == " Yes, 4.");
  CHECK(pairs[0].rejected.text == " No idea.");
  // The prompt plus each reply gives back the transcript.
  CHECK(pairs[0].prompt.text + pairs[0].chosen.text == line["chosen"].get<std::string>());
}

TEST_CASE("a reply that shares its first words still splits at the turn") {
  Fixture f;
  nlohmann::json line = {{"chosen", "\n\nHuman: hi\n\nAssistant: Hello there, friend"},
                         {"rejected", "\n\nHuman: hi\n\nAssistant: Hello there. Go."}};
  f.import("hh.jsonl", line.dump() + "\n", "hh");
  REQUIRE(f.pairs().size() == 1);
  CHECK(f.pairs()[0].prompt.text == "\n\nHuman: hi\n\nAssistant:");
  CHECK(f.pairs()[0].chosen.text == " Hello there, friend");
}

TEST_CASE("bad lines abort the import with file:line and the field, and nothing is written") {
  struct Row {
    std::string format;
    std::string line;
    std::string error;  // after "<file>:"
  };
  const Row rows[] = {
      {"pairs", R"({"prompt": "p", "chosen": "a", "rejected": })", "2:44: malformed JSON"},
      {"pairs", R"({"prompt": "p", "chosen": "a"})", "2: field 'rejected' is missing"},
      {"pairs", R"({"prompt": "p", "chosen": 3, "rejected": "b"})",
       "2: field 'chosen' must be a string or a list of chat messages, got a number"},
      {"pairs", R"({"prompt": "", "chosen": "a", "rejected": "b"})", "2: field 'prompt' is empty"},
      {"pairs", R"({"prompt": "p", "chosen": " \n", "rejected": "b"})", "2: field 'chosen' is empty"},
      {"pairs", R"({"prompt": "p", "chosen": "same", "rejected": "same"})",
       "2: field 'rejected' is identical to 'chosen'"},
      {"pairs", R"({"prompt": "p", "chosen": [{"role": "assistant", "content": "x"}], "rejected": "x"})",
       "2: field 'rejected' is identical to 'chosen'"},
      {"pairs", "{\"prompt\": \"p\xE9\", \"chosen\": \"a\", \"rejected\": \"b\"}", "2:14: invalid UTF-8 (byte 0xE9)"},
      {"pairs", R"({"prompt": "p", "chosen": "a", "rejected": "b", "margin": "big"})",
       "2: field 'margin' must be a number, got a string"},
      {"pairs", R"({"prompt": "p", "chosen": "a", "rejected": "b", "margin": -1})",
       "2: field 'margin' is -1: must be >= 0"},
      {"pairs", R"({"prompt": "p", "chosen": "a", "rejected": "b", "annotator": 7})",
       "2: field 'annotator' must be a string, got a number"},
      {"pairs", R"({"prompt": "p", "chosen": [{"role": "assistant"}], "rejected": "b"})",
       "2: field 'chosen[0].content' is missing"},
      {"pairs", R"({"prompt": "p", "chosen": [{"role": "bot", "content": "x"}], "rejected": "b"})",
       "2: field 'chosen[0].role' is 'bot'"},
      {"pairs", R"({"prompt": "p", "chosen": [], "rejected": "b"})", "2: field 'chosen' is an empty list"},
      {"pairs", R"(["p", "a", "b"])", "2:1: expected a JSON object, got a list"},
      {"ranked", R"({"prompt": "p", "completions": ["a", "b"], "ranking": [1]})",
       "2: field 'ranking' has 1 entries: needs at least 2"},
      {"ranked", R"({"prompt": "p", "completions": ["a", "b", "c"], "ranking": [1, 2]})",
       "2: field 'ranking' has 2 entries but there are 3 completions"},
      {"ranked", R"({"prompt": "p", "completions": ["a", "b"], "ranking": [0, 1]})",
       "2: field 'ranking[0]' is 0: must be a whole number >= 1"},
      {"ranked", R"({"prompt": "p", "completions": ["a", "b"], "ranking": [1, 1.5]})", "2: field 'ranking[1]' is 1.5"},
      {"ranked", R"({"prompt": "p", "completions": ["a", "a"], "ranking": [1, 2]})",
       "2: field 'completions[1]' is identical to completions[0]"},
      {"scores", R"({"completions": ["a", "b"], "scores": [1, 2]})", "2: field 'prompt' is missing (or 'instruction')"},
      {"scores", R"({"prompt": "p", "completions": [{"text": "a"}]})",
       "2: field 'completions[0].score' is missing (or 'overall_score')"},
      {"scores", R"({"prompt": "p", "completions": [{"text": "a", "score": "9"}]})",
       "2: field 'completions[0].score' must be a number, got a string"},
      {"scores", R"({"prompt": "p", "completions": ["a", "b"], "scores": [1]})",
       "2: field 'scores' has 1 entries but there are 2 completions"},
      {"hh", R"({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "totally different"})",
       "2: field 'chosen' and 'rejected' share no prefix"},
      {"hh", R"({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: b"})",
       "2: field 'rejected' is identical to 'chosen'"},
      {"hh", R"({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant:"})",
       "2: field 'rejected' has an empty reply"},
      {"hh", R"({"chosen": ["x"], "rejected": "y"})", "2: field 'chosen' must be a string (a transcript), got a list"},
  };
  const std::map<std::string, std::string> good = {
      {"pairs", R"({"prompt": "ok", "chosen": "good", "rejected": "bad"})"},
      {"ranked", R"({"prompt": "ok", "completions": ["good", "bad"], "ranking": [1, 2]})"},
      {"scores", R"({"prompt": "ok", "completions": ["good", "bad"], "scores": [5, 1]})"},
      {"hh", R"({"chosen": "\n\nHuman: ok\n\nAssistant: good", "rejected": "\n\nHuman: ok\n\nAssistant: bad"})"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.line);
    Fixture f;
    const std::string text = good.at(r.format) + "\n" + r.line + "\n" + good.at(r.format) + "\n";
    const std::string err = error_of([&] { f.import("bad.jsonl", text, r.format); });
    CHECK(err.find(f.dir.file("bad.jsonl") + ":" + r.error) == 0);
    CHECK(f.count("feedback_pairs") == 0);  // the good first line was rolled back
    CHECK(f.count("feedback_imports") == 0);

    Fixture g;  // --skip-invalid: the good lines go in, the bad one is reported
    const auto rep = g.import("bad.jsonl", text, r.format, /*skip_invalid=*/true);
    CHECK(rep.n_invalid == 1);
    CHECK(rep.n_inserted == 1);
    CHECK(rep.n_duplicates == 1);
    REQUIRE(rep.bad.size() == 1);
    CHECK(rep.bad[0].line == 2);
    CHECK(rep.bad[0].message.find(r.error) != std::string::npos);
  }
}

TEST_CASE("the field of a bad line is reported on its own") {
  Fixture f;
  const auto rep = f.import("b.jsonl",
                            R"({"prompt": "p", "chosen": "a"})"
                            "\n",
                            "pairs", true);
  REQUIRE(rep.bad.size() == 1);
  CHECK(rep.bad[0].field == "rejected");
}

TEST_CASE("an unknown format lists the known ones") {
  Fixture f;
  CHECK(error_of([&] { f.import("x.jsonl", "{}\n", "dpo"); }) ==
        "unknown preference format 'dpo': known preference formats are hh, pairs, ranked, scores");
}

TEST_CASE("the same pair is stored once, whatever the file or the format") {
  Fixture f;
  auto a = f.import("a.jsonl",
                    R"({"prompt": "p", "chosen": "x", "rejected": "y"})"
                    "\n"
                    R"({"prompt": "p", "chosen": "x", "rejected": "y", "margin": 3})"
                    "\n",
                    "pairs");
  CHECK(a.n_inserted == 1);
  CHECK(a.n_duplicates == 1);
  auto b = f.import("b.jsonl",
                    R"({"prompt": "p", "completions": ["x", "y"], "ranking": [1, 2]})"
                    "\n",
                    "ranked");
  CHECK(b.n_inserted == 0);
  CHECK(b.n_duplicates == 1);
  // The reverse preference is a different pair, and a conflict.
  f.import("c.jsonl",
           R"({"prompt": "p", "chosen": "y", "rejected": "x"})"
           "\n",
           "pairs");
  CHECK(f.count("feedback_pairs") == 2);
  CHECK(FeedbackStore(f.store).stats().n_conflicting == 2);
}

TEST_CASE("a dry run validates and counts but writes nothing") {
  Fixture f;
  ImportOptions o;
  o.path = f.dir.write("a.jsonl", R"({"prompt": "p", "chosen": "x", "rejected": "y"})"
                                  "\n");
  o.format = "pairs";
  o.dry_run = true;
  const auto r = import_preferences(f.store, o, f.formats);
  CHECK(r.n_inserted == 1);
  CHECK(r.import_id == 0);
  CHECK(f.count("feedback_pairs") == 0);
  CHECK(f.count("feedback_imports") == 0);
}

TEST_CASE("export writes JSONL that imports back to the same pairs") {
  Fixture f;
  f.import(
      "a.jsonl",
      R"({"prompt": "p1", "chosen": "x", "rejected": "y", "margin": 0.5, "annotator": "ann"})"
      "\n"
      R"({"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "u"}], "chosen": [{"role": "assistant", "content": "c"}], "rejected": [{"role": "assistant", "content": "r"}]})"
      "\n"
      "{\"prompt\": \"unicode \xE2\x9C\x93 \\\"quoted\\\"\\n\", \"chosen\": \"a\", \"rejected\": \"b\"}\n",
      "pairs");
  std::ostringstream out;
  CHECK(export_preferences(f.store, {}, out) == 3);

  Fixture g;
  const auto r = g.import("export.jsonl", out.str(), "pairs");
  CHECK(r.n_inserted == 3);
  const auto before = f.pairs();
  const auto after = g.pairs();
  REQUIRE(after.size() == before.size());
  for (std::size_t i = 0; i < before.size(); ++i) {
    CAPTURE(i);
    CHECK(after[i].content_hash == before[i].content_hash);
    CHECK(after[i].prompt == before[i].prompt);
    CHECK(after[i].chosen == before[i].chosen);
    CHECK(after[i].rejected == before[i].rejected);
    CHECK(after[i].margin == before[i].margin);
    CHECK(after[i].annotator == before[i].annotator);
  }
  // A second export of the re-imported pairs differs only in provenance.
  std::ostringstream again;
  export_preferences(g.store, {}, again);
  auto strip_source = [](const std::string& s) {
    std::string out;
    std::istringstream in(s);
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      j.erase("source");
      out += j.dump() + "\n";
    }
    return out;
  };
  CHECK(strip_source(again.str()) == strip_source(out.str()));
  // Filters.
  std::ostringstream only;
  CHECK(export_preferences(f.store, {"", "ann", -1}, only) == 1);
}

TEST_CASE("stats summarise pairs, sources, annotators and margins") {
  Fixture f;
  f.import("a.jsonl",
           R"({"prompt": "p", "chosen": "xx", "rejected": "y", "margin": 1, "annotator": "ann"})"
           "\n"
           R"({"prompt": "q", "chosen": "xx", "rejected": "y", "margin": 3, "annotator": "ann"})"
           "\n",
           "pairs");
  f.import("b.jsonl",
           R"({"prompt": "r", "completions": ["a", "b", "c"], "ranking": [1, 2, 3]})"
           "\n",
           "ranked");
  const auto s = FeedbackStore(f.store).stats();
  CHECK(s.n_pairs == 5);
  CHECK(s.n_imports == 2);
  CHECK(s.n_with_margin == 2);
  CHECK(s.margin_min == 1);
  CHECK(s.margin_mean == 2);
  CHECK(s.margin_max == 3);
  CHECK(s.n_conflicting == 0);
  CHECK(s.mean_prompt_chars == 1);
  REQUIRE(s.sources.size() == 2);
  CHECK(s.sources[0].file == f.dir.file("b.jsonl"));
  CHECK(s.sources[0].format == "ranked");
  CHECK(s.sources[0].n_pairs == 3);
  CHECK(s.annotators == std::vector<std::pair<std::string, int64_t>>{{"", 3}, {"ann", 2}});
}

TEST_CASE("labels on pairs and on rollouts, with their checks") {
  Fixture f;
  f.import("a.jsonl",
           R"({"prompt": "p", "chosen": "x", "rejected": "y"})"
           "\n",
           "pairs");
  FeedbackStore fb(f.store);
  const int64_t pair_id = fb.pairs()[0].id;
  FeedbackLabel l;
  l.annotator = "alice";
  l.pair_id = pair_id;
  l.choice = "tie";
  l.reason = "both fine";
  const int64_t id = fb.add_label(l);
  CHECK(id > 0);

  const int64_t run = f.store.create_run({0, "r", "train", "running", "", "", "", 0, std::nullopt, ""});
  data::RolloutRecord ro;
  ro.prompt = "p";
  ro.completion = "a";
  f.store.add_rollouts(run, {ro, ro});
  FeedbackLabel lr;
  lr.annotator = "bob";
  lr.rollout_a = 1;
  lr.rollout_b = 2;
  lr.choice = "both_bad";
  fb.add_label(lr);

  const auto labels = fb.labels();
  REQUIRE(labels.size() == 2);
  CHECK(labels[0].pair_id == pair_id);
  CHECK(labels[0].choice == "tie");
  CHECK(labels[0].reason == "both fine");
  CHECK(labels[1].rollout_a == 1);
  CHECK(fb.labels(pair_id).size() == 1);
  const auto s = fb.stats();
  CHECK(s.n_labels == 2);
  CHECK(s.label_choices == std::vector<std::pair<std::string, int64_t>>{{"both_bad", 1}, {"tie", 1}});

  auto bad = l;
  bad.choice = "maybe";
  CHECK(error_of([&] { fb.add_label(bad); }).find("must be chosen, rejected, tie or both_bad") != std::string::npos);
  bad = l;
  bad.annotator = " ";
  CHECK(error_of([&] { fb.add_label(bad); }) == "a label needs an annotator");
  bad = l;
  bad.rollout_a = 1;
  bad.rollout_b = 2;
  CHECK(error_of([&] { fb.add_label(bad); }).find("not both") != std::string::npos);
  bad = l;
  bad.pair_id = 999;
  CHECK(error_of([&] { fb.add_label(bad); }) == "no preference pair with id 999");
  bad = lr;
  bad.rollout_b = 1;
  CHECK(error_of([&] { fb.add_label(bad); }).find("two different ids") != std::string::npos);
  bad = lr;
  bad.rollout_b = 77;
  CHECK(error_of([&] { fb.add_label(bad); }) == "no rollout with id 77");
}

TEST_CASE("a 100 MB line is refused with a clear error and bounded memory") {
  Fixture f;
  const std::string path = f.dir.file("huge.jsonl");
  {
    std::ofstream out(path, std::ios::binary);
    out << R"({"prompt": "p", "chosen": "ok", "rejected": "no"})"
        << "\n";
    out << R"({"prompt": "p", "chosen": ")";
    const std::string chunk(1 << 20, 'x');
    for (int i = 0; i < 100; ++i) out << chunk;
    out << R"(", "rejected": "no"})"
        << "\n";
    out << R"({"prompt": "q", "chosen": "ok", "rejected": "no"})"
        << "\n";
  }
  rusage before{};
  getrusage(RUSAGE_SELF, &before);
  ImportOptions o;
  o.path = path;
  o.format = "pairs";
  CHECK(error_of([&] { import_preferences(f.store, o, f.formats); }) ==
        path + ":2: line is longer than 16777216 bytes (the limit; raise --max-line-bytes)");
  o.skip_invalid = true;
  const auto r = import_preferences(f.store, o, f.formats);
  CHECK(r.n_inserted == 2);
  CHECK(r.n_invalid == 1);
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  CHECK((after.ru_maxrss - before.ru_maxrss) < 48 * 1024);  // KiB: far below the 100 MB line
}
