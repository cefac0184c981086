// UBLK_F_BATCH_IO's command contract (ublk_ch_batch_io_uring_cmd(), 7.2): the header checks
// of PREP / COMMIT / FETCH_IO_CMDS, PREP's rollback when an element fails, COMMIT's count of
// the bytes it handled, and per-I/O commands refused on a batch device. Raw commands on a
// raw device, so each errno is the driver's own answer to exactly one bad field.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
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

constexpr uint16_t kDepth = 4;
constexpr uint8_t kElemWithAddr = sizeof(ublk_elem_header) + 8;  // HAS_BUF_ADDR elements

// Elements of a plain-copy batch command: (tag, result, buffer address) each.
class Elems {
 public:
  explicit Elems(uint8_t elem_bytes = kElemWithAddr) : bytes_(elem_bytes) {}
  Elems& add(uint16_t tag, int32_t result, const void* buf) {
    const size_t at = mem_.size();
    mem_.resize(at + bytes_);
    ublk_elem_header h{tag, 0, result};
    std::memcpy(mem_.data() + at, &h, sizeof(h));
    if (bytes_ >= kElemWithAddr) {
      const uint64_t addr = reinterpret_cast<uint64_t>(buf);
      std::memcpy(mem_.data() + at + sizeof(h), &addr, 8);
    }
    return *this;
  }
  uint16_t count() const { return uint16_t(mem_.size() / bytes_); }
  uint8_t elem_bytes() const { return bytes_; }
  const uint8_t* data() const { return mem_.data(); }
  uint32_t len() const { return uint32_t(mem_.size()); }

 private:
  uint8_t bytes_;
  std::vector<uint8_t> mem_;
};

ublk_batch_io header(const Elems& e, uint16_t flags = UBLK_BATCH_F_HAS_BUF_ADDR, uint16_t q = 0) {
  ublk_batch_io h{};
  h.q_id = q;
  h.flags = flags;
  h.nr_elem = e.count();
  h.elem_bytes = e.elem_bytes();
  return h;
}

int send(RawIoRing& r, uint32_t op, const Elems& e, const ublk_batch_io& h, bool multishot = false) {
  return r.batch(op, h, e.data(), e.len(), multishot);
}

class BatchCmd : public testing::Test {
 protected:
  void SetUp() override {
    if (!(kernel_features() & UBLK_F_BATCH_IO))
      GTEST_SKIP() << "kernel " << kernel_release()
                   << " lacks UBLK_F_BATCH_IO (GET_FEATURES = " << features_hex() << ")";
    bufs_.assign(size_t(kDepth) * 4096, 0);
  }
  const void* buf(uint16_t tag) const { return bufs_.data() + size_t(tag) * 4096; }
  Elems all_tags() const {
    Elems e;
    for (uint16_t t = 0; t < kDepth; t++) e.add(t, 0, buf(t));
    return e;
  }
  std::vector<char> bufs_;
};

}  // namespace

