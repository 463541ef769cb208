#include "app/serve/server.h"

#include <fmt/format.h>
#include <httplib.h>

#include <filesystem>
#include <mutex>
#include <optional>

#include "app/serve/dashboard.h"
#include "app/serve/html.h"
#include "app/serve/label_pages.h"
#include "app/serve/labeling.h"
#include "app/serve/tokens.h"
#include "core/error.h"
#include "core/log.h"
#include "data/feedback.h"

namespace rlft::app::serve {
namespace fs = std::filesystem;
namespace {

constexpr const char* kCookie = "rlft_token";
constexpr std::size_t kMaxReasonChars = 2000;

struct Session {
  std::string annotator;
  std::string csrf;
};

std::string token_of(const httplib::Request& req) {
  const std::string auth = req.get_header_value("Authorization");
  if (auth.rfind("Bearer ", 0) == 0) return auth.substr(7);
  const std::string cookies = req.get_header_value("Cookie");
  const std::string key = std::string(kCookie) + "=";
  for (std::size_t pos = 0; pos < cookies.size();) {
    std::size_t end = cookies.find(';', pos);
    if (end == std::string::npos) end = cookies.size();
    std::string item = cookies.substr(pos, end - pos);
    item.erase(0, item.find_first_not_of(' '));
    if (item.rfind(key, 0) == 0) return item.substr(key.size());
    pos = end + 1;
  }
  return "";
}

void send_html(httplib::Response& res, int status, const std::string& html) {
  res.status = status;
  res.set_content(html, "text/html; charset=utf-8");
}

std::optional<int64_t> int_param(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return std::nullopt;
  const std::string v = req.get_param_value(name);
  if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::stoll(v);
}

/// --chat-template: a tokenizer directory's template or a .jinja file (none for "").
std::optional<tokenizer::ChatTemplate> load_display_template(const std::string& path) {
  if (path.empty()) return std::nullopt;
  if (fs::is_directory(path)) {
    auto t = tokenizer::ChatTemplate::from_tokenizer_dir(path);
    RLFT_CHECK_AS(UsageError, t.has_value(),
                  "--chat-template {}: the directory has no chat template (chat_template.jinja or "
                  "tokenizer_config.json's chat_template)",
                  path);
    return t;
  }
  return tokenizer::ChatTemplate::from_file(path);
}

/// Only a local path may follow a sign-in (no "//host" or "http://…").
std::string safe_next(const std::string& next) {
  if (next.size() < 1 || next[0] != '/' || (next.size() > 1 && (next[1] == '/' || next[1] == '\\'))) return "/";
  return next;
}

class ServeApp {
 public:
  explicit ServeApp(const ServeOptions& options)
      : options_(options),
        store_(data::Store::open(options.store_path, /*create=*/false)),
        chat_template_(load_display_template(options.chat_template)) {}

