// Zero copy's buffer contract (7.2): REGISTER_IO_BUF / UNREGISTER_IO_BUF only on a
// zero-copy device and only for a request the server holds, from the daemon or (the
// UBLK_F_BUF_REG_OFF_DAEMON promise) any other task; UBLK_F_AUTO_BUF_REG's FETCH fields,
// with the fallback a server asks for when the automatic registration fails; and
// UBLK_F_SHMEM_ZC's data path, I/O in a registered shared buffer served in place. The test
// is the server (SelfServed), holding a request while it probes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "env.h"
#include "raw_io.h"
#include "scratch.h"
#include "self_served.h"
#include "shmem.h"

using namespace ublkcheck;
using namespace ublk;
using namespace ublk::uapi;
using namespace std::chrono_literals;

namespace {

constexpr uint16_t kDepth = 2;
constexpr size_t kLen = 4096;

// Runs `fn` on a new thread (another task than the daemon) with its own ring on the
// daemon's open char device, and returns what it returns.
template <typename Fn>
int off_daemon(SelfServed& s, Fn fn) {
  int ret = INT32_MIN;
  std::thread([&] {
    RawIoRing other(s.ring(), false);
    ret = other.ok() ? fn(other) : -EBADF;
  }).join();
  return ret;
}

}  // namespace

// Only a zero-copy device lends its request pages to io_uring: on a user-copy device
// (whose requests are reference-counted like zero copy's, so only the copy mode tells them
// apart) REGISTER is EINVAL from the daemon and from another task, UNREGISTER too.
TEST(ZeroCopy, RegisterAndUnregisterOnAUserCopyDeviceAreEinval) {
  REQUIRE_FEATURE(UBLK_F_SUPPORT_ZERO_COPY);
  REQUIRE_FEATURE(UBLK_F_USER_COPY);
  Control c;
  SelfServed s(c, kDepth, UBLK_F_USER_COPY);
  ASSERT_TRUE(s.ok()) << "the self-served device did not start";
  s.issue(false);
  const int tag = s.wait_request();
  ASSERT_GE(tag, 0) << "the read never reached the server";
  const uint16_t t = uint16_t(tag);
  // Both rings have a buffer table, so the device's copy mode is the only reason to refuse.
  ASSERT_TRUE(s.ring().register_sparse_buffers(4));
  EXPECT_EQ(s.ring().cmd(UBLK_IO_REGISTER_IO_BUF, 0, t, 0), -EINVAL) << "daemon REGISTER";
  EXPECT_EQ(off_daemon(s,
                       [t](RawIoRing& r) {
                         if (!r.register_sparse_buffers(4)) return -ENOMEM;
                         return r.cmd(UBLK_IO_REGISTER_IO_BUF, 0, t, 0);
                       }),
            -EINVAL)
      << "REGISTER from another task";
  EXPECT_EQ(s.ring().cmd(UBLK_IO_UNREGISTER_IO_BUF, 0, t, 0), -EINVAL) << "UNREGISTER";
  ASSERT_TRUE(s.commit(t, int32_t(kLen)));
}

// Only a request the server holds has pages to register: with the FETCH still queued, the
// daemon is told EBUSY (the I/O is the driver's) and another task EINVAL (no request).
TEST(ZeroCopy, RegisterWithoutAHeldRequestIsRefused) {
  REQUIRE_FEATURE(UBLK_F_SUPPORT_ZERO_COPY);
  Control c;
  SelfServed s(c, kDepth, UBLK_F_SUPPORT_ZERO_COPY);
  ASSERT_TRUE(s.ok()) << "the self-served device did not start";
  ASSERT_TRUE(s.ring().register_sparse_buffers(4));
  EXPECT_EQ(s.ring().cmd(UBLK_IO_REGISTER_IO_BUF, 0, 0, 1), -EBUSY) << "daemon, no request";
  EXPECT_EQ(off_daemon(s,
                       [](RawIoRing& r) {
                         if (!r.register_sparse_buffers(4)) return -ENOMEM;
                         return r.cmd(UBLK_IO_REGISTER_IO_BUF, 0, 0, 1);
                       }),
            -EINVAL)
      << "another task, no request";
  EXPECT_EQ(s.ring().cmd(UBLK_IO_REGISTER_IO_BUF, 1, 0, 1), -EINVAL) << "q_id == nr_hw_queues";
  EXPECT_EQ(s.ring().cmd(UBLK_IO_REGISTER_IO_BUF, 0, kDepth, 1), -EINVAL) << "tag == queue_depth";
}

