// Labeling through `rlft serve`: tokens, the CSRF check, labels in the feedback store with
// the shown order undone, progress per annotator and agreement between annotators.
#include "tests/app/serve_fixture.h"

using namespace rlft::test;

namespace {

struct Shown {
  std::string body, csrf;
};

Shown get_label(httplib::Client& c, const std::string& token, const std::string& source) {
  auto r = c.Get(("/label?source=" + source).c_str(), bearer(token));
  REQUIRE(r);
  REQUIRE(r->status == 200);
  return {r->body, csrf_of(r->body)};
}

httplib::Params form_of(const Shown& s, const std::string& choice) {
  httplib::Params p{{"csrf", s.csrf}, {"source", hidden_of(s.body, "source")}, {"choice", choice}};
  for (const char* k : {"pair_id", "rollout_a", "rollout_b"}) {
    const std::string v = hidden_of(s.body, k);
    if (!v.empty()) p.emplace(k, v);
  }
  return p;
}

std::vector<rlft::data::FeedbackLabel> labels_in(const std::string& store) {
  auto s = rlft::data::Store::open(store, false);
  return rlft::data::FeedbackStore(s).labels();
}

}  // namespace

TEST_CASE("serve token add prints a token once, stores only its hash, and revoke ends it") {
  TempDir dir;
  const std::string store = dir.file("rlft.db");
  const std::string token = add_token(store, "alice");
  CHECK(token.rfind("rlft_", 0) == 0);
  CHECK(token.size() == 69);
  {
    auto s = rlft::data::Store::open(store, false);
    rlft::sqlite::Statement q(s.db(), "SELECT token_hash FROM serve_tokens WHERE name = 'alice'");
    REQUIRE(q.step());
    CHECK(q.column_text(0).size() == 64);
    CHECK(q.column_text(0) != token);
  }
  const auto again = run_rlft({"serve", "token", "add", "alice", "--store", store});
  CHECK(again.exit_code == 1);
  CHECK(has(again.err, "has a token already"));
  CHECK(run_rlft({"serve", "token", "add", "<bob>", "--store", store}).exit_code == 1);
  CHECK(has(run_rlft({"serve", "token", "list", "--store", store}).out, "alice"));

  ServeProcess serve({"--store", store, "--public-dashboard"});
  auto c = serve.client();
  CHECK(c.Get("/label", bearer(token))->status == 200);
  CHECK(run_rlft({"serve", "token", "revoke", "alice", "--store", store}).exit_code == 0);
  CHECK(c.Get("/label", bearer(token))->status == 401);
  CHECK(has(run_rlft({"serve", "token", "list", "--store", store}).out, "(revoked)"));
  CHECK(run_rlft({"serve", "token", "revoke", "alice", "--store", store}).exit_code == 1);
  CHECK(add_token(store, "alice") != token);
}

TEST_CASE("a label needs the CSRF value and a same-site Origin, and lands in the feedback store") {
  TempDir dir;
  const std::string store = dir.file("rlft.db");
  const int64_t run = seed_store(store);
  const std::string alice = add_token(store, "alice");
  ServeProcess serve({"--store", store});
  auto c = serve.client();
  const std::string source = "run:" + std::to_string(run);
  Shown shown = get_label(c, alice, source);
  CHECK(has(shown.body, "&lt;script&gt;alert"));
  CHECK(!has(shown.body, "<script>alert"));
  CHECK(has(shown.body, R"(data-done="0" data-total="6")"));

  auto no_csrf = form_of(shown, "a");
  no_csrf.erase("csrf");
  CHECK(c.Post("/label", bearer(alice), no_csrf)->status == 403);
  auto wrong_csrf = form_of(shown, "a");
  wrong_csrf.find("csrf")->second = std::string(64, '0');
  CHECK(c.Post("/label", bearer(alice), wrong_csrf)->status == 403);
  httplib::Headers cross = bearer(alice);
  cross.emplace("Origin", "http://evil.example");
  CHECK(c.Post("/label", cross, form_of(shown, "a"))->status == 403);
  CHECK(c.Post("/label", bearer(alice), form_of(shown, "maybe"))->status == 400);
  auto long_reason = form_of(shown, "a");
  long_reason.emplace("reason", std::string(3000, 'r'));
  CHECK(c.Post("/label", bearer(alice), long_reason)->status == 400);
  auto other_run = form_of(shown, "a");
  other_run.find("source")->second = "run:999";
  CHECK(c.Post("/label", bearer(alice), other_run)->status == 404);
  CHECK(labels_in(store).empty());

  auto ok_form = form_of(shown, "b");
  ok_form.emplace("reason", "B shows its <work>");
  auto ok = c.Post("/label", bearer(alice), ok_form);
  REQUIRE(ok);
  CHECK(ok->status == 303);
  const std::string back = ok->get_header_value("Location");
  CHECK(back.rfind("/label?source=run", 0) == 0);
  CHECK(has(back, std::to_string(run) + "&saved=1"));
  auto labels = labels_in(store);
  REQUIRE(labels.size() == 1);
  CHECK(labels[0].annotator == "alice");
  CHECK(labels[0].choice == "rejected");  // b (rollout_b) is better
  CHECK(labels[0].reason == "B shows its <work>");
  CHECK(std::to_string(*labels[0].rollout_a) == hidden_of(shown.body, "rollout_a"));
  CHECK(labels[0].created_at > 0);

  Shown next = get_label(c, alice, source);
  CHECK(hidden_of(next.body, "rollout_a") != hidden_of(shown.body, "rollout_a"));
  CHECK(has(next.body, R"(data-done="1" data-total="6")"));
}

