#include "self_served.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace ublkcheck {

using namespace ublk::uapi;
using namespace std::chrono_literals;

BlockIo::BlockIo(uint32_t id, bool write, const char* data, size_t len, char* at)
    : buf_(at ? 0 : len), at_(at) {
  if (data && !at) std::memcpy(buf_.data(), data, len);
  th_ = std::thread([this, id, write, len] {
    char* io = at_ ? at_ : buf_.data();
    const std::string dev = "/dev/ublkb" + std::to_string(id);
    int fd = -1;
    for (int i = 0; i < 300 && fd < 0; i++) {  // the node appears asynchronously
      fd = open(dev.c_str(), (write ? O_WRONLY : O_RDONLY) | O_DIRECT);
      if (fd < 0) std::this_thread::sleep_for(10ms);
    }
    if (fd < 0) {
      err_ = errno;
      return;
    }
    ret_ = write ? pwrite(fd, io, len, 0) : pread(fd, io, len, 0);
    if (ret_ < 0) err_ = errno;
    close(fd);
  });
}

ssize_t BlockIo::join() {
  if (th_.joinable()) th_.join();
  return ret_;
}

SelfServed::SelfServed(ublk::Control& c, uint16_t depth, uint64_t flags, uint8_t auto_buf_flags,
                       const ublk_params* params)
    : c_(c), dev_(c, 1, depth, flags | UBLK_F_NO_AUTO_PART_SCAN), auto_buf_flags_(auto_buf_flags) {
  bufs_.assign(size_t(depth) * kBufLen, 0);
  if (!dev_.ok()) return;
  if ((params ? c.set_params(dev_.id(), *params) : dev_.set_default_params()) != 0) return;
  ring_ = std::make_unique<RawIoRing>(dev_.chardev(), c.legacy());
  if (!ring_->ok()) return;
  iods_len_ = (depth * sizeof(ublksrv_io_desc) + 4095) & ~size_t(4095);
  void* m = mmap(nullptr, iods_len_, PROT_READ, MAP_SHARED, ring_->fd(), 0);
  if (m == MAP_FAILED) return;
  iods_ = static_cast<const ublksrv_io_desc*>(m);
  for (uint16_t t = 0; t < depth; t++)
    if (!fetch(t, UBLK_IO_FETCH_REQ, 0)) return;
  started_ = c.start_dev(dev_.id(), getpid()) == 0;
}

SelfServed::~SelfServed() {
  if (iods_) munmap(const_cast<ublksrv_io_desc*>(iods_), iods_len_);
  ring_.reset();
  io_.reset();
  if (started_) c_.stop_dev(dev_.id());
}

BlockIo& SelfServed::issue(bool write, const char* data, size_t len) {
  io_ = std::make_unique<BlockIo>(dev_.id(), write, data, len);
  return *io_;
}

int SelfServed::wait_request(std::chrono::milliseconds wait, int* res_out) {
  const auto end = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < end) {
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      int res = 0;
      uint32_t flags = 0;
      if (!ring_->next_cqe(it->second, 20ms, &res, &flags)) continue;
      const int tag = it->first;
      pending_.erase(it);
      if (res_out) {
        *res_out = res;
        return tag;
      }
      return res == UBLK_IO_RES_OK ? tag : -1;
    }
  }
  return -1;
}

bool SelfServed::commit(uint16_t tag, int32_t result) {
  return fetch(tag, UBLK_IO_COMMIT_AND_FETCH_REQ, result);
}

int SelfServed::stop() {
  started_ = false;
  return c_.stop_dev(dev_.id());
}

uint64_t SelfServed::fetch_addr(uint16_t tag) const {
  const uint64_t f = dev_.info().flags;
  if (f & (UBLK_F_USER_COPY | UBLK_F_SUPPORT_ZERO_COPY | UBLK_F_AUTO_BUF_REG)) return 0;
  return reinterpret_cast<uint64_t>(bufs_.data() + size_t(tag) * kBufLen);
}

bool SelfServed::fetch(uint16_t tag, uint32_t op, int32_t result) {
  const int ret =
      dev_.info().flags & UBLK_F_AUTO_BUF_REG
          ? ring_->auto_buf_cmd(op, 0, tag, ublk_auto_buf_reg{tag, auto_buf_flags_, 0, 0}, result, 50ms)
          : ring_->cmd(op, 0, tag, fetch_addr(tag), result, 50ms);
  if (ret != RawIoRing::kPending) return false;
  pending_[tag] = ring_->last_command();
  return true;
}

}  // namespace ublkcheck
