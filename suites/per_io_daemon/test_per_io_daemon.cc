// UBLK_F_PER_IO_DAEMON (seed 000): each (queue, tag) has its own daemon task. With
// --per-io-tasks every server thread serves I/O of every queue; the ownership rule moves
// from "the queue's daemon" to "the task that fetched this I/O".
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "device.h"
#include "env.h"
#include "fio.h"
#include "load.h"
#include "raw_io.h"

using namespace ublkcheck;
using namespace ublk;
using namespace ublk::uapi;
using namespace std::chrono_literals;

namespace {

std::string cpu_list(const std::vector<int>& cpus) {
  std::string s;
  for (int c : cpus) s += (s.empty() ? "" : ",") + std::to_string(c);
  return s;
}

// Runs a 4k randread load pinned to `cpus` (empty: anywhere) and returns the per-thread
// I/O counts the server served during it.
std::vector<double> load_per_thread(FixtureDevice& d, const std::vector<int>& cpus, int jobs,
                                    FioResult* out) {
  auto before = thread_ios(d.stats());
  auto args = fio_job(d.block(), "randread", "4k", 32, jobs, "libaio", 3);
  if (!cpus.empty()) args.push_back("--cpus_allowed=" + cpu_list(cpus));
  *out = run_fio(args, 60s);
  return minus(thread_ios(d.stats()), before);
}

}  // namespace

// With PER_IO_DAEMON another task may fetch another tag of the same queue. Without it
// (6.12) the queue's daemon is the task that completed the queue's FETCHes; after that a
// FETCH from another task is refused.
TEST(Ownership, SecondThreadFetchOnTheSameQueue) {
  Control c;
  const bool per_io = c.has(UBLK_F_PER_IO_DAEMON);
  RawDevice d(c, 1, 2, per_io ? UBLK_F_PER_IO_DAEMON : 0);
  ASSERT_EQ(d.add_result(), 0);
  RawIoRing a(d.chardev(), c.legacy());
  std::vector<char> buf(8192);
  const auto a0 = reinterpret_cast<uint64_t>(buf.data()), a1 = a0 + 4096;
  ASSERT_EQ(a.cmd(UBLK_IO_FETCH_REQ, 0, 0, a0), RawIoRing::kPending);
  if (!per_io) {
    ASSERT_EQ(a.cmd(UBLK_IO_FETCH_REQ, 0, 1, a1), RawIoRing::kPending);
  }
  int b_ret = 0;
  std::thread([&] {
    RawIoRing b(a, c.legacy());
    b_ret = b.cmd(UBLK_IO_FETCH_REQ, 0, per_io ? 1 : 0, per_io ? a1 : a0);
  }).join();
  if (per_io) {
    EXPECT_EQ(b_ret, RawIoRing::kPending) << "PER_IO_DAEMON: another task may fetch another tag";
  } else {
    EXPECT_EQ(b_ret, -EINVAL) << "without PER_IO_DAEMON only the queue's daemon may issue commands";
  }
}

// The owner of an I/O (7.2: the task that fetched it; 6.12: the queue's daemon) is the only
// task whose COMMIT gets past the ownership check.
TEST(Ownership, CommitFromATaskThatDidNotFetchIsEinval) {
  Control c;
  RawDevice d(c, 1, 2, c.has(UBLK_F_PER_IO_DAEMON) ? UBLK_F_PER_IO_DAEMON : 0);
  ASSERT_EQ(d.add_result(), 0);
  RawIoRing a(d.chardev(), c.legacy());
  std::vector<char> buf(8192);
  const auto addr = reinterpret_cast<uint64_t>(buf.data());
  ASSERT_EQ(a.cmd(UBLK_IO_FETCH_REQ, 0, 0, addr), RawIoRing::kPending);
  ASSERT_EQ(a.cmd(UBLK_IO_FETCH_REQ, 0, 1, addr + 4096), RawIoRing::kPending);
  int other = 0;
  std::thread([&] {
    RawIoRing b(a, c.legacy());
    other = b.cmd(UBLK_IO_COMMIT_AND_FETCH_REQ, 0, 0, addr, 0);
  }).join();
  EXPECT_EQ(other, -EINVAL) << "a COMMIT from a task that does not own the I/O";
  // The owner gets past the task check and only then hits "not owned by the server yet".
  EXPECT_EQ(a.cmd(UBLK_IO_COMMIT_AND_FETCH_REQ, 0, 0, addr, 0), -EBUSY);
}

