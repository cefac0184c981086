#include "env.h"

#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ublkcheck {

uint64_t kernel_features() {
  static const uint64_t f = [] {
    try {
      ublk::Control c;
      return c.features();
    } catch (...) {
      return uint64_t(0);
    }
  }();
  return f;
}

std::string features_hex() {
  char b[32];
  std::snprintf(b, sizeof(b), "0x%llx", (unsigned long long)kernel_features());
  return b;
}

std::string kernel_release() {
  struct utsname u {};
  uname(&u);
  return u.release;
}

std::string kernel_line(const std::string& release) {
  size_t a = release.find('.');
  if (a == std::string::npos) return release;
  size_t b = a + 1;
  while (b < release.size() && std::isdigit(static_cast<unsigned char>(release[b]))) b++;
  return release.substr(0, b);
}

std::string expected_features_file() {
  const char* e = std::getenv("UBLKCHECK_EXPECTED_FEATURES");
  return e && *e ? e : UBLKCHECK_EXPECTED_FEATURES;
}

std::string artifacts_dir() {
  const char* e = std::getenv("UBLKCHECK_ARTIFACTS");
  std::string d = e && *e ? e : "artifacts";
  mkdir(d.c_str(), 0755);
  return d;
}

int vm_main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  if (!testing::GTEST_FLAG(list_tests) && access("/dev/ublk-control", F_OK) != 0) {
    std::printf(
        "SKIP: /dev/ublk-control is absent (ublk_drv not loaded, or not a ublk "
        "guest): run the vm suites with ./ublkcheck run\n");
    return 77;
  }
  return RUN_ALL_TESTS();
}

}  // namespace ublkcheck
