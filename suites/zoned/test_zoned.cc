// UBLK_F_ZONED: a host-managed zoned device served by the bundled server's zoned target
// (conventional + sequential zones over RAM). The driver's side of the contract: ADD_DEV
// and SET_PARAMS rules for zoned devices, the zone geometry reaching the block layer,
// REPORT_ZONES answered through the driver's report buffer (in several requests when the
// buffer is smaller than the report), zone management ops reaching the server, and zone
// append, whose LBA the server returns in COMMIT's zone_append_lba, checked by data that
// a filesystem written with zone appends reads back.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/blkzoned.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <vector>

#include "data.h"
#include "device.h"
#include "env.h"
#include "proc.h"
#include "raw_io.h"

using namespace ublkcheck;
using namespace ublk;
using namespace ublk::uapi;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t kZone = 4 << 20;  // bytes; the target's default zone size
constexpr uint64_t kZoneSectors = kZone >> 9;

std::string errname(int ret) { return ret ? strerrorname_np(-ret) : "0"; }

std::string sysfs(const FixtureDevice& d, const std::string& attr) {
  std::ifstream f("/sys/block/ublkb" + std::to_string(d.id()) + "/queue/" + attr);
  std::string v;
  std::getline(f, v);
  return v;
}

uint64_t op_count(FixtureDevice& d, const char* op) {
  auto s = d.stats();
  return s.contains("ops") ? s["ops"].value(op, uint64_t(0)) : 0;
}

// BLKREPORTZONE from `sector`, up to `n` zones; empty on error (errno kept).
std::vector<blk_zone> report(int fd, uint64_t sector, unsigned n) {
  std::vector<char> buf(sizeof(blk_zone_report) + n * sizeof(blk_zone));
  auto* rep = reinterpret_cast<blk_zone_report*>(buf.data());
  rep->sector = sector;
  rep->nr_zones = n;
  if (ioctl(fd, BLKREPORTZONE, rep) < 0) return {};
  return {rep->zones, rep->zones + rep->nr_zones};
}

blk_zone zone_of(int fd, unsigned i) {
  auto z = report(fd, i * kZoneSectors, 1);
  return z.empty() ? blk_zone{} : z[0];
}

int zone_ioctl(int fd, unsigned long op, uint64_t sector, uint64_t sectors = kZoneSectors) {
  blk_zone_range r{sector, sectors};
  return ioctl(fd, op, &r) < 0 ? -errno : 0;
}

// A zoned device: 64 MiB, 4 MiB zones, the first `conv` conventional.
class Zoned : public testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_FEATURE(UBLK_F_ZONED);
    REQUIRE_FEATURE(UBLK_F_USER_COPY);
    start({"--conv-zones", "2"});
  }
  void start(std::vector<std::string> extra) {
    std::vector<std::string> args = {"-t", "zoned", "--user-copy", "-s", "64M"};
    args.insert(args.end(), extra.begin(), extra.end());
    dev_ = std::make_unique<FixtureDevice>(args);
    ASSERT_DEVICE(*dev_);
    fd_ = open(dev_->block().c_str(), O_RDWR | O_DIRECT);
    ASSERT_GE(fd_, 0) << dev_->block() << ": " << strerror(errno);
  }
  void TearDown() override {
    if (fd_ >= 0) close(fd_);
    dev_.reset();
  }
  std::unique_ptr<FixtureDevice> dev_;
  int fd_ = -1;
};

}  // namespace

// --- ADD_DEV / SET_PARAMS rules (ublk_ctrl_add_dev, ublk_validate_params) ---

// The LBA of a zone append comes back in the command's addr, which the plain copy mode
// uses for the buffer: ZONED needs user copy or zero copy.
TEST(ZonedRules, AddDevWithoutUserCopyOrZeroCopyIsEinval) {
  REQUIRE_FEATURE(UBLK_F_ZONED);
  Control c;
  RawDevice d(c, 1, 4, UBLK_F_ZONED);
  EXPECT_EQ(d.add_result(), -EINVAL) << errname(d.add_result());
}

