#pragma once
// `rlft serve`: the web application over a run store (cpp-httplib). Routes:
//
//   GET  /                      runs with status                         (read)
//   GET  /runs/ID               charts, expert load, config, checkpoints (read)
//   GET  /runs/ID/rollouts      rollouts table; ?q=TEXT&step=N&offset=K  (read)
//   GET  /label[?source=S]      the next comparison for the annotator    (token)
//   POST /label                 store a choice                           (token + CSRF)
//   GET  /progress              labels per annotator, agreement          (token)
//   GET  /login, POST /login    sign in with a token (sets an HttpOnly cookie)
//   POST /logout                                                         (token + CSRF)
//   GET  /static/serve.js, /static/serve.css
//
// "read" pages need a token unless ServeOptions::public_dashboard. A token comes as the
// rlft_token cookie or as "Authorization: Bearer TOKEN". Every POST that writes carries the
// CSRF field `csrf` derived from the token and, when the browser sends Origin, a matching one.

#include <cstdint>
#include <functional>
#include <string>

namespace rlft::app::serve {

struct ServeOptions {
  std::string store_path = "runs/rlft.db";  ///< the run store (must exist)
  std::string host = "127.0.0.1";           ///< listen address; anything but loopback exposes the store
  int port = 8080;                          ///< 0: any free port (printed on start)
  bool public_dashboard = false;            ///< read-only pages without a token
  int64_t max_body_bytes = 64 * 1024;       ///< larger request bodies are refused with 413
  int refresh_s = 5;                        ///< pages of running runs re-read every refresh_s seconds (0: never)
  /// A tokenizer directory (its chat template) or a .jinja file: imported chat pairs are shown
  /// to annotators as that template renders them; "" = "role: content" paragraphs.
  std::string chat_template;

  /// Throws rlft::UsageError naming the option for a bad port, size, interval or template.
  void validate() const;
};

/// Serves until the process is stopped. Calls `on_listening(url)` once the socket is bound
/// (the command prints it). Throws rlft::Error when the store cannot be opened or the
/// address cannot be bound.
void run_server(const ServeOptions& options, const std::function<void(const std::string& url)>& on_listening);

}  // namespace rlft::app::serve
