// Drivers by name, envoy-style (envoy/registry/registry.h): each implementation registers a
// factory under its name from its own translation unit, and the server makes the one its
// configuration names (`driver: local`, `--driver`, HUTCH_DRIVER). Nothing outside a driver's
// directory and the executable that links it knows which drivers exist (docs/architecture.md,
// "How to add a driver").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "drivers/driver.h"

namespace hutch::drivers {

// Network mode nat (docs/server.md, "Networking"): the server's `network:` section, for the
// drivers that offer the mode.
struct NatOptions {
  // Sandboxes get a /30 each from here: the host side .1 (their gateway), the sandbox .2.
  // Must not overlap a network the host routes to.
  std::string subnet = "10.89.0.0/16";
  // Resolvers written to the sandboxes' /etc/resolv.conf and reachable on port 53 despite the
  // denied ranges. Empty: the host's own IPv4 resolvers from /etc/resolv.conf, except loopback
  // ones (a sandbox cannot reach the host's 127.0.0.53).
  std::vector<std::string> dns;
  // Namespaces kept ready, wired to the host, so a nat create only takes one.
  int pool_size = 8;
  // Fill the pool when the driver starts; otherwise at the first nat session (the server sets
  // this; tests that never use nat leave the host's network alone).
  bool prewarm = false;
  // MTU of the sandboxes' veths; 0: the MTU of the host's default-route interface.
  int mtu = 0;
};

// What the server gives every driver it makes: its own settings that a driver may use. A driver
// ignores what it has no use for.
struct DriverParams {
  std::string data_dir;    // the server's data directory; a driver keeps its files below it
  std::string agent_path;  // the hutch-agent executable
  NatOptions nat;
  int64_t default_disk_mb = 1024;  // the disk size most sessions ask for (defaults.resources)
};

using DriverFactory = std::function<Result<std::unique_ptr<Driver>>(const DriverParams& params)>;

// Registers `factory` under `name`; false (and nothing changes) when the name is taken. Call it
// through DriverRegistration from a static object in the driver's own translation unit.
bool RegisterDriver(std::string name, DriverFactory factory);

// Makes the driver registered as `name`; invalid_argument naming the registered ones when there
// is none.
Result<std::unique_ptr<Driver>> NewDriver(std::string_view name, const DriverParams& params);

// The registered names, sorted.
std::vector<std::string> RegisteredDrivers();

// `static DriverRegistration kRegistration("local", &MakeIt);` registers at static
// initialization. The object file that holds it must be linked in whole: a driver puts it in an
// OBJECT library of its own (drivers/CMakeLists.txt), which the executable links.
struct DriverRegistration {
  DriverRegistration(std::string name, DriverFactory factory) {
    RegisterDriver(std::move(name), std::move(factory));
  }
};

}  // namespace hutch::drivers
