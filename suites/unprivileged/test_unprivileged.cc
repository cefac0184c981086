// UBLK_F_UNPRIVILEGED_DEV: an ordinary user adds, serves and deletes its own device, and
// cannot control another user's device or use copy modes that could leak kernel memory.
// The guest has no udev, so the test does what the udev rule ublk ships does: make
// /dev/ublk-control usable and give each device's nodes to the device's owner.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "device.h"
#include "env.h"
#include "held_read.h"
#include "raw_io.h"

using namespace ublkcheck;
using namespace ublk;
using namespace ublk::uapi;
using namespace std::chrono_literals;

namespace {

constexpr uid_t kUser = 65534;  // nobody
constexpr uid_t kOther = 65533;

// Runs `fn` in a child with the given uid/gid and returns its exit code (the child
// reports through its exit code, so keep values < 256).
int as_user(uid_t uid, const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, nullptr) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid)) _exit(250);
    _exit(fn());
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

int errno_code(int ret) { return ret < 0 ? -ret : (ret == 0 ? 0 : 249); }

// What ublk's udev rule does, as a thread: chown each ublk node to its device's owner.
class NodeOwnerFixer {
 public:
  NodeOwnerFixer() : th_([this] { loop(); }) {}
  ~NodeOwnerFixer() {
    stop_ = true;
    th_.join();
  }

 private:
  void loop() {
    Control c;
    c.set_prefix_dev_path(true);  // commands on unprivileged devices carry the node path
    while (!stop_) {
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator("/dev", ec)) {
        std::string n = e.path().filename();
        if (n.rfind("ublkc", 0) != 0 && n.rfind("ublkb", 0) != 0) continue;
        uint32_t id = uint32_t(std::strtoul(n.c_str() + 5, nullptr, 10));
        ublksrv_ctrl_dev_info info{};
        if (c.get_dev_info(id, &info) == 0 && (info.flags & UBLK_F_UNPRIVILEGED_DEV))
          if (chown(e.path().c_str(), info.owner_uid, info.owner_gid)) {
          }
      }
      std::this_thread::sleep_for(5ms);
    }
  }
  std::atomic<bool> stop_{false};
  std::thread th_;
};

class Unprivileged : public testing::Test {
 protected:
  void SetUp() override {
    if (!(kernel_features() & UBLK_F_UNPRIVILEGED_DEV))
      GTEST_SKIP() << "kernel lacks UBLK_F_UNPRIVILEGED_DEV (GET_FEATURES = " << features_hex() << ")";
    struct stat st {};
    ASSERT_EQ(stat("/dev/ublk-control", &st), 0);
    old_mode_ = st.st_mode & 07777;
    chmod("/dev/ublk-control", 0666);
    state_ = "/tmp/ublkcheck-unpriv-" + std::to_string(getpid());
    mkdir(state_.c_str(), 0777);
    chmod(state_.c_str(), 0777);
  }
  void TearDown() override {
    if (old_mode_) chmod("/dev/ublk-control", old_mode_);
  }
  mode_t old_mode_ = 0;
  std::string state_;
};

}  // namespace

TEST_F(Unprivileged, AddWithoutTheFlagIsEperm) {
  int rc = as_user(kUser, [] {
    Control c;
    RawDevice d(c, 1, 4, 0);
    return errno_code(d.add_result());
  });
  EXPECT_EQ(rc, EPERM);
}

TEST_F(Unprivileged, UserCopyZeroCopyAndAutoBufRegAreRefused) {
  // 42aafd8b48ad: user copy was once allowed for unprivileged devices.
  int checked = 0;
  for (uint64_t f : {UBLK_F_USER_COPY, UBLK_F_SUPPORT_ZERO_COPY, UBLK_F_AUTO_BUF_REG,
                     UBLK_F_SUPPORT_ZERO_COPY | UBLK_F_AUTO_BUF_REG}) {
    if ((kernel_features() & f) != f) continue;  // unknown flags are cleared, not refused
    checked++;
    int rc = as_user(kUser, [f] {
      Control c;
      RawDevice d(c, 1, 4, UBLK_F_UNPRIVILEGED_DEV | f);
      return errno_code(d.add_result());
    });
    EXPECT_EQ(rc, EINVAL) << "flags 0x" << std::hex << f;
  }
  if (!checked) GTEST_SKIP() << "kernel has none of user copy / zero copy";
}

