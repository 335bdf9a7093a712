// The local driver's attached shells against the real kernel (issue 21): a transient agent
// enters a process in fresh namespaces and a runc container, runs in a child of their cgroups,
// and when it ends leaves no process, cgroup or file behind while the target keeps running.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>

#include "agent/client.h"
#include "agent/transport.h"
#include "common/ids.h"
#include "drivers/driver.h"
#include "drivers/local/local_driver.h"
#include "testing/attach_targets.h"
#include "testing/test_util.h"

namespace hutch::drivers {
namespace {

using hutch::testing::PidsInNamespaceOf;
using hutch::testing::RuncContainer;
using hutch::testing::UnsharedProcess;

// The value of `field` in a /proc/PID/status text ("Uid" → "0\t0\t0\t0").
std::string StatusField(const std::string& status, const std::string& field) {
  size_t at = status.find("\n" + field + ":\t");
  if (at == std::string::npos) return "";
  at += field.size() + 3;
  std::string v = status.substr(at, status.find('\n', at) - at);
  while (!v.empty() && v.back() == ' ') v.pop_back();  // Groups ends in a space
  return v;
}

core::ExecRequest Sh(const std::string& script) {
  core::ExecRequest r;
  r.argv = {"/bin/sh", "-c", script};
  r.timeout_ms = 30000;
  return r;
}

class AttachDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!hutch::testing::IsRoot()) GTEST_SKIP() << "needs root (namespaces, cgroups)";
    LocalDriverOptions opts;
    opts.data_dir = dir_.path() + "/data";
    opts.agent_path = HUTCH_AGENT_BINARY;
    opts.cgroup_root_name = NewId("hutch-test");
    auto driver = NewLocalDriver(opts);
    ASSERT_TRUE(driver.ok()) << driver.status().ToString();
    driver_ = std::move(*driver);
  }

  std::string Run(const AttachedAgent& a, const std::string& script, int* exit_code = nullptr) {
    auto r = agent::ExecOnAgent(*a.transport(), Sh(script));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return "";
    if (exit_code) *exit_code = r->exit_code;
    EXPECT_TRUE(exit_code || r->exit_code == 0) << script << ": " << r->stderr_data;
    return r->stdout_data;
  }

  // Attaches, checks what only the target has, leaves a double-forked sleeper behind and ends;
  // the target keeps running with exactly the processes it had, and the shell's cgroup and
  // files are gone.
  void ShellInAndOut(pid_t target_pid, const core::AttachTarget& target,
                     const std::string& hostname, const std::string& secret_cmd,
                     const std::string& secret) {
    std::vector<pid_t> before = PidsInNamespaceOf(target_pid);
    std::string id = NewId("att");
    auto attached = driver_->Attach(id, target, {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}});
    ASSERT_TRUE(attached.ok()) << attached.status().ToString();
    AttachedAgent& a = **attached;
    EXPECT_EQ(Run(a, "hostname"), hostname + "\n");
    EXPECT_EQ(Run(a, secret_cmd), secret + "\n");
    // In the target's pid namespace: its PID 1 is the target's.
    EXPECT_NE(Run(a, "cat /proc/1/cmdline"), "");
    // A child of the target's cgroup.
    std::string cgroups = Run(a, "cat /proc/self/cgroup");
    EXPECT_NE(cgroups.find(id), std::string::npos) << cgroups;
    // Something that tries to stay.
    Run(a, "(sleep 100000 &) ; (setsid sleep 100001 &) ; true");
    EXPECT_GT(PidsInNamespaceOf(target_pid).size(), before.size());
    ASSERT_TRUE(a.End().ok());
    EXPECT_FALSE(a.Alive());
    EXPECT_EQ(kill(target_pid, 0), 0) << "the target is gone";
    std::vector<pid_t> after = PidsInNamespaceOf(target_pid);
    std::sort(before.begin(), before.end());
    std::sort(after.begin(), after.end());
    std::string left;
    for (pid_t p : after)
      if (std::find(before.begin(), before.end(), p) == before.end())
        left += hutch::testing::ShellOut("grep -E '^(Name|State|PPid)' /proc/" + std::to_string(p) +
                                         "/status | tr '\\n' ' '; echo");
    EXPECT_EQ(after, before) << "processes left in the target: " << left;
    EXPECT_EQ(hutch::testing::ShellOut("find /sys/fs/cgroup -maxdepth 8 -type d -name " + id +
                                       " 2>/dev/null | wc -l"),
              "0\n");
    EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/data/attach/" + id));
  }

  hutch::testing::TempDir dir_{"hutch-attach-test"};
  std::unique_ptr<Driver> driver_;
};

