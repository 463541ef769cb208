#include "data/feedback_import.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <ostream>

#include "core/error.h"

namespace rlft::data {

ImportReport import_preferences(Store& store, const ImportOptions& o, const PreferenceFormatRegistry& formats) {
  const PreferenceFormat& format = formats.get(o.format);
  RLFT_CHECK(o.score_gap > 0, "the score gap must be > 0 (got {})", o.score_gap);
  LineReader reader(o.path, o.max_line_bytes);
  const std::string& file = o.path == "-" ? reader.path() : o.path;

  FeedbackStore feedback(store);
  sqlite::Transaction tx(store.db());  // all or nothing: rolled back unless committed below
  ImportReport report;
  report.import_id = feedback.begin_import(file, o.format);
  const double now = unix_now();

  auto bad_line = [&](const InputError& e) {
    if (!o.skip_invalid) throw e;
    ++report.n_invalid;
    if (report.bad.size() < o.max_reported) report.bad.push_back({e.line(), e.column(), e.field(), e.what()});
  };

  std::string line;
  for (;;) {
    const auto status = reader.next(line);
    if (status == LineReader::Status::kEnd) break;
    const int64_t line_no = reader.line_number();
    if (status == LineReader::Status::kTooLong) {
      ++report.n_lines;
      bad_line(InputError(
          file, line_no, 0, "",
          fmt::format("line is longer than {} bytes (the limit; raise --max-line-bytes)", reader.max_line_bytes())));
      continue;
    }
    if (is_blank(line)) continue;
    ++report.n_lines;
    std::vector<PreferencePair> pairs;
    try {
      pairs = format.parse(parse_json_line(line, file, line_no), o, file, line_no);
    } catch (const InputError& e) {
      bad_line(e);
      continue;
    }
    if (pairs.empty()) ++report.n_no_pairs;
    for (auto& p : pairs) {
      ++report.n_found;
      p.source_file = file;
      p.source_line = line_no;
      p.source_format = o.format;
      p.imported_at = now;
      p.import_id = report.import_id;
      if (feedback.add_pair(std::move(p)))
        ++report.n_inserted;
      else
        ++report.n_duplicates;
    }
  }
  feedback.finish_import(report.import_id, report.n_lines, report.n_inserted, report.n_duplicates, report.n_invalid);
  if (o.dry_run) {
    report.import_id = 0;
    return report;  // the transaction rolls back
  }
  tx.commit();
  return report;
}

int64_t export_preferences(Store& store, const PairFilter& filter, std::ostream& out) {
  FeedbackStore feedback(store);
  int64_t n = 0;
  feedback.for_each_pair(filter, [&](const PreferencePair& p) {
    nlohmann::ordered_json j;
    j["prompt"] = p.prompt.to_json();
    j["chosen"] = p.chosen.to_json();
    j["rejected"] = p.rejected.to_json();
    if (p.margin) j["margin"] = *p.margin;
    if (!p.annotator.empty()) j["annotator"] = p.annotator;
    j["source"] = fmt::format("{}:{}", p.source_file, p.source_line);
    out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict) << '\n';
    ++n;
  });
  RLFT_CHECK(out.good(), "writing the export failed");
  return n;
}

}  // namespace rlft::data
