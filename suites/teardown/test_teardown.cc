// Teardown must be bounded whatever the server does: delete with I/O in flight, a server
// that never completes an I/O, a server that dies mid-I/O, module reload.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "device.h"
#include "env.h"
#include "fio.h"
#include "held_read.h"

using namespace ublkcheck;
using namespace ublk;
using namespace ublk::uapi;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// DEL_DEV waits for the device to be released, so with a reader holding it open it
// returns when the reader is done; what must hold is that nothing hangs for good and no
// report appears: the delete finishes within the reader's own runtime plus a margin.
TEST(Teardown, DeleteWithIoInFlightIsBounded) {
  FixtureDevice d({"-t", "fault", "--delay-us", "200000", "-d", "32"});
  ASSERT_DEVICE(d);
  BackgroundFio fio(fio_job(d.block(), "randread", "4k", 32, 1, "libaio", 6));
  std::this_thread::sleep_for(2s);
  auto t0 = Clock::now();
  ProcResult r = d.del();
  EXPECT_EQ(r.status, 0) << r.describe();
  EXPECT_LT(Clock::now() - t0, 20s) << "DEL_DEV with I/O in flight";
  RecordProperty(
      "del_ms",
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count()));
  FioResult f = fio.wait(30s);
  EXPECT_FALSE(f.proc.timed_out) << "fio hung after the device was deleted";
}

TEST(Teardown, ServerThatNeverCompletesThenKilledThenDeleted) {
  // A server that completes nothing can only come up where START_DEV does not wait for a
  // partition scan; --no-part-scan (UBLK_F_NO_AUTO_PART_SCAN) keeps the scan's own read
  // from taking a tag, so the read held below is the test's and nothing else.
  REQUIRE_FEATURE(UBLK_F_NO_AUTO_PART_SCAN);
  FixtureDevice d({"-t", "fault", "--never-complete", "-d", "4", "--no-part-scan"});
  ASSERT_DEVICE(d);
  HeldRead read(d.block());
  // The server's counters show the read has reached it (and is held there).
  uint64_t ios = 0;
  for (int i = 0;
       i < 250 && (ios = d.stats().value("ops", nlohmann::json::object()).value("read", uint64_t(0))) == 0;
       i++)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(ios, 1u) << "the read never reached the server (or something else read the device)";
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(read.result(), -1) << "the I/O completed although the server never completes";
  d.kill9();  // what an operator does with a stuck server
  // The server died holding it: without USER_RECOVERY the driver fails it (EIO) once the
  // dead server's /dev/ublkcN is released.
  const int got = read.wait(15s);
  EXPECT_EQ(got, EIO) << "the held read ended with " << got
                      << (got == -1  ? " (still waiting 15 s after the kill)"
                          : got == 0 ? " (data nobody served)"
                                     : "");
  if (got == -1) return;  // stuck in the kernel: the runner's hang dump shows where
  auto t0 = Clock::now();
  ProcResult r = d.del();
  EXPECT_EQ(r.status, 0) << r.describe();
  EXPECT_LT(Clock::now() - t0, 15s) << "DEL_DEV after the stuck server died";
}

TEST(Teardown, ServerDiesMidIoWithoutRecoveryFailsIo) {
  FixtureDevice d({"-t", "fault", "--die-after", "500"});
  ASSERT_DEVICE(d);
  FioResult f = run_fio(fio_job(d.block(), "randread", "4k", 16, 1, "libaio", 10), 60s);
  EXPECT_FALSE(f.proc.timed_out) << "I/O hung after the server died";
  // fio stops at its first error: the request the server was serving when it killed itself
  // (the 500th), failed by the driver when the dead server's device is released: EIO.
  EXPECT_EQ(f.error, EIO) << "I/O after the server died must fail with EIO: " << f.describe();
  auto t0 = Clock::now();
  ProcResult r = d.del();
  EXPECT_EQ(r.status, 0) << r.describe();
  EXPECT_LT(Clock::now() - t0, 10s);
}

TEST(Teardown, StopThenDeleteWhileServerAlive) {
  FixtureDevice d({"-t", "null", "-q", "2"});
  ASSERT_DEVICE(d);
  const int pid = d.pid();
  Control c;
  ASSERT_EQ(c.stop_dev(uint32_t(d.id())), 0);
  // The server's commands are aborted by STOP: it exits by itself.
  for (int i = 0; i < 200 && kill(pid, 0) == 0; i++) std::this_thread::sleep_for(25ms);
  EXPECT_NE(kill(pid, 0), 0) << "server still alive 5 s after STOP_DEV";
  EXPECT_EQ(d.del().status, 0);
}

TEST(Teardown, ModuleReloadWithNoDevices) {
  struct stat st {};
  if (stat("/sys/module/ublk_drv/initstate", &st) != 0)
    GTEST_SKIP() << "ublk_drv is built in (or not loaded as a module): nothing to reload";
  // A patched (or gcov) ublk_drv.ko was loaded with insmod: reload that file, so the
  // driver under test is the one whose init and exit run here.
  const char* patched = getenv("UBLKCHECK_PATCHED_MODULE");
  ProcResult l = fixture({"list", "--json"});
  ASSERT_EQ(l.status, 0) << l.describe();
  if (l.out.find("dev_id") != std::string::npos) GTEST_SKIP() << "devices exist: " << l.out;
  ProcResult rm = run({"modprobe", "-r", "ublk_drv"}, 30s);
  ASSERT_EQ(rm.status, 0) << rm.describe();
  EXPECT_NE(stat("/dev/ublk-control", &st), 0) << "control node survived module removal";
  ProcResult add = patched && *patched ? run({"insmod", patched}, 30s) : run({"modprobe", "ublk_drv"}, 30s);
  ASSERT_EQ(add.status, 0) << add.describe();
  for (int i = 0; i < 100 && stat("/dev/ublk-control", &st) != 0; i++) std::this_thread::sleep_for(20ms);
  ASSERT_EQ(stat("/dev/ublk-control", &st), 0);
  FixtureDevice d({"-t", "null"});
  EXPECT_TRUE(d.ok()) << "device after reload: " << d.error();
}
