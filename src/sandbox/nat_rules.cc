#include "sandbox/nat_rules.h"

#include <fmt/format.h>

namespace hutch::sandbox {

namespace {

std::string Join(const std::vector<core::Ipv4Cidr>& cidrs) {
  std::string out;
  for (const auto& c : cidrs) {
    if (!out.empty()) out += ", ";
    out += c.ToString();
  }
  return out;
}

}  // namespace

std::vector<core::Ipv4Cidr> DefaultDeniedRanges() {
  return {
      {0x00000000, 8},   // 0.0.0.0/8 "this network"
      {0x0a000000, 8},   // 10.0.0.0/8
      {0x64400000, 10},  // 100.64.0.0/10 carrier-grade NAT
      {0x7f000000, 8},   // 127.0.0.0/8 loopback
      {0xa9fe0000, 16},  // 169.254.0.0/16 link-local, cloud metadata
      {0xac100000, 12},  // 172.16.0.0/12
      {0xc0a80000, 16},  // 192.168.0.0/16
      {0xe0000000, 3},   // 224.0.0.0/3 multicast, reserved, broadcast
  };
}

std::string BaseRulesetScript(const NatFirewallConfig& c) {
  const std::string t = fmt::format("inet {}", c.table);
  const std::string sb = c.ifname_prefix + "*";  // every sandbox's host-side veth
  std::string s;
  auto line = [&s](std::string l) {
    s += l;
    s += '\n';
  };
  line(fmt::format("add table {}", t));
  for (const char* set : {"denied4", "host_nets4", "sandbox_nets4", "dns4"}) {
    line(fmt::format("add set {} {} {{ type ipv4_addr; flags interval; auto-merge; }}", t, set));
  }
  line(fmt::format("add map {} session_out {{ type ifname : verdict; }}", t));
  auto elements = [&](const char* set, const std::string& list) {
    if (!list.empty()) line(fmt::format("add element {} {} {{ {} }}", t, set, list));
  };
  elements("denied4", Join(c.denied));
  elements("host_nets4", Join(c.host_nets));
  elements("sandbox_nets4", Join(c.sandbox_nets));
  std::vector<core::Ipv4Cidr> dns;
  for (uint32_t a : c.dns) dns.push_back({a, 32});
  elements("dns4", Join(dns));

  // Before the host's own filter chains (priority 0), so their accepts cannot pre-empt these
  // drops. (A drop anywhere is final; an accept here does not override someone else's drop.)
  line(fmt::format(
      "add chain {} prerouting {{ type filter hook prerouting priority raw; policy accept; }}", t));
  line(fmt::format(
      "add chain {} input {{ type filter hook input priority filter - 10; policy accept; }}", t));
  line(fmt::format(
      "add chain {} output {{ type filter hook output priority filter - 10; policy accept; }}", t));
  line(fmt::format(
      "add chain {} forward {{ type filter hook forward priority filter - 10; policy accept; }}",
      t));
  line(fmt::format("add chain {} from_sandbox", t));
  line(fmt::format(
      "add chain {} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}",
      t));
  for (const char* chain :
       {"prerouting", "input", "output", "forward", "from_sandbox", "postrouting"}) {
    line(fmt::format("flush chain {} {}", t, chain));
  }

  line(fmt::format("add rule {} prerouting iifname \"{}\" meta nfproto ipv6 drop", t, sb));
  // Reverse-path check: the source must route back out of the interface it came in on, which
  // holds only for the sandbox's own address. Stops one sandbox from posing as another.
  line(
      fmt::format("add rule {} prerouting iifname \"{}\" fib saddr . iif oif missing drop", t, sb));
  if (c.agent_port != 0) {
    line(fmt::format(
        "add rule {} input iifname \"{}\" tcp sport {} ct state established ct direction reply "
        "accept",
        t, sb, c.agent_port));
  }
  line(fmt::format("add rule {} input iifname \"{}\" drop", t, sb));
  if (c.agent_port != 0) {
    line(fmt::format("add rule {} output oifname \"{}\" tcp dport {} ct state new accept", t, sb,
                     c.agent_port));
  }
  line(fmt::format("add rule {} output oifname \"{}\" ct state new drop", t, sb));
  line(
      fmt::format("add rule {} forward oifname \"{}\" ct state established,related accept", t, sb));
  line(fmt::format("add rule {} forward oifname \"{}\" drop", t, sb));
  line(fmt::format("add rule {} forward iifname \"{}\" jump from_sandbox", t, sb));
  if (c.guard_forwarding) {
    // Everything about sandboxes got its verdict above; what reaches here is someone else's
    // (the other table's sandboxes get theirs there).
    for (const std::string& peer : c.peer_prefixes) {
      line(fmt::format("add rule {} forward iifname \"{}*\" accept", t, peer));
      line(fmt::format("add rule {} forward oifname \"{}*\" accept", t, peer));
    }
    line(fmt::format("add rule {} forward drop", t));
  }
  line(fmt::format("add rule {} from_sandbox meta nfproto ipv6 drop", t));
  line(fmt::format("add rule {} from_sandbox ct state established,related accept", t));
  line(fmt::format("add rule {} from_sandbox iifname vmap @session_out", t));
  line(fmt::format(
      "add rule {} from_sandbox ip daddr @dns4 meta l4proto {{ tcp, udp }} th dport 53 accept", t));
  line(fmt::format("add rule {} from_sandbox ip daddr @denied4 drop", t));
  line(fmt::format("add rule {} from_sandbox ip daddr @host_nets4 drop", t));
  line(fmt::format("add rule {} from_sandbox accept", t));
  line(fmt::format("add rule {} postrouting ip saddr @sandbox_nets4 oifname != \"{}\" masquerade",
                   t, sb));
  return s;
}

std::string SessionChainName(const std::string& ifname, const std::string& ifname_prefix) {
  std::string suffix =
      ifname.starts_with(ifname_prefix) ? ifname.substr(ifname_prefix.size()) : ifname;
  return "out-" + suffix;
}

std::string AddSessionRulesScript(const std::string& ifname, const std::string& ifname_prefix,
                                  const std::vector<core::Ipv4Cidr>& allow_out,
                                  const std::vector<core::Ipv4Cidr>& deny_out,
                                  const std::string& table) {
  if (allow_out.empty() && deny_out.empty()) return "";
  const std::string t = fmt::format("inet {}", table);
  std::string chain = SessionChainName(ifname, ifname_prefix);
  std::string s = fmt::format("add chain {} {}\n", t, chain);
  // Anonymous interval sets: one lookup per rule however long the list. allow_out first: its
  // entries are exceptions to both deny_out and the defaults.
  if (!allow_out.empty())
    s += fmt::format("add rule {} {} ip daddr {{ {} }} accept\n", t, chain, Join(allow_out));
  if (!deny_out.empty())
    s += fmt::format("add rule {} {} ip daddr {{ {} }} drop\n", t, chain, Join(deny_out));
  s += fmt::format("add element {} session_out {{ \"{}\" : jump {} }}\n", t, ifname, chain);
  return s;
}

std::string DeleteSessionRulesScript(const std::string& ifname, const std::string& ifname_prefix,
                                     const std::string& table) {
  const std::string t = fmt::format("inet {}", table);
  return fmt::format("delete element {} session_out {{ \"{}\" }}\ndelete chain {} {}\n", t, ifname,
                     t, SessionChainName(ifname, ifname_prefix));
}

std::string DeleteTableScript(const std::string& table) {
  return fmt::format("delete table inet {}\n", table);
}

}  // namespace hutch::sandbox