// UBLK_F_BUF_REG_OFF_DAEMON: a task that is not the daemon registers the held READ
// request's pages in its own ring, fills them with READ_FIXED from a file, unregisters,
// and the daemon's commit hands the reader exactly the file's data.
TEST(ZeroCopy, AnotherTaskRegistersFillsAndUnregistersTheRequest) {
  REQUIRE_FEATURE(UBLK_F_SUPPORT_ZERO_COPY);
  REQUIRE_FEATURE(UBLK_F_BUF_REG_OFF_DAEMON);
  ScratchFile src("zc-src", kLen);
  ASSERT_TRUE(src.ok());
  std::vector<char> want(kLen);
  fill(want.data(), kLen, 23);
  {
    int fd = open(src.path().c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, want.data(), kLen, 0), ssize_t(kLen));
    close(fd);
  }
  Control c;
  SelfServed s(c, kDepth, UBLK_F_SUPPORT_ZERO_COPY | UBLK_F_BUF_REG_OFF_DAEMON);
  ASSERT_TRUE(s.ok()) << "the self-served device did not start";
  BlockIo& reader = s.issue(false);
  const int tag = s.wait_request();
  ASSERT_GE(tag, 0) << "the read never reached the server";
  const uint16_t t = uint16_t(tag);
  const int file = open(src.path().c_str(), O_RDONLY);
  ASSERT_GE(file, 0);
  const int step = off_daemon(s, [&](RawIoRing& r) {
    if (!r.register_sparse_buffers(4)) return 1;
    if (r.cmd(UBLK_IO_REGISTER_IO_BUF, 0, t, 2) != 0) return 2;
    if (r.cmd(UBLK_IO_REGISTER_IO_BUF, 0, t, 2) != -EBUSY) return 3;  // the slot is taken
    if (r.rw_fixed(false, file, kLen, 0, 2) != int(kLen)) return 4;
    if (r.cmd(UBLK_IO_UNREGISTER_IO_BUF, 0, t, 2) != 0) return 5;
    return 0;
  });
  close(file);
  EXPECT_EQ(step, 0) << "1: buffer table, 2: REGISTER, 3: second REGISTER not EBUSY, "
                        "4: READ_FIXED into the request, 5: UNREGISTER";
  ASSERT_TRUE(s.commit(t, int32_t(kLen)));
  EXPECT_EQ(reader.join(), ssize_t(kLen)) << strerror(reader.err());
  EXPECT_EQ(std::memcmp(reader.data(), want.data(), kLen), 0) << "the reader got the file's data";
}

// UBLK_F_AUTO_BUF_REG puts (index, flags, reserved) in the FETCH's addr
// (ublk_validate_io_buf()): reserved fields must be 0 and FALLBACK is the only flag.
TEST(AutoBufReg, FetchChecksReservedFieldsAndFlags) {
  REQUIRE_FEATURE(UBLK_F_AUTO_BUF_REG);
  Control c;
  RawDevice d(c, 1, kDepth, UBLK_F_AUTO_BUF_REG);
  ASSERT_EQ(d.add_result(), 0);
  RawIoRing r(d.chardev(), c.legacy());
  ASSERT_TRUE(r.ok());
  auto fetch = [&](uint8_t flags, uint8_t res0, uint32_t res1) {
    return r.auto_buf_cmd(UBLK_IO_FETCH_REQ, 0, 0, ublk_auto_buf_reg{0, flags, res0, res1});
  };
  EXPECT_EQ(fetch(0, 1, 0), -EINVAL) << "reserved0";
  EXPECT_EQ(fetch(0, 0, 1), -EINVAL) << "reserved1";
  EXPECT_EQ(fetch(UBLK_AUTO_BUF_REG_FALLBACK << 1, 0, 0), -EINVAL) << "unknown flag";
  std::vector<char> buf(kLen);
  EXPECT_EQ(r.cmd(UBLK_IO_FETCH_REQ, 0, 0, reinterpret_cast<uint64_t>(buf.data())), -EINVAL)
      << "a copy buffer in the command's addr";
  EXPECT_EQ(fetch(UBLK_AUTO_BUF_REG_FALLBACK, 0, 0), RawIoRing::kPending) << "the right FETCH";
}

