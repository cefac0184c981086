// fio driven with --output-format=json; tests read numbers from the parsed JSON, never text.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "proc.h"

namespace ublkcheck {

struct FioResult {
  ProcResult proc;
  nlohmann::json json;  // fio's JSON report (null if it printed none)
  int error = 0;        // first non-zero per-job error (an errno), 0 if none
  double read_iops = 0, write_iops = 0;
  uint64_t read_ios = 0, write_ios = 0;
  double read_lat_p99_us = 0;
  bool ok() const { return proc.status == 0 && !proc.timed_out && error == 0 && !json.is_null(); }
  // After BackgroundFio::stop(): fio exits non-zero on SIGINT but still reports every
  // job; what counts is its report and the jobs' own error fields.
  bool ok_after_stop() const { return !proc.timed_out && error == 0 && !json.is_null(); }
  std::string describe() const;
};

// Runs `fio <args> --output-format=json`; `timeout` bounds the whole run.
FioResult run_fio(std::vector<std::string> args, std::chrono::seconds timeout);
FioResult parse_fio(ProcResult proc);

// Handy job lines.
std::vector<std::string> fio_job(const std::string& dev, const std::string& rw, const std::string& bs,
                                 int iodepth, int numjobs, const std::string& engine, int runtime_s);

// Data oracles. Every 4 KiB block carries fio's crc32c header (its offset and a checksum),
// so a write the driver dropped (zeros), a stale page (another block's header) or a torn
// block fails the job with EILSEQ, naming the block.
// One pass that writes the first `size` bytes, then reads them back and verifies them.
std::vector<std::string> fio_write_verify(const std::string& dev, const std::string& size, int iodepth);
// `jobs` psync readers, each checking every block it reads of the first `size` bytes
// against what fio_write_verify wrote, for `runtime_s`. psync on purpose: fio 3.33 runs a
// verifying read on an async engine for one pass only, whatever --time_based says.
std::vector<std::string> fio_read_verify(const std::string& dev, const std::string& size, int jobs,
                                         int runtime_s);

class BackgroundFio {
 public:
  explicit BackgroundFio(std::vector<std::string> args);
  FioResult wait(std::chrono::seconds timeout);
  bool running() { return bg_.running(); }
  // SIGINT: fio stops its jobs and prints its JSON report (then use ok_after_stop()).
  void stop();

 private:
  Background bg_;
};

}  // namespace ublkcheck
