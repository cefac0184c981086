// Per-thread load of a server from its stats, and what we conclude from it.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ublkcheck {

std::vector<double> thread_ios(const nlohmann::json& stats);
// Jain's fairness index: 1 = perfectly even, 1/n = one thread does everything.
double jain_index(const std::vector<double>& x);
std::vector<double> minus(const std::vector<double>& a, const std::vector<double>& b);
// A small SVG bar chart (one bar per thread), for the results directory.
std::string bar_chart_svg(const std::string& title, const std::vector<std::string>& series_names,
                          const std::vector<std::vector<double>>& series);

}  // namespace ublkcheck
