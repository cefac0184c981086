#include "fio.h"

#include <signal.h>

#include <cstring>

namespace ublkcheck {

std::string FioResult::describe() const {
  std::string s = "fio " + proc.describe();
  if (error) s += "; job error " + std::to_string(error) + " (" + std::strerror(error) + ")";
  return s;
}

FioResult parse_fio(ProcResult proc) {
  FioResult r;
  r.proc = std::move(proc);
  // fio may print warnings before the JSON object: start at the first '{' line.
  auto pos = r.proc.out.find("\n{");
  std::string body = r.proc.out.rfind("{", 0) == 0 ? r.proc.out
                     : pos == std::string::npos    ? ""
                                                   : r.proc.out.substr(pos + 1);
  r.json = nlohmann::json::parse(body, nullptr, false);
  if (r.json.is_discarded()) r.json = nullptr;
  if (r.json.is_null() || !r.json.contains("jobs")) return r;
  for (const auto& j : r.json["jobs"]) {
    if (!r.error && j.value("error", 0)) r.error = j.value("error", 0);
    r.read_iops += j["read"].value("iops", 0.0);
    r.write_iops += j["write"].value("iops", 0.0);
    r.read_ios += j["read"].value("total_ios", uint64_t(0));
    r.write_ios += j["write"].value("total_ios", uint64_t(0));
    if (j["read"].contains("clat_ns") && j["read"]["clat_ns"].contains("percentile")) {
      const auto& p = j["read"]["clat_ns"]["percentile"];
      if (p.contains("99.000000"))
        r.read_lat_p99_us = std::max(r.read_lat_p99_us, p["99.000000"].get<double>() / 1000.0);
    }
  }
  return r;
}

FioResult run_fio(std::vector<std::string> args, std::chrono::seconds timeout) {
  args.insert(args.begin(), "fio");
  args.push_back("--output-format=json");
  return parse_fio(run(args, timeout));
}

std::vector<std::string> fio_job(const std::string& dev, const std::string& rw, const std::string& bs,
                                 int iodepth, int numjobs, const std::string& engine, int runtime_s) {
  std::vector<std::string> a = {"--name=ublkcheck",
                                "--filename=" + dev,
                                "--rw=" + rw,
                                "--bs=" + bs,
                                "--iodepth=" + std::to_string(iodepth),
                                "--numjobs=" + std::to_string(numjobs),
                                "--ioengine=" + engine,
                                "--direct=1",
                                "--group_reporting=0"};
  if (runtime_s > 0) {
    a.push_back("--runtime=" + std::to_string(runtime_s));
    a.push_back("--time_based");
  }
  return a;
}

std::vector<std::string> fio_write_verify(const std::string& dev, const std::string& size, int iodepth) {
  auto a = fio_job(dev, "write", "4k", iodepth, 1, "libaio", 0);
  a.insert(a.end(), {"--size=" + size, "--verify=crc32c", "--do_verify=1", "--verify_fatal=1"});
  return a;
}

std::vector<std::string> fio_read_verify(const std::string& dev, const std::string& size, int jobs,
                                         int runtime_s) {
  auto a = fio_job(dev, "randread", "4k", 1, jobs, "psync", runtime_s);
  a.insert(a.end(), {"--size=" + size, "--verify=crc32c", "--verify_fatal=1"});
  return a;
}

BackgroundFio::BackgroundFio(std::vector<std::string> args)
    : bg_([&] {
        args.insert(args.begin(), "fio");
        args.push_back("--output-format=json");
        return args;
      }()) {}

void BackgroundFio::stop() {
  if (bg_.running()) kill(bg_.pid(), SIGINT);
}

FioResult BackgroundFio::wait(std::chrono::seconds timeout) { return parse_fio(bg_.wait(timeout)); }

}  // namespace ublkcheck
