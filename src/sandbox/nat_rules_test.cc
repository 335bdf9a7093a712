#include "sandbox/nat_rules.h"

#include <gtest/gtest.h>

namespace hutch::sandbox {
namespace {

core::Ipv4Cidr Cidr(const char* text) { return *core::ParseIpv4Cidr(text, "test"); }

bool Has(const std::string& script, const std::string& line) {
  return script.find(line + "\n") != std::string::npos;
}

NatFirewallConfig Config() {
  NatFirewallConfig c;
  c.sandbox_nets = {Cidr("10.89.0.0/16")};
  c.denied = DefaultDeniedRanges();
  c.host_nets = {Cidr("192.0.2.0/24")};
  c.dns = {0xc0000235};  // 192.0.2.53
  return c;
}

TEST(NatRulesTest, DefaultDeniedRangesCoverThePrivateAndSpecialOnes) {
  auto denied = DefaultDeniedRanges();
  auto denies = [&](const char* addr) {
    uint32_t a = *core::ParseIpv4Address(addr, "test");
    for (const auto& c : denied)
      if (c.Contains(a)) return true;
    return false;
  };
  for (const char* a :
       {"10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "127.0.0.1",
        "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255"}) {
    EXPECT_TRUE(denies(a)) << a;
  }
  for (const char* a : {"198.51.100.1", "8.8.8.8", "172.32.0.1", "192.169.0.1", "1.1.1.1"}) {
    EXPECT_FALSE(denies(a)) << a;
  }
}

TEST(NatRulesTest, BaseRulesetHasEveryGuard) {
  std::string s = BaseRulesetScript(Config());
  EXPECT_TRUE(Has(s, "add table inet hutch"));
  // The sets, filled by adding elements (union with other servers' elements, never a reset).
  EXPECT_TRUE(Has(s,
                  "add element inet hutch denied4 { 0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, "
                  "127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, 192.168.0.0/16, 224.0.0.0/3 }"));
  EXPECT_TRUE(Has(s, "add element inet hutch host_nets4 { 192.0.2.0/24 }"));
  EXPECT_TRUE(Has(s, "add element inet hutch sandbox_nets4 { 10.89.0.0/16 }"));
  EXPECT_TRUE(Has(s, "add element inet hutch dns4 { 192.0.2.53/32 }"));
  // Base chains are rewritten whole, in the same transaction.
  for (const char* chain :
       {"prerouting", "input", "output", "forward", "from_sandbox", "postrouting"}) {
    EXPECT_TRUE(Has(s, std::string("flush chain inet hutch ") + chain)) << chain;
  }
  EXPECT_TRUE(Has(s, "add rule inet hutch prerouting iifname \"hutch-*\" meta nfproto ipv6 drop"));
  EXPECT_TRUE(Has(
      s, "add rule inet hutch prerouting iifname \"hutch-*\" fib saddr . iif oif missing drop"));
  EXPECT_TRUE(Has(s, "add rule inet hutch input iifname \"hutch-*\" drop"));
  EXPECT_TRUE(Has(s, "add rule inet hutch output oifname \"hutch-*\" ct state new drop"));
  EXPECT_TRUE(Has(s, "add rule inet hutch forward oifname \"hutch-*\" drop"));
  EXPECT_TRUE(Has(s, "add rule inet hutch forward iifname \"hutch-*\" jump from_sandbox"));
  EXPECT_TRUE(Has(s,
                  "add rule inet hutch postrouting ip saddr @sandbox_nets4 oifname != \"hutch-*\" "
                  "masquerade"));
  EXPECT_FALSE(Has(s, "add rule inet hutch forward drop"));
}

// Driver local-tcp: its own table and prefix, the host may dial the agent port and only the
// replies come back, before the drops; the guard leaves the other table's sandboxes alone.
TEST(NatRulesTest, AgentPortTableHasOnlyTheAgentsExceptions) {
  NatFirewallConfig c = Config();
  c.table = kTcpNatTable;
  c.ifname_prefix = "htcp-";
  c.agent_port = 7431;
  c.guard_forwarding = true;
  c.peer_prefixes = {"hutch-"};
  std::string s = BaseRulesetScript(c);
  EXPECT_FALSE(Has(s, "inet hutch "));
  const std::string reply =
      "add rule inet hutch_tcp input iifname \"htcp-*\" tcp sport 7431 ct state established ct "
      "direction reply accept";
  const std::string dial =
      "add rule inet hutch_tcp output oifname \"htcp-*\" tcp dport 7431 ct state new accept";
  ASSERT_TRUE(Has(s, reply)) << s;
  ASSERT_TRUE(Has(s, dial)) << s;
  EXPECT_LT(s.find(reply), s.find("add rule inet hutch_tcp input iifname \"htcp-*\" drop"));
  EXPECT_LT(s.find(dial),
            s.find("add rule inet hutch_tcp output oifname \"htcp-*\" ct state new drop"));
  const std::string peer = "add rule inet hutch_tcp forward iifname \"hutch-*\" accept";
  ASSERT_TRUE(Has(s, peer)) << s;
  EXPECT_LT(s.find(peer), s.find("add rule inet hutch_tcp forward drop"));
  // The local driver's table has no exception for the port.
  EXPECT_FALSE(Has(BaseRulesetScript(Config()), "7431"));
  std::vector<core::Ipv4Cidr> everything = {core::Ipv4Cidr{0, 0}};
  std::string chain = AddSessionRulesScript("htcp-1a2b3c4d", "htcp-", {}, everything, kTcpNatTable);
  EXPECT_TRUE(Has(chain,
                  "add element inet hutch_tcp session_out { \"htcp-1a2b3c4d\" : jump "
                  "out-1a2b3c4d }"))
      << chain;
}

TEST(NatRulesTest, FromSandboxOrderIsRepliesSessionDnsDefaultsAccept) {
  std::string s = BaseRulesetScript(Config());
  std::vector<std::string> order = {
      "from_sandbox meta nfproto ipv6 drop",
      "from_sandbox ct state established,related accept",
      "from_sandbox iifname vmap @session_out",
      "from_sandbox ip daddr @dns4 meta l4proto { tcp, udp } th dport 53 accept",
      "from_sandbox ip daddr @denied4 drop",
      "from_sandbox ip daddr @host_nets4 drop",
      "from_sandbox accept",
  };
  size_t last = 0;
  for (const auto& rule : order) {
    size_t at = s.find("add rule inet hutch " + rule + "\n");
    ASSERT_NE(at, std::string::npos) << rule;
    EXPECT_GT(at, last) << rule << " is out of order";
    last = at;
  }
}

TEST(NatRulesTest, GuardForwardingDropsOthersForwardedTraffic) {
  NatFirewallConfig c = Config();
  c.guard_forwarding = true;
  std::string s = BaseRulesetScript(c);
  size_t jump = s.find("add rule inet hutch forward iifname \"hutch-*\" jump from_sandbox\n");
  size_t drop = s.find("add rule inet hutch forward drop\n");
  ASSERT_NE(drop, std::string::npos);
  EXPECT_GT(drop, jump);
}

TEST(NatRulesTest, EmptySetsGetNoElementLine) {
  NatFirewallConfig c = Config();
  c.dns.clear();
  c.host_nets.clear();
  std::string s = BaseRulesetScript(c);
  EXPECT_EQ(s.find("add element inet hutch dns4"), std::string::npos);
  EXPECT_EQ(s.find("add element inet hutch host_nets4"), std::string::npos);
  EXPECT_TRUE(Has(s, "add set inet hutch dns4 { type ipv4_addr; flags interval; auto-merge; }"));
}

TEST(NatRulesTest, SessionRulesAllowBeforeDenyAndMapTheInterface) {
  std::string s = AddSessionRulesScript("hutch-1a2b3c4d", "hutch-",
                                        {Cidr("10.77.0.0/16"), Cidr("192.0.2.7/32")},
                                        {Cidr("198.51.100.0/24")});
  EXPECT_EQ(s,
            "add chain inet hutch out-1a2b3c4d\n"
            "add rule inet hutch out-1a2b3c4d ip daddr { 10.77.0.0/16, 192.0.2.7/32 } accept\n"
            "add rule inet hutch out-1a2b3c4d ip daddr { 198.51.100.0/24 } drop\n"
            "add element inet hutch session_out { \"hutch-1a2b3c4d\" : jump out-1a2b3c4d }\n");
  EXPECT_EQ(AddSessionRulesScript("hutch-1a2b3c4d", "hutch-", {}, {}), "");
  EXPECT_EQ(AddSessionRulesScript("hutch-1a2b3c4d", "hutch-", {}, {Cidr("0.0.0.0/0")}),
            "add chain inet hutch out-1a2b3c4d\n"
            "add rule inet hutch out-1a2b3c4d ip daddr { 0.0.0.0/0 } drop\n"
            "add element inet hutch session_out { \"hutch-1a2b3c4d\" : jump out-1a2b3c4d }\n");
}

TEST(NatRulesTest, DeleteSessionRulesRemovesTheElementFirst) {
  EXPECT_EQ(DeleteSessionRulesScript("hutch-1a2b3c4d", "hutch-"),
            "delete element inet hutch session_out { \"hutch-1a2b3c4d\" }\n"
            "delete chain inet hutch out-1a2b3c4d\n");
  EXPECT_EQ(DeleteTableScript(), "delete table inet hutch\n");
}

}  // namespace
}  // namespace hutch::sandbox
