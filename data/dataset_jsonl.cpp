#include "data/dataset_jsonl.h"

#include <fmt/format.h>

#include <filesystem>
#include <set>

#include "core/config.h"
#include "core/error.h"

namespace rlft::data {

ChatMessage parse_chat_message(const nlohmann::json& m, const std::string& at,
                               const std::function<void(const std::string&, const std::string&)>& fail) {
  static const std::set<std::string> kRoles = {"system", "user", "assistant", "tool"};
  auto bad = [&](const std::string& field, const std::string& what) {
    fail(field, what);
    throw Error(fmt::format("{}: {}", field, what));  // fail() throws; this keeps the compiler sure
  };
  if (!m.is_object())
    bad(at, fmt::format("must be a chat message {{\"role\", \"content\"}}, got {}", json_type_name(m)));
  auto role = m.find("role");
  auto content = m.find("content");
  if (role == m.end()) bad(at + ".role", "is missing");
  if (content == m.end()) bad(at + ".content", "is missing");
  if (!role->is_string()) bad(at + ".role", fmt::format("must be a string, got {}", json_type_name(*role)));
  if (!content->is_string()) bad(at + ".content", fmt::format("must be a string, got {}", json_type_name(*content)));
  if (!kRoles.count(role->get<std::string>()))
    bad(at + ".role", fmt::format("is '{}': must be system, user, assistant or tool", role->get<std::string>()));
  return {role->get<std::string>(), content->get<std::string>()};
}

namespace {

class RowReader {
 public:
  RowReader(const nlohmann::json& row, const std::string& file, int64_t line) : row_(row), file_(file), line_(line) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw InputError(file_, line_, 0, key, fmt::format("field '{}' {}", key, what));
  }
  const nlohmann::json& required(const std::string& key) const {
    const nlohmann::json* v = json_at(row_, key);
    if (!v) fail(key, "is missing");
    return *v;
  }
  std::string text(const std::string& key, bool allow_number) const {
    const nlohmann::json& v = required(key);
    std::string s;
    if (v.is_string())
      s = v.get<std::string>();
    else if (allow_number && v.is_number())
      s = v.dump();
    else
      fail(key,
           fmt::format("must be {}, got {}", allow_number ? "a string or a number" : "a string", json_type_name(v)));
    if (is_blank(s)) fail(key, "is empty");
    return s;
  }
  std::vector<ChatMessage> messages(const std::string& key) const {
    const nlohmann::json& v = required(key);
    if (!v.is_array()) fail(key, fmt::format("must be a list of chat messages, got {}", json_type_name(v)));
    if (v.empty()) fail(key, "is an empty list");
    std::vector<ChatMessage> out;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const std::string at = fmt::format("{}[{}]", key, i);
      out.push_back(parse_chat_message(v[i], at, [this](const std::string& f, const std::string& w) { fail(f, w); }));
    }
    return out;
  }
  std::map<std::string, std::string> template_vars() const {
    std::map<std::string, std::string> vars;
    if (!row_.is_object()) return vars;
    for (auto it = row_.begin(); it != row_.end(); ++it) {
      if (it.value().is_string())
        vars[it.key()] = it.value().get<std::string>();
      else if (it.value().is_number())
        vars[it.key()] = it.value().dump();
    }
    return vars;
  }

 private:
  const nlohmann::json& row_;
  const std::string& file_;
  int64_t line_;
};

Example read_row(const nlohmann::json& row, const JsonlOptions& o, const std::string& file, const std::string& name,
                 int64_t line) {
  if (!row.is_object())
    throw InputError(file, line, 1, "", fmt::format("expected a JSON object, got {}", json_type_name(row)));
  RowReader r(row, file, line);
  const FieldMap& f = o.fields;
  Example ex;
  ex.id = f.id.empty() ? fmt::format("{}:{}", name, line) : r.text(f.id, /*allow_number=*/true);

  std::string system = f.system.empty() ? o.system_prompt : r.text(f.system, false);
  if (!f.messages.empty()) {
    ex.messages = r.messages(f.messages);
    if (ex.messages.back().role == "assistant") {
      if (!f.completion.empty())
        r.fail(f.messages, "ends with an assistant message and a completion field is mapped too: keep one");
      ex.completion = ex.messages.back().content;
      ex.messages.pop_back();
    }
    if (ex.messages.empty() || ex.messages.back().role != "user")
      r.fail(f.messages, "must end with a user message (optionally followed by one assistant message)");
    const bool has_system = ex.messages.front().role == "system";
    if (!has_system && !system.empty()) ex.messages.insert(ex.messages.begin(), {"system", system});
  } else {
    if (!system.empty()) ex.messages.push_back({"system", system});
    ex.messages.push_back({"user", r.text(f.prompt, false)});
  }

  if (o.prompt_template != "{prompt}") {
    auto vars = r.template_vars();
    vars["prompt"] = ex.messages.back().content;
    try {
      ex.messages.back().content = render_template(o.prompt_template, vars);
    } catch (const Error& e) {
      throw InputError(file, line, 0, "", fmt::format("data.jsonl.prompt_template: {}", e.what()));
    }
  }
  if (!f.answer.empty()) ex.reference = r.text(f.answer, /*allow_number=*/true);
  if (!f.completion.empty()) ex.completion = r.text(f.completion, false);
  for (const auto& [meta_name, key] : f.meta) ex.meta[meta_name] = r.required(key);
  return ex;
}

