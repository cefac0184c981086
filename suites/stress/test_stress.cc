// Stress: seed 000's workloads literally, plus mixed verify, kill/delete and recovery under
// load. Each load runs $UBLKCHECK_STRESS_SECONDS (default 8: the CI/smoke length; the
// nightly job sets 60+). Correctness is asserted; the runner fails any test during which
// the kernel printed an oops, WARN or KASAN report.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "device.h"
#include "env.h"
#include "fio.h"
#include "migrate.h"
#include "scratch.h"

using namespace ublkcheck;
using namespace ublk;
using namespace ublk::uapi;
using namespace std::chrono_literals;

namespace {

int stress_seconds() {
  const char* e = std::getenv("UBLKCHECK_STRESS_SECONDS");
  int s = e ? std::atoi(e) : 0;
  return s > 0 ? s : 8;
}

std::chrono::seconds budget() { return std::chrono::seconds(stress_seconds() * 3 + 60); }

const std::vector<std::string> kSeedDevice = {"-t", "null", "-q", "2", "--nthreads", "4", "--per-io-tasks"};

}  // namespace

TEST(Stress, SeedLibaioBatched) {
  REQUIRE_FEATURE(UBLK_F_PER_IO_DAEMON);
  FixtureDevice d(kSeedDevice);
  ASSERT_DEVICE(d);
  // fio -numjobs=8 --ioengine=libaio --iodepth=128 --iodepth_batch_submit=32
  //     --iodepth_batch_complete_min=32 (seed 000)
  auto a = fio_job(d.block(), "randread", "4k", 128, 8, "libaio", stress_seconds());
  a.insert(a.end(), {"--iodepth_batch_submit=32", "--iodepth_batch_complete_min=32"});
  FioResult r = run_fio(a, budget());
  ASSERT_TRUE(r.ok()) << r.describe();
  RecordProperty("read_iops", std::to_string(int(r.read_iops)));
}

// The same load with kublk's dealing, where one task owns tag t of both queues: the shape
// under which the reviewed v7 per-io-daemon patch crashed (fixtures/mutants/
// per-io-daemon-v7-batch.patch reproduces it in seconds). 8 jobs x iodepth 128 oversubscribe
// the 2 x 128 tags, so submitters sleep for tags, wake on the other CPU and mix both
// hardware queues in one plug batch. A migration storm moves the submitters between CPUs
// all the time to make that mix frequent.
TEST(Stress, SeedPanicWorkload) {
  REQUIRE_FEATURE(UBLK_F_PER_IO_DAEMON);
  FixtureDevice d({"-t", "null", "-q", "2", "--nthreads", "4", "--per-io-tasks", "--io-map", "kublk"});
  ASSERT_DEVICE(d);
  auto a = fio_job(d.block(), "randread", "4k", 128, 8, "libaio", stress_seconds());
  a.insert(a.end(), {"--iodepth_batch_submit=32", "--iodepth_batch_complete_min=32"});
  BackgroundFio fio(a);
  FioResult r;
  {
    MigrationStorm storm("fio");
    r = fio.wait(budget());
    RecordProperty("migrations", std::to_string(storm.moves()));
  }
  ASSERT_TRUE(r.ok()) << r.describe();
  RecordProperty("read_iops", std::to_string(int(r.read_iops)));
}

TEST(Stress, SeedIoUringSqpollBatched) {
  REQUIRE_FEATURE(UBLK_F_PER_IO_DAEMON);
  FixtureDevice d(kSeedDevice);
  ASSERT_DEVICE(d);
  // The seed used t/io_uring (not packaged): fio's io_uring engine with a polling
  // submission thread, registered files/buffers and the same batching.
  auto a = fio_job(d.block(), "randread", "4k", 128, 8, "io_uring", stress_seconds());
  a.insert(a.end(), {"--iodepth_batch_submit=32", "--iodepth_batch_complete_min=32", "--sqthread_poll=1",
                     "--registerfiles=1", "--fixedbufs=1"});
  FioResult r = run_fio(a, budget());
  ASSERT_TRUE(r.ok()) << r.describe();
  RecordProperty("read_iops", std::to_string(int(r.read_iops)));
}