TEST(PerIoTasks, EveryThreadServesEveryQueue) {
  REQUIRE_FEATURE(UBLK_F_PER_IO_DAEMON);
  FixtureDevice d({"-t", "null", "-q", "2", "--nthreads", "4", "--per-io-tasks"});
  ASSERT_DEVICE(d);
  FioResult r;
  auto per_thread = load_per_thread(d, {}, 4, &r);
  ASSERT_TRUE(r.ok()) << r.describe();
  ASSERT_EQ(per_thread.size(), 4u);
  for (size_t t = 0; t < 4; t++) EXPECT_GT(per_thread[t], 0) << "thread " << t << " served nothing";
}

TEST(PerIoTasks, LoadOnOneQueueIsSpreadOverAllThreads) {
  REQUIRE_FEATURE(UBLK_F_PER_IO_DAEMON);
  FixtureDevice d({"-t", "null", "-q", "2", "--nthreads", "4", "--per-io-tasks"});
  ASSERT_DEVICE(d);
  Control c;
  std::vector<int> cpus;
  ASSERT_GE(c.get_queue_affinity(uint32_t(d.id()), 0, &cpus), 0);
  ASSERT_FALSE(cpus.empty());
  FioResult r;
  auto per_thread = load_per_thread(d, cpus, 2, &r);
  ASSERT_TRUE(r.ok()) << r.describe();
  const double j = jain_index(per_thread);
  RecordProperty("jain_index", std::to_string(j));
  EXPECT_GE(j, 0.9) << "load of queue 0 (cpus " << cpu_list(cpus) << ") not spread evenly";
}

TEST(PerQueue, LoadOnOneQueueStaysOnItsThread) {
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP() << "needs 2 CPUs for 2 queues";
  FixtureDevice d({"-t", "null", "-q", "2"});
  ASSERT_DEVICE(d);
  Control c;
  std::vector<int> cpus;
  ASSERT_GE(c.get_queue_affinity(uint32_t(d.id()), 0, &cpus), 0);
  FioResult r;
  auto per_thread = load_per_thread(d, cpus, 2, &r);
  ASSERT_TRUE(r.ok()) << r.describe();
  ASSERT_EQ(per_thread.size(), 2u);
  const double total = per_thread[0] + per_thread[1];
  ASSERT_GT(total, 0);
  // Thread 0 serves queue 0; the block layer maps the pinned CPUs' I/O to queue 0.
  EXPECT_GE(per_thread[0] / total, 0.95) << "thread0 " << per_thread[0] << " thread1 " << per_thread[1];
}

TEST(PerIoTasks, SeedWorkloadShort) {
  REQUIRE_FEATURE(UBLK_F_PER_IO_DAEMON);
  // Seed 000's reproducer, bounded to a few seconds (the stress suite runs it long).
  FixtureDevice d({"-t", "null", "-q", "2", "--nthreads", "4", "--per-io-tasks"});
  ASSERT_DEVICE(d);
  auto args = fio_job(d.block(), "randread", "4k", 128, 8, "libaio", 5);
  args.insert(args.end(), {"--iodepth_batch_submit=32", "--iodepth_batch_complete_min=32"});
  FioResult r = run_fio(args, 90s);
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_GT(r.read_ios, 1000u);
  RecordProperty("read_iops", std::to_string(int(r.read_iops)));
}

TEST(PerIoTasks, ThreadCountsThatDoNotDivideTheDepth) {
  REQUIRE_FEATURE(UBLK_F_PER_IO_DAEMON);
  FixtureDevice d({"-t", "mem", "-s", "16M", "-q", "2", "-d", "30", "--nthreads", "4", "--per-io-tasks"});
  ASSERT_DEVICE(d);
  auto args = fio_job(d.block(), "randwrite", "4k", 32, 2, "libaio", 0);
  args.insert(args.end(),
              {"--size=4M", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--offset_increment=6M"});
  FioResult r = run_fio(args, 90s);
  ASSERT_TRUE(r.ok()) << r.describe();
}
