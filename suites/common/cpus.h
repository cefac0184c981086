// CPU lists as the kernel prints them (sysfs cpu_list, /proc Cpus_allowed_list).
#pragma once

#include <string>
#include <vector>

namespace ublkcheck {

// "0-1,3" -> {0, 1, 3}, in the order written (ascending, as the kernel writes them).
std::vector<int> parse_cpu_list(const std::string& s);

}  // namespace ublkcheck
