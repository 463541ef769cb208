// `rlft serve` over HTTP, as a real child process on loopback: every read endpoint, sign-in,
// refusals without a token, escaping of rollout text, bounded request bodies.
#include <algorithm>
#include <fstream>
#include <regex>

#include "tests/app/serve_fixture.h"
#include "tests/rl/trainer_test_util.h"

using namespace rlft::test;

TEST_CASE("serve refuses every page but sign-in and static files without a token") {
  TempDir dir;
  const std::string store = dir.file("rlft.db");
  const int64_t run = seed_store(store);
  add_token(store, "alice");
  ServeProcess serve({"--store", store});
  auto c = serve.client();
  for (const std::string& path :
       std::vector<std::string>{"/", "/runs/" + std::to_string(run), "/runs/" + std::to_string(run) + "/rollouts",
                                std::string("/label"), std::string("/label?source=pairs"), std::string("/progress")}) {
    auto r = c.Get(path.c_str());
    REQUIRE(r);
    CHECK_MESSAGE(r->status == 401, path);
    CHECK_MESSAGE(has(r->body, "login-form"), path);
    CHECK_MESSAGE(!has(r->body, "grpo-&lt;demo&gt;"), path);
  }
  auto wrong = c.Get("/", bearer("rlft_not-a-token"));
  REQUIRE(wrong);
  CHECK(wrong->status == 401);
  for (const char* path : {"/login", "/static/serve.js", "/static/serve.css"}) {
    auto r = c.Get(path);
    REQUIRE(r);
    CHECK_MESSAGE(r->status == 200, path);
  }
  auto js = c.Get("/static/serve.js");
  CHECK(has(js->get_header_value("Content-Type"), "javascript"));
  CHECK(has(js->body, "label-form"));
  auto post = c.Post("/label", httplib::Params{{"choice", "a"}, {"source", "pairs"}});
  REQUIRE(post);
  CHECK(post->status == 401);
  auto logout = c.Post("/logout", httplib::Params{});
  REQUIRE(logout);
  CHECK(logout->status == 401);
  CHECK(c.Get("/no/such/page")->status == 404);
}

