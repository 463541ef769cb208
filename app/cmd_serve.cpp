// `rlft serve`: the web page that shows runs and collects people's preferences
// (app/serve/server.h), and `rlft serve token add|list|revoke` for annotators' tokens.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <memory>

#include "app/cli.h"
#include "app/serve/html.h"
#include "app/serve/server.h"
#include "app/serve/tokens.h"
#include "core/error.h"
#include "data/store.h"

namespace rlft::app {
namespace {

struct TokenArgs {
  std::string store = "runs/rlft.db";
  std::string name;
};

void add_token_commands(CLI::App& serve) {
  CLI::App* token = serve.add_subcommand("token", "annotators' sign-in tokens (stored hashed)");
  token->require_subcommand(1);
  auto args = std::make_shared<TokenArgs>();

  CLI::App* add = token->add_subcommand("add", "create a token for annotator NAME and print it (shown once)");
  add->add_option("NAME", args->name, "the annotator's name (letters, digits, _ - .)")->required();
  add->add_option("--store", args->store, "the SQLite store (created when missing)")->capture_default_str();
  add->callback([args] {
    data::Store store = data::Store::open(args->store, /*create=*/true);
    const std::string token = serve::add_token(store, args->name);
    std::cout << token << "\n";
    std::fprintf(stderr, "rlft: token for annotator '%s' stored (hashed) in %s; it is shown only now\n",
                 args->name.c_str(), args->store.c_str());
  });

  CLI::App* list = token->add_subcommand("list", "annotators with tokens");
  list->add_option("--store", args->store, "the SQLite store")->capture_default_str();
  list->callback([args] {
    data::Store store = data::Store::open(args->store, /*create=*/false);
    const auto tokens = serve::list_tokens(store);
    if (tokens.empty()) std::cout << "no annotator tokens in " << args->store << "\n";
    for (const auto& t : tokens)
      std::cout << fmt::format("{:<24} created {} UTC{}\n", t.name, serve::format_time_utc(t.created_at),
                               t.revoked ? "  (revoked)" : "");
  });

  CLI::App* revoke = token->add_subcommand("revoke", "revoke annotator NAME's token");
  revoke->add_option("NAME", args->name, "the annotator's name")->required();
  revoke->add_option("--store", args->store, "the SQLite store")->capture_default_str();
  revoke->callback([args] {
    data::Store store = data::Store::open(args->store, /*create=*/false);
    serve::revoke_token(store, args->name);
    std::cout << fmt::format("revoked the token of '{}'\n", args->name);
  });
}

}  // namespace

void add_serve_command(CLI::App& app) {
  CLI::App* serve = app.add_subcommand("serve", "A web page to watch runs and to collect human preferences");
  auto o = std::make_shared<serve::ServeOptions>();
  serve->add_option("--store", o->store_path, "the run store")->capture_default_str();
  serve->add_option("--host", o->host, "address to listen on (loopback only unless you say otherwise)")
      ->capture_default_str();
  serve->add_option("--port", o->port, "port; 0 picks a free one (printed)")->capture_default_str();
  serve->add_flag("--public-dashboard", o->public_dashboard,
                  "let anyone who reaches the port read runs without a token");
  serve->add_option("--max-body-bytes", o->max_body_bytes, "larger request bodies are refused (413)")
      ->capture_default_str();
  serve->add_option("--refresh-s", o->refresh_s, "pages of running runs refresh this often (0: never)")
      ->capture_default_str();
  serve->add_option("--chat-template", o->chat_template,
                    "show imported chat pairs as this template renders them: a tokenizer directory or a .jinja file");
  add_token_commands(*serve);
  serve->callback([serve, o] {
    if (serve->got_subcommand("token")) return;
    serve::run_server(*o, [&](const std::string& url) {
      std::cout << "rlft serve: listening on " << url << std::endl;
      if (o->host != "127.0.0.1" && o->host != "localhost" && o->host != "::1")
        std::fprintf(stderr,
                     "rlft serve: warning: listening on %s, not loopback: anyone who reaches it can try tokens\n",
                     o->host.c_str());
    });
  });
}

}  // namespace rlft::app
