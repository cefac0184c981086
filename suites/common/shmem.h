// UBLK_F_SHMEM_ZC helpers: REG_BUF / UNREG_BUF control commands, and shared memory the way
// a server gets it to share with its clients (a memfd, mapped shared).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

#include "ctrl.h"
#include "raw_io.h"

namespace ublkcheck {

// REG_BUF of [addr, addr+len): the buffer's index, or -errno.
inline int reg_buf(ublk::Control& c, uint32_t id, uint64_t addr, uint64_t len, uint32_t flags = 0,
                   uint32_t reserved = 0) {
  ublk::uapi::ublk_shmem_buf_reg r{addr, len, flags, reserved};
  ublk::uapi::ublksrv_ctrl_cmd cmd = dev_cmd(id, &r, sizeof(r));
  return c.raw(ublk::uapi::UBLK_U_CMD_REG_BUF, cmd);
}

inline int unreg_buf(ublk::Control& c, uint32_t id, int64_t index) {
  ublk::uapi::ublksrv_ctrl_cmd cmd = dev_cmd(id);
  cmd.data[0] = uint64_t(index);
  return c.raw(ublk::uapi::UBLK_U_CMD_UNREG_BUF, cmd);
}

struct SharedPages {
  explicit SharedPages(size_t n) : len(n * 4096) {
    int fd = memfd_create("ublkcheck-shmem", MFD_CLOEXEC);
    if (fd >= 0 && ftruncate(fd, off_t(len)) == 0)
      p = static_cast<char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    if (fd >= 0) close(fd);
  }
  ~SharedPages() {
    if (p != MAP_FAILED) munmap(p, len);
  }
  SharedPages(const SharedPages&) = delete;
  SharedPages& operator=(const SharedPages&) = delete;
  bool ok() const { return p != MAP_FAILED; }
  uint64_t addr(size_t off = 0) const { return reinterpret_cast<uint64_t>(p) + off; }
  char* p = static_cast<char*>(MAP_FAILED);
  size_t len;
};

}  // namespace ublkcheck
