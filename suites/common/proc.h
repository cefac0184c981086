// Running helper processes (ublk-fixture, fio) with a bounded wait: a test never hangs on
// a child; on timeout the child's process group is SIGKILLed and the result says so.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace ublkcheck {

struct ProcResult {
  int status = -1;  // exit code, or 128+signal
  bool timed_out = false;
  std::string out;               // stdout
  std::string err;               // stderr
  std::string describe() const;  // for assertion messages
};

ProcResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
               const std::vector<std::string>& extra_env = {});

// A child running in the background (fio under a crash test).
class Background {
 public:
  explicit Background(const std::vector<std::string>& argv);
  ~Background();  // kills and reaps if still running
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  // Waits up to `timeout`; kills on expiry.
  ProcResult wait(std::chrono::milliseconds timeout);
  bool running();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
  bool reaped_ = false;
  int status_ = -1;
};

// Runs `fn` (a blocking control command, say) in a forked child and returns its int, or
// nullopt if it had not returned after `timeout`: the child is then SIGKILLed, which
// ends an interruptible wait in the kernel (an uninterruptible one outlives the test). For commands an older
// driver may block in forever (6.1: START_DEV waits for FETCHes before it checks its arguments).
std::optional<int> call_in_child(const std::function<int()>& fn, std::chrono::milliseconds timeout);

std::string shell_quote(const std::vector<std::string>& argv);

// Whether `program` is on the guest's PATH (tests that need mkfs.* SKIP without it).
bool have_program(const std::string& program);

}  // namespace ublkcheck