// ublk_check_batch_cmd() and ublk_check_batch_cmd_flags(): one bad field per command, each
// refused before any element is looked at.
TEST_F(BatchCmd, PrepAndCommitHeadersAreChecked) {
  Control c;
  RawDevice d(c, 1, kDepth, UBLK_F_BATCH_IO);
  ASSERT_EQ(d.add_result(), 0);
  RawIoRing r(d.chardev(), c.legacy());
  ASSERT_TRUE(r.ok());
  const Elems one = Elems().add(0, 0, buf(0));
  Elems five;
  for (uint16_t t = 0; t < kDepth + 1; t++) five.add(t % kDepth, 0, buf(t % kDepth));
  for (uint32_t op : {UBLK_U_IO_PREP_IO_CMDS, UBLK_U_IO_COMMIT_IO_CMDS}) {
    SCOPED_TRACE(op == UBLK_U_IO_PREP_IO_CMDS ? "PREP_IO_CMDS" : "COMMIT_IO_CMDS");
    EXPECT_EQ(send(r, op, one, header(one, UBLK_BATCH_F_HAS_BUF_ADDR, 1)), -EINVAL) << "q_id == nr_hw_queues";
    EXPECT_EQ(send(r, op, five, header(five)), -E2BIG) << "nr_elem > queue_depth";
    EXPECT_EQ(send(r, op, one, header(one, UBLK_BATCH_F_HAS_BUF_ADDR | (1 << 3))), -EINVAL) << "unknown flag";
    EXPECT_EQ(send(r, op, one, header(one, UBLK_BATCH_F_HAS_BUF_ADDR | UBLK_BATCH_F_HAS_ZONE_LBA)), -EINVAL)
        << "HAS_ZONE_LBA on a device that is not zoned";
    EXPECT_EQ(send(r, op, one, header(one, UBLK_BATCH_F_HAS_BUF_ADDR | UBLK_BATCH_F_AUTO_BUF_REG_FALLBACK)),
              -EINVAL)
        << "AUTO_BUF_REG_FALLBACK without UBLK_F_AUTO_BUF_REG";
    ublk_batch_io h = header(one);
    h.elem_bytes = sizeof(ublk_elem_header);
    EXPECT_EQ(send(r, op, one, h), -EINVAL) << "elem_bytes 8 with HAS_BUF_ADDR (16 is right)";
  }
  // With the right header, PREP of one tag is accepted: the checks above were the reason.
  EXPECT_EQ(send(r, UBLK_U_IO_PREP_IO_CMDS, one, header(one)), 0);
}

// A buffer address names a copy buffer, which only plain copy has: HAS_BUF_ADDR on a user
// copy device is refused, and so is an element size that counts one.
TEST_F(BatchCmd, BufferAddressOnlyWhereTheDriverCopies) {
  REQUIRE_FEATURE(UBLK_F_USER_COPY);
  Control c;
  RawDevice d(c, 1, kDepth, UBLK_F_BATCH_IO | UBLK_F_USER_COPY);
  ASSERT_EQ(d.add_result(), 0);
  RawIoRing r(d.chardev(), c.legacy());
  ASSERT_TRUE(r.ok());
  const Elems with_addr = Elems().add(0, 0, buf(0));
  EXPECT_EQ(send(r, UBLK_U_IO_PREP_IO_CMDS, with_addr, header(with_addr)), -EINVAL)
      << "HAS_BUF_ADDR on a user-copy device";
  ublk_batch_io h = header(with_addr, 0);
  EXPECT_EQ(send(r, UBLK_U_IO_PREP_IO_CMDS, with_addr, h), -EINVAL) << "elem_bytes 16 without HAS_BUF_ADDR";
  const Elems bare = Elems(sizeof(ublk_elem_header)).add(0, 0, nullptr);
  EXPECT_EQ(send(r, UBLK_U_IO_PREP_IO_CMDS, bare, header(bare, 0)), 0) << "8-byte elements, no address";
}

// A bad element mid-batch fails the whole PREP, and the elements before it are undone
// (ublk_batch_revert_prep_cmd()): the same tags can be prepared again afterwards.
TEST_F(BatchCmd, PrepFailingMidBatchUndoesTheElementsBeforeIt) {
  Control c;
  RawDevice d(c, 1, kDepth, UBLK_F_BATCH_IO);
  ASSERT_EQ(d.add_result(), 0);
  RawIoRing r(d.chardev(), c.legacy());
  ASSERT_TRUE(r.ok());
  const Elems bad_tag = Elems().add(0, 0, buf(0)).add(1, 0, buf(1)).add(kDepth + 5, 0, buf(2));
  EXPECT_EQ(send(r, UBLK_U_IO_PREP_IO_CMDS, bad_tag, header(bad_tag)), -EINVAL)
      << "tag >= depth, third element";
  const Elems no_buf = Elems().add(0, 0, buf(0)).add(1, 0, nullptr);
  EXPECT_EQ(send(r, UBLK_U_IO_PREP_IO_CMDS, no_buf, header(no_buf)), -EINVAL)
      << "second element without a buffer in plain copy";
  // Nothing is left prepared: every tag (0 and 1 included) is accepted now, once.
  const Elems all = all_tags();
  EXPECT_EQ(send(r, UBLK_U_IO_PREP_IO_CMDS, all, header(all)), 0) << "tags 0 and 1 were left prepared";
  // Every tag prepared: the queue is ready, and a further PREP is EBUSY (__ublk_fetch).
  const Elems again = Elems().add(0, 0, buf(0));
  EXPECT_EQ(send(r, UBLK_U_IO_PREP_IO_CMDS, again, header(again)), -EBUSY);
}

