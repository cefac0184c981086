// The data paths a ublk server can use, as ublk-fixture options: tests that must hold in
// every copy mode are parameterized over this table.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ublkfix/uapi.h"

namespace ublkcheck {

struct CopyMode {
  const char* name;
  const char* flag;  // ublk-fixture options (space separated), "" for plain
  uint64_t feature;  // what GET_FEATURES must have
  // The options as separate arguments.
  std::vector<std::string> args() const {
    std::vector<std::string> v;
    const std::string s = flag;
    for (size_t i = 0; i < s.size();) {
      size_t j = s.find(' ', i);
      if (j == std::string::npos) j = s.size();
      if (j > i) v.push_back(s.substr(i, j - i));
      i = j + 1;
    }
    return v;
  }
};

inline const std::vector<CopyMode>& copy_modes() {
  using namespace ublk::uapi;
  static const std::vector<CopyMode> modes = {
      {"plain", "", 0},
      {"user_copy", "--user-copy", UBLK_F_USER_COPY},
      {"zero_copy", "--zero-copy", UBLK_F_SUPPORT_ZERO_COPY},
      {"auto_buf_reg", "--auto-buf-reg", UBLK_F_AUTO_BUF_REG},
      {"need_get_data", "--need-get-data", UBLK_F_NEED_GET_DATA},
      // UBLK_F_BATCH_IO: the same data path through PREP/FETCH/COMMIT batch commands.
      {"batch", "--batch", UBLK_F_BATCH_IO},
      {"batch_user_copy", "--batch --user-copy", UBLK_F_BATCH_IO | UBLK_F_USER_COPY},
  };
  return modes;
}

}  // namespace ublkcheck
