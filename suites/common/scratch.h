// A zero-filled scratch file for file-backed devices, removed with the object. Zeros on
// purpose: a write the driver drops leaves zeros, which fio's verify reports as a bad header.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <string>

namespace ublkcheck {

class ScratchFile {
 public:
  ScratchFile(const std::string& tag, off_t bytes)
      : path_("/tmp/ublkcheck-" + tag + "-" + std::to_string(getpid()) + ".img") {
    int fd = open(path_.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0) return;
    ok_ = ftruncate(fd, bytes) == 0;
    close(fd);
  }
  ~ScratchFile() { unlink(path_.c_str()); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  const std::string& path() const { return path_; }
  bool ok() const { return ok_; }

 private:
  std::string path_;
  bool ok_ = false;
};

}  // namespace ublkcheck
