#include "core/cidr.h"

#include <gtest/gtest.h>

namespace hutch::core {
namespace {

TEST(CidrTest, ParsesCidrsAndBareAddresses) {
  auto c = ParseIpv4Cidr("10.0.0.0/8", "f");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->address, 0x0a000000u);
  EXPECT_EQ(c->prefix, 8);
  EXPECT_EQ(c->ToString(), "10.0.0.0/8");
  c = ParseIpv4Cidr("192.0.2.1", "f");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->prefix, 32);
  EXPECT_EQ(c->ToString(), "192.0.2.1/32");
  c = ParseIpv4Cidr("0.0.0.0/0", "f");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->Mask(), 0u);
  EXPECT_TRUE(c->Contains(0xffffffffu));
  c = ParseIpv4Cidr("255.255.255.255/32", "f");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->address, 0xffffffffu);
}

TEST(CidrTest, RefusesWhatIsNotExactlyACidr) {
  for (const char* bad : {"",
                          "10",
                          "10.0.0",
                          "10.0.0.0.0",
                          "10.0.0.256",
                          "10.0.0.0/33",
                          "10.0.0.0/",
                          "10.0.0.0/-1",
                          "10.0.0.0/08",
                          "010.0.0.0/8",
                          "10.0.0.01",
                          " 10.0.0.0/8",
                          "10.0.0.0/8 ",
                          "10.0.0.0/8/8",
                          "a.b.c.d",
                          "10..0.0",
                          "1e1.0.0.0",
                          "+1.0.0.0",
                          "10.0.0.0/1a",
                          "0x0a.0.0.0"}) {
    auto c = ParseIpv4Cidr(bad, "network.allow_out[0]");
    EXPECT_FALSE(c.ok()) << "'" << bad << "' was accepted";
    if (!c.ok()) {
      EXPECT_EQ(c.status().code(), Code::kInvalidArgument);
      EXPECT_NE(c.status().message().find("network.allow_out[0]"), std::string::npos)
          << c.status().message();
    }
  }
}

TEST(CidrTest, HostBitsAreRefusedWithTheNetworkSuggested) {
  auto c = ParseIpv4Cidr("10.1.2.3/8", "network.deny_out[2]");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("did you mean 10.0.0.0/8?"), std::string::npos)
      << c.status().message();
}

TEST(CidrTest, Ipv6IsRefusedWithTheReason) {
  auto c = ParseIpv4Cidr("fc00::/7", "network.deny_out[0]");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("no IPv6 route"), std::string::npos) << c.status().message();
}

TEST(CidrTest, ContainsAndOverlaps) {
  Ipv4Cidr ten = *ParseIpv4Cidr("10.0.0.0/8", "f");
  Ipv4Cidr sub = *ParseIpv4Cidr("10.89.0.0/16", "f");
  Ipv4Cidr other = *ParseIpv4Cidr("192.168.0.0/16", "f");
  EXPECT_TRUE(ten.Contains(*ParseIpv4Address("10.255.0.1", "f")));
  EXPECT_FALSE(ten.Contains(*ParseIpv4Address("11.0.0.1", "f")));
  EXPECT_TRUE(ten.Overlaps(sub));
  EXPECT_TRUE(sub.Overlaps(ten));
  EXPECT_FALSE(ten.Overlaps(other));
  EXPECT_EQ(FormatIpv4(0xc0000201u), "192.0.2.1");
}

}  // namespace
}  // namespace hutch::core
