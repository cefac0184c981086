// Hand-driven I/O commands on /dev/ublkcN, for tests of the I/O command contract (which
// task may FETCH/COMMIT what, with which buffer address) without the bundled server.
#pragma once

#include <liburing.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

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
  // FETCH / COMMIT_AND_FETCH of a UBLK_F_AUTO_BUF_REG device: the registration `reg`
  // travels in the SQE's own addr (ublk_validate_io_buf()), not in the command's.
  int auto_buf_cmd(uint32_t nr, uint16_t q, uint16_t tag, const ublk::uapi::ublk_auto_buf_reg& reg,
                   int32_t result = 0, std::chrono::milliseconds wait = std::chrono::milliseconds(200));
  // A batch command (UBLK_U_IO_PREP/COMMIT/FETCH_IO_CMDS): header `h`, the elements at
  // `elems` (`len` bytes). `multishot`: IORING_URING_CMD_MULTISHOT with buffers of group 0
  // (what FETCH_IO_CMDS needs; see provide_buffers()).
  int batch(uint32_t op, const ublk::uapi::ublk_batch_io& h, const void* elems, uint32_t len,
            bool multishot = false, std::chrono::milliseconds wait = std::chrono::milliseconds(200));
  // The user_data of the last command sent (to wait for a pending one's later CQEs).
  uint64_t last_command() const { return seq_; }
  // Waits up to `wait` for a CQE of command `ud` (one that arrived while waiting for
  // another command counts): its result and flags, or false on timeout.
  bool next_cqe(uint64_t ud, std::chrono::milliseconds wait, int* res, uint32_t* flags);
  // Buffer group 0: `count` (a power of two) buffers of `len` bytes for multishot commands.
  bool provide_buffers(unsigned count, unsigned len);
  const uint8_t* provided(unsigned bid) const { return bufs_.data() + size_t(bid) * buf_len_; }
  // A sparse table of `n` fixed buffers, for REGISTER_IO_BUF (zero copy) to fill.
  bool register_sparse_buffers(unsigned n);
  // READ_FIXED / WRITE_FIXED of `len` bytes at `off` of `file`, with fixed buffer `index`
  // (a request's pages once REGISTER_IO_BUF put them there): the result.
  int rw_fixed(bool write, int file, unsigned len, off_t off, int index);
  int fd() const { return fd_; }

 private:
  struct Cqe {
    uint64_t ud;
    int res;
    uint32_t flags;
  };
  io_uring_sqe* io_cmd_sqe(uint32_t nr, uint16_t q, uint16_t tag, uint64_t addr, int32_t result);
  int submit_and_wait(io_uring_sqe* e, std::chrono::milliseconds wait);
  int fd_ = -1;
  io_uring ring_{};
  bool ring_ok_ = false;
  bool legacy_ = false;
  uint64_t seq_ = 0;
  std::deque<Cqe> early_;  // CQEs of other commands seen while waiting for one
  void* buf_ring_ = nullptr;
  std::vector<uint8_t> bufs_;
  unsigned buf_len_ = 0;
};

}  // namespace ublkcheck
