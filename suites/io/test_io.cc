// Data integrity through the driver in every copy mode the kernel has: what is written
// through /dev/ublkbN must reach the target and read back identical, for read, write,
// flush, discard, write-zeroes and FUA, with 512 and 4096-byte logical blocks.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "copy_modes.h"
#include "cpus.h"
#include "data.h"
#include "device.h"
#include "env.h"
#include "fio.h"
#include "scratch.h"

using namespace ublkcheck;
using namespace ublk::uapi;
using namespace std::chrono_literals;

namespace {

struct Param {
  CopyMode mode;
  std::string target;
  int bs;
};

uint64_t op_count(FixtureDevice& d, const char* op) {
  auto s = d.stats();
  return s.contains("ops") ? s["ops"].value(op, uint64_t(0)) : 0;
}

class Integrity : public testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    const Param& p = GetParam();
    if (p.mode.feature && (kernel_features() & p.mode.feature) != p.mode.feature)
      GTEST_SKIP() << "kernel " << kernel_release() << " lacks the " << p.mode.name
                   << " copy mode (GET_FEATURES = " << features_hex() << ")";
    std::vector<std::string> args = {"-t", p.target, "--bs", std::to_string(p.bs)};
    for (const std::string& f : p.mode.args()) args.push_back(f);
    if (p.target == "file") {
      backing_ = std::make_unique<ScratchFile>("io", 32 << 20);
      ASSERT_TRUE(backing_->ok()) << backing_->path();
      args.insert(args.end(), {"--file", backing_->path()});
    } else {
      args.insert(args.end(), {"-s", "32M"});
    }
    dev_ = std::make_unique<FixtureDevice>(args);
    ASSERT_TRUE(dev_->ok()) << dev_->error();
    fd_ = open(dev_->block().c_str(), O_RDWR | O_DIRECT);
    ASSERT_GE(fd_, 0) << dev_->block() << ": " << strerror(errno);
  }
  void TearDown() override {
    if (fd_ >= 0) close(fd_);
    dev_.reset();
    backing_.reset();
  }
  std::unique_ptr<FixtureDevice> dev_;
  int fd_ = -1;
  std::unique_ptr<ScratchFile> backing_;
};

}  // namespace

TEST_P(Integrity, WriteReadBackAtManySizes) {
  const size_t sizes[] = {size_t(GetParam().bs), 4096, 65536, 512 << 10};
  uint64_t seed = 1;
  off_t off = 0;
  for (size_t n : sizes) {
    AlignedBuf w(n), r(n);
    fill(w.data(), n, seed++);
    ASSERT_EQ(pwrite(fd_, w.data(), n, off), ssize_t(n)) << strerror(errno) << " size " << n;
    std::memset(r.data(), 0xee, n);
    ASSERT_EQ(pread(fd_, r.data(), n, off), ssize_t(n)) << strerror(errno);
    ASSERT_EQ(std::memcmp(w.data(), r.data(), n), 0) << "read back differs, size " << n;
    off += off_t(n) + 8192;
  }
  EXPECT_GE(op_count(*dev_, "write"), 4u);
  EXPECT_GE(op_count(*dev_, "read"), 4u);
  // UBLK_F_NEED_GET_DATA: every write reached the server first without its data
  // (UBLK_IO_RES_NEED_GET_DATA), and reads never do.
  if (std::string(GetParam().mode.name) == "need_get_data")
    EXPECT_EQ(op_count(*dev_, "need_get_data"), op_count(*dev_, "write"))
        << "writes that skipped NEED_GET_DATA";
  else
    EXPECT_EQ(op_count(*dev_, "need_get_data"), 0u);
}

TEST_P(Integrity, FioRandomWritesVerify) {
  auto args = fio_job(dev_->block(), "randwrite", "4k", 16, 2, "libaio", 0);
  args.insert(args.end(), {"--bsrange=" + std::to_string(GetParam().bs) + "-128k", "--size=8M",
                           "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--offset_increment=12M"});
  FioResult r = run_fio(args, 120s);
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_GT(r.write_ios, 0u);
  EXPECT_GT(r.read_ios, 0u) << "the verify phase read nothing";
}

