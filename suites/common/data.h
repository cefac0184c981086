// Test data for block I/O: page-aligned buffers (O_DIRECT needs them) and a pattern that
// differs per seed and per 8-byte word, so a misplaced or stale block never compares equal.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace ublkcheck {

struct AlignedBuf {
  explicit AlignedBuf(size_t n) : n(n) {
    if (posix_memalign(&p, 4096, n)) p = nullptr;
  }
  ~AlignedBuf() { free(p); }
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
  char* data() { return static_cast<char*>(p); }
  void* p = nullptr;
  size_t n;
};

inline void fill(char* p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = seed * 0x9e3779b97f4a7c15ULL + i;
    std::memcpy(p + i, &v, std::min<size_t>(8, n - i));
  }
}

inline bool all_zero(const char* p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return false;
  return true;
}

}  // namespace ublkcheck
