#pragma once
// Line charts as self-contained SVG (no script, no external fonts): one chart per metric,
// x = step, y = value, with axes, ticks and a title. Used by `rlft runs plot` and by the
// web pages of `rlft serve`. Every text is XML-escaped.

#include <string>
#include <utility>
#include <vector>

namespace rlft::app {

struct Series {
  std::string name;                               ///< the metric's name: the chart's title
  std::vector<std::pair<double, double>> points;  ///< (step, value), ascending steps; non-finite values are skipped
};

struct PlotOptions {
  int width = 640;   ///< pixels per chart
  int height = 240;  ///< pixels per chart
};

/// One SVG document with the series stacked vertically. Each series' line is a
/// <polyline class="series" data-metric="NAME" data-points="N"> with one vertex per point.
std::string svg_line_charts(const std::vector<Series>& series, const PlotOptions& options = {});

/// &, <, >, " and ' as XML entities.
std::string xml_escape(const std::string& text);

}  // namespace rlft::app
