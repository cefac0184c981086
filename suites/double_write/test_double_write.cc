// REISSUE and double writes (seed 002: "the backend must tolerate double-write because we
// re-issue a rq sent to the old process"). Writes reach the backend, the server is killed
// before acknowledging them, the new server gets them again: the journal shows them twice,
// the writer sees no error, and the device ends up with the last acknowledged data.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <thread>

#include "device.h"
#include "env.h"
#include "fio.h"
#include "journal.h"

using namespace ublkcheck;
using namespace ublk;
using namespace ublk::uapi;
using namespace std::chrono_literals;

namespace {

class DoubleWrite : public testing::Test {
 protected:
  void SetUp() override {
    const std::string base = "/tmp/ublkcheck-dw-" + std::to_string(getpid());
    img_ = base + ".img";
    journal_ = base + ".journal";
    unlink(journal_.c_str());
    int fd = open(img_.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, 8 << 20), 0);
    close(fd);
  }
  void TearDown() override {
    unlink(img_.c_str());
    unlink(journal_.c_str());
  }
  // Every write is stored, then held 100 ms (reads are not delayed) before its completion is committed: a
  // kill in that window leaves written-but-unacknowledged requests in the driver.
  std::vector<std::string> args(const char* recovery) {
    return {"-t",         "fault",  "--file",      img_,    recovery, "--journal", journal_,
            "--delay-us", "100000", "--delay-ops", "write", "-d",     "16"};
  }
  std::string img_, journal_;
};

// fio writer with its own verify: every block's header carries a checksum and offset.
std::vector<std::string> writer(const std::string& dev) {
  auto a = fio_job(dev, "write", "4k", 16, 1, "libaio", 0);
  a.insert(a.end(), {"--size=1M", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1"});
  return a;
}

}  // namespace

TEST_F(DoubleWrite, ReissuedWritesArriveTwiceAndDataIsTheLastAcknowledged) {
  REQUIRE_FEATURE(UBLK_F_USER_RECOVERY_REISSUE);
  FixtureDevice d(args("--reissue"));
  ASSERT_DEVICE(d);
  BackgroundFio fio(writer(d.block()));
  // Wait until some writes are in the journal (stored, not yet acknowledged).
  for (int i = 0; i < 100 && read_journal(journal_).size() < 8; i++) std::this_thread::sleep_for(50ms);
  ASSERT_GE(read_journal(journal_).size(), 8u) << "no writes reached the backend";
  const size_t before_kill = read_journal(journal_).size();
  d.kill9();
  ASSERT_EQ(d.wait_state("QUIESCED", 15s), "QUIESCED");
  ProcResult rec = d.recover();
  ASSERT_EQ(rec.status, 0) << rec.describe();
  FioResult r = fio.wait(120s);
  EXPECT_TRUE(r.ok()) << "REISSUE must hide the crash from the writer: " << r.describe();

  auto recs = read_journal(journal_);
  ASSERT_GT(recs.size(), before_kill);
  // The same (offset, length, data) stored twice: a reissued write.
  std::map<std::tuple<uint64_t, uint32_t, uint64_t>, int> seen;
  int doubles = 0;
  for (const auto& j : recs) doubles += seen[{j.offset, j.len, j.checksum}]++ == 1;
  EXPECT_GT(doubles, 0) << "no write reached the backend twice across the kill";
  RecordProperty("double_writes", std::to_string(doubles));

  // The device's content equals the last journal record for each written block.
  std::map<uint64_t, JournalRecord> last;
  for (const auto& j : recs) last[j.offset] = j;
  int fd = open(d.block().c_str(), O_RDONLY | O_DIRECT);
  ASSERT_GE(fd, 0);
  void* buf = nullptr;
  ASSERT_EQ(posix_memalign(&buf, 4096, 1 << 20), 0);
  int mismatches = 0;
  for (const auto& [off, j] : last) {
    ASSERT_EQ(pread(fd, buf, j.len, off_t(off)), ssize_t(j.len));
    mismatches += fnv1a64(buf, j.len) != j.checksum;
  }
  free(buf);
  close(fd);
  EXPECT_EQ(mismatches, 0) << "blocks whose content is not the last write stored";
}

TEST_F(DoubleWrite, WithoutReissueInFlightWritesFail) {
  REQUIRE_FEATURE(UBLK_F_USER_RECOVERY);
  FixtureDevice d(args("--recovery"));
  ASSERT_DEVICE(d);
  BackgroundFio fio(writer(d.block()));
  for (int i = 0; i < 100 && read_journal(journal_).size() < 8; i++) std::this_thread::sleep_for(50ms);
  d.kill9();
  ASSERT_EQ(d.wait_state("QUIESCED", 15s), "QUIESCED");
  // Writes fio issues after the crash wait for a server: recover, then fio can end.
  ProcResult rec = d.recover();
  EXPECT_EQ(rec.status, 0) << rec.describe();
  FioResult r = fio.wait(120s);
  EXPECT_FALSE(r.proc.timed_out);
  EXPECT_EQ(r.error, EIO) << "plain RECOVERY fails the outstanding writes: " << r.describe();
}
