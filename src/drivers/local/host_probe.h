// What the local driver finds out about the host once, at start, and prepares from it for every
// sandbox: the sealed agent executable, the seccomp filter, whether sandboxes get a user namespace
// (and the id slots they then take), and the pool of session disks.
#pragma once

#include <memory>
#include <string>

#include "agent/tls_ca.h"
#include "agent/tls_transport.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "drivers/local/disk_pool.h"
#include "drivers/local/host_image.h"
#include "drivers/local/id_slots.h"
#include "drivers/local/local_driver.h"

namespace hutch::drivers::local {

// What MakeLocalDriver found out about this host and prepared once for every sandbox.
struct Hardening {
  UniqueFd agent_exe;                        // sealed memfd copy of hutch-agent
  std::string seccomp_filter;                // compiled DefaultSeccompRules()
  bool user_namespaces = false;              // whether sandboxes get one
  std::unique_ptr<local::IdSlots> id_slots;  // when they do
  std::unique_ptr<local::DiskPool> disks;    // null: tmpfs layers
  // local-tcp: the server's agent CA (data_dir/tls) and the client side every transport uses.
  std::unique_ptr<agent::AgentCa> agent_ca;
  std::shared_ptr<const agent::TlsDialer> agent_dialer;
};

// Everything MakeLocalDriver prepares for sandboxes' hardening, with one start-log line that
// says what is on and, for what is off, why.
Result<Hardening> PrepareHardening(const LocalDriverOptions& opts, const HostImage& image);

}  // namespace hutch::drivers::local
