// A 4 KiB O_DIRECT read of a block device, from its own thread, for tests of I/O a server
// holds: its errno once it ends (0: data), -1 while it still waits in the kernel.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

namespace ublkcheck {

class HeldRead {
 public:
  explicit HeldRead(const std::string& block, off_t offset = 1 << 20)
      : th_([this, block, offset] {
          int fd = open(block.c_str(), O_RDONLY | O_DIRECT);
          void* buf = nullptr;
          if (fd < 0 || posix_memalign(&buf, 4096, 4096)) {
            result_ = fd < 0 ? errno : ENOMEM;
          } else {
            ssize_t n = pread(fd, buf, 4096, offset);
            result_ = n == 4096 ? 0 : n < 0 ? errno : ENODATA;
          }
          free(buf);
          if (fd >= 0) close(fd);
        }) {}
  ~HeldRead() {
    if (th_.joinable()) th_.detach();  // still in the kernel: the runner's hang dump shows it
  }
  HeldRead(const HeldRead&) = delete;
  HeldRead& operator=(const HeldRead&) = delete;

  int result() const { return result_; }
  // Waits up to `limit` for the read to end; its result, or -1 if it still waits.
  int wait(std::chrono::milliseconds limit) {
    for (auto t0 = std::chrono::steady_clock::now();
         result_ == -1 && std::chrono::steady_clock::now() - t0 < limit;)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (result_ != -1 && th_.joinable()) th_.join();
    return result_;
  }

 private:
  std::atomic<int> result_{-1};
  std::thread th_;
};

}  // namespace ublkcheck
