// A ublk device served by the bundled server (`ublk-fixture add`), deleted on scope exit.
// Tests get exact kernel results through ublk::Control and the server through its CLI.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "proc.h"

namespace ublkcheck {

// Path of the ublk-fixture binary (set by meson; $UBLK_FIXTURE overrides).
std::string fixture_bin();
ProcResult fixture(const std::vector<std::string>& args,
                   std::chrono::milliseconds timeout = std::chrono::seconds(30));

class FixtureDevice {
 public:
  // Runs `ublk-fixture add ARGS --json`. ok() tells whether the device came up LIVE;
  // error() says why not.
  explicit FixtureDevice(const std::vector<std::string>& args);
  ~FixtureDevice();
  FixtureDevice(const FixtureDevice&) = delete;
  FixtureDevice& operator=(const FixtureDevice&) = delete;

  bool ok() const { return id_ >= 0; }
  const std::string& error() const { return error_; }
  int id() const { return id_; }
  std::string block() const { return "/dev/ublkb" + std::to_string(id_); }
  std::string chardev() const { return "/dev/ublkc" + std::to_string(id_); }
  const nlohmann::json& added() const { return added_; }  // add's JSON

  nlohmann::json info();   // ublk-fixture info --json
  std::string state();     // "LIVE", "QUIESCED", ...
  int pid();               // serving process (from the kernel)
  nlohmann::json stats();  // per-thread counters
  void kill9();            // SIGKILL the server, as a crash
  // Polls until state() == want or the timeout passes; returns the last state.
  std::string wait_state(const std::string& want, std::chrono::milliseconds timeout);
  ProcResult recover(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  ProcResult del();            // explicit delete (also done by the destructor)
  void forget() { id_ = -1; }  // the test deleted it some other way

 private:
  int id_ = -1;
  std::string error_;
  nlohmann::json added_;
};

}  // namespace ublkcheck
