// UBLK_F_INTEGRITY (7.2): the integrity parameter block's rules, what the block layer makes
// of it (sysfs), and end-to-end protection information: the PI the block layer generates for
// a write reaches the server through the user-copy integrity offset, the PI the server
// returns for a read is verified, and a corrupted guard tag fails the read with EILSEQ. The
// test is the server (SelfServed), so it reads and writes the PI itself.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <vector>

#include "env.h"
#include "raw_io.h"
#include "self_served.h"

using namespace ublkcheck;
using namespace ublk;
using namespace ublk::uapi;
using namespace std::chrono_literals;

namespace {

constexpr size_t kLen = 4096;  // one request: 8 sectors, 8 intervals
constexpr size_t kIntervals = kLen / 512;

// T10 DIF Type 1 tuple (struct t10_pi_tuple), big endian on the wire.
struct PiTuple {
  uint16_t guard;
  uint16_t app;
  uint32_t ref;
};
static_assert(sizeof(PiTuple) == 8);

// CRC16 T10-DIF: polynomial 0x8BB7, initial value 0, no reflection.
uint16_t crc_t10dif(const char* p, size_t n) {
  uint16_t crc = 0;
  for (size_t i = 0; i < n; i++) {
    crc ^= uint16_t(uint8_t(p[i])) << 8;
    for (int b = 0; b < 8; b++) crc = (crc & 0x8000) ? uint16_t((crc << 1) ^ 0x8BB7) : uint16_t(crc << 1);
  }
  return crc;
}

// What the block layer writes for `data` at sector 0: one tuple per 512-byte interval.
std::vector<PiTuple> pi_for(const char* data) {
  std::vector<PiTuple> v(kIntervals);
  for (size_t i = 0; i < kIntervals; i++)
    v[i] = {htons(crc_t10dif(data + i * 512, 512)), 0, htonl(uint32_t(i))};
  return v;
}

// CRC16 T10-DIF with reference tags (Type 1), 8 bytes of metadata per 512-byte interval.
ublk_params pi_params() {
  ublk_params p = default_params(64 << 20, 9, 128 << 10);
  p.types |= UBLK_PARAM_TYPE_INTEGRITY;
  p.integrity.flags = lbmd::PI_CAP_INTEGRITY | lbmd::PI_CAP_REFTAG;
  p.integrity.csum_type = lbmd::PI_CSUM_CRC16_T10DIF;
  p.integrity.metadata_size = 8;
  p.integrity.pi_offset = 0;
  p.integrity.interval_exp = 9;
  return p;
}

std::string read_sysfs(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

off_t pi_offset(uint16_t tag) { return off_t(ublk_user_copy_offset(0, tag) | UBLKSRV_IO_INTEGRITY_FLAG); }
off_t data_offset(uint16_t tag) { return off_t(ublk_user_copy_offset(0, tag)); }

class Integrity : public testing::Test {
 protected:
  void SetUp() override {
    if ((kernel_features() & (UBLK_F_INTEGRITY | UBLK_F_NO_AUTO_PART_SCAN)) !=
        (UBLK_F_INTEGRITY | UBLK_F_NO_AUTO_PART_SCAN))
      GTEST_SKIP() << "kernel " << kernel_release() << " lacks UBLK_F_INTEGRITY or "
                   << "UBLK_F_NO_AUTO_PART_SCAN (GET_FEATURES = " << features_hex() << ")";
  }
};

struct ParamCase {
  const char* name;
  void (*mutate)(ublk_param_integrity&);
  int want;
};

class IntegrityParams : public testing::TestWithParam<ParamCase> {};

}  // namespace

// ublk_validate_params() on the integrity block; one field wrong per row.
TEST_P(IntegrityParams, Validated) {
  REQUIRE_FEATURE(UBLK_F_INTEGRITY);
  Control c;
  RawDevice d(c, 1, 2, UBLK_F_USER_COPY | UBLK_F_INTEGRITY);
  ASSERT_EQ(d.add_result(), 0);
  ublk_params p = pi_params();
  GetParam().mutate(p.integrity);
  EXPECT_EQ(c.set_params(d.id(), p), GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Rules, IntegrityParams,
    testing::Values(
        ParamCase{"crc16_type1", [](ublk_param_integrity&) {}, 0},
        ParamCase{"crc64_in_16_bytes",
                  [](ublk_param_integrity& i) {
                    i.csum_type = lbmd::PI_CSUM_CRC64_NVME;
                    i.metadata_size = 16;
                  },
                  0},
        ParamCase{"no_csum_no_reftag",
                  [](ublk_param_integrity& i) {
                    i.csum_type = lbmd::PI_CSUM_NONE;
                    i.flags = 0;
                  },
                  0},
        ParamCase{"unknown_flag", [](ublk_param_integrity& i) { i.flags |= 1 << 2; }, -EINVAL},
        ParamCase{"unknown_csum_type", [](ublk_param_integrity& i) { i.csum_type = 3; }, -EINVAL},
        ParamCase{"zero_metadata_size", [](ublk_param_integrity& i) { i.metadata_size = 0; }, -EINVAL},
        ParamCase{"reftag_without_csum", [](ublk_param_integrity& i) { i.csum_type = lbmd::PI_CSUM_NONE; },
                  -EINVAL},
        ParamCase{"tuple_past_metadata", [](ublk_param_integrity& i) { i.pi_offset = 1; }, -EINVAL},
        ParamCase{"crc64_in_8_bytes", [](ublk_param_integrity& i) { i.csum_type = lbmd::PI_CSUM_CRC64_NVME; },
                  -EINVAL},
        ParamCase{"interval_below_512", [](ublk_param_integrity& i) { i.interval_exp = 8; }, -EINVAL},
        ParamCase{"interval_above_the_block", [](ublk_param_integrity& i) { i.interval_exp = 10; }, -EINVAL}),
    [](const testing::TestParamInfo<ParamCase>& p) { return std::string(p.param.name); });

// The integrity block needs a device added with UBLK_F_INTEGRITY.
TEST(IntegrityRules, BlockOnADeviceWithoutTheFlagIsEinval) {
  REQUIRE_FEATURE(UBLK_F_USER_COPY);
  Control c;
  RawDevice d(c, 1, 2, UBLK_F_USER_COPY);
  ASSERT_EQ(d.add_result(), 0);
  EXPECT_EQ(c.set_params(d.id(), pi_params()), -EINVAL);
}

// START_DEV hands the profile to the block layer: Type 1 CRC, 512-byte intervals, a device
// that can carry integrity.
TEST_F(Integrity, ProfileReadsBackInSysfs) {
  Control c;
  const ublk_params p = pi_params();
  SelfServed s(c, 2, UBLK_F_USER_COPY | UBLK_F_INTEGRITY, 0, &p);
  ASSERT_TRUE(s.ok()) << "the device did not start with an integrity profile";
  const std::string i = "/sys/block/ublkb" + std::to_string(s.id()) + "/integrity/";
  EXPECT_EQ(read_sysfs(i + "format"), "T10-DIF-TYPE1-CRC");
  EXPECT_EQ(read_sysfs(i + "protection_interval_bytes"), "512");
  EXPECT_EQ(read_sysfs(i + "device_is_integrity_capable"), "1");
  EXPECT_EQ(read_sysfs(i + "write_generate"), "1");
  EXPECT_EQ(read_sysfs(i + "read_verify"), "1");
}

// A write: the block layer generates one tuple per interval; the server reads the data and
// then the PI (integrity offset, 8 bytes per interval) and finds exactly those tuples.
TEST_F(Integrity, WritePiReachesTheServer) {
  Control c;
  const ublk_params p = pi_params();
  SelfServed s(c, 2, UBLK_F_USER_COPY | UBLK_F_INTEGRITY, 0, &p);
  ASSERT_TRUE(s.ok()) << "the device did not start with an integrity profile";
  std::vector<char> data(kLen);
  fill(data.data(), kLen, 41);
  BlockIo& writer = s.issue(true, data.data(), kLen);
  const int tag = s.wait_request();
  ASSERT_GE(tag, 0) << "the write never reached the server";
  const uint16_t t = uint16_t(tag);
  std::vector<char> got(kLen);
  ASSERT_EQ(pread(s.fd(), got.data(), kLen, data_offset(t)), ssize_t(kLen));
  EXPECT_EQ(std::memcmp(got.data(), data.data(), kLen), 0);
  std::vector<PiTuple> pi(kIntervals);
  EXPECT_EQ(pread(s.fd(), pi.data(), kIntervals * sizeof(PiTuple), pi_offset(t)),
            ssize_t(kIntervals * sizeof(PiTuple)))
      << "the request carries 8 bytes of PI per 512-byte interval";
  const std::vector<PiTuple> want = pi_for(data.data());
  for (size_t i = 0; i < kIntervals; i++) {
    EXPECT_EQ(ntohs(pi[i].guard), ntohs(want[i].guard)) << "guard of interval " << i;
    EXPECT_EQ(ntohl(pi[i].ref), i) << "reference tag of interval " << i;
  }
  EXPECT_EQ(pread(s.fd(), pi.data(), 8, pi_offset(t) + off_t(kIntervals * sizeof(PiTuple) + 8)), -1)
      << "an offset past the request's PI";
  EXPECT_EQ(errno, EINVAL);
  ASSERT_TRUE(s.commit(t, int32_t(kLen)));
  EXPECT_EQ(writer.join(), ssize_t(kLen)) << strerror(writer.err());
}

// A read: the server writes the data and its PI; the block layer verifies it. Right PI:
// the read succeeds with the data. A guard tag off by one bit: the read fails with EILSEQ.
TEST_F(Integrity, ReadPiIsVerifiedAndACorruptGuardFailsTheRead) {
  Control c;
  const ublk_params p = pi_params();
  SelfServed s(c, 2, UBLK_F_USER_COPY | UBLK_F_INTEGRITY, 0, &p);
  ASSERT_TRUE(s.ok()) << "the device did not start with an integrity profile";
  std::vector<char> data(kLen);
  fill(data.data(), kLen, 43);
  for (bool corrupt : {false, true}) {
    SCOPED_TRACE(corrupt ? "corrupt guard" : "right PI");
    BlockIo& reader = s.issue(false, nullptr, kLen);
    const int tag = s.wait_request();
    ASSERT_GE(tag, 0) << "the read never reached the server";
    const uint16_t t = uint16_t(tag);
    std::vector<PiTuple> pi = pi_for(data.data());
    if (corrupt) pi[3].guard ^= htons(1);
    ASSERT_EQ(pwrite(s.fd(), data.data(), kLen, data_offset(t)), ssize_t(kLen));
    ASSERT_EQ(pwrite(s.fd(), pi.data(), kIntervals * sizeof(PiTuple), pi_offset(t)),
              ssize_t(kIntervals * sizeof(PiTuple)));
    ASSERT_TRUE(s.commit(t, int32_t(kLen)));
    const ssize_t n = reader.join();
    if (corrupt) {
      EXPECT_EQ(n, -1) << "a read whose PI does not match its data succeeded";
      EXPECT_EQ(reader.err(), EILSEQ) << strerror(reader.err());
    } else {
      EXPECT_EQ(n, ssize_t(kLen)) << strerror(reader.err());
      EXPECT_EQ(std::memcmp(reader.data(), data.data(), kLen), 0);
    }
  }
}
