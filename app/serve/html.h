#pragma once
// HTML building blocks for `rlft serve`: the page frame, escaping and the one static script.
// Every string that came from a run, a rollout or an import goes through esc() before it
// reaches a page; the Content-Security-Policy set by the server forbids inline scripts, so
// an escaping slip still would not run one.

#include <string>

namespace rlft::app::serve {

/// What the frame around a page needs.
struct PageFrame {
  std::string title;      ///< plain text (escaped here)
  std::string annotator;  ///< "" when nobody is signed in
  std::string csrf;       ///< the signed-in annotator's CSRF value ("" when none)
  int refresh_s = 0;      ///< > 0: serve.js re-reads #live every refresh_s seconds
};

/// &, <, >, " and ' as entities (the same as xml_escape).
std::string esc(const std::string& text);
/// Percent-encodes everything but unreserved characters, for query strings.
std::string url_encode(const std::string& text);
/// A full HTML document: header with navigation and sign-in state, then `body_html`.
std::string page(const PageFrame& frame, const std::string& body_html);
/// "YYYY-MM-DD HH:MM:SS" in UTC.
std::string format_time_utc(double unix_s);

/// The script served at /static/serve.js: refresh of #live, keyboard shortcuts for labeling.
extern const char* const kServeJs;
/// The style sheet served at /static/serve.css.
extern const char* const kServeCss;

}  // namespace rlft::app::serve
