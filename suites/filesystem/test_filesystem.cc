// What users put on a block device: a filesystem, in every copy mode. mkfs, mount, a file
// workload whose every block fio verifies (O_DIRECT, so the reads come from the device and
// not the page cache), umount, a clean fsck, then a remount whose verify-only pass proves the
// data went through the server to the backing file and back; and the filesystem's metadata
// requests reach the server flagged as such (UBLK_IO_F_META).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "copy_modes.h"
#include "device.h"
#include "env.h"
#include "proc.h"
#include "scratch.h"

using namespace ublkcheck;
using namespace ublk::uapi;
using namespace std::chrono_literals;

namespace {

struct Fs {
  const char* name;
  std::vector<std::string> mkfs;  // the device path is appended
  std::vector<std::string> fsck;  // read-only check; the device path is appended
  off_t size;                     // of the (sparse) backing file
};

// ext4 with 1 KiB blocks: jbd2 then keeps its frozen metadata copies in slab objects, which
// the driver's copy must handle (the loop driver's data, not user memory: no usercopy check).
const Fs kExt4{"ext4", {"mkfs.ext4", "-q", "-F", "-b", "1024"}, {"fsck.ext4", "-f", "-n"}, off_t(64) << 20};
// xfs refuses filesystems under 300 MiB.
const Fs kXfs{"xfs", {"mkfs.xfs", "-q", "-f"}, {"xfs_repair", "-n"}, off_t(512) << 20};

// The kernel can mount `fs` (after loading its module, if there is one).
bool kernel_has(const std::string& fs) {
  run({"modprobe", "-q", fs}, 10s);
  std::ifstream in("/proc/filesystems");
  std::string line;
  while (std::getline(in, line)) {  // "nodev\tsysfs" or "\text4": the name is the last field
    const size_t tab = line.rfind('\t');
    if (line.substr(tab == std::string::npos ? 0 : tab + 1) == fs) return true;
  }
  return false;
}

std::vector<std::string> with(std::vector<std::string> v, const std::string& last) {
  v.push_back(last);
  return v;
}

// fio on files in `dir`: 2 jobs x 4 MiB of 4 KiB random writes, each block verified.
std::vector<std::string> file_workload(const std::string& dir, bool verify_only) {
  std::vector<std::string> a = {"fio",
                                "--name=fs",
                                "--directory=" + dir,
                                "--rw=randwrite",
                                "--bs=4k",
                                "--size=4M",
                                "--numjobs=2",
                                "--direct=1",
                                "--ioengine=psync",
                                "--verify=crc32c",
                                "--verify_fatal=1",
                                "--group_reporting=0"};
  a.push_back(verify_only ? "--verify_only" : "--do_verify=1");
  return a;
}

struct Param {
  CopyMode mode;
  const Fs* fs;
};

class Filesystem : public testing::TestWithParam<Param> {};

}  // namespace

TEST_P(Filesystem, MkfsMountVerifyFsckRemountVerify) {
  const Param& p = GetParam();
  if (p.mode.feature && (kernel_features() & p.mode.feature) != p.mode.feature)
    GTEST_SKIP() << "kernel " << kernel_release() << " lacks the " << p.mode.name
                 << " copy mode (GET_FEATURES = " << features_hex() << ")";
  if (!have_program(p.fs->mkfs[0]) || !have_program(p.fs->fsck[0]))
    GTEST_SKIP() << "no " << p.fs->mkfs[0] << " / " << p.fs->fsck[0] << " in the guest";
  if (!kernel_has(p.fs->name))
    GTEST_SKIP() << "kernel " << kernel_release() << " cannot mount " << p.fs->name;
  ScratchFile img(std::string("fs-") + p.fs->name, p.fs->size);
  ASSERT_TRUE(img.ok()) << img.path();
  std::vector<std::string> args = {"-t", "file", "--file", img.path()};
  for (const std::string& f : p.mode.args()) args.push_back(f);
  FixtureDevice d(args);
  ASSERT_DEVICE(d);
  char tmpl[] = "/tmp/ublkcheck-mnt-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string mnt = tmpl;
  ProcResult mk = run(with(p.fs->mkfs, d.block()), 120s);
  ASSERT_EQ(mk.status, 0) << mk.describe();
  ASSERT_EQ(mount(d.block().c_str(), mnt.c_str(), p.fs->name, 0, nullptr), 0) << strerror(errno);
  ProcResult w = run(file_workload(mnt, false), 180s);
  EXPECT_EQ(w.status, 0) << "write + verify on the mounted filesystem: " << w.describe();
  ASSERT_EQ(umount(mnt.c_str()), 0) << strerror(errno);
  ProcResult ck = run(with(p.fs->fsck, d.block()), 120s);
  EXPECT_EQ(ck.status, 0) << "fsck after umount: " << ck.describe();
  ASSERT_EQ(mount(d.block().c_str(), mnt.c_str(), p.fs->name, 0, nullptr), 0) << strerror(errno);
  ProcResult v = run(file_workload(mnt, true), 180s);
  EXPECT_EQ(v.status, 0) << "verify after remount: " << v.describe();
  EXPECT_EQ(umount(mnt.c_str()), 0) << strerror(errno);
  rmdir(mnt.c_str());
  // The filesystem marks its metadata I/O (REQ_META); the server must see that flag.
  const auto stats = d.stats();
  const uint64_t meta = stats.contains("ops") ? stats["ops"].value("meta", uint64_t(0)) : 0;
  EXPECT_GT(meta, 0u) << "no request reached the server flagged UBLK_IO_F_META";
}

namespace {
std::vector<Param> all_params() {
  std::vector<Param> v;
  for (const auto& m : copy_modes()) v.push_back({m, &kExt4});
  v.push_back({copy_modes()[0], &kXfs});  // xfs once, on the plain path: its own I/O pattern
  for (const auto& m : copy_modes())
    if (std::string(m.name) == "zero_copy") v.push_back({m, &kXfs});
  return v;
}
}  // namespace

INSTANTIATE_TEST_SUITE_P(CopyModes, Filesystem, testing::ValuesIn(all_params()),
                         [](const testing::TestParamInfo<Param>& p) {
                           return std::string(p.param.fs->name) + "_" + p.param.mode.name;
                         });
