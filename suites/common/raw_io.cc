#include "raw_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace ublkcheck {

using namespace ublk::uapi;

ublk::uapi::ublksrv_ctrl_dev_info dev_info(uint16_t queues, uint16_t depth, uint64_t flags) {
  ublk::uapi::ublksrv_ctrl_dev_info i{};
  i.nr_hw_queues = queues;
  i.queue_depth = depth;
  i.max_io_buf_bytes = 512 << 10;
  i.dev_id = UINT32_MAX;
  i.flags = flags;
  return i;
}

ublk::uapi::ublksrv_ctrl_cmd dev_cmd(uint32_t id, void* buf, uint16_t len) {
  ublksrv_ctrl_cmd cmd{};
  cmd.dev_id = id;
  cmd.queue_id = uint16_t(-1);
  cmd.addr = reinterpret_cast<uint64_t>(buf);
  cmd.len = len;
  return cmd;
}

int dev_info_ret(ublk::Control& c, uint32_t id) {
  ublksrv_ctrl_dev_info info{};
  ublksrv_ctrl_cmd cmd = dev_cmd(id, &info, sizeof(info));
  return c.raw(UBLK_U_CMD_GET_DEV_INFO, cmd);
}

int start_user_recovery_after_release(ublk::Control& c, uint32_t dev_id) {
  int ret = -EBUSY;
  for (int i = 0; i < 500 && ret == -EBUSY; i++) {
    ret = c.start_user_recovery(dev_id);
    if (ret == -EBUSY) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return ret;
}

RawDevice::RawDevice(ublk::Control& c, uint16_t queues, uint16_t depth, uint64_t flags)
    : RawDevice(c, dev_info(queues, depth, flags)) {}

RawDevice::RawDevice(ublk::Control& c, const ublk::uapi::ublksrv_ctrl_dev_info& info) : c_(c), info_(info) {
  if (!c.legacy()) info_.flags |= UBLK_F_CMD_IOCTL_ENCODE;
  add_ret_ = c_.add_dev(&info_);
}

RawDevice::~RawDevice() {
  // Not bounded on purpose: on 6.1 this DEL_DEV (after the test closed a ring with FETCHes
  // queued) waits uninterruptibly, holding the driver's control mutex, so a bounded call
  // would only move the hang to the next test. Hanging here keeps the blame on this test;
  // the runner dumps the blocked tasks and boots a fresh guest.
  if (add_ret_ == 0) c_.del_dev(info_.dev_id);
}

int RawDevice::set_default_params() {
  return c_.set_params(info_.dev_id, ublk::default_params(64 << 20, 9, info_.max_io_buf_bytes));
}

RawIoRing::RawIoRing(const std::string& chardev, bool legacy) : legacy_(legacy) {
  for (int i = 0; i < 300 && fd_ < 0; i++) {
    fd_ = open(chardev.c_str(), O_RDWR | O_CLOEXEC);
    if (fd_ < 0) usleep(10000);  // devtmpfs node appears asynchronously
  }
  ring_ok_ = io_uring_queue_init(64, &ring_, 0) == 0;
}

RawIoRing::RawIoRing(const RawIoRing& other, bool legacy) : legacy_(legacy) {
  fd_ = dup(other.fd_);
  ring_ok_ = io_uring_queue_init(64, &ring_, 0) == 0;
}

RawIoRing::~RawIoRing() {
  if (ring_ok_) io_uring_queue_exit(&ring_);
  if (buf_ring_) munmap(buf_ring_, 4096);
  if (fd_ >= 0) close(fd_);
}

io_uring_sqe* RawIoRing::io_cmd_sqe(uint32_t nr, uint16_t q, uint16_t tag, uint64_t addr, int32_t result) {
  io_uring_sqe* e = io_uring_get_sqe(&ring_);
  if (!e) return nullptr;
  io_uring_prep_rw(IORING_OP_URING_CMD, e, fd_, nullptr, 0, 0);
  e->cmd_op = legacy_ ? nr : ioc(IOC_READ | IOC_WRITE, 'u', nr, sizeof(ublksrv_io_cmd));
  auto* c = reinterpret_cast<ublksrv_io_cmd*>(e->cmd);
  c->q_id = q;
  c->tag = tag;
  c->result = result;
  c->addr = addr;
  return e;
}

int RawIoRing::cmd(uint32_t nr, uint16_t q, uint16_t tag, uint64_t addr, int32_t result,
                   std::chrono::milliseconds wait) {
  io_uring_sqe* e = io_cmd_sqe(nr, q, tag, addr, result);
  return e ? submit_and_wait(e, wait) : -EBUSY;
}

int RawIoRing::auto_buf_cmd(uint32_t nr, uint16_t q, uint16_t tag, const ublk_auto_buf_reg& reg,
                            int32_t result, std::chrono::milliseconds wait) {
  io_uring_sqe* e = io_cmd_sqe(nr, q, tag, 0, result);
  if (!e) return -EBUSY;
  e->addr = ublk_auto_buf_reg_to_sqe_addr(reg);
  return submit_and_wait(e, wait);
}

int RawIoRing::batch(uint32_t op, const ublk_batch_io& h, const void* elems, uint32_t len, bool multishot,
                     std::chrono::milliseconds wait) {
  io_uring_sqe* e = io_uring_get_sqe(&ring_);
  if (!e) return -EBUSY;
  io_uring_prep_rw(IORING_OP_URING_CMD, e, fd_, elems, len, 0);
  e->cmd_op = op;
  std::memcpy(e->cmd, &h, sizeof(h));
  if (multishot) {
    e->uring_cmd_flags = 1u << 1;  // IORING_URING_CMD_MULTISHOT (after prep_rw clears it)
    e->flags |= IOSQE_BUFFER_SELECT;
    e->buf_group = 0;
  }
  return submit_and_wait(e, wait);
}

int RawIoRing::submit_and_wait(io_uring_sqe* e, std::chrono::milliseconds wait) {
  const uint64_t me = ++seq_;
  e->user_data = me;
  io_uring_submit(&ring_);
  int res = 0;
  uint32_t flags = 0;
  return next_cqe(me, wait, &res, &flags) ? res : kPending;
}

bool RawIoRing::next_cqe(uint64_t ud, std::chrono::milliseconds wait, int* res, uint32_t* flags) {
  for (auto it = early_.begin(); it != early_.end(); ++it) {
    if (it->ud != ud) continue;
    *res = it->res;
    *flags = it->flags;
    early_.erase(it);
    return true;
  }
  __kernel_timespec ts{wait.count() / 1000, (wait.count() % 1000) * 1000000};
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    if (io_uring_wait_cqe_timeout(&ring_, &cqe, &ts) < 0) return false;
    const Cqe got{cqe->user_data, cqe->res, cqe->flags};
    io_uring_cqe_seen(&ring_, cqe);
    if (got.ud == ud) {
      *res = got.res;
      *flags = got.flags;
      return true;
    }
    early_.push_back(got);
  }
}

