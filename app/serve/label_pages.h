#pragma once
// The HTML of the labeling pages: the choice of source, one comparison with its form, and
// the progress/agreement page. Every text from rollouts and imports is escaped.

#include <string>

#include "app/serve/labeling.h"
#include "data/store.h"

namespace rlft::app::serve {

/// The sources an annotator can pick: imported pairs and each run with rollouts.
std::string label_sources_body(data::Store& store);
/// One comparison with its form (field csrf carries `csrf`), or a "done" note when `c` is empty.
std::string label_body(const LabelSource& source, const std::optional<Comparison>& c, const SourceProgress& progress,
                       const std::string& csrf, const std::string& notice);
/// Labels per annotator and agreement between annotators.
std::string progress_body(data::Store& store);

}  // namespace rlft::app::serve
