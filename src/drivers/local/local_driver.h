// The local driver: sandboxes made of namespaces, cgroups and an overlay on this machine, their
// agents reached over unix sockets. Registered as `local` (local/register.cc); the server makes
// it through drivers/registry.h, tests and benchmarks may make it directly.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "drivers/driver.h"
#include "drivers/registry.h"
#include "sandbox/cgroup.h"

namespace hutch::drivers {

struct LocalDriverOptions {
  std::string data_dir;    // sessions live in data_dir/sessions/<id>, images in data_dir/images
  std::string agent_path;  // the hutch-agent executable
  std::string cgroup_root_name = "hutch";  // cgroups go under <controller>/hutch/<id>
  NatOptions nat;

  // Hardening (docs/security.md).
  // A user namespace per sandbox where the host allows it (root inside is an unprivileged host
  // id range); false: never — sandboxes run as host root with a cut capability set.
  bool user_namespaces = true;
  // The writable layer: "auto" — an ext4 disk of disk_mb per session on a loop device where
  // the host has loop devices and mke2fs, else a tmpfs — or "tmpfs".
  std::string disk = "auto";
  int64_t warm_disk_mb = 1024;  // the disk size kept ready: the default resources.disk_mb
  int warm_disks = 2;           // how many

  // Driver local-tcp (docs/architecture.md, "The transport contract"): agents get no unix
  // socket; each listens on TCP port kAgentTcpPort of its sandbox's address, behind a veth
  // every sandbox then gets (mode none included, without a way out), and terminates TLS with a
  // certificate of the server's agent CA (data_dir/tls). The server reaches it only by address.
  bool tcp_agents = false;
};

// The port a local-tcp agent listens on, on its sandbox's own address.
inline constexpr uint16_t kAgentTcpPort = 7431;

Result<std::unique_ptr<Driver>> NewLocalDriver(const LocalDriverOptions& options);

// The local driver's options from the server's DriverParams.
LocalDriverOptions LocalDriverOptionsFrom(const DriverParams& params);

// NewLocalDriver with the cgroup layout given instead of detected: lets tests run the v2 code
// path on a host whose controllers are on v1 (cgroup2 is usually mounted there too, without
// controllers, so limits are then not enforced).
Result<std::unique_ptr<Driver>> NewLocalDriverWithCgroupLayout(const LocalDriverOptions& options,
                                                               const sandbox::CgroupLayout& layout);

// Waits up to `timeout_ms` until a local driver's background work is done (its pool of warm
// disks is full again after creates took some); whether it is. For tests that count fds and
// loop devices. Other drivers: true at once.
bool WaitForLocalDriverIdle(Driver* driver, int timeout_ms);

}  // namespace hutch::drivers
