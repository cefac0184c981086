// What every vm-suite program shares: the kernel probe, SKIP-with-reason helpers, the
// artifacts directory and the main() that exits 77 (meson SKIP) outside a ublk guest.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "ctrl.h"

namespace ublkcheck {

// GET_FEATURES of the running kernel (legacy fallback on 6.1); cached.
uint64_t kernel_features();
std::string kernel_release();
std::string features_hex();
// "7.2" of "7.2.13+deb14-amd64": the line ci/expected-features.json is keyed by.
std::string kernel_line(const std::string& release);
// ci/expected-features.json of the source tree ($UBLKCHECK_EXPECTED_FEATURES overrides).
std::string expected_features_file();
// Where a test may write charts etc. ($UBLKCHECK_ARTIFACTS or ./artifacts).
std::string artifacts_dir();

// gtest main for vm suites: `--gtest_list_tests` works anywhere; otherwise exits 77 with
// the reason when /dev/ublk-control is missing.
int vm_main(int argc, char** argv);

}  // namespace ublkcheck

// Skips the current test, with the reason, when the kernel lacks a feature.
#define REQUIRE_FEATURE(flag)                                                       \
  do {                                                                              \
    if (!(::ublkcheck::kernel_features() & (flag)))                                 \
      GTEST_SKIP() << "kernel " << ::ublkcheck::kernel_release() << " lacks " #flag \
                   << " (GET_FEATURES = " << ::ublkcheck::features_hex() << ")";    \
  } while (0)

// Device creation must succeed for the rest of the test to mean anything.
#define ASSERT_DEVICE(dev) ASSERT_TRUE((dev).ok()) << (dev).error()