// Recovery could hang error handling on an untrusted server: ADD_DEV of an unprivileged
// device silently drops USER_RECOVERY and REISSUE (the device is added without them).
TEST_F(Unprivileged, RecoveryFlagsAreSilentlyDropped) {
  if ((kernel_features() & UBLK_F_USER_RECOVERY_REISSUE) != UBLK_F_USER_RECOVERY_REISSUE)
    GTEST_SKIP() << "kernel lacks UBLK_F_USER_RECOVERY_REISSUE (GET_FEATURES = " << features_hex() << ")";
  NodeOwnerFixer udev;
  int rc = as_user(kUser, [] {
    Control c;
    c.set_prefix_dev_path(true);
    RawDevice d(c, 1, 4, UBLK_F_UNPRIVILEGED_DEV | UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE);
    if (d.add_result() != 0) return 100 + errno_code(d.add_result());
    // The owner may delete it once the "udev" thread has handed it the node: wait for that,
    // or the delete at scope exit is refused and the device outlives the test.
    for (int i = 0; i < 200 && access(d.chardev().c_str(), R_OK | W_OK) != 0; i++)
      std::this_thread::sleep_for(10ms);
    const uint64_t f = d.info().flags;
    return (f & UBLK_F_USER_RECOVERY ? 1 : 0) | (f & UBLK_F_USER_RECOVERY_REISSUE ? 2 : 0) |
           (f & UBLK_F_UNPRIVILEGED_DEV ? 0 : 4);
  });
  EXPECT_EQ(rc, 0)
      << "1: USER_RECOVERY kept, 2: REISSUE kept, 4: UNPRIVILEGED_DEV lost, 100+e: ADD_DEV failed";
}

