#include "app/svg_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace rlft::app {
namespace {

/// "Nice" tick values (1, 2, 5 × 10^k) covering [lo, hi] with about `n` ticks.
std::vector<double> nice_ticks(double lo, double hi, int n) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / n;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step)
    out.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  return out;
}

std::string fmt_num(double v) {
  return fmt::format("{:.4g}", v);
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string svg_line_charts(const std::vector<Series>& series, const PlotOptions& o) {
  const int w = o.width, h = o.height;
  const int left = 64, right = 16, top = 28, bottom = 36;
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n",
      w, h * static_cast<int>(series.size()), w, h * static_cast<int>(series.size()));
  for (std::size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    std::vector<std::pair<double, double>> pts;
    for (const auto& p : s.points)
      if (std::isfinite(p.first) && std::isfinite(p.second)) pts.push_back(p);
    const int y0 = static_cast<int>(i) * h;
    svg += fmt::format("<g transform=\"translate(0,{})\">\n", y0);
    svg += fmt::format("<text x=\"{}\" y=\"18\" font-size=\"13\" font-weight=\"bold\">{}</text>\n", left,
                       xml_escape(s.name));
    const double px0 = left, px1 = w - right, py0 = top, py1 = h - bottom;
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>\n", px0, py0,
                       px1 - px0, py1 - py0);
    if (pts.empty()) {
      svg +=
          fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#666\">no data</text>\n", (px0 + px1) / 2 - 20, (py0 + py1) / 2);
      svg += fmt::format("<polyline class=\"series\" data-metric=\"{}\" data-points=\"0\" points=\"\"/>\n</g>\n",
                         xml_escape(s.name));
      continue;
    }
    double xmin = pts.front().first, xmax = pts.back().first, ymin = pts[0].second, ymax = pts[0].second;
    for (const auto& p : pts) ymin = std::min(ymin, p.second), ymax = std::max(ymax, p.second);
    if (xmax == xmin) xmin -= 1, xmax += 1;
    if (ymax == ymin) ymin -= std::max(1e-9, std::abs(ymin) * 0.1), ymax += std::max(1e-9, std::abs(ymax) * 0.1);
    const double pad = (ymax - ymin) * 0.05;
    ymin -= pad, ymax += pad;
    auto X = [&](double x) { return px0 + (x - xmin) / (xmax - xmin) * (px1 - px0); };
    auto Y = [&](double y) { return py1 - (y - ymin) / (ymax - ymin) * (py1 - py0); };
    for (double t : nice_ticks(ymin, ymax, 4))
      svg += fmt::format(
          "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#eee\"/>"
          "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
          px0, px1, Y(t), Y(t), px0 - 4, Y(t) + 4, fmt_num(t));
    for (double t : nice_ticks(xmin, xmax, 6))
      svg +=
          fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", X(t), py1 + 14, fmt_num(t));
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\" fill=\"#666\">step</text>\n",
                       (px0 + px1) / 2, h - 6);
    std::string coords;
    for (const auto& p : pts) coords += fmt::format("{:.1f},{:.1f} ", X(p.first), Y(p.second));
    if (!coords.empty()) coords.pop_back();
    svg += fmt::format(
        "<polyline class=\"series\" data-metric=\"{}\" data-points=\"{}\" fill=\"none\" stroke=\"#1f77b4\" "
        "stroke-width=\"1.5\" points=\"{}\"/>\n</g>\n",
        xml_escape(s.name), pts.size(), coords);
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace rlft::app