// When the automatic registration fails (here: the ring has no buffer table), a FETCH that
// asked for UBLK_AUTO_BUF_REG_FALLBACK still gets the request, marked
// UBLK_IO_F_NEED_REG_BUF; one that did not gets nothing and the request fails with EIO.
TEST(AutoBufReg, FailedRegistrationFallsBackOnlyWhenAsked) {
  REQUIRE_FEATURE(UBLK_F_AUTO_BUF_REG);
  Control c;
  {
    SelfServed s(c, kDepth, UBLK_F_AUTO_BUF_REG, UBLK_AUTO_BUF_REG_FALLBACK);
    ASSERT_TRUE(s.ok()) << "the self-served device did not start";
    BlockIo& reader = s.issue(false);
    const int tag = s.wait_request();
    ASSERT_GE(tag, 0) << "with FALLBACK the request must reach the server";
    EXPECT_TRUE(s.iod(uint16_t(tag)).op_flags & UBLK_IO_F_NEED_REG_BUF)
        << "op_flags 0x" << std::hex << s.iod(uint16_t(tag)).op_flags;
    ASSERT_TRUE(s.commit(uint16_t(tag), int32_t(kLen)));
    EXPECT_EQ(reader.join(), ssize_t(kLen)) << strerror(reader.err());
  }
  {
    SelfServed s(c, kDepth, UBLK_F_AUTO_BUF_REG, 0);
    ASSERT_TRUE(s.ok()) << "the self-served device did not start";
    BlockIo& reader = s.issue(false);
    EXPECT_EQ(reader.join(), -1);
    EXPECT_EQ(reader.err(), EIO) << "without FALLBACK the driver fails the request";
    EXPECT_EQ(s.wait_request(500ms), -1) << "and the server never sees it";
  }
}

// --- UBLK_F_SHMEM_ZC's data path: a client buffer inside a REG_BUF region reaches the
// server as (buffer index, offset) instead of being copied ---

namespace {

uint64_t shmem_addr(uint16_t index, uint32_t off) { return (uint64_t(index) << 32) | off; }

// Reserves `n` more 2 MiB huge pages (vm.nr_hugepages) and gives them back on scope exit.
class HugePages {
 public:
  explicit HugePages(long n) {
    before_ = read();
    if (before_ < 0) {
      why_ = "no /proc/sys/vm/nr_hugepages";
      return;
    }
    write(before_ + n);
    reserved_ = read() >= before_ + n;
    if (!reserved_) why_ = "the kernel found no free 2 MiB of contiguous memory";
  }
  ~HugePages() {
    if (before_ >= 0) write(before_);
  }
  bool reserved() const { return reserved_; }
  const std::string& why() const { return why_; }

 private:
  static long read() {
    std::ifstream in("/proc/sys/vm/nr_hugepages");
    long v = -1;
    in >> v;
    return in ? v : -1;
  }
  static void write(long v) { std::ofstream("/proc/sys/vm/nr_hugepages") << v; }
  long before_ = -1;
  bool reserved_ = false;
  std::string why_;
};

}  // namespace

// A read into a registered buffer: the driver hands the server the place (index, offset),
// the server writes the data there, and nothing is copied on completion (the per-tag copy
// buffer stays zero, yet the reader has the data). A write from it: the server reads the
// data in place and its copy buffer is never filled. `region` is the registered memory;
// the I/O uses its pages at `read_off` and `write_off`.
void served_in_place(char* region, size_t len, size_t read_off, size_t write_off) {
  Control c;
  SelfServed s(c, kDepth, UBLK_F_SHMEM_ZC);
  ASSERT_TRUE(s.ok()) << "the self-served device did not start";
  const int index = reg_buf(c, s.id(), reinterpret_cast<uint64_t>(region), len);
  ASSERT_GE(index, 0) << "REG_BUF: " << strerror(-index);
  {
    char* at = region + read_off;
    BlockIo reader(s.id(), false, nullptr, kLen, at);
    const int tag = s.wait_request();
    ASSERT_GE(tag, 0) << "the read never reached the server";
    const auto& iod = s.iod(uint16_t(tag));
    EXPECT_TRUE(iod.op_flags & UBLK_IO_F_SHMEM_ZC) << "op_flags 0x" << std::hex << iod.op_flags;
    EXPECT_EQ(iod.addr, shmem_addr(uint16_t(index), uint32_t(read_off))) << std::hex << iod.addr;
    fill(at, kLen, 51);  // the server serves the read in place
    std::vector<char> want(kLen);
    fill(want.data(), kLen, 51);
    ASSERT_TRUE(s.commit(uint16_t(tag), int32_t(kLen)));
    EXPECT_EQ(reader.join(), ssize_t(kLen));
    EXPECT_EQ(std::memcmp(at, want.data(), kLen), 0) << "the completion overwrote the shared data";
  }
  {
    char* at = region + write_off;
    fill(at, kLen, 53);
    BlockIo writer(s.id(), true, nullptr, kLen, at);
    const int tag = s.wait_request();
    ASSERT_GE(tag, 0) << "the write never reached the server";
    const auto& iod = s.iod(uint16_t(tag));
    EXPECT_TRUE(iod.op_flags & UBLK_IO_F_SHMEM_ZC) << "op_flags 0x" << std::hex << iod.op_flags;
    EXPECT_EQ(iod.addr, shmem_addr(uint16_t(index), uint32_t(write_off))) << std::hex << iod.addr;
    EXPECT_TRUE(all_zero(s.buf(uint16_t(tag)), kLen)) << "the write was copied into the server's buffer too";
    ASSERT_TRUE(s.commit(uint16_t(tag), int32_t(kLen)));
    EXPECT_EQ(writer.join(), ssize_t(kLen));
  }
  EXPECT_EQ(unreg_buf(c, s.id(), index), 0);
}

