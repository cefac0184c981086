// Partitions on a ublk disk: START_DEV scans the table (asynchronously, for a privileged
// server), UBLK_F_NO_AUTO_PART_SCAN leaves it to an explicit BLKRRPART, and a partition
// maps onto the device at its start sector.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <thread>

#include "data.h"
#include "device.h"
#include "env.h"
#include "proc.h"
#include "scratch.h"

using namespace ublkcheck;
using namespace ublk::uapi;
using namespace std::chrono_literals;

namespace {

constexpr off_t kDisk = 64 << 20;
constexpr uint64_t kP1Start = 2048, kP1Sectors = 32768;  // 1 MiB in, 16 MiB long

// An MBR with two partitions (16 MiB at 1 MiB, then the rest), written into `img` itself.
::testing::AssertionResult write_table(const std::string& img) {
  ProcResult r = run(
      {"sh", "-c", "printf 'label: dos\\nstart=2048, size=32768\\nstart=34816\\n' | sfdisk -q " + img}, 30s);
  if (r.status != 0) return ::testing::AssertionFailure() << "sfdisk: " << r.describe();
  return ::testing::AssertionSuccess();
}

std::string part_sys(int id, int n) {
  const std::string b = "ublkb" + std::to_string(id);
  return "/sys/block/" + b + "/" + b + "p" + std::to_string(n);
}

bool exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

// Waits up to `limit` for `path` to exist.
bool appears(const std::string& path, std::chrono::milliseconds limit) {
  for (auto t0 = std::chrono::steady_clock::now(); std::chrono::steady_clock::now() - t0 < limit;) {
    if (exists(path)) return true;
    std::this_thread::sleep_for(20ms);
  }
  return exists(path);
}

uint64_t read_u64(const std::string& p) {
  std::ifstream in(p);
  uint64_t v = 0;
  in >> v;
  return v;
}

class Partitions : public testing::Test {
 protected:
  void SetUp() override {
    if (!have_program("sfdisk")) GTEST_SKIP() << "no sfdisk in the guest (fdisk)";
    ASSERT_TRUE(img_.ok()) << img_.path();
    ASSERT_TRUE(write_table(img_.path()));
  }
  ScratchFile img_{"parts", kDisk};
};

}  // namespace

// START_DEV schedules the scan: both partitions appear with the table's geometry, and a
// block written through p1 lands in the backing file at p1's start.
TEST_F(Partitions, TableIsScannedAtStartAndP1MapsAtItsStartSector) {
  FixtureDevice d({"-t", "file", "--file", img_.path()});
  ASSERT_DEVICE(d);
  ASSERT_TRUE(appears(part_sys(d.id(), 2), 10s)) << "no partitions 10 s after START_DEV";
  EXPECT_EQ(read_u64(part_sys(d.id(), 1) + "/start"), kP1Start);
  EXPECT_EQ(read_u64(part_sys(d.id(), 1) + "/size"), kP1Sectors);
  EXPECT_EQ(read_u64(part_sys(d.id(), 2) + "/size"), uint64_t(kDisk / 512) - kP1Start - kP1Sectors);
  const std::string p1 = d.block() + "p1";
  ASSERT_TRUE(appears(p1, 5s)) << p1;
  AlignedBuf w(4096), r(4096);
  fill(w.data(), 4096, 31);
  int fd = open(p1.c_str(), O_WRONLY | O_DIRECT);
  ASSERT_GE(fd, 0) << p1 << ": " << strerror(errno);
  ASSERT_EQ(pwrite(fd, w.data(), 4096, 8192), 4096);
  close(fd);
  int f = open(img_.path().c_str(), O_RDONLY);
  ASSERT_GE(f, 0);
  ASSERT_EQ(pread(f, r.data(), 4096, off_t(kP1Start * 512 + 8192)), 4096);
  close(f);
  EXPECT_EQ(std::memcmp(w.data(), r.data(), 4096), 0) << "p1's sector 16 is not the disk's sector 2064";
}

// UBLK_F_NO_AUTO_PART_SCAN: no partition after START_DEV, until the owner asks (BLKRRPART).
TEST_F(Partitions, NoAutoPartScanWaitsForBlkrrpart) {
  REQUIRE_FEATURE(UBLK_F_NO_AUTO_PART_SCAN);
  FixtureDevice d({"-t", "file", "--file", img_.path(), "--no-part-scan"});
  ASSERT_DEVICE(d);
  EXPECT_FALSE(appears(part_sys(d.id(), 1), 1500ms)) << "partitions appeared without a scan";
  int fd = open(d.block().c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << strerror(errno);
  EXPECT_EQ(ioctl(fd, BLKRRPART), 0) << "BLKRRPART: " << strerror(errno);
  close(fd);
  EXPECT_TRUE(appears(part_sys(d.id(), 2), 5s)) << "BLKRRPART found no partitions";
}
