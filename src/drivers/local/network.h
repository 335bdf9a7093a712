// Network mode nat for the local driver: the warm pool of wired namespaces (sandbox/netns_pool.h)
// and the firewall (sandbox/nat_rules.h), set up once per driver and torn down with it.
//
// How a nat sandbox gets its network: Create takes a pool entry (a namespace with a veth to the
// host, addresses and a default route), adds the session's allow_out/deny_out chain if it has
// lists, and clones the agent *without* CLONE_NEWNET from a thread that has stepped into the
// entry's namespace (sandbox::ScopedNetns), so the agent starts inside it. The namespace is
// owned by the host's user namespace: a sandbox root that is not root on the host cannot
// reconfigure it. Once the agent runs, the driver closes its fd; the sandbox alone holds the
// namespace, and when it dies the kernel destroys namespace and veth (batched, asynchronous).
//
// Teardown: Destroy deletes the session's chain; the veth goes with the namespace. The driver's
// destructor closes the pool, waits (bounded) for the kernel to remove what this driver gave
// up, and deletes the whole table and undoes ip_forward when no hutch interface is left —
// never while any nat sandbox of any hutch process lives, since it depends on those rules.
// At start, session chains whose interface no longer exists (a crash) are swept.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"
#include "core/cidr.h"
#include "core/session.h"
#include "core/stats.h"
#include "drivers/registry.h"
#include "sandbox/nat_rules.h"
#include "sandbox/netns_pool.h"
#include "sandbox/nftables.h"

namespace hutch::drivers::local {

class LocalNetwork;

// A pool entry on its way into a sandbox. Until Commit(), the destructor gives everything back
// (rules deleted, namespace fd closed), so a failed create unwinds by destructors alone.
class NatLease {
 public:
  NatLease() = default;
  NatLease(NatLease&& other) noexcept;
  NatLease& operator=(NatLease&&) = delete;
  NatLease(const NatLease&) = delete;
  ~NatLease();

  int netns_fd() const { return entry_.netns.get(); }
  const std::string& ifname() const { return entry_.host_ifname; }
  uint32_t address() const { return entry_.sandbox_address; }
  uint32_t gateway() const { return entry_.host_address; }
  // Whether the session has a chain of its own (allow_out/deny_out).
  bool has_rules() const { return has_rules_; }
  // The sandbox has joined the namespace: drop our fd, keep the rules.
  void Commit();

 private:
  friend class LocalNetwork;
  LocalNetwork* network_ = nullptr;
  sandbox::NetnsEntry entry_;
  bool has_rules_ = false;
};

class LocalNetwork {
 public:
  // Opens nftables, checks the subnet against the host's routes, turns on ip_forward if it is
  // off (and remembers that it did), writes the base rules, sweeps stale session chains.
  // `agents_over_tcp` (driver local-tcp): its veths are named kTcpIfnamePrefix… and its rules
  // live in table sandbox::kTcpNatTable, with the agent port's exception; a server of driver
  // local and one of local-tcp on the same host never rewrite each other's rules.
  static Result<std::unique_ptr<LocalNetwork>> Start(const NatOptions& options,
                                                     bool agents_over_tcp = false);
  ~LocalNetwork();

  // A wired namespace for `session_id`, with its allow_out/deny_out applied.
  Result<NatLease> Acquire(const std::string& session_id, const core::NetworkSpec& spec);
  // Destroy: the session's chain goes (`has_rules`: it has one; a session without lists costs
  // no nftables call); its veth goes with its namespace. Idempotent.
  Status Release(const std::string& ifname, bool has_rules);
  // /etc/resolv.conf for nat sandboxes.
  const std::string& resolv_conf() const { return resolv_conf_; }
  const std::string& ifname_prefix() const { return pool_options_.ifname_prefix; }

 private:
  friend class NatLease;
  LocalNetwork() = default;
  // Under the cross-process lock: the table exists with its base rules.
  Status EnsureFirewall();
  Status SweepStaleSessionChains();

  sandbox::NatFirewallConfig firewall_;
  std::string peer_prefix_;  // the other driver's veths (kLocalIfnamePrefix / kTcpIfnamePrefix)
  sandbox::NetnsPoolOptions pool_options_;
  std::string resolv_conf_;
  std::unique_ptr<sandbox::Nftables> nft_;
  std::unique_ptr<sandbox::NetnsPool> pool_;

  std::mutex mu_;
  std::set<std::string> released_;  // GUARDED_BY(mu_): interfaces given up, the kernel deletes
};

// What `ip_forward` change the driver made: "/run/hutch/ip_forward-enabled" exists while hutch
// is the reason the host forwards.
inline constexpr const char* kLocalIfnamePrefix = "hutch-";
inline constexpr const char* kTcpIfnamePrefix = "htcp-";
inline constexpr const char* kForwardMarker = "/run/hutch/ip_forward-enabled";
inline constexpr const char* kNetLockPath = "/run/hutch/net.lock";

// The host's IPv4 resolvers from resolv.conf text, without loopback ones.
std::vector<uint32_t> HostResolvers(std::string_view resolv_conf);
// Connected (gateway-less, non-default) routes of /proc/net/route text, except on interfaces
// starting with `skip_prefix`; and every route's destination for overlap checks.
struct HostRoute {
  std::string ifname;
  core::Ipv4Cidr dst;
  bool connected = false;  // no gateway
};
std::vector<HostRoute> ParseProcNetRoute(std::string_view text);

}  // namespace hutch::drivers::local
