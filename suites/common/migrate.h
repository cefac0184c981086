// Moves processes between CPUs as fast as it can while it lives: submitters that change
// CPU in the middle of a plug put requests of two hardware queues into one batch, the
// condition the seed panic needed. Targets processes by command name (e.g. "fio").
#pragma once

#include <atomic>
#include <string>
#include <thread>

namespace ublkcheck {

class MigrationStorm {
 public:
  explicit MigrationStorm(std::string comm);
  ~MigrationStorm();
  unsigned long moves() const { return moves_.load(); }

 private:
  void loop();
  std::string comm_;
  std::atomic<bool> stop_{false};
  std::atomic<unsigned long> moves_{0};
  std::thread th_;
};

}  // namespace ublkcheck
