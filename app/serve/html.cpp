#include "app/serve/html.h"

#include <fmt/format.h>

#include <cctype>
#include <ctime>

#include "app/svg_plot.h"

namespace rlft::app::serve {

std::string esc(const std::string& text) {
  return xml_escape(text);
}

std::string url_encode(const std::string& text) {
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

std::string format_time_utc(double unix_s) {
  const std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string page(const PageFrame& frame, const std::string& body_html) {
  std::string user;
  if (frame.annotator.empty()) {
    user = R"(<a href="/login">sign in</a>)";
  } else {
    user = fmt::format(R"(signed in as <b id="annotator">{}</b> <form method="post" action="/logout" class="inline">)"
                       R"(<input type="hidden" name="csrf" value="{}"><button type="submit">sign out</button></form>)",
                       esc(frame.annotator), esc(frame.csrf));
  }
  return fmt::format(R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf" content="{csrf}">
<title>{title} · rlft</title>
<link rel="stylesheet" href="/static/serve.css">
<script src="/static/serve.js" defer></script>
</head><body data-refresh="{refresh}">
<header><a href="/" class="brand">rlft</a> <a href="/">runs</a> <a href="/label">label</a> <a href="/progress">progress</a>
<span class="user">{user}</span></header>
<main>
<h1>{title}</h1>
{body}
</main></body></html>
)",
                     fmt::arg("csrf", esc(frame.csrf)), fmt::arg("title", esc(frame.title)),
                     fmt::arg("refresh", frame.refresh_s), fmt::arg("user", user), fmt::arg("body", body_html));
}

const char* const kServeCss = R"css(body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}
header{background:#223;color:#eee;padding:.5em 1em}header a{color:#cde;margin-right:1em}
header .brand{font-weight:bold;color:#fff}.user{float:right}.inline{display:inline}
main{padding:0 1em 2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top}
th{background:#eef}pre,.text{white-space:pre-wrap;word-break:break-word;font:13px/1.35 ui-monospace,monospace}
.status-running{color:#06c}.status-finished{color:#080}.status-failed{color:#c00}.status-interrupted{color:#a60}
.pair{display:flex;gap:1em}.side{flex:1;border:1px solid #bbb;padding:.5em;border-radius:4px}
.prompt{background:#f6f6f6;border:1px solid #ddd;padding:.5em}.choices button{font-size:1.05em;margin:.3em}
.error{color:#c00}.muted{color:#777}kbd{border:1px solid #999;border-radius:3px;padding:0 3px}
td.completion{max-width:40em}
)css";

const char* const kServeJs = R"js(// rlft serve: refreshes #live while a run writes, and keyboard shortcuts on /label.
'use strict';
(function () {
  const seconds = Number(document.body.dataset.refresh || 0);
  const live = document.getElementById('live');
  if (seconds > 0 && live) {
    setInterval(async function () {
      if (document.visibilityState !== 'visible') return;
      try {
        const r = await fetch(location.href, {credentials: 'same-origin', headers: {'X-Rlft-Refresh': '1'}});
        if (!r.ok) return;
        const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
        const fresh = doc.getElementById('live');
        if (fresh) live.replaceChildren(...Array.from(fresh.childNodes).map((n) => document.importNode(n, true)));
      } catch (e) { /* the server may be restarting: try again next tick */ }
    }, seconds * 1000);
  }
  const form = document.getElementById('label-form');
  if (!form) return;
  const keys = {'1': 'a', 'a': 'a', 'ArrowLeft': 'a', '2': 'b', 'b': 'b', 'ArrowRight': 'b',
                't': 'tie', '3': 'tie', 'x': 'both_bad', '0': 'both_bad'};
  document.addEventListener('keydown', function (e) {
    const tag = (e.target && e.target.tagName) || '';
    if (tag === 'TEXTAREA' || tag === 'INPUT') {
      if (e.key === 'Escape') e.target.blur();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === 'r') { e.preventDefault(); form.querySelector('textarea').focus(); return; }
    const choice = keys[e.key];
    if (!choice) return;
    const button = form.querySelector('button[name="choice"][value="' + choice + '"]');
    if (button) { e.preventDefault(); button.click(); }
  });
})();
)js";

}  // namespace rlft::app::serve
