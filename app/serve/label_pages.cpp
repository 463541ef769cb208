#include "app/serve/label_pages.h"

#include <fmt/format.h>

#include "app/serve/html.h"

namespace rlft::app::serve {

std::string label_sources_body(data::Store& store) {
  sqlite::Statement pairs(store.db(), "SELECT count(*) FROM feedback_pairs");
  pairs.step();
  std::string out = "<p>Choose what to compare.</p><ul id=\"sources\">";
  out += fmt::format(R"(<li><a href="/label?source=pairs">imported preference pairs</a> ({} pairs)</li>)",
                     pairs.column_int(0));
  sqlite::Statement runs(store.db(),
                         "SELECT r.id, r.name, count(o.id), coalesce(max(o.step), 0) FROM runs r JOIN rollouts o ON "
                         "o.run_id = r.id GROUP BY r.id ORDER BY r.id");
  while (runs.step()) {
    const int64_t id = runs.column_int(0);
    out += fmt::format(R"(<li><a href="/label?source=run:{id}">run {name}</a> ({n} rollouts; newest step: )"
                       R"(<a href="/label?source=run:{id}:{last}">step {last}</a>)</li>)",
                       fmt::arg("id", id), fmt::arg("name", esc(runs.column_text(1))),
                       fmt::arg("n", runs.column_int(2)), fmt::arg("last", runs.column_int(3)));
  }
  return out + "</ul>";
}

std::string label_body(const LabelSource& source, const std::optional<Comparison>& c, const SourceProgress& progress,
                       const std::string& csrf, const std::string& notice) {
  std::string out = fmt::format(
      R"(<p>source <code>{src}</code> · your progress <span id="progress" data-done="{done}" data-total="{total}">)"
      R"({done} / {total}</span> · <a href="/label">other sources</a> · <a href="/progress">everyone's progress</a></p>)",
      fmt::arg("src", esc(source.to_string())), fmt::arg("done", progress.n_done), fmt::arg("total", progress.n_total));
  if (!notice.empty()) out += fmt::format(R"(<p class="muted" id="notice">{}</p>)", esc(notice));
  if (!c) return out + R"(<p id="done">Nothing left to label here. Thank you!</p>)";
  std::string target;
  if (c->pair_id)
    target = fmt::format(R"(<input type="hidden" name="pair_id" value="{}">)", *c->pair_id);
  else
    target = fmt::format(
        R"(<input type="hidden" name="rollout_a" value="{}"><input type="hidden" name="rollout_b" value="{}">)",
        c->rollout_a, c->rollout_b);
  out += fmt::format(R"html(<p class="muted" id="context">{ctx}</p>
<div class="prompt"><b>Prompt</b><div class="text" id="prompt">{prompt}</div></div>
<div class="pair">
<div class="side" id="left"><b>A</b> <kbd>1</kbd><div class="text">{left}</div></div>
<div class="side" id="right"><b>B</b> <kbd>2</kbd><div class="text">{right}</div></div>
</div>
<form method="post" action="/label" id="label-form">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="source" value="{src}">{target}
<p><textarea name="reason" rows="2" cols="80" maxlength="2000" placeholder="reason (optional; r to type, Esc to leave)"></textarea></p>
<p class="choices">
<button type="submit" name="choice" value="a">A is better <kbd>1</kbd></button>
<button type="submit" name="choice" value="b">B is better <kbd>2</kbd></button>
<button type="submit" name="choice" value="tie">tie <kbd>t</kbd></button>
<button type="submit" name="choice" value="both_bad">both bad <kbd>x</kbd></button>
</p></form>)html",
                     fmt::arg("ctx", esc(c->context)), fmt::arg("prompt", esc(c->prompt)),
                     fmt::arg("left", esc(c->left)), fmt::arg("right", esc(c->right)), fmt::arg("csrf", esc(csrf)),
                     fmt::arg("src", esc(source.to_string())), fmt::arg("target", target));
  return out;
}

std::string progress_body(data::Store& store) {
  std::string rows;
  for (const auto& p : annotator_progress(store)) {
    rows += fmt::format(
        R"(<tr data-annotator="{0}"><td>{0}</td><td class="num">{1}</td><td>{2}</td><td>{3}</td><td>{4}</td><td>{5}</td><td>{6} UTC</td></tr>)",
        esc(p.annotator), p.n_labels, p.n_a, p.n_b, p.n_tie, p.n_both_bad, format_time_utc(p.last_at));
  }
  const Agreement a = label_agreement(store);
  std::string agreement =
      a.n_shared == 0
          ? std::string(R"(<p id="agreement" data-shared="0">No comparison has labels from two annotators yet.</p>)")
          : fmt::format(
                R"(<p id="agreement" data-shared="{}" data-rate="{:.4f}">{} comparisons labeled by more than one )"
                R"(annotator; {} of {} annotator pairs agree ({:.1f}%).</p>)",
                a.n_shared, a.rate(), a.n_shared, a.n_agreeing, a.n_annotator_pairs, 100.0 * a.rate());
  return fmt::format(
      R"(<div id="live"><table id="annotators"><thead><tr><th>annotator</th><th>labels</th>)"
      R"(<th>chosen / a</th><th>rejected / b</th><th>tie</th><th>both bad</th><th>last</th></tr></thead>)"
      R"(<tbody>{}</tbody></table>{}</div>)",
      rows, agreement);
}

}  // namespace rlft::app::serve