namespace {
struct ZonedParamCase {
  const char* name;
  std::function<void(ublk_params&)> mutate;
  int want;
};
class ZonedParams : public testing::TestWithParam<ZonedParamCase> {};

// 64 MiB in 16 zones of 4 MiB, the limits the driver checks against.
ublk_params zoned_params(uint32_t max_io) {
  ublk_params p = default_params(64 << 20, 9, max_io);
  p.types |= UBLK_PARAM_TYPE_ZONED;
  p.basic.chunk_sectors = kZoneSectors;
  p.zoned.max_zone_append_sectors = max_io >> 9;
  return p;
}
}  // namespace

TEST_P(ZonedParams, Validated) {
  REQUIRE_FEATURE(UBLK_F_ZONED);
  REQUIRE_FEATURE(UBLK_F_USER_COPY);
  const ZonedParamCase& tc = GetParam();
  Control c;
  RawDevice d(c, 1, 4, UBLK_F_ZONED | UBLK_F_USER_COPY);
  ASSERT_EQ(d.add_result(), 0) << errname(d.add_result());
  ublk_params p = zoned_params(d.info().max_io_buf_bytes);
  tc.mutate(p);
  int ret = c.set_params(d.id(), p);
  EXPECT_EQ(ret, tc.want) << tc.name << ": got " << errname(ret);
}

INSTANTIATE_TEST_SUITE_P(
    Rules, ZonedParams,
    testing::Values(
        ZonedParamCase{"valid", [](auto&) {}, 0},
        ZonedParamCase{"valid_limits_equal_to_zone_count",
                       [](auto& p) { p.zoned.max_open_zones = p.zoned.max_active_zones = 16; }, 0},
        ZonedParamCase{"no_zoned_block", [](auto& p) { p.types &= ~UBLK_PARAM_TYPE_ZONED; }, -EINVAL},
        ZonedParamCase{"chunk_sectors_not_power_of_two", [](auto& p) { p.basic.chunk_sectors = 3 * 2048; },
                       -EINVAL},
        ZonedParamCase{"zero_max_zone_append", [](auto& p) { p.zoned.max_zone_append_sectors = 0; }, -EINVAL},
        ZonedParamCase{"max_open_above_zone_count", [](auto& p) { p.zoned.max_open_zones = 17; }, -EINVAL},
        ZonedParamCase{"max_active_above_zone_count", [](auto& p) { p.zoned.max_active_zones = 17; },
                       -EINVAL}),
    [](const testing::TestParamInfo<ZonedParamCase>& i) { return std::string(i.param.name); });

// --- the zone geometry and REPORT_ZONES ---

TEST_F(Zoned, BlockLayerSeesAHostManagedDeviceOfSixteenZones) {
  EXPECT_EQ(sysfs(*dev_, "zoned"), "host-managed");
  EXPECT_EQ(sysfs(*dev_, "nr_zones"), "16");
  EXPECT_EQ(sysfs(*dev_, "chunk_sectors"), std::to_string(kZoneSectors));
  EXPECT_EQ(sysfs(*dev_, "zone_append_max_bytes"), std::to_string(512 << 10));
  EXPECT_EQ(sysfs(*dev_, "max_open_zones"), "0");
  EXPECT_EQ(sysfs(*dev_, "max_active_zones"), "0");
}

TEST_F(Zoned, ReportZonesShowsTheServersLayout) {
  const uint64_t before = op_count(*dev_, "report_zones");
  auto zones = report(fd_, 0, 16);
  ASSERT_EQ(zones.size(), 16u) << strerror(errno);
  for (unsigned i = 0; i < 16; i++) {
    SCOPED_TRACE("zone " + std::to_string(i));
    EXPECT_EQ(zones[i].start, i * kZoneSectors);
    EXPECT_EQ(zones[i].len, kZoneSectors);
    EXPECT_EQ(zones[i].capacity, kZoneSectors);
    if (i < 2) {
      EXPECT_EQ(zones[i].type, BLK_ZONE_TYPE_CONVENTIONAL);
      EXPECT_EQ(zones[i].cond, BLK_ZONE_COND_NOT_WP);
    } else {
      EXPECT_EQ(zones[i].type, BLK_ZONE_TYPE_SEQWRITE_REQ);
      EXPECT_EQ(zones[i].cond, BLK_ZONE_COND_EMPTY);
      EXPECT_EQ(zones[i].wp, zones[i].start);
    }
  }
  EXPECT_GT(op_count(*dev_, "report_zones"), before) << "the report did not reach the server";
}