  void install(httplib::Server& svr) {
    svr.set_payload_max_length(static_cast<std::size_t>(options_.max_body_bytes));
    svr.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
      res.set_header("Content-Security-Policy",
                     "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                     "frame-ancestors 'none'; form-action 'self'; base-uri 'none'");
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_header("Referrer-Policy", "same-origin");
      res.set_header("Cache-Control", "no-store");
    });
    svr.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (res.body.empty())
        send_html(res, res.status, fmt::format("<!doctype html><title>{0}</title><h1>HTTP {0}</h1>", res.status));
    });
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      }
      log::warn("serve: {}", what);
      send_html(res, 500, "<!doctype html><title>error</title><h1>500</h1><pre>" + esc(what) + "</pre>");
    });

    svr.Get("/static/serve.js", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(kServeJs, "text/javascript; charset=utf-8");
    });
    svr.Get("/static/serve.css", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(kServeCss, "text/css; charset=utf-8");
    });
    svr.Get("/login", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      send_html(res, 200, login_page(session(req), safe_next(req.get_param_value("next")), ""));
    });
    svr.Post("/login", [this](const httplib::Request& req, httplib::Response& res) { login(req, res); });
    svr.Post("/logout", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      const auto s = session(req);
      if (!s) return refuse(req, res, std::nullopt);
      if (!csrf_ok(req, res, *s)) return;
      res.set_header("Set-Cookie", fmt::format("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", kCookie));
      res.set_redirect("/login", 303);
    });
    svr.Get("/", [this](const httplib::Request& req, httplib::Response& res) {
      read_page(req, res, [&](const Session& s) {
        return page({"runs", s.annotator, s.csrf, options_.refresh_s}, runs_body(store_));
      });
    });
    svr.Get(R"(/runs/(\d{1,18}))", [this](const httplib::Request& req, httplib::Response& res) {
      read_page(req, res, [&](const Session& s) {
        const int64_t id = std::stoll(req.matches[1]);
        const data::RunRecord run = require_run(store_, id);
        const int refresh = run.status == "running" ? options_.refresh_s : 0;
        return page({"run " + run.name, s.annotator, s.csrf, refresh}, run_body(store_, id));
      });
    });
    svr.Get(R"(/runs/(\d{1,18})/rollouts)", [this](const httplib::Request& req, httplib::Response& res) {
      read_page(req, res, [&](const Session& s) {
        const int64_t id = std::stoll(req.matches[1]);
        RolloutQuery q;
        q.search = req.get_param_value("q");
        q.step = int_param(req, "step");
        q.offset = int_param(req, "offset").value_or(0);
        const std::string title = "rollouts of " + require_run(store_, id).name;
        return page({title, s.annotator, s.csrf, 0}, rollouts_body(store_, id, q));
      });
    });
    svr.Get("/progress", [this](const httplib::Request& req, httplib::Response& res) {
      read_page(req, res, [&](const Session& s) {
        return page({"labeling progress", s.annotator, s.csrf, options_.refresh_s}, progress_body(store_));
      });
    });
    svr.Get("/label", [this](const httplib::Request& req, httplib::Response& res) { label_get(req, res); });
    svr.Post("/label", [this](const httplib::Request& req, httplib::Response& res) { label_post(req, res); });
  }

 private:
  /// The signed-in annotator, from a valid token; call with mu_ held.
  std::optional<Session> session(const httplib::Request& req) {
    const std::string token = token_of(req);
    const auto who = annotator_for_token(store_, token);
    if (!who) return std::nullopt;
    return Session{*who, csrf_for_token(token)};
  }

  std::string login_page(const std::optional<Session>& s, const std::string& next, const std::string& error) {
    std::string body;
    if (!error.empty()) body += fmt::format(R"(<p class="error" id="error">{}</p>)", esc(error));
    body +=
        fmt::format(R"(<form method="post" action="/login" id="login-form"><input type="hidden" name="next" value="{}">
<p><label>annotator token <input type="password" name="token" size="72" autocomplete="off" autofocus></label>
<button type="submit">sign in</button></p></form>
<p class="muted">Tokens come from <code>rlft serve token add NAME</code>.</p>)",
                    esc(next));
    return page({"sign in", s ? s->annotator : "", s ? s->csrf : "", 0}, body);
  }

  void refuse(const httplib::Request& req, httplib::Response& res, const std::optional<Session>& s) {
    send_html(res, 401, login_page(s, safe_next(req.path), "Sign in with your annotator token to continue."));
  }

  /// CSRF: the form's csrf field must match the token's, and a browser's Origin this host.
  bool csrf_ok(const httplib::Request& req, httplib::Response& res, const Session& s) {
    const std::string origin = req.get_header_value("Origin");
    const bool origin_ok = origin.empty() || origin == "http://" + req.get_header_value("Host");
    if (!origin_ok || !constant_time_equal(req.get_param_value("csrf"), s.csrf)) {
      send_html(res, 403,
                page({"refused", s.annotator, s.csrf, 0},
                     R"(<p class="error">Refused: the form's CSRF check failed. Reload the page and try again.</p>)"));
      return false;
    }
    return true;
  }

  template <class Render>
  void read_page(const httplib::Request& req, httplib::Response& res, Render render) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto s = session(req);
    if (!s && !options_.public_dashboard) return refuse(req, res, s);
    try {
      send_html(res, 200, render(s.value_or(Session{})));
    } catch (const Error& e) {
      send_html(res, 404,
                page({"not found", s ? s->annotator : "", s ? s->csrf : "", 0},
                     fmt::format(R"(<p class="error">{}</p>)", esc(e.what()))));
    }
  }

  void login(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string origin = req.get_header_value("Origin");
    if (!origin.empty() && origin != "http://" + req.get_header_value("Host")) {
      return send_html(res, 403, login_page(std::nullopt, "/", "Refused: sign-in from another site."));
    }
    const std::string token = req.get_param_value("token");
    const auto who = annotator_for_token(store_, token);
    if (!who)
      return send_html(res, 401,
                       login_page(std::nullopt, safe_next(req.get_param_value("next")), "Unknown or revoked token."));
    res.set_header("Set-Cookie", fmt::format("{}={}; Path=/; HttpOnly; SameSite=Strict", kCookie, token));
    res.set_redirect(safe_next(req.get_param_value("next")), 303);
  }

  void label_get(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto s = session(req);
    if (!s) return refuse(req, res, s);
    if (!req.has_param("source"))
      return send_html(res, 200, page({"label", s->annotator, s->csrf, 0}, label_sources_body(store_)));
    LabelSource source;
    try {
      source = LabelSource::parse(req.get_param_value("source"));
    } catch (const Error& e) {
      return send_html(res, 400,
                       page({"label", s->annotator, s->csrf, 0}, "<p class=\"error\">" + esc(e.what()) + "</p>"));
    }
    const auto c = next_comparison(store_, source, s->annotator, chat_template_ ? &*chat_template_ : nullptr);
    const std::string notice = req.has_param("saved") ? "Saved." : "";
    send_html(res, 200,
              page({"label", s->annotator, s->csrf, 0},
                   label_body(source, c, source_progress(store_, source, s->annotator), s->csrf, notice)));
  }

  void label_post(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto s = session(req);
    if (!s) return refuse(req, res, s);
    if (!csrf_ok(req, res, *s)) return;
    auto bad = [&](const std::string& why) {
      send_html(res, 400,
                page({"label", s->annotator, s->csrf, 0}, "<p class=\"error\" id=\"error\">" + esc(why) + "</p>"));
    };
    const std::string choice = req.get_param_value("choice");
    const std::string reason = req.get_param_value("reason");
    if (choice != "a" && choice != "b" && choice != "tie" && choice != "both_bad")
      return bad(fmt::format("choice '{}': must be a, b, tie or both_bad", choice));
    if (reason.size() > kMaxReasonChars)
      return bad(fmt::format("the reason has {} bytes; at most {}", reason.size(), kMaxReasonChars));
    LabelSource source;
    try {
      source = LabelSource::parse(req.get_param_value("source"));
    } catch (const Error& e) {
      return bad(e.what());
    }
    const auto c = find_comparison(store_, source, s->annotator, int_param(req, "pair_id"),
                                   int_param(req, "rollout_a").value_or(0), int_param(req, "rollout_b").value_or(0),
                                   chat_template_ ? &*chat_template_ : nullptr);
    if (!c)
      return send_html(
          res, 404,
          page({"label", s->annotator, s->csrf, 0}, "<p class=\"error\">No such comparison in this source.</p>"));
    data::FeedbackLabel label;
    label.annotator = s->annotator;
    if (c->pair_id)
      label.pair_id = c->pair_id;
    else
      label.rollout_a = c->rollout_a, label.rollout_b = c->rollout_b;
    label.choice = store_choice(*c, choice);
    label.reason = reason;
    data::FeedbackStore(store_).add_label(label);
    res.set_redirect("/label?source=" + url_encode(source.to_string()) + "&saved=1", 303);
  }

  ServeOptions options_;
  data::Store store_;
  std::optional<tokenizer::ChatTemplate> chat_template_;
  std::mutex mu_;  ///< one SQLite connection, used by one request at a time
};

}  // namespace