TEST_P(Integrity, DiscardAndWriteZeroesReachTheTarget) {
  const size_t n = 1 << 20;
  AlignedBuf w(n), r(n);
  fill(w.data(), n, 77);
  ASSERT_EQ(pwrite(fd_, w.data(), n, 0), ssize_t(n));
  const uint64_t before_discard = op_count(*dev_, "discard");
  uint64_t range[2] = {0, 256 << 10};
  ASSERT_EQ(ioctl(fd_, BLKDISCARD, range), 0) << strerror(errno);
  EXPECT_GT(op_count(*dev_, "discard"), before_discard);
  const uint64_t before_wz = op_count(*dev_, "write_zeroes");
  uint64_t zrange[2] = {512 << 10, 256 << 10};
  ASSERT_EQ(ioctl(fd_, BLKZEROOUT, zrange), 0) << strerror(errno);
  EXPECT_GT(op_count(*dev_, "write_zeroes"), before_wz) << "BLKZEROOUT did not use WRITE_ZEROES";
  ASSERT_EQ(pread(fd_, r.data(), n, 0), ssize_t(n));
  EXPECT_TRUE(all_zero(r.data(), 256 << 10)) << "discarded range not zero (mem/file zero it)";
  EXPECT_EQ(std::memcmp(r.data() + (256 << 10), w.data() + (256 << 10), 256 << 10), 0)
      << "data next to the discarded range changed";
  EXPECT_TRUE(all_zero(r.data() + (512 << 10), 256 << 10)) << "write-zeroes range not zero";
  EXPECT_EQ(std::memcmp(r.data() + (768 << 10), w.data() + (768 << 10), 256 << 10), 0);
}

TEST_P(Integrity, FlushAndFuaReachTheTarget) {
  AlignedBuf w(4096);
  fill(w.data(), 4096, 5);
  ASSERT_EQ(pwrite(fd_, w.data(), 4096, 0), 4096);
  const uint64_t flushes = op_count(*dev_, "flush");
  ASSERT_EQ(fsync(fd_), 0);
  EXPECT_GT(op_count(*dev_, "flush"), flushes) << "fsync on a volatile-cache device must flush";
  int dsync = open(dev_->block().c_str(), O_RDWR | O_DIRECT | O_DSYNC);
  ASSERT_GE(dsync, 0);
  const uint64_t fua = op_count(*dev_, "fua");
  ASSERT_EQ(pwrite(dsync, w.data(), 4096, 8192), 4096);
  close(dsync);
  EXPECT_GT(op_count(*dev_, "fua"), fua) << "O_DSYNC write on a FUA device must carry FUA";
}

namespace {
std::vector<Param> all_params() {
  std::vector<Param> v;
  for (const auto& m : copy_modes())
    for (const char* t : {"mem", "file"})
      for (int bs : {512, 4096}) v.push_back({m, t, bs});
  return v;
}
}  // namespace

INSTANTIATE_TEST_SUITE_P(CopyModes, Integrity, testing::ValuesIn(all_params()),
                         [](const testing::TestParamInfo<Param>& p) {
                           return std::string(p.param.mode.name) + "_" + p.param.target + "_" +
                                  std::to_string(p.param.bs);
                         });

TEST(ReadOnly, WritesAreRejectedReadsWork) {
  FixtureDevice d({"-t", "mem", "-s", "8M", "--read-only"});
  ASSERT_DEVICE(d);
  // A read-only disk opens for writing (the block layer leaves that to the holder), and
  // blkdev_write_iter() refuses the write with EPERM.
  int fd = open(d.block().c_str(), O_RDWR | O_DIRECT);
  ASSERT_GE(fd, 0) << strerror(errno);
  AlignedBuf w(4096);
  fill(w.data(), 4096, 1);
  errno = 0;
  EXPECT_LT(pwrite(fd, w.data(), 4096, 0), 0) << "write to a read-only ublk device succeeded";
  EXPECT_EQ(errno, EPERM) << strerror(errno);
  close(fd);
  int rfd = open(d.block().c_str(), O_RDONLY | O_DIRECT);
  ASSERT_GE(rfd, 0);
  AlignedBuf r(4096);
  EXPECT_EQ(pread(rfd, r.data(), 4096, 0), 4096);
  close(rfd);
  EXPECT_EQ(d.stats()["ops"].value("write", 0), 0) << "a write reached the target";
}

TEST(Null, FioRandReadCompletes) {
  FixtureDevice d({"-t", "null", "-q", "2"});
  ASSERT_DEVICE(d);
  FioResult r = run_fio(fio_job(d.block(), "randread", "4k", 32, 2, "io_uring", 3), 60s);
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_GT(r.read_iops, 100.0);
  RecordProperty("read_iops", std::to_string(int(r.read_iops)));
}

// Batch I/O under load: 2 queues x depth 128 so one FETCH CQE carries many tags and one
// COMMIT many results; every read must complete.
TEST(Null, BatchIoFioRandReadCompletes) {
  REQUIRE_FEATURE(UBLK_F_BATCH_IO);
  FixtureDevice d({"-t", "null", "-q", "2", "--batch"});
  ASSERT_DEVICE(d);
  FioResult r = run_fio(fio_job(d.block(), "randread", "4k", 64, 2, "io_uring", 3), 60s);
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_GT(r.read_iops, 100.0);
  EXPECT_EQ(d.stats()["ops"].value("errors", 0), 0);
  RecordProperty("read_iops", std::to_string(int(r.read_iops)));
}

