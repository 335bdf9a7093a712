// The nftables rules of nat mode, as text for `nft -f` / libnftables. Pure functions, so what
// the firewall does is unit-tested without a kernel.
//
// One table, `inet hutch`, shared by every hutch server on the machine. Sandboxes' host-side
// veths are all named `<prefix><8 hex>` ("hutch-1a2b3c4d"), so the base rules match them by
// prefix and need no change when a sandbox comes or goes:
//
//   prerouting (raw)  from a sandbox: IPv6 dropped (nat mode has none); a source address that is
//                     not the sandbox's own (reverse-path check against its /30) dropped.
//   input             from a sandbox: dropped. The host, on any of its addresses (its veth
//                     side, eth0, 127.0.0.1 via crafted packets), is never reachable. Only
//                     replies to the host's own connections to the agent port pass.
//   output            new connections from the host into a sandbox: dropped (ports are reached
//                     through the agent's relay, never by address), except to the agent port
//                     (driver local-tcp: the server dials agents there).
//   forward           into a sandbox: only replies. From a sandbox: `from_sandbox`.
//   from_sandbox      1. replies of allowed flows; 2. the session's own chain, if it has
//                     allow_out/deny_out (allow → accept, deny → drop, in that order); 3. DNS
//                     (tcp/udp 53) to the configured resolvers; 4. the default-denied ranges
//                     and the host's own attached networks → drop; 5. accept.
//   postrouting (nat) masquerade what leaves from the sandbox subnets.
//
// A session with lists gets a chain `out-<8 hex>` and an element in the verdict map
// `session_out` (ifname → jump chain): one lookup per new flow, whatever the number of sessions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/cidr.h"

namespace hutch::sandbox {

inline constexpr const char* kNatTable = "hutch";
inline constexpr const char* kTcpNatTable = "hutch_tcp";

struct NatFirewallConfig {
  std::string ifname_prefix = "hutch-";
  // Sources to masquerade: the subnets sandboxes get their addresses from.
  std::vector<core::Ipv4Cidr> sandbox_nets;
  // Never reachable unless a session's allow_out says so: DefaultDeniedRanges().
  std::vector<core::Ipv4Cidr> denied;
  // The host's directly attached networks (its LAN neighbours); denied like the ranges above.
  std::vector<core::Ipv4Cidr> host_nets;
  // Resolvers reachable on port 53 despite the denied ranges (they are often in 10/8).
  std::vector<uint32_t> dns;
  // Drop forwarded traffic that neither comes from nor goes to a sandbox: set when hutch turned
  // on net.ipv4.ip_forward, so the host does not start routing for anyone else.
  bool guard_forwarding = false;
  // The TCP port agents of driver local-tcp listen on (0: none). The host may open connections
  // to it, and only their replies come back in.
  uint16_t agent_port = 0;
  // The table these rules live in: kNatTable, or the local-tcp driver's kTcpNatTable (its
  // sandboxes' veths have a prefix of their own, so the two sets of rules never meet).
  std::string table = kNatTable;
  // The interface prefixes of the other table's sandboxes: the forwarding guard leaves their
  // traffic to that table's rules.
  std::vector<std::string> peer_prefixes;
};

// 0/8, 10/8, 100.64/10 (CGNAT), 127/8, 169.254/16 (link-local, cloud metadata at
// 169.254.169.254), 172.16/12, 192.168/16, 224/3 (multicast, reserved, broadcast).
std::vector<core::Ipv4Cidr> DefaultDeniedRanges();

// One script, applied as one transaction: creates the table, sets and chains if missing and
// rewrites the base chains' rules (flush + add, atomically: no packet sees a half-written set).
// Set elements are only ever added, so servers sharing the table union their subnets and
// resolvers. Session chains and map elements are left as they are.
std::string BaseRulesetScript(const NatFirewallConfig& config);

// "out-1a2b3c4d" for "hutch-1a2b3c4d".
std::string SessionChainName(const std::string& ifname, const std::string& ifname_prefix);
// Adds the session chain and its map element; "" when both lists are empty (nothing to add).
std::string AddSessionRulesScript(const std::string& ifname, const std::string& ifname_prefix,
                                  const std::vector<core::Ipv4Cidr>& allow_out,
                                  const std::vector<core::Ipv4Cidr>& deny_out,
                                  const std::string& table = kNatTable);
// Removes them again (the element first: a chain a map still jumps to cannot be deleted).
std::string DeleteSessionRulesScript(const std::string& ifname, const std::string& ifname_prefix,
                                     const std::string& table = kNatTable);
// Deletes the whole table.
std::string DeleteTableScript(const std::string& table = kNatTable);

}  // namespace hutch::sandbox
