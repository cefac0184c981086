// UBLK_F_USER_COPY's read()/write() contract on /dev/ublkcN (ublk_user_copy(), 7.2): the
// offset names (queue, tag, byte); only a live user-copy device, an existing queue and tag,
// a request the server owns, an offset inside it and the request's own direction are
// accepted. The test is the server itself (SelfServed), so it can hold a request while it
// probes the char device.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "env.h"
#include "raw_io.h"
#include "self_served.h"

using namespace ublkcheck;
using namespace ublk;
using namespace ublk::uapi;
using namespace std::chrono_literals;

namespace {

constexpr uint16_t kDepth = 2;
constexpr size_t kLen = 4096;

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
  SelfServed s(c, kDepth, UBLK_F_USER_COPY);
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
  SelfServed s(c, kDepth, UBLK_F_USER_COPY);
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
  SelfServed s(c, kDepth, 0);
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
  SelfServed s(c, kDepth, UBLK_F_USER_COPY);
  ASSERT_TRUE(s.ok()) << "the self-served device did not start";
  ASSERT_EQ(s.stop(), 0);
  EXPECT_EQ(uc_read(s.fd(), buf_.data(), kLen, 0, 0), -EACCES) << "stopped";
}