// Submissions in batches of 16 (one io_uring_enter, one block plug) reach the driver's
// queue_rqs() as lists of requests; on a batch device they travel as one batch each way.
// Every block written so is verified.
TEST(Batch, PluggedSubmissionsOfManyRequestsVerify) {
  REQUIRE_FEATURE(UBLK_F_BATCH_IO);
  FixtureDevice d({"-t", "mem", "-s", "64M", "-q", "2", "--batch"});
  ASSERT_DEVICE(d);
  auto a = fio_job(d.block(), "randwrite", "4k", 32, 2, "io_uring", 0);
  a.insert(a.end(),
           {"--size=8M", "--offset_increment=16M", "--iodepth_batch_submit=16",
            "--iodepth_batch_complete_min=1", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1"});
  FioResult r = run_fio(a, 120s);
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(d.stats()["ops"].value("errors", 0), 0);
}

namespace {

// The server's I/O threads ("ublk-io-N") and the CPUs each may run on.
std::map<std::string, std::vector<int>> io_thread_cpus(int pid) {
  std::map<std::string, std::vector<int>> out;
  std::error_code ec;
  const std::filesystem::path task = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& t : std::filesystem::directory_iterator(task, ec)) {
    std::ifstream c(t.path() / "comm");
    std::string comm;
    std::getline(c, comm);
    if (comm.rfind("ublk-io-", 0) != 0) continue;
    std::ifstream st(t.path() / "status");
    for (std::string line; std::getline(st, line);)
      if (line.rfind("Cpus_allowed_list:", 0) == 0)
        out[comm] = parse_cpu_list(line.substr(line.find_first_not_of(" \t", 18)));
  }
  return out;
}

}  // namespace

// --affinity runs queue q's thread on the CPUs GET_QUEUE_AFFINITY gives for q (kublk's
// setup, which the bench compares against); without it the threads may run anywhere.
TEST(Threads, AffinityPinsEachQueueThreadToItsQueueCpus) {
  const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpu < 2) GTEST_SKIP() << "needs 2 CPUs: with one, pinned and floating look alike";
  FixtureDevice d({"-t", "null", "-q", "2", "--affinity"});
  ASSERT_DEVICE(d);
  auto threads = io_thread_cpus(d.pid());
  ASSERT_EQ(threads.size(), 2u) << "expected threads ublk-io-0 and ublk-io-1";
  ublk::Control c;
  for (unsigned q = 0; q < 2; q++) {
    std::vector<int> cpus;
    ASSERT_GE(c.get_queue_affinity(uint32_t(d.id()), uint16_t(q), &cpus), 0);
    EXPECT_EQ(threads["ublk-io-" + std::to_string(q)], cpus) << "queue " << q;
    EXPECT_LT(cpus.size(), size_t(ncpu)) << "queue " << q << " maps to every CPU: pinning proves nothing";
  }
  FixtureDevice floating({"-t", "null", "-q", "2"});
  ASSERT_DEVICE(floating);
  auto floaters = io_thread_cpus(floating.pid());
  ASSERT_EQ(floaters.size(), 2u) << "expected threads ublk-io-0 and ublk-io-1";
  for (const auto& [name, cpus] : floaters)
    EXPECT_EQ(cpus.size(), size_t(ncpu)) << name << " is pinned without --affinity";
  FioResult r = run_fio(fio_job(d.block(), "randread", "4k", 16, 2, "io_uring", 1), 60s);
  EXPECT_TRUE(r.ok()) << r.describe();
}

// --delay-ops picks which ops the fault target delays: with `--delay-ops write` a write
// waits its 300 ms and a read is served at once (the double-write test relies on it).
TEST(FaultTarget, DelayOpsWriteDelaysWritesAndNotReads) {
  FixtureDevice d({"-t", "fault", "-s", "8M", "--delay-us", "300000", "--delay-ops", "write"});
  ASSERT_DEVICE(d);
  int fd = open(d.block().c_str(), O_RDWR | O_DIRECT);
  ASSERT_GE(fd, 0) << strerror(errno);
  AlignedBuf b(4096);
  fill(b.data(), 4096, 11);
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  ASSERT_EQ(pwrite(fd, b.data(), 4096, 0), 4096) << strerror(errno);
  const auto write_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  t0 = Clock::now();
  ASSERT_EQ(pread(fd, b.data(), 4096, 65536), 4096) << strerror(errno);
  const auto read_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  close(fd);
  EXPECT_GE(write_ms, 300) << "the write was not delayed";
  EXPECT_LT(read_ms, 150) << "the read was delayed although --delay-ops names only writes";
}