TEST_F(Unprivileged, UserAddsServesAndDeletesItsOwnDevice) {
  NodeOwnerFixer udev;
  const std::string env = "UBLK_FIXTURE_STATE_DIR=" + state_;
  int rc = as_user(kUser, [&] {
    putenv(const_cast<char*>(env.c_str()));
    ProcResult add = fixture({"add", "-t", "mem", "-s", "8M", "--unprivileged", "--json"}, 30s);
    if (add.status != 0) {
      fprintf(stderr, "add: %s\n", add.describe().c_str());
      return 10;
    }
    auto j = nlohmann::json::parse(add.out, nullptr, false);
    if (j.is_discarded() || j.value("owner_uid", 0u) != kUser) return 11;
    const std::string id = std::to_string(j["dev_id"].get<int>());
    ProcResult io =
        run({"fio", "--name=u", "--filename=/dev/ublkb" + id, "--rw=randwrite", "--bs=4k", "--size=2M",
             "--direct=1", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--output-format=json"},
            60s);
    if (io.status != 0) {
      fprintf(stderr, "fio: %s\n", io.describe().c_str());
      return 12;
    }
    ProcResult del = fixture({"del", "-n", id}, 30s);
    return del.status == 0 ? 0 : 13;
  });
  EXPECT_EQ(rc, 0) << "10: add failed, 11: wrong owner, 12: I/O failed, 13: del failed";
}

namespace {

// An unprivileged device added (not started) by a child running as `uid`, which stays alive
// so that the device keeps its owner; the child is killed and the device deleted (by root)
// on scope exit.
class UserDevice {
 public:
  explicit UserDevice(uid_t uid) {
    int pipefd[2];
    if (pipe(pipefd)) return;
    owner_ = fork();
    if (owner_ == 0) {
      if (setresgid(uid, uid, uid) || setresuid(uid, uid, uid)) _exit(1);
      Control c;
      ublksrv_ctrl_dev_info info = dev_info(1, 4, UBLK_F_UNPRIVILEGED_DEV | UBLK_F_CMD_IOCTL_ENCODE);
      uint32_t id = c.add_dev(&info) == 0 ? info.dev_id : UINT32_MAX;
      if (write(pipefd[1], &id, sizeof(id)) < 0) _exit(1);
      pause();
      _exit(0);
    }
    if (read(pipefd[0], &id_, sizeof(id_)) != ssize_t(sizeof(id_))) id_ = UINT32_MAX;
    close(pipefd[0]);
    close(pipefd[1]);
  }
  ~UserDevice() { del(); }
  // Ends the owner and deletes the device as root: DEL_DEV's result (0 if already done).
  int del() {
    if (owner_ > 0) {
      kill(owner_, SIGKILL);
      waitpid(owner_, nullptr, 0);
      owner_ = -1;
    }
    if (id_ == UINT32_MAX) return 0;
    Control c;
    c.set_prefix_dev_path(true);
    int ret = c.del_dev(id_);
    id_ = UINT32_MAX;
    return ret;
  }
  bool ok() const { return id_ != UINT32_MAX; }
  uint32_t id() const { return id_; }
  std::string chardev() const { return "/dev/ublkc" + std::to_string(id_); }
  // Waits (5 s at most) until the "udev" thread has given the char device to `uid`.
  bool node_owned_by(uid_t uid) const {
    struct stat st {};
    for (int i = 0; i < 500; i++) {
      if (stat(chardev().c_str(), &st) == 0 && st.st_uid == uid) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

 private:
  pid_t owner_ = -1;
  uint32_t id_ = UINT32_MAX;
};

// `op` on device `id` with `path` as the char device named in front of the payload (the
// driver checks the caller's access to that node, and that it is this device's node).
int with_dev_path(Control& c, uint32_t op, uint32_t id, const std::string& path, void* payload,
                  uint16_t len) {
  std::vector<char> buf(path.size() + 1 + len);
  std::memcpy(buf.data(), path.c_str(), path.size() + 1);
  if (len) std::memcpy(buf.data() + path.size() + 1, payload, len);
  ublksrv_ctrl_cmd cmd = dev_cmd(id, buf.data(), uint16_t(buf.size()));
  cmd.dev_path_len = uint16_t(path.size() + 1);
  return c.raw(op, cmd);
}

}  // namespace

TEST_F(Unprivileged, CannotControlAnotherUsersDevice) {
  NodeOwnerFixer udev;
  UserDevice dev(kUser);
  ASSERT_TRUE(dev.ok()) << "unprivileged ADD_DEV failed";
  ASSERT_TRUE(dev.node_owned_by(kUser)) << dev.chardev() << " never given to its owner";
  const uint32_t id = dev.id();

  int other = as_user(kOther, [id] {
    Control c;
    c.set_prefix_dev_path(true);
    ublksrv_ctrl_dev_info info{};
    int r1 = c.get_dev_info(id, &info);
    int r2 = c.del_dev(id);
    // Both must be refused; report the first unexpected result.
    if (r1 != -EACCES) return 100 + errno_code(r1) % 100;
    if (r2 != -EACCES) return 200 + errno_code(r2) % 50;
    return 0;
  });
  EXPECT_EQ(other, 0) << "another user could control the device (100+e: GET_DEV_INFO2, 200+e: DEL)";
  int self = as_user(kUser, [id] {
    Control c;
    c.set_prefix_dev_path(true);
    ublksrv_ctrl_dev_info info{};
    return errno_code(c.get_dev_info(id, &info));
  });
  EXPECT_EQ(self, 0) << "the owner could not read its own device's info";
  int open_other = as_user(kOther, [id] {
    int fd = open(("/dev/ublkc" + std::to_string(id)).c_str(), O_RDWR);
    return fd < 0 ? errno : 0;
  });
  EXPECT_EQ(open_other, EACCES) << "another user opened the char device";
  EXPECT_EQ(dev.del(), 0) << "root may delete it";
}

// The node a command names must be the device's own: a user who owns one device cannot
// reach another user's device by naming its own /dev/ublkcN (ublk_char_dev_permission()
// compares the node's rdev with the device's: EPERM).
TEST_F(Unprivileged, AnotherUsersDeviceThroughOwnNodeIsEperm) {
  NodeOwnerFixer udev;
  UserDevice victim(kUser);
  UserDevice mine(kOther);
  ASSERT_TRUE(victim.ok() && mine.ok()) << "unprivileged ADD_DEV failed";
  ASSERT_TRUE(victim.node_owned_by(kUser) && mine.node_owned_by(kOther)) << "nodes never chowned";
  const uint32_t vid = victim.id(), mid = mine.id();
  const std::string own_node = mine.chardev();
  int rc = as_user(kOther, [&] {
    Control c;
    ublksrv_ctrl_dev_info info{};
    // The node is usable: the caller's own device answers through it.
    int r0 = with_dev_path(c, UBLK_U_CMD_GET_DEV_INFO2, mid, own_node, &info, sizeof(info));
    int r1 = with_dev_path(c, UBLK_U_CMD_GET_DEV_INFO2, vid, own_node, &info, sizeof(info));
    int r2 = with_dev_path(c, UBLK_U_CMD_STOP_DEV, vid, own_node, nullptr, 0);
    if (r0 != 0) return 10 + errno_code(r0) % 40;
    if (r1 != -EPERM) return 100 + errno_code(r1) % 100;
    if (r2 != -EPERM) return 200 + errno_code(r2) % 50;
    return 0;
  });
  EXPECT_EQ(rc, 0) << "10+e: own device through own node, 100+e: GET_DEV_INFO2 of the other "
                      "device through it, 200+e: STOP_DEV of the other device through it";
  // Root reads it through its own node (GET_DEV_INFO2: an unprivileged device refuses the
  // path-less GET_DEV_INFO) and finds it unchanged.
  Control c;
  c.set_prefix_dev_path(true);
  ublksrv_ctrl_dev_info info{};
  ASSERT_EQ(c.get_dev_info(vid, &info), 0);
  EXPECT_EQ(info.owner_uid, kUser);
  EXPECT_EQ(info.state, UBLK_S_DEV_DEAD) << "never started, so still DEAD";
}

// Commands on an unprivileged device carry its node's path in front of their payload
// (ublk_ctrl_uring_cmd_permission()), root's too: the path's length must be 1..PATH_MAX
// and fit in the payload; and a command the driver does not know is EINVAL there (on a
// root device the dispatcher's EOPNOTSUPP answers instead).
TEST_F(Unprivileged, DevPathLengthIsCheckedAndUnknownCommandsAreEinval) {
  NodeOwnerFixer udev;
  UserDevice dev(kUser);
  ASSERT_TRUE(dev.ok()) << "unprivileged ADD_DEV failed";
  ASSERT_TRUE(dev.node_owned_by(kUser));
  const std::string node = dev.chardev();
  const uint16_t n = uint16_t(node.size() + 1);
  std::vector<char> buf(n + sizeof(ublksrv_ctrl_dev_info));
  std::memcpy(buf.data(), node.c_str(), n);
  Control c;
  auto send = [&](uint32_t op, uint16_t path_len, uint16_t len) {
    ublksrv_ctrl_cmd cmd = dev_cmd(dev.id(), buf.data(), len);
    cmd.dev_path_len = path_len;
    return c.raw(op, cmd);
  };
  const uint16_t all = uint16_t(buf.size());
  EXPECT_EQ(send(UBLK_U_CMD_GET_DEV_INFO2, 0, all), -EINVAL) << "dev_path_len 0";
  EXPECT_EQ(send(UBLK_U_CMD_GET_DEV_INFO2, 4097, all), -EINVAL) << "dev_path_len > PATH_MAX";
  EXPECT_EQ(send(UBLK_U_CMD_GET_DEV_INFO2, n, uint16_t(n - 1)), -EINVAL) << "len < dev_path_len";
  EXPECT_EQ(send(UBLK_U_CMD_GET_DEV_INFO2, n, all), 0) << "the right path";
  const uint32_t unknown = ioc(IOC_READ | IOC_WRITE, 'u', 0x40, sizeof(ublksrv_ctrl_cmd));
  EXPECT_EQ(send(unknown, n, all), -EINVAL) << "unknown command on an unprivileged device";
}

TEST_F(Unprivileged, CannotControlARootDevice) {
  FixtureDevice d({"-t", "null"});
  ASSERT_DEVICE(d);
  const uint32_t id = uint32_t(d.id());
  int rc = as_user(kUser, [id] {
    Control c;
    int r1 = dev_info_ret(c, id);
    int r2 = c.stop_dev(id);
    if (r1 != -EPERM) return 100 + errno_code(r1) % 100;
    if (r2 != -EPERM) return 200 + errno_code(r2) % 50;
    return 0;
  });
  EXPECT_EQ(rc, 0)
      << "a user without CAP_SYS_ADMIN reached root's device (100+e: GET_DEV_INFO, 200+e: STOP_DEV)";
  EXPECT_EQ(d.state(), "LIVE");
}

// --- request timeouts (ublk_timeout): an unprivileged server may not sit on a request ---

namespace {
bool set_io_timeout_ms(int id, int ms) {
  std::ofstream f("/sys/block/ublkb" + std::to_string(id) + "/queue/io_timeout");
  f << ms;
  f.flush();
  return bool(f);
}

bool alive(int pid) { return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH); }
}  // namespace

// ublk_timeout() SIGKILLs the server of an unprivileged device whose request times out
// (it may not hold the kernel's I/O forever); the read then fails with EIO.
TEST_F(Unprivileged, ServerHoldingARequestPastItsTimeoutIsKilled) {
  NodeOwnerFixer udev;
  const std::string env = "UBLK_FIXTURE_STATE_DIR=" + state_;
  const std::string out = state_ + "/add.json";
  int rc = as_user(kUser, [&] {
    putenv(const_cast<char*>(env.c_str()));
    ProcResult add =
        fixture({"add", "-t", "fault", "--never-complete", "-s", "8M", "--unprivileged", "--json"}, 30s);
    std::ofstream(out) << add.out;
    return add.status;
  });
  ASSERT_EQ(rc, 0) << "ublk-fixture add as uid " << kUser;
  std::ifstream in(out);
  auto j = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  const int id = j["dev_id"].get<int>();
  Control c;
  ublksrv_ctrl_dev_info info{};
  c.set_prefix_dev_path(true);
  ASSERT_EQ(c.get_dev_info(uint32_t(id), &info), 0);
  const int server = info.ublksrv_pid;
  ASSERT_TRUE(set_io_timeout_ms(id, 1000)) << "io_timeout of ublkb" << id;
  HeldRead read("/dev/ublkb" + std::to_string(id));
  const int got = read.wait(15s);
  EXPECT_EQ(got, EIO) << (got == -1 ? "the read still waits 15 s after a 1 s timeout" : "the read ended");
  EXPECT_FALSE(alive(server)) << "the unprivileged server outlived its request's timeout";
  as_user(kUser, [&] {
    putenv(const_cast<char*>(env.c_str()));
    return fixture({"del", "-n", std::to_string(id)}, 30s).status;
  });
}

// The same timeout on a privileged device only rearms the timer: the server is trusted to
// answer late, so it lives and the read is still waiting.
TEST(Timeout, PrivilegedServerPastTheTimeoutIsLeftAlone) {
  REQUIRE_FEATURE(UBLK_F_NO_AUTO_PART_SCAN);
  FixtureDevice d({"-t", "fault", "--never-complete", "-s", "8M", "--no-part-scan"});
  ASSERT_DEVICE(d);
  ASSERT_TRUE(set_io_timeout_ms(d.id(), 1000));
  const int server = d.pid();
  HeldRead read(d.block());
  EXPECT_EQ(read.wait(3s), -1) << "the read ended although the server never completes";
  EXPECT_TRUE(alive(server)) << "a privileged server was killed for a late request";
  d.kill9();
  EXPECT_EQ(read.wait(15s), EIO);
}

// The module parameter ublks_max caps how many unprivileged devices exist at once
// (ADD_DEV beyond it: -EACCES); root's devices do not count and are not capped; the
// parameter takes 0 .. UBLK_MAX_UBLKS (2^20) only.
TEST_F(Unprivileged, UblksMaxCapsUnprivilegedDevicesOnly) {
  const std::string param = "/sys/module/ublk_drv/parameters/ublks_max";
  std::string old;
  std::getline(std::ifstream(param), old);
  ASSERT_FALSE(old.empty()) << param;
  auto set = [&](const std::string& v) {
    std::ofstream f(param);
    f << v;
    f.flush();
    return bool(f);
  };
  EXPECT_FALSE(set("1048577")) << "ublks_max above UBLK_MAX_UBLKS was accepted";
  ASSERT_TRUE(set("1"));
  NodeOwnerFixer udev;
  int rc = as_user(kUser, [] {
    Control c;
    c.set_prefix_dev_path(true);
    RawDevice first(c, 1, 4, UBLK_F_UNPRIVILEGED_DEV);
    if (first.add_result() != 0) return 10 + errno_code(first.add_result());
    RawDevice second(c, 1, 4, UBLK_F_UNPRIVILEGED_DEV);
    return second.add_result() == 0 ? 9 : errno_code(second.add_result());
  });
  EXPECT_EQ(rc, EACCES)
      << "a second unprivileged device with ublks_max 1 (9: it was added, 10+e: the first failed)";
  {
    Control c;
    RawDevice root(c, 1, 4, 0);
    EXPECT_EQ(root.add_result(), 0) << "root's device counted against ublks_max";
  }
  set(old);
}
