// UBLK_F_USER_COPY's read()/write() contract on /dev/ublkcN (ublk_user_copy(), 7.2): the
// offset names (queue, tag, byte); only a live user-copy device, an existing queue and tag,
// a request the server owns, an offset inside it and the request's own direction are
// accepted. The test is the server itself (every tag FETCHed by this thread, partition scan
// off), so it can hold a request while it probes the char device.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "data.h"
#include "env.h"
#include "raw_io.h"

using namespace ublkcheck;
using namespace ublk;
using namespace ublk::uapi;
using namespace std::chrono_literals;

namespace {

constexpr uint16_t kDepth = 2;
constexpr size_t kLen = 4096;

// One O_DIRECT read or write of the block device, from a thread (it blocks until the
// server commits it).
class BlockIo {
 public:
  BlockIo(uint32_t id, bool write, const char* data) : buf_(kLen) {
    if (data) std::memcpy(buf_.data(), data, kLen);
    th_ = std::thread([this, id, write] {
      const std::string dev = "/dev/ublkb" + std::to_string(id);
      int fd = -1;
      for (int i = 0; i < 300 && fd < 0; i++) {  // the node appears asynchronously
        fd = open(dev.c_str(), (write ? O_WRONLY : O_RDONLY) | O_DIRECT);
        if (fd < 0) std::this_thread::sleep_for(10ms);
      }
      if (fd < 0) return;
      ret_ = write ? pwrite(fd, buf_.data(), kLen, 0) : pread(fd, buf_.data(), kLen, 0);
      close(fd);
    });
  }
  ~BlockIo() { join(); }
  ssize_t join() {
    if (th_.joinable()) th_.join();
    return ret_;
  }
  const char* data() { return buf_.data(); }

 private:
  AlignedBuf buf_;
  ssize_t ret_ = -1;
  std::thread th_;
};

// A started device served by the calling thread through `ring`: every tag FETCHed.
class SelfServed {
 public:
  SelfServed(Control& c, uint64_t flags) : c_(c), dev_(c, 1, kDepth, flags | UBLK_F_NO_AUTO_PART_SCAN) {
    bufs_.assign(size_t(kDepth) * kLen, 0);
    if (!dev_.ok() || dev_.set_default_params() != 0) return;
    ring_ = std::make_unique<RawIoRing>(dev_.chardev(), c.legacy());
    if (!ring_->ok()) return;
    for (uint16_t t = 0; t < kDepth; t++)
      if (!fetch(t, UBLK_IO_FETCH_REQ, 0)) return;
    started_ = c.start_dev(dev_.id(), getpid()) == 0;
  }
  // Closing the char device first fails any request still held (a test that stopped
  // half-way), so the client thread ends and STOP_DEV / DEL_DEV cannot wait on it.
  ~SelfServed() {
    ring_.reset();
    io_.reset();
    if (started_) c_.stop_dev(dev_.id());
  }
  // One read (or write of `data`) of the block device, from a thread: the client.
  BlockIo& issue(bool write, const char* data = nullptr) {
    io_ = std::make_unique<BlockIo>(dev_.id(), write, data);
    return *io_;
  }
  bool ok() const { return started_; }
  uint32_t id() const { return dev_.id(); }
  int fd() const { return ring_->fd(); }
  uint64_t addr(uint16_t tag) {
    if (dev_.info().flags & UBLK_F_USER_COPY) return 0;
    return reinterpret_cast<uint64_t>(bufs_.data() + size_t(tag) * kLen);
  }
  // The tag a request arrived on (its FETCH completed), or -1 after 10 s.
  int wait_request() {
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < end) {
      for (auto& [tag, ud] : pending_) {
        int res = 0;
        uint32_t flags = 0;
        if (ring_->next_cqe(ud, 20ms, &res, &flags)) {
          const int t = tag;
          pending_.erase(tag);
          return res == UBLK_IO_RES_OK ? t : -1;
        }
      }
    }
    return -1;
  }
  // COMMIT_AND_FETCH with `result`: the request completes, the tag is fetched again.
  bool commit(uint16_t tag, int32_t result) { return fetch(tag, UBLK_IO_COMMIT_AND_FETCH_REQ, result); }
  // STOP_DEV: the device is DEAD from then on.
  int stop() {
    started_ = false;
    return c_.stop_dev(dev_.id());
  }