class JsonlSource : public ExampleSource {
 public:
  explicit JsonlSource(JsonlOptions o) : o_(std::move(o)) {}
  SourceData load(uint64_t) const override {
    SourceData d;
    d.examples = read_jsonl_examples(o_.path, o_);
    if (!o_.eval_path.empty()) d.eval = read_jsonl_examples(o_.eval_path, o_);
    return d;
  }
  std::string describe() const override { return fmt::format("jsonl {}", o_.path); }

 private:
  JsonlOptions o_;
};

}  // namespace

JsonlOptions JsonlOptions::from_config(const ConfigView& c) {
  JsonlOptions o;
  o.path = c.get_required<std::string>("path");
  o.eval_path = c.get<std::string>("eval_path", o.eval_path);
  const ConfigView f = c.section("fields");
  const bool messages_set = f.has("messages");
  const bool prompt_set = f.has("prompt");
  o.fields.messages = f.get<std::string>("messages", o.fields.messages);
  o.fields.prompt = f.get<std::string>("prompt", o.fields.prompt);
  if (messages_set && !o.fields.messages.empty()) {
    f.check(!prompt_set || o.fields.prompt.empty(), "prompt", "map either prompt or messages, not both");
    o.fields.prompt.clear();
  }
  o.fields.answer = f.get<std::string>("answer", o.fields.answer);
  o.fields.system = f.get<std::string>("system", o.fields.system);
  o.fields.completion = f.get<std::string>("completion", o.fields.completion);
  o.fields.id = f.get<std::string>("id", o.fields.id);
  const ConfigView meta = f.section("meta");
  for (const auto& name : meta.keys()) o.fields.meta.emplace_back(name, meta.get_required<std::string>(name));
  o.system_prompt = c.get<std::string>("system_prompt", o.system_prompt);
  o.prompt_template = c.get<std::string>("prompt_template", o.prompt_template);
  o.max_line_bytes = c.get<int64_t>("max_line_bytes", o.max_line_bytes);
  return o;
}

void JsonlOptions::validate() const {
  RLFT_CHECK_OPTION(!path.empty(), "path", path, "must name a JSONL file");
  RLFT_CHECK_OPTION(!fields.prompt.empty() || !fields.messages.empty(), "fields.prompt", fields.prompt,
                    "map the prompt (or fields.messages)");
  RLFT_CHECK_OPTION(max_line_bytes >= 1024 && max_line_bytes <= (int64_t{1} << 32), "max_line_bytes", max_line_bytes,
                    "must be in [1024, 4 GiB]");
  std::string bad;
  try {
    template_placeholders(prompt_template);
  } catch (const Error& e) {
    bad = e.what();
  }
  RLFT_CHECK_OPTION(bad.empty(), "prompt_template", prompt_template, "{}", bad);
}

std::vector<Example> read_jsonl_examples(const std::string& path, const JsonlOptions& o) {
  LineReader reader(path, static_cast<std::size_t>(o.max_line_bytes));
  const std::string name = std::filesystem::path(path).filename().string();
  std::vector<Example> out;
  std::set<std::string> ids;
  std::string line;
  for (;;) {
    const auto status = reader.next(line);
    if (status == LineReader::Status::kEnd) break;
    if (status == LineReader::Status::kTooLong)
      throw InputError(path, reader.line_number(), 0, "",
                       fmt::format("line is longer than {} bytes (the limit; raise data.jsonl.max_line_bytes)",
                                   reader.max_line_bytes()));
    if (is_blank(line)) continue;
    const nlohmann::json row = parse_json_line(line, path, reader.line_number());
    Example ex = read_row(row, o, path, name, reader.line_number());
    if (!ids.insert(ex.id).second)
      throw InputError(path, reader.line_number(), 0, o.fields.id, fmt::format("duplicate id '{}'", ex.id));
    out.push_back(std::move(ex));
  }
  RLFT_CHECK(!out.empty(), "{}: no examples (the file is empty)", path);
  return out;
}

std::unique_ptr<ExampleSource> make_jsonl_source(const ConfigView& section) {
  return std::make_unique<JsonlSource>(read_options<JsonlOptions>(section));
}

}  // namespace rlft::data