TEST_CASE("an imported pair is shown in a drawn order and the choice is stored as chosen/rejected") {
  TempDir dir;
  const std::string store = dir.file("rlft.db");
  seed_store(store);
  ServeProcess serve({"--store", store});
  auto c = serve.client();
  // Several annotators, so both orders occur; each picks the side that shows "7".
  for (const char* name : {"a1", "a2", "a3", "a4", "a5", "a6"}) {
    const std::string token = add_token(store, name);
    Shown shown = get_label(c, token, "pairs");
    const bool seven_left = shown.body.find(">7<") < shown.body.find(">8<");
    CHECK(c.Post("/label", bearer(token), form_of(shown, seven_left ? "a" : "b"))->status == 303);
    CHECK(has(get_label(c, token, "pairs").body, "id=\"done\""));
  }
  const auto labels = labels_in(store);
  REQUIRE(labels.size() == 6);
  for (const auto& l : labels) CHECK(l.choice == "chosen");
}

TEST_CASE("progress counts labels per annotator and agreement over comparisons seen by two") {
  TempDir dir;
  const std::string store = dir.file("rlft.db");
  const int64_t run = seed_store(store);
  const std::string alice = add_token(store, "alice"), bob = add_token(store, "bob");
  ServeProcess serve({"--store", store});
  auto c = serve.client();
  const std::string source = "run:" + std::to_string(run) + ":7";
  // Both label the first two comparisons: they agree on the first, not on the second.
  for (const auto& [token, choices] :
       std::vector<std::pair<std::string, std::vector<std::string>>>{{alice, {"a", "tie"}}, {bob, {"a", "both_bad"}}}) {
    for (const auto& choice : choices) {
      Shown shown = get_label(c, token, source);
      CHECK(c.Post("/label", bearer(token), form_of(shown, choice))->status == 303);
    }
  }
  auto p = c.Get("/progress", bearer(alice));
  REQUIRE(p);
  CHECK(p->status == 200);
  CHECK(has(p->body, "data-annotator=\"alice\"><td>alice</td><td class=\"num\">2</td>"));
  CHECK(has(p->body, "data-annotator=\"bob\"><td>bob</td><td class=\"num\">2</td>"));
  CHECK(has(p->body, R"(data-shared="2" data-rate="0.5000")"));
  CHECK(has(get_label(c, alice, source).body, R"(data-done="2" data-total="6")"));
  auto chooser = c.Get("/label", bearer(alice));
  CHECK(has(chooser->body, "/label?source=run:" + std::to_string(run) + ":7"));
  CHECK(c.Get("/label?source=bogus", bearer(alice))->status == 400);
}

TEST_CASE("with --chat-template an imported chat pair is shown as the template renders it") {
  TempDir dir;
  const std::string store = dir.file("rlft.db");
  {
    auto s = rlft::data::Store::open(store, true);
    rlft::data::FeedbackStore fb(s);
    rlft::data::PreferencePair pair;
    pair.prompt.messages = {{"system", "Be brief."}, {"user", "Name a prime."}};
    pair.chosen.messages = {{"assistant", "7"}};
    pair.rejected.messages = {{"assistant", "8"}};
    pair.source_file = "chat.jsonl";
    pair.source_line = 1;
    pair.source_format = "pairs";
    pair.import_id = fb.begin_import("chat.jsonl", "pairs");
    REQUIRE(fb.add_pair(pair));
  }
  const std::string tmpl = dir.write("t.jinja",
                                     "{% for m in messages %}[{{ m.role }}|{{ m.content }}]{% endfor %}"
                                     "{% if add_generation_prompt %}[assistant|{% endif %}");
  const std::string token = add_token(store, "ann");
  {
    ServeProcess serve({"--store", store, "--chat-template", tmpl});
    auto c = serve.client();
    const auto shown = get_label(c, token, "pairs");
    // The prompt with the generation prompt; each reply as what its turn adds.
    CHECK(has(shown.body, "[system|Be brief.][user|Name a prime.][assistant|"));
    CHECK(has(shown.body, "<div class=\"text\">7]</div>"));
    CHECK(has(shown.body, "<div class=\"text\">8]</div>"));
  }
  {  // Without it: role paragraphs, as before.
    ServeProcess serve({"--store", store});
    auto c = serve.client();
    const auto shown = get_label(c, token, "pairs");
    CHECK(has(shown.body, "system: Be brief."));
    CHECK_FALSE(has(shown.body, "[system|"));
  }
  {  // A template that refuses the conversation: shown without it, and the page says why.
    const std::string strict = dir.write(
        "strict.jinja", "{% if messages[0].role == 'system' %}{{ raise_exception('no system role') }}{% endif %}");
    ServeProcess serve({"--store", store, "--chat-template", strict});
    auto c = serve.client();
    const auto shown = get_label(c, token, "pairs");
    CHECK(has(shown.body, "system: Be brief."));
    CHECK(has(shown.body, "shown without the chat template: no system role"));
  }
  const auto bad = run_rlft({"serve", "--store", store, "--chat-template", dir.file("missing.jinja")});
  CHECK(bad.exit_code != 0);
  CHECK(bad.err.find("--chat-template") != std::string::npos);
}