 private:
  bool fetch(uint16_t tag, uint32_t op, int32_t result) {
    if (ring_->cmd(op, 0, tag, addr(tag), result, 50ms) != RawIoRing::kPending) return false;
    pending_[tag] = ring_->last_command();
    return true;
  }
  Control& c_;
  RawDevice dev_;
  std::unique_ptr<RawIoRing> ring_;
  std::unique_ptr<BlockIo> io_;
  std::vector<char> bufs_;
  std::map<uint16_t, uint64_t> pending_;
  bool started_ = false;
};

ssize_t copy_errno(ssize_t ret) { return ret < 0 ? -errno : ret; }

ssize_t uc_read(int fd, void* buf, size_t n, uint16_t q, uint16_t tag, uint64_t off = 0) {
  return copy_errno(pread(fd, buf, n, off_t(ublk_user_copy_offset(q, tag, uint32_t(off)))));
}
ssize_t uc_write(int fd, const void* buf, size_t n, uint16_t q, uint16_t tag, uint64_t off = 0) {
  return copy_errno(pwrite(fd, buf, n, off_t(ublk_user_copy_offset(q, tag, uint32_t(off)))));
}

class UserCopy : public testing::Test {
 protected:
  void SetUp() override {
    if ((kernel_features() & (UBLK_F_USER_COPY | UBLK_F_NO_AUTO_PART_SCAN)) !=
        (UBLK_F_USER_COPY | UBLK_F_NO_AUTO_PART_SCAN))
      GTEST_SKIP() << "kernel " << kernel_release() << " lacks UBLK_F_USER_COPY or "
                   << "UBLK_F_NO_AUTO_PART_SCAN (GET_FEATURES = " << features_hex() << ")";
  }
  std::vector<char> buf_ = std::vector<char>(kLen);
};

}  // namespace

// The copy of a READ request goes into it (write() on /dev/ublkcN) and reaches the reader;
// around it, every field of the offset is checked while the request is held.
TEST_F(UserCopy, ReadRequestTakesDataOnlyThroughItsOwnOffset) {
  Control c;
  SelfServed s(c, UBLK_F_USER_COPY);
  ASSERT_TRUE(s.ok()) << "the self-served device did not start";
  BlockIo& reader = s.issue(false);
  const int tag = s.wait_request();
  ASSERT_GE(tag, 0) << "the read never reached the server";
  const uint16_t t = uint16_t(tag), idle = uint16_t((t + 1) % kDepth);
  fill(buf_.data(), kLen, 7);
  EXPECT_EQ(uc_read(s.fd(), buf_.data(), kLen, 0, t), -EACCES) << "read() of a READ request: wrong direction";
  EXPECT_EQ(uc_write(s.fd(), buf_.data(), kLen, 1, t), -EINVAL) << "queue == nr_hw_queues";
  EXPECT_EQ(uc_write(s.fd(), buf_.data(), kLen, 0, kDepth), -EINVAL) << "tag == queue_depth";
  EXPECT_EQ(uc_write(s.fd(), buf_.data(), kLen, 0, idle), -EINVAL) << "a tag with no request";
  EXPECT_EQ(uc_write(s.fd(), buf_.data(), kLen, 0, t, kLen + 512), -EINVAL) << "offset past the request";
  EXPECT_EQ(copy_errno(pwrite(s.fd(), buf_.data(), kLen,
                              off_t(ublk_user_copy_offset(0, t) | UBLKSRV_IO_INTEGRITY_FLAG))),
            -EINVAL)
      << "integrity offset on a device without UBLK_F_INTEGRITY";
  EXPECT_EQ(uc_write(s.fd(), buf_.data(), kLen, 0, t), ssize_t(kLen)) << "the right copy";
  ASSERT_TRUE(s.commit(t, int32_t(kLen)));
  EXPECT_EQ(reader.join(), ssize_t(kLen));
  EXPECT_EQ(std::memcmp(reader.data(), buf_.data(), kLen), 0) << "the reader got what the server copied";
  EXPECT_EQ(uc_write(s.fd(), buf_.data(), kLen, 0, t), -EINVAL) << "the request is completed";
}