void ServeOptions::validate() const {
  RLFT_CHECK_AS(UsageError, port >= 0 && port <= 65535, "--port {}: must be 0 (any free port) to 65535", port);
  RLFT_CHECK_AS(UsageError, max_body_bytes >= 1024 && max_body_bytes <= (64 << 20),
                "--max-body-bytes {}: must be 1024 to 67108864", max_body_bytes);
  RLFT_CHECK_AS(UsageError, refresh_s >= 0 && refresh_s <= 3600, "--refresh-s {}: must be 0 to 3600", refresh_s);
  RLFT_CHECK_AS(UsageError, !host.empty(), "--host is empty");
  RLFT_CHECK_AS(UsageError, chat_template.empty() || fs::exists(chat_template),
                "--chat-template {}: no such file or directory", chat_template);
}

void run_server(const ServeOptions& options, const std::function<void(const std::string&)>& on_listening) {
  options.validate();
  ServeApp app(options);
  httplib::Server svr;
  app.install(svr);
  int port = options.port;
  if (port == 0) {
    port = svr.bind_to_any_port(options.host);
    RLFT_CHECK(port > 0, "cannot listen on {} (any port)", options.host);
  } else {
    RLFT_CHECK(svr.bind_to_port(options.host, port),
               "cannot listen on {}:{} (in use, or not an address of this machine)", options.host, port);
  }
  on_listening(fmt::format("http://{}:{}/", options.host, port));
  RLFT_CHECK(svr.listen_after_bind(), "the server on {}:{} stopped with an error", options.host, port);
}

}  // namespace rlft::app::serve
