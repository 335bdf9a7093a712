#include "drivers/local/network.h"

#include <gtest/gtest.h>

namespace hutch::drivers::local {
namespace {

TEST(LocalNetworkTest, HostResolversLeaveOutLoopbackAndIpv6) {
  auto r = HostResolvers(
      "# comment\nnameserver 127.0.0.53\nnameserver 10.255.255.53\nsearch example.org\n"
      "nameserver fd00::1\nnameserver   192.0.2.53  \noptions edns0\n");
  EXPECT_EQ(r, (std::vector<uint32_t>{0x0affff35u, 0xc0000235u}));
  EXPECT_TRUE(HostResolvers("").empty());
}

TEST(LocalNetworkTest, ParsesProcNetRoute) {
  auto routes = ParseProcNetRoute(
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
      "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
      "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
      "tnet\t006433C6\t02FF7F64\t0003\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
  ASSERT_EQ(routes.size(), 3u);
  EXPECT_EQ(routes[0].dst.prefix, 0);
  EXPECT_FALSE(routes[0].connected);
  EXPECT_EQ(routes[1].ifname, "eth0");
  EXPECT_EQ(routes[1].dst.ToString(), "192.0.2.0/24");
  EXPECT_TRUE(routes[1].connected);
  EXPECT_EQ(routes[2].dst.ToString(), "198.51.100.0/24");
  EXPECT_FALSE(routes[2].connected);
}

}  // namespace
}  // namespace hutch::drivers::local