TEST_F(AttachDriverTest, AProcessInFreshNamespaces) {
  UnsharedProcess target("unshared-target", "only-in-the-namespace");
  ASSERT_GT(target.pid(), 0);
  ASSERT_FALSE(std::filesystem::exists("/mnt/secret"));
  core::AttachTarget t;
  t.kind = "process";
  t.pid = target.pid();
  ShellInAndOut(target.pid(), t, "unshared-target", "cat /mnt/secret", "only-in-the-namespace");
}

TEST_F(AttachDriverTest, AProcessByPidFileAndByCgroup) {
  UnsharedProcess target("by-pid-file", "x");
  ASSERT_GT(target.pid(), 0);
  std::string pid_file = dir_.path() + "/target.pid";
  hutch::testing::ShellOut("echo " + std::to_string(target.pid()) + " > " + pid_file);
  core::AttachTarget t;
  t.kind = "process";
  t.pid_file = pid_file;
  ShellInAndOut(target.pid(), t, "by-pid-file", "cat /mnt/secret", "x");
  // A cgroup of its own (v1: every hierarchy; here the pids one), found by path.
  std::string group = NewId("hutch-test-target");
  std::string pids_dir = "/sys/fs/cgroup/pids/" + group;
  if (!std::filesystem::exists("/sys/fs/cgroup/pids")) pids_dir = "/sys/fs/cgroup/" + group;
  ASSERT_EQ(mkdir(pids_dir.c_str(), 0755), 0);
  hutch::testing::ShellOut("echo " + std::to_string(target.pid()) + " > " + pids_dir +
                           "/cgroup.procs");
  core::AttachTarget by_cgroup;
  by_cgroup.kind = "process";
  by_cgroup.cgroup = pids_dir;
  ShellInAndOut(target.pid(), by_cgroup, "by-pid-file", "cat /mnt/secret", "x");
  hutch::testing::ShellOut("echo " + std::to_string(target.pid()) + " > " +
                           std::filesystem::path(pids_dir).parent_path().string() +
                           "/cgroup.procs");
  rmdir(pids_dir.c_str());
}

TEST_F(AttachDriverTest, ARuncContainer) {
  if (access("/usr/sbin/runc", X_OK) != 0) GTEST_SKIP() << "runc is not installed";
  std::string id = NewId("hutch-test-c");
  RuncContainer c(dir_.path(), id, "runc-target", "only-in-the-container");
  ASSERT_TRUE(c.ok());
  core::AttachTarget t;
  t.kind = "runc";
  t.container_id = id;
  t.runc_root = c.root();
  ShellInAndOut(c.pid(), t, "runc-target", "cat /etc/only-here", "only-in-the-container");
  EXPECT_EQ(c.State(), "running");
  // What `runc exec` would give: root, runc spec's three capabilities, no_new_privs.
  auto a = driver_->Attach(NewId("att"), t, {});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  std::string status = Run(**a, "cat /proc/self/status");
  EXPECT_EQ(StatusField(status, "Uid"), "0\t0\t0\t0");
  EXPECT_EQ(StatusField(status, "CapBnd"), "0000000020000420");  // AUDIT_WRITE KILL NET_BIND
  EXPECT_EQ(StatusField(status, "CapEff"), "0000000020000420");
  EXPECT_EQ(StatusField(status, "NoNewPrivs"), "1");
  ASSERT_TRUE((*a)->End().ok());
}

