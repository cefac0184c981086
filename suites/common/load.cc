#include "load.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

namespace ublkcheck {

std::vector<double> thread_ios(const nlohmann::json& stats) {
  std::vector<double> v;
  if (stats.contains("threads"))
    for (const auto& t : stats["threads"]) v.push_back(t.value("ios", 0.0));
  return v;
}

double jain_index(const std::vector<double>& x) {
  double s = std::accumulate(x.begin(), x.end(), 0.0), sq = 0;
  for (double v : x) sq += v * v;
  return sq == 0 ? 0 : s * s / (double(x.size()) * sq);
}

std::vector<double> minus(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> r(a.size());
  for (size_t i = 0; i < a.size(); i++) r[i] = a[i] - (i < b.size() ? b[i] : 0);
  return r;
}

std::string bar_chart_svg(const std::string& title, const std::vector<std::string>& names,
                          const std::vector<std::vector<double>>& series) {
  const int W = 640, H = 320, left = 60, bottom = 40, top = 40;
  double maxv = 1;
  size_t groups = 0;
  for (const auto& s : series) {
    groups = std::max(groups, s.size());
    for (double v : s) maxv = std::max(maxv, v);
  }
  const char* colors[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759"};
  std::string svg;
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
                "font-family='sans-serif' font-size='12'>\n<text x='%d' y='20' "
                "font-size='14'>%s</text>\n",
                W, H, left, title.c_str());
  svg += buf;
  const double gw = double(W - left - 20) / double(std::max<size_t>(groups, 1));
  const double bw = gw * 0.8 / double(std::max<size_t>(series.size(), 1));
  for (size_t si = 0; si < series.size(); si++) {
    for (size_t g = 0; g < series[si].size(); g++) {
      const double h = (H - top - bottom) * series[si][g] / maxv;
      std::snprintf(buf, sizeof(buf),
                    "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='%s'><title>%s "
                    "T%zu: %.0f I/Os</title></rect>\n",
                    left + g * gw + si * bw, H - bottom - h, bw - 2, h, colors[si % 4], names[si].c_str(), g,
                    series[si][g]);
      svg += buf;
    }
    std::snprintf(buf, sizeof(buf),
                  "<rect x='%d' y='%zu' width='10' height='10' fill='%s'/><text x='%d' "
                  "y='%zu'>%s</text>\n",
                  W - 200, 30 + si * 16, colors[si % 4], W - 185, 39 + si * 16, names[si].c_str());
    svg += buf;
  }
  for (size_t g = 0; g < groups; g++) {
    std::snprintf(buf, sizeof(buf), "<text x='%.1f' y='%d'>T%zu</text>\n", left + g * gw + gw * 0.35,
                  H - bottom + 16, g);
    svg += buf;
  }
  std::snprintf(buf, sizeof(buf),
                "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='black'/>\n<text x='5' y='%d'>%.0f"
                "</text>\n<text x='5' y='%d'>0</text>\n</svg>\n",
                left, H - bottom, W - 10, H - bottom, top + 10, maxv, H - bottom);
  svg += buf;
  return svg;
}

}  // namespace ublkcheck