// The copy of a WRITE request comes out of it (read() on /dev/ublkcN), and a write() into
// it is refused.
TEST_F(UserCopy, WriteRequestGivesDataOnlyByRead) {
  Control c;
  SelfServed s(c, UBLK_F_USER_COPY);
  ASSERT_TRUE(s.ok()) << "the self-served device did not start";
  std::vector<char> data(kLen);
  fill(data.data(), kLen, 11);
  BlockIo& writer = s.issue(true, data.data());
  const int tag = s.wait_request();
  ASSERT_GE(tag, 0) << "the write never reached the server";
  const uint16_t t = uint16_t(tag);
  EXPECT_EQ(uc_write(s.fd(), buf_.data(), kLen, 0, t), -EACCES) << "write() into a WRITE request";
  EXPECT_EQ(uc_read(s.fd(), buf_.data(), kLen, 0, t), ssize_t(kLen));
  EXPECT_EQ(std::memcmp(buf_.data(), data.data(), kLen), 0) << "the server read what was written";
  EXPECT_EQ(uc_read(s.fd(), buf_.data(), 512, 0, t, kLen - 512), 512) << "the last sector alone";
  EXPECT_EQ(std::memcmp(buf_.data(), data.data() + kLen - 512, 512), 0);
  ASSERT_TRUE(s.commit(t, int32_t(kLen)));
  EXPECT_EQ(writer.join(), ssize_t(kLen));
}

// Without UBLK_F_USER_COPY the char device has no data to read or write: EACCES, even for
// a request the server holds.
TEST_F(UserCopy, PlainCopyDeviceRefusesReadAndWrite) {
  Control c;
  SelfServed s(c, 0);
  ASSERT_TRUE(s.ok()) << "the self-served device did not start";
  BlockIo& reader = s.issue(false);
  const int tag = s.wait_request();
  ASSERT_GE(tag, 0) << "the read never reached the server";
  const uint16_t t = uint16_t(tag);
  EXPECT_EQ(uc_write(s.fd(), buf_.data(), kLen, 0, t), -EACCES);
  EXPECT_EQ(uc_read(s.fd(), buf_.data(), kLen, 0, t), -EACCES);
  ASSERT_TRUE(s.commit(t, int32_t(kLen)));
  EXPECT_EQ(reader.join(), ssize_t(kLen));
}

// A device that is not live (never started, or stopped) answers EACCES before the offset
// is looked at.
TEST_F(UserCopy, DeviceNotStartedOrStoppedIsEacces) {
  Control c;
  {
    RawDevice d(c, 1, kDepth, UBLK_F_USER_COPY);
    ASSERT_EQ(d.add_result(), 0);
    RawIoRing r(d.chardev(), c.legacy());
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(uc_read(r.fd(), buf_.data(), kLen, 0, 0), -EACCES) << "never started";
  }
  SelfServed s(c, UBLK_F_USER_COPY);
  ASSERT_TRUE(s.ok()) << "the self-served device did not start";
  ASSERT_EQ(s.stop(), 0);
  EXPECT_EQ(uc_read(s.fd(), buf_.data(), kLen, 0, 0), -EACCES) << "stopped";
}
