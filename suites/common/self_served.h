// A started ublk device whose server is the test itself: every tag FETCHed by the calling
// thread (which makes it the daemon), the partition scan off so START_DEV reads nothing.
// For tests that hold a request while they probe the driver with it: user copy, buffer
// registration, commit edge cases. One queue.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "data.h"
#include "raw_io.h"

namespace ublkcheck {

// One O_DIRECT read or write of `len` bytes at 0 of /dev/ublkb<id>, from a thread (it
// blocks until the server completes it). The I/O uses its own aligned buffer (filled from
// `data` for a write), or `at`, the caller's memory (e.g. shared memory the driver may
// match), when given.
class BlockIo {
 public:
  BlockIo(uint32_t id, bool write, const char* data, size_t len, char* at = nullptr);
  ~BlockIo() { join(); }
  // The pread/pwrite result (-1 with err() set on failure).
  ssize_t join();
  int err() const { return err_; }
  const char* data() { return at_ ? at_ : buf_.data(); }

 private:
  AlignedBuf buf_;
  char* at_;
  ssize_t ret_ = -1;
  int err_ = 0;
  std::thread th_;
};

class SelfServed {
 public:
  static constexpr size_t kBufLen = 512 << 10;  // per tag, for plain copy: max_io_buf_bytes
  // `auto_buf_flags`: with UBLK_F_AUTO_BUF_REG, the flags of each FETCH's auto
  // registration (its buffer index is the tag).
  // `params`: what SET_PARAMS sets (default: default_params() of a 64 MiB disk).
  SelfServed(ublk::Control& c, uint16_t depth, uint64_t flags, uint8_t auto_buf_flags = 0,
             const ublk::uapi::ublk_params* params = nullptr);
  // Closing the char device first fails any request still held (a test that stopped
  // half-way), so the client thread ends and STOP_DEV / DEL_DEV cannot wait on it.
  ~SelfServed();
  bool ok() const { return started_; }
  uint32_t id() const { return dev_.id(); }
  RawIoRing& ring() { return *ring_; }
  int fd() const { return ring_->fd(); }
  // The request descriptor of `tag` (the read-only mapping the driver fills).
  const ublk::uapi::ublksrv_io_desc& iod(uint16_t tag) const { return iods_[tag]; }
  char* buf(uint16_t tag) { return bufs_.data() + size_t(tag) * kBufLen; }
  // One client read (or write of `data`) of `len` bytes.
  BlockIo& issue(bool write, const char* data = nullptr, size_t len = 4096);
  // The tag a request arrived on (its FETCH completed with UBLK_IO_RES_OK), or -1 after
  // `wait`. With `res`, any completion counts and its result goes there (e.g.
  // UBLK_IO_RES_NEED_GET_DATA).
  int wait_request(std::chrono::milliseconds wait = std::chrono::seconds(10), int* res = nullptr);
  // COMMIT_AND_FETCH with `result`: the request completes, the tag is fetched again.
  bool commit(uint16_t tag, int32_t result);
  // STOP_DEV: the device is DEAD from then on.
  int stop();

 private:
  uint64_t fetch_addr(uint16_t tag) const;
  bool fetch(uint16_t tag, uint32_t op, int32_t result);
  ublk::Control& c_;
  RawDevice dev_;
  uint8_t auto_buf_flags_;
  std::unique_ptr<RawIoRing> ring_;
  std::unique_ptr<BlockIo> io_;
  std::vector<char> bufs_;
  const ublk::uapi::ublksrv_io_desc* iods_ = nullptr;
  size_t iods_len_ = 0;
  std::map<uint16_t, uint64_t> pending_;  // tag -> user_data of its queued FETCH / COMMIT
  bool started_ = false;
};

}  // namespace ublkcheck
