#include "migrate.h"

#include <sched.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

namespace ublkcheck {

MigrationStorm::MigrationStorm(std::string comm) : comm_(std::move(comm)), th_([this] { loop(); }) {}

MigrationStorm::~MigrationStorm() {
  stop_ = true;
  th_.join();
}

void MigrationStorm::loop() {
  const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpu < 2) return;
  unsigned round = 0;
  while (!stop_) {
    std::vector<pid_t> tids;
    std::error_code ec;
    for (const auto& p : std::filesystem::directory_iterator("/proc", ec)) {
      const std::string name = p.path().filename();
      if (name.empty() || !isdigit(static_cast<unsigned char>(name[0]))) continue;
      std::ifstream c(p.path() / "comm");
      std::string comm;
      std::getline(c, comm);
      if (comm != comm_) continue;
      for (const auto& t : std::filesystem::directory_iterator(p.path() / "task", ec))
        tids.push_back(pid_t(std::stol(t.path().filename())));
    }
    for (size_t i = 0; i < tids.size(); i++) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(int((round + i) % unsigned(ncpu)), &set);
      if (sched_setaffinity(tids[i], sizeof(set), &set) == 0) moves_++;
    }
    round++;
    if (tids.empty()) usleep(10000);
  }
}

}  // namespace ublkcheck