// FETCH_IO_CMDS (ublk_validate_batch_fetch_cmd()): multishot only, 2-byte tag elements, no
// flags, a real queue. A right one stays queued in the kernel.
TEST_F(BatchCmd, FetchIsMultishotWithTwoByteElementsAndNoFlags) {
  Control c;
  RawDevice d(c, 1, kDepth, UBLK_F_BATCH_IO);
  ASSERT_EQ(d.add_result(), 0);
  RawIoRing r(d.chardev(), c.legacy());
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r.provide_buffers(2, 64));
  auto fetch = [](uint16_t q, uint16_t flags, uint8_t elem_bytes) {
    ublk_batch_io h{};
    h.q_id = q;
    h.flags = flags;
    h.nr_elem = 32;
    h.elem_bytes = elem_bytes;
    return h;
  };
  EXPECT_EQ(r.batch(UBLK_U_IO_FETCH_IO_CMDS, fetch(0, 0, 2), nullptr, 0, false), -EINVAL) << "not multishot";
  EXPECT_EQ(r.batch(UBLK_U_IO_FETCH_IO_CMDS, fetch(0, 0, 4), nullptr, 0, true), -EINVAL) << "elem_bytes 4";
  EXPECT_EQ(r.batch(UBLK_U_IO_FETCH_IO_CMDS, fetch(0, UBLK_BATCH_F_HAS_BUF_ADDR, 2), nullptr, 0, true),
            -EINVAL)
      << "flags";
  EXPECT_EQ(r.batch(UBLK_U_IO_FETCH_IO_CMDS, fetch(1, 0, 2), nullptr, 0, true), -EINVAL)
      << "q_id == nr_hw_queues";
  EXPECT_EQ(r.batch(UBLK_U_IO_FETCH_IO_CMDS, fetch(0, 0, 2), nullptr, 0, true), RawIoRing::kPending);
}

// The per-I/O commands have no place on a batch device (ublk_handle_non_batch_cmd()): the
// queue and tag are still checked first (EINVAL), then the command is EOPNOTSUPP.
TEST_F(BatchCmd, PerIoCommandsAreEopnotsupp) {
  Control c;
  RawDevice d(c, 1, kDepth, UBLK_F_BATCH_IO);
  ASSERT_EQ(d.add_result(), 0);
  RawIoRing r(d.chardev(), c.legacy());
  ASSERT_TRUE(r.ok());
  const auto a = reinterpret_cast<uint64_t>(buf(0));
  EXPECT_EQ(r.cmd(UBLK_IO_FETCH_REQ, 0, 0, a), -EOPNOTSUPP) << "FETCH_REQ";
  EXPECT_EQ(r.cmd(UBLK_IO_COMMIT_AND_FETCH_REQ, 0, 0, a), -EOPNOTSUPP) << "COMMIT_AND_FETCH_REQ";
  EXPECT_EQ(r.cmd(UBLK_IO_NEED_GET_DATA, 0, 0, a), -EOPNOTSUPP) << "NEED_GET_DATA";
  EXPECT_EQ(r.cmd(UBLK_IO_FETCH_REQ, 1, 0, a), -EINVAL) << "q_id == nr_hw_queues";
  EXPECT_EQ(r.cmd(UBLK_IO_FETCH_REQ, 0, kDepth, a), -EINVAL) << "tag == queue_depth";
}