TEST(Stress, MixedReadWriteVerifyPerIoDaemons) {
  REQUIRE_FEATURE(UBLK_F_PER_IO_DAEMON);
  FixtureDevice d({"-t", "mem", "-s", "64M", "-q", "2", "--nthreads", "4", "--per-io-tasks"});
  ASSERT_DEVICE(d);
  auto a = fio_job(d.block(), "randrw", "4k", 64, 4, "libaio", 0);
  a.insert(a.end(),
           {"--size=12M", "--offset_increment=16M", "--bsrange=4k-64k", "--verify=crc32c", "--do_verify=1",
            "--verify_fatal=1", "--loops=" + std::to_string(std::max(1, stress_seconds() / 4))});
  FioResult r = run_fio(a, budget());
  ASSERT_TRUE(r.ok()) << r.describe();
}

TEST(Stress, QueueAndThreadMatrixVerify) {
  REQUIRE_FEATURE(UBLK_F_PER_IO_DAEMON);
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  for (int q : {2, 3, 4}) {
    for (int t : {2, 3, 4}) {
      for (int depth : {128, 30}) {
        if (t < q) continue;  // keeps the matrix small: fewer threads than queues adds no new dealing
        SCOPED_TRACE("queues " + std::to_string(q) + " (capped at " + std::to_string(cpus) +
                     " cpus) threads " + std::to_string(t) + " depth " + std::to_string(depth));
        FixtureDevice d({"-t", "mem", "-s", "16M", "-q", std::to_string(q), "-d", std::to_string(depth),
                         "--nthreads", std::to_string(t), "--per-io-tasks"});
        ASSERT_DEVICE(d);
        auto a = fio_job(d.block(), "randwrite", "4k", 32, 2, "libaio", 0);
        a.insert(a.end(), {"--size=4M", "--offset_increment=6M", "--verify=crc32c", "--do_verify=1",
                           "--verify_fatal=1"});
        FioResult r = run_fio(a, 120s);
        ASSERT_TRUE(r.ok()) << r.describe();
      }
    }
  }
}

TEST(Stress, KillAndDeleteUnderLoad) {
  for (int round = 0; round < 3; round++) {
    SCOPED_TRACE("round " + std::to_string(round));
    FixtureDevice d({"-t", "null", "-q", "2"});
    ASSERT_DEVICE(d);
    BackgroundFio fio(fio_job(d.block(), "randread", "4k", 64, 4, "libaio", 30));
    std::this_thread::sleep_for(1500ms);
    d.kill9();
    ProcResult del = d.del();
    EXPECT_EQ(del.status, 0) << del.describe();
    FioResult r = fio.wait(60s);
    EXPECT_FALSE(r.proc.timed_out) << "fio hung after kill + delete";
  }
}

TEST(Stress, RecoveryLoopUnderLoad) {
  REQUIRE_FEATURE(UBLK_F_USER_RECOVERY_REISSUE);
  REQUIRE_FEATURE(UBLK_F_PER_IO_DAEMON);
  // On a file written and verified first, so the loop checks data as well as errors: the
  // load (8 x QD64) keeps many requests in each dying server, and two verifying readers
  // check that every reissued read returns its block.
  ScratchFile img("stress-rec", 32 << 20);
  ASSERT_TRUE(img.ok()) << img.path();
  FixtureDevice d(
      {"-t", "file", "--file", img.path(), "-q", "2", "--nthreads", "4", "--per-io-tasks", "--reissue"});
  ASSERT_DEVICE(d);
  FioResult w = run_fio(fio_write_verify(d.block(), "32M", 16), budget());
  ASSERT_TRUE(w.ok()) << "pattern write: " << w.describe();
  const int rounds = std::max(3, stress_seconds() / 2);
  // One fio, two job sections: the load and the verifiers.
  auto jobs = fio_job(d.block(), "randread", "4k", 64, 8, "libaio", rounds * 2 + 4);
  auto verifiers = fio_read_verify(d.block(), "32M", 2, rounds * 2 + 4);
  jobs.insert(jobs.end(), verifiers.begin(), verifiers.end());
  BackgroundFio fio(jobs);
  std::this_thread::sleep_for(1s);
  for (int i = 0; i < rounds; i++) {
    SCOPED_TRACE("round " + std::to_string(i));
    d.kill9();
    ASSERT_EQ(d.wait_state("QUIESCED", 15s), "QUIESCED");
    ProcResult rec = d.recover();
    ASSERT_EQ(rec.status, 0) << rec.describe();
    std::this_thread::sleep_for(500ms);
  }
  FioResult r = fio.wait(budget() + std::chrono::seconds(rounds * 3));
  EXPECT_TRUE(r.ok()) << r.describe();
}
