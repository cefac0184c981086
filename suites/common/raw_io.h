// Hand-driven I/O commands on /dev/ublkcN, for tests of the I/O command contract (which
// task may FETCH/COMMIT what, with which buffer address) without the bundled server.
#pragma once

#include <liburing.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "ctrl.h"

namespace ublkcheck {

// What a raw ADD_DEV asks for: `queues` x `depth`, 512 KiB I/Os, any free id, `flags` as given.
ublk::uapi::ublksrv_ctrl_dev_info dev_info(uint16_t queues, uint16_t depth, uint64_t flags);

// A control command for device `id` (no queue) with `len` bytes at `buf`.
ublk::uapi::ublksrv_ctrl_cmd dev_cmd(uint32_t id, void* buf = nullptr, uint16_t len = 0);
// GET_DEV_INFO without the char-device path check of GET_DEV_INFO2 (whose path lookup
// fails with ENOENT once /dev/ublkcN is gone, before the id is released): 0 while the id exists.
int dev_info_ret(ublk::Control& c, uint32_t id);

// START_USER_RECOVERY of a device whose server was killed, retried while the dead server's
// /dev/ublkcN is still being released (the driver says EBUSY until then), up to 10 s.
int start_user_recovery_after_release(ublk::Control& c, uint32_t dev_id);

// A device added with ADD_DEV (+ SET_PARAMS) but not started; deleted on scope exit.
class RawDevice {
 public:
  RawDevice(ublk::Control& c, uint16_t queues, uint16_t depth, uint64_t flags);
  // ADD_DEV with `info` as given (dev_info() plus the caller's fields), IOCTL_ENCODE added.
  RawDevice(ublk::Control& c, const ublk::uapi::ublksrv_ctrl_dev_info& info);
  ~RawDevice();
  int add_result() const { return add_ret_; }
  bool ok() const { return add_ret_ == 0; }
  uint32_t id() const { return info_.dev_id; }
  const ublk::uapi::ublksrv_ctrl_dev_info& info() const { return info_; }
  int set_default_params();
  std::string chardev() const { return "/dev/ublkc" + std::to_string(info_.dev_id); }

 private:
  ublk::Control& c_;
  ublk::uapi::ublksrv_ctrl_dev_info info_{};
  int add_ret_ = -1;
};

// One io_uring on one open /dev/ublkcN. Each call submits one command and waits briefly
// for its completion: a FETCH the driver accepted stays queued, reported as kPending.
class RawIoRing {
 public:
  static constexpr int kPending = 1 << 30;
  explicit RawIoRing(const std::string& chardev, bool legacy = false);
  // A second ring on the same open char device (it allows one opener), e.g. for another
  // thread: the driver tells tasks apart, not files.
  RawIoRing(const RawIoRing& shared_fd_from, bool legacy);
  ~RawIoRing();
  bool ok() const { return fd_ >= 0 && ring_ok_; }
  int cmd(uint32_t nr, uint16_t q, uint16_t tag, uint64_t addr = 0, int32_t result = 0,
          std::chrono::milliseconds wait = std::chrono::milliseconds(200));
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  io_uring ring_{};
  bool ring_ok_ = false;
  bool legacy_ = false;
  uint64_t seq_ = 0;
};

}  // namespace ublkcheck