TEST(ShmemZcData, IoInARegisteredMemfdIsServedInPlace) {
  REQUIRE_FEATURE(UBLK_F_SHMEM_ZC);
  SharedPages shm(16);
  ASSERT_TRUE(shm.ok());
  served_in_place(shm.p, shm.len, 8192, 16384);
}

// A huge page is one run of contiguous frames, one range in the driver's tree: the offset
// the server gets must count the pages into the run, not only the offset within a page.
TEST(ShmemZcData, IoInARegisteredHugePageIsServedAtItsOffset) {
  REQUIRE_FEATURE(UBLK_F_SHMEM_ZC);
  constexpr size_t kHuge = 2 << 20;
  HugePages huge(1);
  if (!huge.reserved()) GTEST_SKIP() << "no 2 MiB huge page could be reserved (" << huge.why() << ")";
  void* p = mmap(nullptr, kHuge, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
  if (p == MAP_FAILED) GTEST_SKIP() << "mmap(MAP_HUGETLB): " << strerror(errno);
  served_in_place(static_cast<char*>(p), kHuge, 5 * 4096, 300 * 4096);
  munmap(p, kHuge);
}

// What does not match goes the copy way: a buffer outside every region, a READ into a
// read-only region (the kernel would write into it), and a region once unregistered.
TEST(ShmemZcData, UnmatchedIoIsCopiedAsUsual) {
  REQUIRE_FEATURE(UBLK_F_SHMEM_ZC);
  Control c;
  SelfServed s(c, kDepth, UBLK_F_SHMEM_ZC);
  ASSERT_TRUE(s.ok()) << "the self-served device did not start";
  SharedPages rw(4), ro(4), other(4);
  ASSERT_TRUE(rw.ok() && ro.ok() && other.ok());
  const int rw_index = reg_buf(c, s.id(), rw.addr(), rw.len);
  const int ro_index = reg_buf(c, s.id(), ro.addr(), ro.len, UBLK_SHMEM_BUF_READ_ONLY);
  ASSERT_GE(rw_index, 0);
  ASSERT_GE(ro_index, 0);
  ASSERT_EQ(unreg_buf(c, s.id(), rw_index), 0);
  for (char* at : {other.p, ro.p, rw.p}) {
    SCOPED_TRACE(at == other.p ? "unregistered memory"
                 : at == ro.p  ? "read-only region"
                               : "unregistered region");
    BlockIo reader(s.id(), false, nullptr, kLen, at);
    const int tag = s.wait_request();
    ASSERT_GE(tag, 0) << "the read never reached the server";
    EXPECT_FALSE(s.iod(uint16_t(tag)).op_flags & UBLK_IO_F_SHMEM_ZC);
    fill(s.buf(uint16_t(tag)), kLen, 57);  // the copy path: the driver copies this
    ASSERT_TRUE(s.commit(uint16_t(tag), int32_t(kLen)));
    EXPECT_EQ(reader.join(), ssize_t(kLen));
    std::vector<char> want(kLen);
    fill(want.data(), kLen, 57);
    EXPECT_EQ(std::memcmp(at, want.data(), kLen), 0) << "the copied data did not reach the reader";
  }
}
