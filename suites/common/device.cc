#include "device.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

namespace ublkcheck {

using namespace std::chrono_literals;

std::string fixture_bin() {
  if (const char* e = std::getenv("UBLK_FIXTURE"); e && *e) return e;
  return UBLK_FIXTURE_BIN;
}

ProcResult fixture(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  std::vector<std::string> a{fixture_bin()};
  a.insert(a.end(), args.begin(), args.end());
  return run(a, timeout);
}

FixtureDevice::FixtureDevice(const std::vector<std::string>& args) {
  std::vector<std::string> a{"add"};
  a.insert(a.end(), args.begin(), args.end());
  a.push_back("--json");
  ProcResult r = fixture(a, 60s);
  if (r.status != 0) {
    error_ = "ublk-fixture " + shell_quote(a) + ": " + r.describe();
    return;
  }
  added_ = nlohmann::json::parse(r.out, nullptr, false);
  if (added_.is_discarded() || !added_.contains("dev_id")) {
    error_ = "ublk-fixture add printed no JSON: " + r.out;
    return;
  }
  id_ = added_["dev_id"].get<int>();
  // No udev in the guest: devtmpfs creates the node; wait for it (bounded).
  struct stat st {};
  for (int i = 0; i < 300 && stat(block().c_str(), &st) != 0; i++) usleep(10000);
}

FixtureDevice::~FixtureDevice() {
  if (id_ >= 0) del();
}

nlohmann::json FixtureDevice::info() {
  ProcResult r = fixture({"info", "-n", std::to_string(id_), "--json"});
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  return j.is_discarded() ? nlohmann::json{{"error", r.describe()}} : j;
}

std::string FixtureDevice::state() {
  auto j = info();
  return j.value("state", std::string("?"));
}

int FixtureDevice::pid() { return info().value("pid", -1); }

nlohmann::json FixtureDevice::stats() {
  ProcResult r = fixture({"stats", "-n", std::to_string(id_), "--json"});
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  return j.is_discarded() ? nlohmann::json{} : j;
}

void FixtureDevice::kill9() {
  int p = pid();
  if (p > 0) kill(p, SIGKILL);
}

std::string FixtureDevice::wait_state(const std::string& want, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string s;
  do {
    s = state();
    if (s == want) return s;
    std::this_thread::sleep_for(50ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return s;
}

ProcResult FixtureDevice::recover(std::chrono::milliseconds timeout) {
  return fixture({"recover", "-n", std::to_string(id_), "--json"}, timeout);
}

ProcResult FixtureDevice::del() {
  ProcResult r = fixture({"del", "-n", std::to_string(id_)}, 60s);
  id_ = -1;
  return r;
}

}  // namespace ublkcheck