// A container whose process runs as another user with a seccomp profile: the shell is that
// user, with no capabilities, under a seccomp filter (the profile's; the agent loads no other).
TEST_F(AttachDriverTest, ARuncShellTakesOnTheContainersUserAndSeccompProfile) {
  if (access("/usr/sbin/runc", X_OK) != 0) GTEST_SKIP() << "runc is not installed";
  std::string id = NewId("hutch-test-c");
  RuncContainer c(dir_.path(), id, "runc-user", "only-for-the-user", /*as_user=*/true);
  ASSERT_TRUE(c.ok());
  core::AttachTarget t;
  t.kind = "runc";
  t.container_id = id;
  t.runc_root = c.root();
  ShellInAndOut(c.pid(), t, "runc-user", "cat /etc/only-here", "only-for-the-user");
  auto a = driver_->Attach(NewId("att"), t, {});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  std::string status = Run(**a, "cat /proc/self/status");
  EXPECT_EQ(StatusField(status, "Uid"), "1000\t1000\t1000\t1000");
  EXPECT_EQ(StatusField(status, "Gid"), "1000\t1000\t1000\t1000");
  EXPECT_EQ(StatusField(status, "Groups"), "27");
  EXPECT_EQ(StatusField(status, "CapEff"), "0000000000000000");
  EXPECT_EQ(StatusField(status, "CapBnd"), "0000000020000420");
  EXPECT_EQ(StatusField(status, "Seccomp"), "2");
  ASSERT_TRUE((*a)->End().ok());
  EXPECT_EQ(c.State(), "running");
}

// The test's own dockerd (no bridge, no iptables, an imported image): the container found through
// the Engine API by name, by id prefix and by name glob, entered like a runc container.
TEST_F(AttachDriverTest, ADockerContainer) {
  if (access("/usr/sbin/dockerd", X_OK) != 0) GTEST_SKIP() << "docker.io is not installed";
  hutch::testing::DockerDaemon docker(dir_.path());
  ASSERT_TRUE(docker.ok()) << docker.error();
  std::string name = NewId("hutch-test-web");
  std::string id = docker.Run(name, "docker-target", "only-in-the-docker-container");
  ASSERT_FALSE(id.empty());
  pid_t pid = docker.Pid(name);
  ASSERT_GT(pid, 0);
  core::AttachTarget t;
  t.kind = "docker";
  t.docker_host = docker.socket();
  t.container_id = name;
  ShellInAndOut(pid, t, "docker-target", "cat /etc/only-here", "only-in-the-docker-container");
  t.container_id = id.substr(0, 12);
  ShellInAndOut(pid, t, "docker-target", "cat /etc/only-here", "only-in-the-docker-container");
  t.container_id.clear();
  t.container_name = name.substr(0, 14) + "*";
  ShellInAndOut(pid, t, "docker-target", "cat /etc/only-here", "only-in-the-docker-container");
  EXPECT_EQ(docker.Docker("inspect -f '{{.State.Running}}' " + name), "true\n");
  // A stopped container, and a name nothing has, are not found; a socket nothing serves is
  // unavailable.
  docker.Docker("stop -t 0 " + name + " >/dev/null");
  auto stopped = driver_->Attach(NewId("att"), t, {});
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.status().code(), Code::kNotFound) << stopped.status().ToString();
  t.container_name.clear();
  t.container_id = name;
  stopped = driver_->Attach(NewId("att"), t, {});
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.status().code(), Code::kNotFound) << stopped.status().ToString();
  t.container_id = "no-such-container";
  EXPECT_EQ(driver_->Attach(NewId("att"), t, {}).status().code(), Code::kNotFound);
  t.docker_host = dir_.path() + "/nothing.sock";
  EXPECT_EQ(driver_->Attach(NewId("att"), t, {}).status().code(), Code::kUnavailable);
}

TEST_F(AttachDriverTest, AGoneTargetIsNotFound) {
  core::AttachTarget t;
  t.kind = "runc";
  t.container_id = "no-such-container";
  t.runc_root = dir_.path();
  auto a = driver_->Attach(NewId("att"), t, {});
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), Code::kNotFound) << a.status().ToString();
}

}  // namespace
}  // namespace hutch::drivers