bool RawIoRing::register_sparse_buffers(unsigned n) {
  return io_uring_register_buffers_sparse(&ring_, n) == 0;
}

int RawIoRing::rw_fixed(bool write, int file, unsigned len, off_t off, int index) {
  io_uring_sqe* e = io_uring_get_sqe(&ring_);
  if (!e) return -EBUSY;
  if (write)
    io_uring_prep_write_fixed(e, file, nullptr, len, uint64_t(off), index);
  else
    io_uring_prep_read_fixed(e, file, nullptr, len, uint64_t(off), index);
  return submit_and_wait(e, std::chrono::seconds(5));
}

bool RawIoRing::provide_buffers(unsigned count, unsigned len) {
  void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  buf_ring_ = p;
  auto* br = static_cast<io_uring_buf_ring*>(p);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(br);
  reg.ring_entries = count;
  reg.bgid = 0;
  if (io_uring_register_buf_ring(&ring_, &reg, 0) < 0) return false;
  io_uring_buf_ring_init(br);
  buf_len_ = len;
  bufs_.assign(size_t(count) * len, 0);
  for (unsigned i = 0; i < count; i++)
    io_uring_buf_ring_add(br, bufs_.data() + size_t(i) * len, len, uint16_t(i), io_uring_buf_ring_mask(count),
                          int(i));
  io_uring_buf_ring_advance(br, int(count));
  return true;
}

}  // namespace ublkcheck