// With 4 KiB I/Os the driver's report buffer holds 64 zones: revalidating 128 zones at
// START_DEV takes at least two REPORT_ZONES requests, each starting where the last ended
// (the block layer refuses a device whose zones do not follow each other).
TEST(ZonedReport, DeviceWithMoreZonesThanOneReportBufferComesUp) {
  REQUIRE_FEATURE(UBLK_F_ZONED);
  REQUIRE_FEATURE(UBLK_F_USER_COPY);
  FixtureDevice d({"-t", "zoned", "--user-copy", "-s", "128M", "--zone-size", "1M", "--conv-zones", "0",
                   "--max-io", "4K"});
  ASSERT_DEVICE(d);
  EXPECT_EQ(sysfs(d, "nr_zones"), "128");
  EXPECT_GE(op_count(d, "report_zones"), 2u) << "128 zones of 64 bytes cannot fit one 4 KiB report buffer";
}

// The same report asked for by BLKREPORTZONE: every entry is the zone of its index.
TEST(ZonedReport, ReportLargerThanTheBufferReturnsEveryZoneInOrder) {
  REQUIRE_FEATURE(UBLK_F_ZONED);
  REQUIRE_FEATURE(UBLK_F_USER_COPY);
  FixtureDevice d({"-t", "zoned", "--user-copy", "-s", "128M", "--zone-size", "1M", "--conv-zones", "0",
                   "--max-io", "4K"});
  ASSERT_DEVICE(d);
  int fd = open(d.block().c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << strerror(errno);
  const uint64_t before = op_count(d, "report_zones");
  auto zones = report(fd, 0, 128);
  const uint64_t requests = op_count(d, "report_zones") - before;
  close(fd);
  ASSERT_EQ(zones.size(), 128u) << strerror(errno);
  unsigned wrong = 0, first = 0;
  for (unsigned i = 0; i < 128; i++) {
    if (zones[i].start == i * 2048ULL && zones[i].len == 2048 && zones[i].cond == BLK_ZONE_COND_EMPTY)
      continue;
    if (!wrong++) first = i;
  }
  EXPECT_EQ(wrong, 0u) << wrong << " of 128 entries wrong; entry " << first << " is the zone at sector "
                       << zones[first].start << " (len " << zones[first].len << ")";
  EXPECT_GE(requests, 2u) << "128 zones of 64 bytes cannot fit one 4 KiB report buffer";
}

// --- writes and the write pointer ---

TEST_F(Zoned, SequentialWriteAdvancesTheWritePointerAndReadsBack) {
  AlignedBuf w(8192), r(8192);
  fill(w.data(), 8192, 3);
  const off_t zone3 = off_t(3 * kZone);
  ASSERT_EQ(pwrite(fd_, w.data(), 8192, zone3), 8192) << strerror(errno);
  blk_zone z = zone_of(fd_, 3);
  EXPECT_EQ(z.wp, 3 * kZoneSectors + 16);
  EXPECT_EQ(z.cond, BLK_ZONE_COND_IMP_OPEN);
  ASSERT_EQ(pread(fd_, r.data(), 8192, zone3), 8192) << strerror(errno);
  EXPECT_EQ(std::memcmp(w.data(), r.data(), 8192), 0) << "read back differs";
}

TEST_F(Zoned, WriteAwayFromTheWritePointerIsAnIoError) {
  AlignedBuf w(4096);
  fill(w.data(), 4096, 4);
  errno = 0;
  EXPECT_EQ(pwrite(fd_, w.data(), 4096, off_t(4 * kZone + 8192)), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_EQ(zone_of(fd_, 4).wp, 4 * kZoneSectors) << "a refused write moved the write pointer";
}

TEST_F(Zoned, ConventionalZonesTakeWritesAnywhere) {
  AlignedBuf w(4096), r(4096);
  fill(w.data(), 4096, 5);
  ASSERT_EQ(pwrite(fd_, w.data(), 4096, off_t(kZone + 65536)), 4096) << strerror(errno);
  ASSERT_EQ(pread(fd_, r.data(), 4096, off_t(kZone + 65536)), 4096) << strerror(errno);
  EXPECT_EQ(std::memcmp(w.data(), r.data(), 4096), 0);
  EXPECT_EQ(zone_of(fd_, 1).cond, BLK_ZONE_COND_NOT_WP);
}

// --- zone management ops reach the server (UBLK_IO_OP_ZONE_*) ---

TEST_F(Zoned, OpenCloseFinishResetMoveTheZoneThroughItsStates) {
  const uint64_t base = 5 * kZoneSectors;
  const uint64_t mgmt0 = op_count(*dev_, "zone_mgmt");
  ASSERT_EQ(zone_ioctl(fd_, BLKOPENZONE, base), 0);
  EXPECT_EQ(zone_of(fd_, 5).cond, BLK_ZONE_COND_EXP_OPEN);
  ASSERT_EQ(zone_ioctl(fd_, BLKCLOSEZONE, base), 0);
  EXPECT_EQ(zone_of(fd_, 5).cond, BLK_ZONE_COND_EMPTY) << "closing an unwritten zone empties it";
  AlignedBuf w(4096);
  fill(w.data(), 4096, 6);
  ASSERT_EQ(pwrite(fd_, w.data(), 4096, off_t(base << 9)), 4096) << strerror(errno);
  ASSERT_EQ(zone_ioctl(fd_, BLKCLOSEZONE, base), 0);
  EXPECT_EQ(zone_of(fd_, 5).cond, BLK_ZONE_COND_CLOSED);
  ASSERT_EQ(zone_ioctl(fd_, BLKFINISHZONE, base), 0);
  blk_zone z = zone_of(fd_, 5);
  EXPECT_EQ(z.cond, BLK_ZONE_COND_FULL);
  EXPECT_EQ(z.wp, base + kZoneSectors);
  ASSERT_EQ(zone_ioctl(fd_, BLKRESETZONE, base), 0);
  z = zone_of(fd_, 5);
  EXPECT_EQ(z.cond, BLK_ZONE_COND_EMPTY);
  EXPECT_EQ(z.wp, base);
  EXPECT_GE(op_count(*dev_, "zone_mgmt") - mgmt0, 5u) << "zone ops that never reached the server";
}

TEST_F(Zoned, ResetZeroesTheZonesData) {
  AlignedBuf w(65536), r(65536);
  fill(w.data(), 65536, 7);
  const off_t off = off_t(6 * kZone);
  ASSERT_EQ(pwrite(fd_, w.data(), 65536, off), 65536) << strerror(errno);
  ASSERT_EQ(zone_ioctl(fd_, BLKRESETZONE, 6 * kZoneSectors), 0);
  ASSERT_EQ(pread(fd_, r.data(), 65536, off), 65536) << strerror(errno);
  EXPECT_TRUE(all_zero(r.data(), 65536)) << "data of a reset zone still there";
}

// A reset of the whole device is one REQ_OP_ZONE_RESET_ALL (UBLK_IO_OP_ZONE_RESET_ALL).
TEST_F(Zoned, ResetOfTheWholeDeviceEmptiesEverySequentialZone) {
  AlignedBuf w(4096);
  fill(w.data(), 4096, 8);
  for (unsigned i : {2u, 9u, 15u})
    ASSERT_EQ(pwrite(fd_, w.data(), 4096, off_t(i * kZone)), 4096) << strerror(errno);
  ASSERT_EQ(zone_ioctl(fd_, BLKRESETZONE, 0, 16 * kZoneSectors), 0);
  auto zones = report(fd_, 0, 16);
  ASSERT_EQ(zones.size(), 16u);
  for (unsigned i = 2; i < 16; i++) {
    EXPECT_EQ(zones[i].cond, BLK_ZONE_COND_EMPTY) << "zone " << i;
    EXPECT_EQ(zones[i].wp, zones[i].start) << "zone " << i;
  }
}

// With max_open_zones 2, a third explicit open finds no implicitly open zone to close.
TEST(ZonedLimits, OpenBeyondMaxOpenZonesIsRefused) {
  REQUIRE_FEATURE(UBLK_F_ZONED);
  REQUIRE_FEATURE(UBLK_F_USER_COPY);
  FixtureDevice d({"-t", "zoned", "--user-copy", "-s", "64M", "--max-open-zones", "2"});
  ASSERT_DEVICE(d);
  EXPECT_EQ(sysfs(d, "max_open_zones"), "2");
  int fd = open(d.block().c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << strerror(errno);
  EXPECT_EQ(zone_ioctl(fd, BLKOPENZONE, 1 * kZoneSectors), 0);
  EXPECT_EQ(zone_ioctl(fd, BLKOPENZONE, 2 * kZoneSectors), 0);
  // The server's "no open resource" (-ETOOMANYREFS, BLK_STS_ZONE_OPEN_RESOURCE) must come
  // back through COMMIT and the block layer unchanged.
  const int third = zone_ioctl(fd, BLKOPENZONE, 3 * kZoneSectors);
  EXPECT_EQ(third, -ETOOMANYREFS) << "a third open zone past max_open_zones 2: " << errname(third);
  EXPECT_EQ(zone_of(fd, 3).cond, BLK_ZONE_COND_EMPTY);
  close(fd);
}

// --- zone append: the LBA the server returns in COMMIT is where the data is ---

// btrfs on a zoned device writes its data with REQ_OP_ZONE_APPEND: each extent lands where
// the device says (the server's zone_append_lba, set as the request's sector by the driver),
// and btrfs records that place. A driver that loses or garbles the LBA makes the remount's
// reads miss their data, which btrfs's checksums catch.
TEST(ZonedAppend, BtrfsWrittenWithZoneAppendsReadsBackAfterRemount) {
  REQUIRE_FEATURE(UBLK_F_ZONED);
  REQUIRE_FEATURE(UBLK_F_USER_COPY);
  if (!have_program("mkfs.btrfs")) GTEST_SKIP() << "no mkfs.btrfs in the guest (btrfs-progs)";
  if (run({"modprobe", "btrfs"}, 30s).status != 0 && !std::filesystem::exists("/sys/fs/btrfs"))
    GTEST_SKIP() << "kernel " << kernel_release() << " has no btrfs";
  FixtureDevice d({"-t", "zoned", "--user-copy", "-s", "512M", "--conv-zones", "0"});
  ASSERT_DEVICE(d);
  auto mk = run({"mkfs.btrfs", "-f", "-q", "-m", "single", "-d", "single", d.block()}, 120s);
  ASSERT_EQ(mk.status, 0) << mk.describe();
  const std::string mnt = "/tmp/ublkcheck-zoned-" + std::to_string(getpid());
  std::filesystem::create_directories(mnt);
  ASSERT_EQ(mount(d.block().c_str(), mnt.c_str(), "btrfs", 0, nullptr), 0) << strerror(errno);
  const uint64_t appends0 = op_count(d, "zone_append");
  std::vector<char> data(8 << 20);
  fill(data.data(), data.size(), 9);
  {
    std::ofstream f(mnt + "/data", std::ios::binary);
    f.write(data.data(), std::streamsize(data.size()));
  }
  sync();
  EXPECT_GT(op_count(d, "zone_append"), appends0) << "btrfs wrote its data without zone appends";
  // Remount, with the page cache dropped, so the reads go to the device.
  ASSERT_EQ(umount(mnt.c_str()), 0) << strerror(errno);
  ASSERT_EQ(mount(d.block().c_str(), mnt.c_str(), "btrfs", 0, nullptr), 0) << strerror(errno);
  std::vector<char> back(data.size());
  {
    std::ifstream f(mnt + "/data", std::ios::binary);
    f.read(back.data(), std::streamsize(back.size()));
    EXPECT_EQ(f.gcount(), std::streamsize(back.size())) << "short read (btrfs csum errors?)";
  }
  EXPECT_TRUE(back == data) << "the file differs after remount: zone append LBAs went astray";
  EXPECT_EQ(umount(mnt.c_str()), 0) << strerror(errno);
  std::filesystem::remove(mnt);
}

// fio's zoned mode: sequential writes within the zones' write pointers, verified.
TEST_F(Zoned, FioZonedWriteVerifyPasses) {
  auto r = run({"fio", "--name=zbd", "--filename=" + dev_->block(), "--direct=1", "--zonemode=zbd",
                "--rw=write", "--bs=64k", "--size=32M", "--offset=8M", "--ioengine=psync", "--verify=crc32c",
                "--do_verify=1", "--output-format=json"},
               120s);
  EXPECT_EQ(r.status, 0) << r.describe();
  EXPECT_GE(op_count(*dev_, "write"), 256u) << "fio's writes did not reach the server";
}
