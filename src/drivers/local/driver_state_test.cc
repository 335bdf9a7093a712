#include "drivers/local/driver_state.h"

#include <gtest/gtest.h>

namespace hutch::drivers::local {
namespace {

TEST(DriverStateTest, RoundTrips) {
  LocalSandboxState s;
  s.agent_pid = 4242;
  s.agent_start_time = 123456789012ull;
  s.socket_path = "/d/sessions/ses_x/agent.sock";
  s.session_dir = "/d/sessions/ses_x";
  s.cgroup_version = "v1";
  s.cgroups = {"/sys/fs/cgroup/memory/hutch/ses_x", "/sys/fs/cgroup/pids/hutch/ses_x"};
  auto d = DecodeState(EncodeState(s));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->agent_pid, 4242);
  EXPECT_EQ(d->agent_start_time, 123456789012ull);
  EXPECT_EQ(d->socket_path, s.socket_path);
  EXPECT_EQ(d->session_dir, s.session_dir);
  EXPECT_EQ(d->cgroup_version, "v1");
  EXPECT_EQ(d->cgroups, s.cgroups);
  EXPECT_EQ(d->veth, "");
  EXPECT_FALSE(d->cgroup_leaves);
}

// A sandbox made before the agent/work split has no cgroup_leaves: its pause freezes the agent.
TEST(DriverStateTest, RoundTripsTheCgroupLeaves) {
  LocalSandboxState s;
  s.cgroup_leaves = true;
  auto d = DecodeState(EncodeState(s));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_TRUE(d->cgroup_leaves);
  EXPECT_FALSE(DecodeState(R"({"agent_pid": 1})")->cgroup_leaves);
}

TEST(DriverStateTest, RoundTripsTheNatInterface) {
  LocalSandboxState s;
  s.veth = "hutch-1a2b3c4d";
  s.address = "10.89.0.2";
  s.nat_rules = true;
  auto d = DecodeState(EncodeState(s));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->veth, s.veth);
  EXPECT_EQ(d->address, s.address);
  EXPECT_TRUE(d->nat_rules);
}

TEST(DriverStateTest, RejectsMalformedState) {
  EXPECT_FALSE(DecodeState("not json").ok());
  EXPECT_FALSE(DecodeState(R"({"agent_pid": "x"})").ok());
  EXPECT_FALSE(DecodeState(R"({"version": 2})").ok());
  EXPECT_TRUE(DecodeState("{}").ok());
}

}  // namespace
}  // namespace hutch::drivers::local