TEST_CASE("serve shows runs, charts, expert load, config and rollouts to a signed-in reader, escaped") {
  TempDir dir;
  const std::string store = dir.file("rlft.db");
  const int64_t run = seed_store(store);
  const std::string token = add_token(store, "alice");
  ServeProcess serve({"--store", store});
  auto c = serve.client();

  auto runs = c.Get("/", bearer(token));
  REQUIRE(runs);
  CHECK(runs->status == 200);
  CHECK(has(runs->body, "grpo-&lt;demo&gt;"));
  CHECK(!has(runs->body, "grpo-<demo>"));
  CHECK(has(runs->body, "status-running"));
  CHECK(has(runs->body, "data-refresh=\"5\""));
  CHECK(has(runs->get_header_value("Content-Security-Policy"), "script-src 'self'"));
  CHECK(has(runs->body, "id=\"annotator\">alice<"));

  auto page = c.Get(("/runs/" + std::to_string(run)).c_str(), bearer(token));
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(has(page->body, R"(data-metric="reward/mean" data-points="7")"));
  CHECK(has(page->body, R"(data-metric="kl" data-points="7")"));
  CHECK(has(page->body, R"(data-metric="moe/balance/layer0" data-points="7")"));
  CHECK(!has(page->body, R"(data-metric="moe/load/)"));  // those are the heat map
  CHECK(has(page->body, R"(class="heatmap" data-layer="0" data-experts="4" data-columns="7")"));
  const std::regex cell(R"(<rect [^>]*fill="rgb\()");
  CHECK(std::distance(std::sregex_iterator(page->body.begin(), page->body.end(), cell), std::sregex_iterator()) == 28);
  CHECK(has(page->body, "group_size: 4"));
  CHECK(has(page->body, "id=\"live\""));

  CHECK(c.Get("/runs/999", bearer(token))->status == 404);

  auto rollouts = c.Get(("/runs/" + std::to_string(run) + "/rollouts").c_str(), bearer(token));
  REQUIRE(rollouts);
  CHECK(rollouts->status == 200);
  CHECK(has(rollouts->body, "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; &amp; more"));
  CHECK(!has(rollouts->body, "<script>alert"));
  CHECK(has(rollouts->body, "answer=3<br>format=0.5"));
  const std::regex row("<tr data-rollout=");
  auto count_rows = [&](const std::string& body) {
    return std::distance(std::sregex_iterator(body.begin(), body.end(), row), std::sregex_iterator());
  };
  CHECK(count_rows(rollouts->body) == 12);
  auto search = c.Get(("/runs/" + std::to_string(run) + "/rollouts?q=" + "%3Cscript").c_str(), bearer(token));
  REQUIRE(search);
  CHECK(count_rows(search->body) == 1);
  CHECK(has(search->body, "value=\"&lt;script\""));
  auto other_step = c.Get(("/runs/" + std::to_string(run) + "/rollouts?step=3").c_str(), bearer(token));
  CHECK(count_rows(other_step->body) == 0);
}

TEST_CASE("serve signs in with a token into an HttpOnly cookie and refuses a wrong one") {
  TempDir dir;
  const std::string store = dir.file("rlft.db");
  seed_store(store);
  const std::string token = add_token(store, "alice");
  ServeProcess serve({"--store", store});
  auto c = serve.client();
  auto bad = c.Post("/login", httplib::Params{{"token", "rlft_guess"}});
  REQUIRE(bad);
  CHECK(bad->status == 401);
  CHECK(has(bad->body, "Unknown or revoked token"));
  auto evil = c.Post("/login", httplib::Headers{{"Origin", "http://evil.example"}}, httplib::Params{{"token", token}});
  CHECK(evil->status == 403);
  auto ok = c.Post("/login", httplib::Params{{"token", token}, {"next", "//evil.example/"}});
  REQUIRE(ok);
  CHECK(ok->status == 303);
  CHECK(ok->get_header_value("Location") == "/");
  const std::string cookie = ok->get_header_value("Set-Cookie");
  CHECK(has(cookie, "HttpOnly"));
  CHECK(has(cookie, "SameSite=Strict"));
  auto home = c.Get("/", httplib::Headers{{"Cookie", "other=1; " + cookie.substr(0, cookie.find(';'))}});
  CHECK(home->status == 200);
  // Sign-out needs the CSRF value too.
  const httplib::Headers with_cookie{{"Cookie", cookie.substr(0, cookie.find(';'))}};
  CHECK(c.Post("/logout", with_cookie, httplib::Params{})->status == 403);
  auto out = c.Post("/logout", with_cookie, httplib::Params{{"csrf", csrf_of(home->body)}});
  CHECK(out->status == 303);
  CHECK(has(out->get_header_value("Set-Cookie"), "Max-Age=0"));
}

TEST_CASE("serve refuses request bodies over --max-body-bytes with 413") {
  TempDir dir;
  const std::string store = dir.file("rlft.db");
  seed_store(store);
  const std::string token = add_token(store, "alice");
  ServeProcess serve({"--store", store, "--max-body-bytes", "4096"});
  auto c = serve.client();
  const std::string big(8192, 'x');
  auto r = c.Post("/label", bearer(token), "reason=" + big, "application/x-www-form-urlencoded");
  REQUIRE(r);
  CHECK(r->status == 413);
  auto login = c.Post("/login", "token=" + big, "application/x-www-form-urlencoded");
  REQUIRE(login);
  CHECK(login->status == 413);
}

TEST_CASE("--public-dashboard opens the read-only pages, never labeling") {
  TempDir dir;
  const std::string store = dir.file("rlft.db");
  const int64_t run = seed_store(store);
  ServeProcess serve({"--store", store, "--public-dashboard"});
  auto c = serve.client();
  CHECK(c.Get("/")->status == 200);
  CHECK(c.Get(("/runs/" + std::to_string(run)).c_str())->status == 200);
  CHECK(c.Get(("/runs/" + std::to_string(run) + "/rollouts").c_str())->status == 200);
  CHECK(c.Get("/progress")->status == 200);
  CHECK(c.Get("/label")->status == 401);
  CHECK(c.Post("/label", httplib::Params{{"choice", "a"}})->status == 401);
}

TEST_CASE("rlft serve refuses bad options with exit code 2, and a missing store with 1") {
  TempDir dir;
  CHECK(run_rlft({"serve", "--store", dir.file("none.db"), "--port", "70000"}).exit_code == 2);
  const auto missing = run_rlft({"serve", "--store", dir.file("none.db"), "--port", "0"});
  CHECK(missing.exit_code == 1);
  CHECK(has(missing.err, "none.db"));
}

TEST_CASE("the run page says whether the policy trained LoRA adapters: rank and trainable parameters") {
  TempDir dir;
  const std::string yaml = dir.file("job.yaml");
  std::ofstream(yaml) << rlft::test::tiny_job_yaml(dir.path(), "lora-run", "lora:\n  rank: 4\n  alpha: 8\n");
  const std::string full_yaml = dir.write("full.yaml", rlft::test::tiny_job_yaml(dir.path(), "full-run"));
  for (const auto& config : {yaml, full_yaml}) {
    const auto r = run_rlft({"sft", config, "--set", "sft.steps=1"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  }
  const std::string token = add_token(dir.file("rlft.db"), "alice");
  ServeProcess serve({"--store", dir.file("rlft.db")});
  auto c = serve.client();
  auto store = rlft::data::Store::open(dir.file("rlft.db"), false);
  auto lora = c.Get(("/runs/" + std::to_string(store.find_run("lora-run")->id)).c_str(), bearer(token));
  REQUIRE(lora);
  CHECK(lora->status == 200);
  CHECK(has(lora->body, "policy: LoRA r = 4 (alpha 8) · "));
  CHECK(!has(lora->body, R"(data-metric="model/)"));
  const std::regex counts(R"(· ([0-9,]+) trainable of ([0-9,]+) parameters)");
  std::smatch m;
  REQUIRE(std::regex_search(lora->body, m, counts));
  auto number = [](std::string s) {
    s.erase(std::remove(s.begin(), s.end(), ','), s.end());
    return std::stod(s);
  };
  CHECK(number(m[1]) > 0);
  CHECK(number(m[1]) < 0.5 * number(m[2]));
  auto full = c.Get(("/runs/" + std::to_string(store.find_run("full-run")->id)).c_str(), bearer(token));
  REQUIRE(full);
  CHECK(has(full->body, "policy: full fine-tuning · "));
}

TEST_CASE("the run page of an async GRPO run shows the staleness and the rollout beside training per step") {
  TempDir dir;
  const std::string yaml = dir.write("async.yaml", rlft::test::tiny_job_yaml(dir.path(), "async-run"));
  const auto r = run_rlft({"train", yaml, "--set", "grpo.steps=3", "--set", "grpo.rollout.mode=async"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const std::string token = add_token(dir.file("rlft.db"), "alice");
  ServeProcess serve({"--store", dir.file("rlft.db")});
  auto c = serve.client();
  auto store = rlft::data::Store::open(dir.file("rlft.db"), false);
  auto page = c.Get(("/runs/" + std::to_string(store.find_run("async-run")->id)).c_str(), bearer(token));
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(has(page->body, R"(<p id="rollout-stage">rollout: async · sampled up to 1 step(s) back · )"));
  CHECK(has(page->body, R"(data-metric="rollout/staleness")"));
  CHECK(has(page->body, R"(data-metric="time/rollout_overlap")"));
  // On a rollout rank of its own (rlft launch), sync: the line says where and how far back.
  const auto ranks = run_rlft({"launch", "--nproc", "2", "--", "train", yaml, "--set", "grpo.steps=2", "--set",
                               "distributed.rollout_ranks=1", "--set", "run.name=ranks-run", "--set",
                               "run.output_dir=" + dir.file("ranks-run")});
  REQUIRE_MESSAGE(ranks.exit_code == 0, ranks.err);
  page = c.Get(("/runs/" + std::to_string(store.find_run("ranks-run")->id)).c_str(), bearer(token));
  REQUIRE(page);
  CHECK(
      has(page->body, R"(<p id="rollout-stage">rollout: sync on 1 rollout rank(s) · sampled up to 0 step(s) back · )"));
  CHECK_FALSE(has(page->body, R"(data-metric="rollout/ranks")"));
}