// COMMIT_IO_CMDS answers with the bytes of the elements it committed when a later one
// fails ("userspace has to check return value"), and with the errno when the first fails.
// A minimal server: PREP every tag, FETCH, START_DEV, and one read from another thread.
TEST_F(BatchCmd, CommitCountsTheBytesItHandled) {
  REQUIRE_FEATURE(UBLK_F_NO_AUTO_PART_SCAN);  // START_DEV must not read the partition table
  Control c;
  RawDevice d(c, 1, kDepth, UBLK_F_BATCH_IO | UBLK_F_NO_AUTO_PART_SCAN);
  ASSERT_EQ(d.add_result(), 0);
  ASSERT_EQ(d.set_default_params(), 0);
  {
    RawIoRing r(d.chardev(), c.legacy());
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(r.provide_buffers(2, 2 * kDepth));
    const Elems all = all_tags();
    ASSERT_EQ(send(r, UBLK_U_IO_PREP_IO_CMDS, all, header(all)), 0);
    ublk_batch_io fh{};
    fh.nr_elem = kDepth;
    fh.elem_bytes = 2;
    ASSERT_EQ(r.batch(UBLK_U_IO_FETCH_IO_CMDS, fh, nullptr, 0, true), RawIoRing::kPending);
    const uint64_t fetch = r.last_command();
    ASSERT_EQ(c.start_dev(d.id(), getpid()), 0);

    AlignedBuf got(4096);
    ssize_t read_ret = -1;
    std::thread reader([&] {
      int fd = open(("/dev/ublkb" + std::to_string(d.id())).c_str(), O_RDONLY | O_DIRECT);
      for (int i = 0; i < 300 && fd < 0; i++) {  // the node appears asynchronously
        std::this_thread::sleep_for(10ms);
        fd = open(("/dev/ublkb" + std::to_string(d.id())).c_str(), O_RDONLY | O_DIRECT);
      }
      if (fd >= 0) {
        read_ret = pread(fd, got.data(), 4096, 0);
        close(fd);
      }
    });
    int res = 0;
    uint32_t flags = 0;
    const bool fetched = r.next_cqe(fetch, 10s, &res, &flags);
    if (!fetched) {
      c.stop_dev(d.id());  // ends the reader's wait for its open or its read
      reader.join();
      FAIL() << "no request reached FETCH_IO_CMDS within 10 s";
    }
    ASSERT_EQ(res, 2) << "one request, one 2-byte tag";
    const uint16_t tag = *reinterpret_cast<const uint16_t*>(r.provided(flags >> 16));
    ASSERT_LT(tag, kDepth);
    const uint16_t idle = uint16_t((tag + 1) % kDepth);  // fetched, but no request on it
    // The read's data, in the tag's buffer, which the driver copies on commit.
    fill(bufs_.data() + size_t(tag) * 4096, 4096, 0x5a);

    const Elems idle_first = Elems().add(idle, 4096, buf(idle)).add(tag, 4096, buf(tag));
    EXPECT_EQ(send(r, UBLK_U_IO_COMMIT_IO_CMDS, idle_first, header(idle_first)), -EBUSY)
        << "first element not owned by the server: the errno, nothing committed";
    const Elems owned_first = Elems().add(tag, 4096, buf(tag)).add(idle, 4096, buf(idle));
    EXPECT_EQ(send(r, UBLK_U_IO_COMMIT_IO_CMDS, owned_first, header(owned_first)), int(kElemWithAddr))
        << "one element committed, the second refused: its bytes";
    reader.join();
    EXPECT_EQ(read_ret, 4096);
    std::vector<char> want(4096);
    fill(want.data(), 4096, 0x5a);
    EXPECT_EQ(std::memcmp(got.data(), want.data(), 4096), 0) << "the committed data reached the reader";
    const Elems again = Elems().add(tag, 4096, buf(tag));
    EXPECT_EQ(send(r, UBLK_U_IO_COMMIT_IO_CMDS, again, header(again)), -EBUSY) << "the tag was committed";
    EXPECT_EQ(c.stop_dev(d.id()), 0);
  }
}
