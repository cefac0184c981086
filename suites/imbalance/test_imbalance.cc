// Imbalanced load (seed 000's motivation): all I/O submitted from the CPUs of one hardware
// queue. Per-queue daemons leave one server thread doing everything; per-I/O daemons
// spread it over all threads. Asserts the spread (Jain's index), records both modes'
// throughput and writes a bar chart of the per-thread load into the artifacts directory.
#include <gtest/gtest.h>

#include <fstream>

#include "device.h"
#include "env.h"
#include "fio.h"
#include "load.h"

using namespace ublkcheck;
using namespace ublk;
using namespace ublk::uapi;
using namespace std::chrono_literals;

namespace {

struct ModeResult {
  std::vector<double> per_thread;
  double iops = 0;
};

ModeResult pinned_load(const std::vector<std::string>& add_args) {
  ModeResult m;
  FixtureDevice d(add_args);
  EXPECT_TRUE(d.ok()) << d.error();
  if (!d.ok()) return m;
  Control c;
  std::vector<int> cpus;
  EXPECT_GE(c.get_queue_affinity(uint32_t(d.id()), 0, &cpus), 0);
  std::string list;
  for (int cpu : cpus) list += (list.empty() ? "" : ",") + std::to_string(cpu);
  auto before = thread_ios(d.stats());
  auto args = fio_job(d.block(), "randread", "4k", 64, 2, "io_uring", 4);
  args.push_back("--cpus_allowed=" + list);
  FioResult r = run_fio(args, 60s);
  EXPECT_TRUE(r.ok()) << r.describe();
  m.per_thread = minus(thread_ios(d.stats()), before);
  m.iops = r.read_iops;
  return m;
}

}  // namespace

TEST(Imbalance, PerIoDaemonsSpreadALoadPinnedToOneQueue) {
  REQUIRE_FEATURE(UBLK_F_PER_IO_DAEMON);
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP() << "needs 2 CPUs for 2 queues";
  ModeResult per_queue = pinned_load({"-t", "null", "-q", "2"});
  ModeResult per_io = pinned_load({"-t", "null", "-q", "2", "--nthreads", "4", "--per-io-tasks"});
  ASSERT_EQ(per_queue.per_thread.size(), 2u);
  ASSERT_EQ(per_io.per_thread.size(), 4u);

  const double jq = jain_index(per_queue.per_thread), ji = jain_index(per_io.per_thread);
  RecordProperty("per_queue_iops", std::to_string(int(per_queue.iops)));
  RecordProperty("per_io_iops", std::to_string(int(per_io.iops)));
  RecordProperty("per_queue_jain", std::to_string(jq));
  RecordProperty("per_io_jain", std::to_string(ji));
  const std::string svg = artifacts_dir() + "/imbalance.svg";
  std::ofstream(svg) << bar_chart_svg("I/Os per server thread, fio pinned to queue 0's CPUs",
                                      {"per-queue (-q 2)", "per-I/O daemons (-q 2 --nthreads 4)"},
                                      {per_queue.per_thread, per_io.per_thread});
  RecordProperty("chart", svg);

  // Per-queue: the thread of queue 0 does (almost) everything: index ~1/2.
  EXPECT_LT(jq, 0.6) << "per-queue mode did not show the imbalance";
  // Per-I/O daemons: every thread works.
  EXPECT_GE(ji, 0.9) << "per-I/O daemons did not even out the load";
}
