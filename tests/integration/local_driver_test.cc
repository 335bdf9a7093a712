// The local driver against the real kernel: sandboxes are created, used and destroyed, and the
// tests count what they leave behind. Needs root (namespaces, mounts, cgroups); skips without.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "agent/client.h"
#include "agent/command.h"
#include "agent/file_client.h"
#include "agent/frame_io.h"
#include "agent/protocol.h"
#include "common/ids.h"
#include "common/time.h"
#include "drivers/driver.h"
#include "drivers/local/driver_state.h"
#include "drivers/local/local_driver.h"
#include "sandbox/caps.h"
#include "sandbox/fs.h"
#include "testing/test_util.h"

namespace hutch::drivers {
namespace {

using hutch::testing::TakeLeakSnapshot;

#define REQUIRE_ROOT() \
  if (!hutch::testing::IsRoot()) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)"

core::ExecRequest Cmd(std::vector<std::string> argv, int64_t timeout_ms = 30000) {
  core::ExecRequest r;
  r.argv = std::move(argv);
  r.timeout_ms = timeout_ms;
  return r;
}

core::ExecRequest Sh(const std::string& script, int64_t timeout_ms = 30000) {
  return Cmd({"/bin/sh", "-c", script}, timeout_ms);
}

class LocalDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_ROOT();
    // A cgroup root of our own, so other hutch servers and tests on the machine do not
    // disturb the counts.
    cgroup_root_ = NewId("hutch-test");
    auto driver = MakeDriver();
    ASSERT_TRUE(driver.ok()) << driver.status().ToString();
    driver_ = std::move(*driver);
  }

  void TearDown() override {
    if (!driver_) return;
    for (const auto& [id, state] : live_) {
      Status st = driver_->Destroy(id, state);
      EXPECT_TRUE(st.ok()) << id << ": " << st.ToString();
    }
    driver_.reset();
    for (const auto& h : hutch::testing::CgroupHierarchies()) {
      rmdir((h + "/" + cgroup_root_).c_str());
    }
  }

  Result<std::unique_ptr<Driver>> MakeDriver() {
    LocalDriverOptions opts;
    opts.data_dir = dir_.path() + "/data";
    opts.agent_path = HUTCH_AGENT_BINARY;
    opts.cgroup_root_name = cgroup_root_;
    return NewLocalDriver(opts);
  }

  std::string DataDir() const { return dir_.path() + "/data"; }

  // Creates a sandbox that TearDown destroys; "" on failure (with a test failure recorded).
  std::string Create(SandboxSpec spec = {}) {
    if (spec.session_id.empty()) spec.session_id = NewId("ses");
    if (spec.image.empty()) spec.image = "host";
    auto state = driver_->Create(spec);
    EXPECT_TRUE(state.ok()) << state.status().ToString();
    if (!state.ok()) return "";
    live_.emplace_back(spec.session_id, *state);
    return spec.session_id;
  }

  // A leak snapshot with the drivers' background work done: the disk pool refills after a
  // create took a disk, and its fds are open meanwhile.
  hutch::testing::LeakSnapshot Snapshot(std::initializer_list<Driver*> more = {}) {
    EXPECT_TRUE(WaitForLocalDriverIdle(driver_.get(), 30000));
    for (Driver* d : more) EXPECT_TRUE(WaitForLocalDriverIdle(d, 30000));
    return TakeLeakSnapshot(DataDir(), cgroup_root_);
  }
  void ExpectNoLeaks(const hutch::testing::LeakSnapshot& before,
                     std::initializer_list<Driver*> more = {}) {
    EXPECT_EQ(Snapshot(more), before);
  }

  const std::string& StateOf(const std::string& id) {
    for (const auto& [i, s] : live_) {
      if (i == id) return s;
    }
    static const std::string kNone;
    return kNone;
  }

  Status Destroy(const std::string& id) {
    std::string state = StateOf(id);
    Status st = driver_->Destroy(id, state);
    std::erase_if(live_, [&](const auto& p) { return p.first == id; });
    return st;
  }

  core::ExecResult Exec(const std::string& id, const core::ExecRequest& request) {
    auto r = driver_->Exec(id, StateOf(id), request);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : core::ExecResult{};
  }

  std::string Stdout(const std::string& id, const core::ExecRequest& request) {
    core::ExecResult r = Exec(id, request);
    EXPECT_EQ(r.exit_code, 0) << "stderr: " << r.stderr_data;
    return r.stdout_data;
  }

  // How the server reaches the sandbox's agent (its secret included).
  std::shared_ptr<const agent::Transport> TransportOf(const std::string& id) {
    auto t = driver_->ConnectAgent(id, StateOf(id));
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? *t : agent::NewUnixTransport("/nonexistent", id, "");
  }

  local::LocalSandboxState ParsedState(const std::string& id) {
    auto s = local::DecodeState(StateOf(id));
    EXPECT_TRUE(s.ok());
    return s.ok() ? *s : local::LocalSandboxState{};
  }

  hutch::testing::TempDir dir_{"hutch-driver-test"};
  std::string cgroup_root_;
  std::unique_ptr<Driver> driver_;
  std::vector<std::pair<std::string, std::string>> live_;
};

TEST_F(LocalDriverTest, HostnameIsTheSessions) {
  SandboxSpec spec;
  spec.hostname = "box-one";
  std::string id = Create(spec);
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(Stdout(id, Cmd({"hostname"})), "box-one\n");
  EXPECT_EQ(Stdout(id, Cmd({"cat", "/etc/hostname"})), "box-one\n");
  EXPECT_NE(Stdout(id, Cmd({"cat", "/etc/hosts"})).find("127.0.1.1\tbox-one"), std::string::npos);
}

TEST_F(LocalDriverTest, SeesOnlyItsOwnProcessesWithTheAgentAsPidOne) {
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(Stdout(id, Cmd({"cat", "/proc/1/comm"})), "hutch-agent\n");
  // ps itself and the agent: nothing of the host.
  std::string ps = Stdout(id, Cmd({"ps", "-e", "-o", "pid=,comm="}));
  EXPECT_NE(ps.find("1 hutch-agent"), std::string::npos) << ps;
  EXPECT_EQ(std::count(ps.begin(), ps.end(), '\n'), 2) << ps;
  std::string procs = Stdout(id, Cmd({"ls", "/proc"}));
  int numeric = 0;
  for (size_t i = 0; i < procs.size(); i = procs.find('\n', i) + 1) {
    if (std::isdigit(static_cast<unsigned char>(procs[i]))) ++numeric;
  }
  EXPECT_EQ(numeric, 2) << procs;  // the agent and ls
  // A cgroup namespace rooted at the session's group: the host's hierarchy is hidden.
  std::string cgroups = Stdout(id, Cmd({"cat", "/proc/self/cgroup"}));
  for (size_t i = 0; i < cgroups.size(); i = cgroups.find('\n', i) + 1) {
    std::string line = cgroups.substr(i, cgroups.find('\n', i) - i);
    if (line.find("name=") != std::string::npos) continue;  // not joined: named hierarchies
    if (line.find(":memory:") != std::string::npos || line.starts_with("0::")) {
      EXPECT_TRUE(line.ends_with(":/")) << line;
    }
  }
  // Loopback is up, and it is the only interface.
  std::string ifaces = Stdout(id, Cmd({"cat", "/proc/net/dev"}));
  EXPECT_NE(ifaces.find("lo:"), std::string::npos);
  EXPECT_EQ(std::count(ifaces.begin(), ifaces.end(), '\n'), 3) << ifaces;
}

TEST_F(LocalDriverTest, FilesWrittenInASandboxStayInIt) {
  std::string a = Create();
  std::string b = Create();
  ASSERT_FALSE(a.empty() || b.empty());
  std::string name = "hutch-isolation-" + NewId("f");
  ASSERT_EQ(Exec(a, Sh("echo secret > /root/" + name + " && echo x > /tmp/" + name)).exit_code, 0);
  EXPECT_EQ(Stdout(a, Cmd({"cat", "/root/" + name})), "secret\n");
  // Not on the host: a's writable layer is a disk of its own, mounted only inside a.
  EXPECT_FALSE(sandbox::PathExists("/root/" + name));
  EXPECT_FALSE(sandbox::PathExists("/tmp/" + name));
  // Not in b.
  EXPECT_EQ(Exec(b, Cmd({"test", "-e", "/root/" + name})).exit_code, 1);
  EXPECT_EQ(Exec(b, Cmd({"test", "-e", "/tmp/" + name})).exit_code, 1);
}

// Every layer of docs/security.md, seen from a command: its own session, no_new_privs, the
// seccomp filter, the cut bounding set, the user namespace, an agent it cannot look into, and
// only fds 0-2.
TEST_F(LocalDriverTest, CommandsRunHardened) {
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  std::string status = Stdout(id, Cmd({"cat", "/proc/self/status"}));
  EXPECT_NE(status.find("NoNewPrivs:\t1"), std::string::npos) << status;
  EXPECT_NE(status.find("Seccomp:\t2"), std::string::npos) << status;
  char bnd[64];
  std::snprintf(bnd, sizeof bnd, "CapBnd:\t%016llx",
                static_cast<unsigned long long>(sandbox::SandboxCapabilityMask()));
  EXPECT_NE(status.find(bnd), std::string::npos) << status;
  EXPECT_NE(status.find("CapAmb:\t0000000000000000"), std::string::npos) << status;
  // setsid: the command leads a session of its own.
  EXPECT_EQ(Stdout(id, Sh("test \"$(ps -o sid= -p $$)\" -eq $$ && echo own-session")),
            "own-session\n");
  // Root inside is an unprivileged range outside (where the host allows a user namespace).
  std::istringstream map(Stdout(id, Cmd({"cat", "/proc/self/uid_map"})));
  uint64_t inside = 1, outside = 0, count = 0;
  map >> inside >> outside >> count;
  EXPECT_EQ(inside, 0u);
  if (count != 4294967295u) {  // not the initial namespace: the fallback has no user namespace
    EXPECT_EQ(count, 65536u);
    EXPECT_GE(outside, 1u << 30) << "root inside maps to a host id below the sandbox ranges";
  }
  // The agent is not dumpable: its exe, fds, environment and memory are closed to commands.
  EXPECT_NE(Exec(id, Cmd({"readlink", "/proc/1/exe"})).exit_code, 0);
  EXPECT_NE(Exec(id, Cmd({"readlink", "/proc/1/fd/0"})).exit_code, 0);
  EXPECT_NE(Exec(id, Cmd({"cat", "/proc/1/environ"})).exit_code, 0);
  // Nothing beyond 0-2 (ls's own directory fd aside).
  EXPECT_EQ(Stdout(id, Sh("ls /proc/self/fd | wc -l")), "4\n");
  // /dev holds the minimal set, owned by root inside.
  EXPECT_EQ(Stdout(id, Sh("ls /dev | tr '\\n' ' '")),
            "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero ");
  EXPECT_EQ(Stdout(id, Cmd({"stat", "-c", "%U", "/dev/null"})), "root\n");
}

// disk_mb is a filesystem of that size: a full disk (or inode table) is ENOSPC inside, and the
// space the session sees is its own.
TEST_F(LocalDriverTest, DiskLimitGivesEnospc) {
  SandboxSpec spec;
  spec.resources.disk_mb = 32;
  std::string id = Create(spec);
  ASSERT_FALSE(id.empty());
  std::string df = Stdout(id, Sh("df -k --output=size / | tail -1"));
  EXPECT_LE(std::stol(df), 32 * 1024) << df;
  core::ExecResult r = Exec(id, Sh("head -c 64M /dev/zero > /root/fill; echo rc=$?"));
  EXPECT_NE(r.stderr_data.find("No space left on device"), std::string::npos) << r.stderr_data;
  r = Exec(id, Sh("rm /root/fill; mkdir /root/i && cd /root/i && "
                  "for i in $(seq 1 4000); do printf '' > $i || exit 7; done"));
  EXPECT_EQ(r.exit_code, 7) << "created 4000 files on a disk of 2048 inodes";
  EXPECT_NE(r.stderr_data.find("No space left on device"), std::string::npos) << r.stderr_data;
  EXPECT_EQ(Stdout(id, Cmd({"echo", "alive"})), "alive\n");
}

// The fallbacks, forced: no user namespace (host root with the cut capability set) and a tmpfs
// layer (no loop devices). Everything else holds as with them.
TEST_F(LocalDriverTest, FallbacksWithoutUserNamespaceAndWithTmpfsLayer) {
  LocalDriverOptions opts;
  opts.data_dir = DataDir();
  opts.agent_path = HUTCH_AGENT_BINARY;
  opts.cgroup_root_name = cgroup_root_;
  opts.user_namespaces = false;
  opts.disk = "tmpfs";
  auto d = NewLocalDriver(opts);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  auto before = Snapshot({d->get()});
  SandboxSpec spec;
  spec.session_id = NewId("ses");
  spec.image = "host";
  spec.resources.disk_mb = 16;
  auto state = (*d)->Create(spec);
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  auto run = [&](const std::string& script) {
    auto r = (*d)->Exec(spec.session_id, *state, Sh(script));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : core::ExecResult{};
  };
  EXPECT_EQ(run("awk '{print $1, $2, $3}' /proc/self/uid_map").stdout_data, "0 0 4294967295\n");
  EXPECT_NE(run("grep CapBnd /proc/self/status").stdout_data.find("00000000000405fb"),
            std::string::npos);
  EXPECT_EQ(run("df -k --output=size / | tail -1 | tr -d ' '").stdout_data, "16384\n");
  auto r = run("head -c 32M /dev/zero > /root/fill");
  EXPECT_NE(r.stderr_data.find("No space left on device"), std::string::npos) << r.stderr_data;
  EXPECT_EQ(run("touch /etc/x && echo ok").stdout_data, "ok\n");
  // A tmpfs layer cannot outlive its sandbox: stop is refused, and nothing changes.
  EXPECT_EQ((*d)->Stop(spec.session_id, *state).code(), Code::kConflict);
  EXPECT_TRUE((*d)->IsAlive(spec.session_id, *state));
  // Nor can it be checkpointed, restored or forked from: a conflict that says why.
  auto checkpoint = (*d)->Checkpoint(spec.session_id, *state, "c", true);
  EXPECT_EQ(checkpoint.status().code(), Code::kConflict);
  EXPECT_NE(checkpoint.status().message().find("tmpfs"), std::string::npos);
  EXPECT_EQ((*d)->GetCheckpoint(spec.session_id, "c").status().code(), Code::kConflict);
  EXPECT_EQ((*d)->RestoreLayer(spec.session_id, spec.session_id, "c").code(), Code::kConflict);
  EXPECT_TRUE((*d)->IsAlive(spec.session_id, *state));
  ASSERT_TRUE((*d)->Destroy(spec.session_id, *state).ok());
  ExpectNoLeaks(before, {d->get()});
}

TEST_F(LocalDriverTest, UsrIsReadOnly) {
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  core::ExecResult r = Exec(id, Cmd({"touch", "/usr/hutch-write-test"}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.stderr_data.find("Read-only file system"), std::string::npos) << r.stderr_data;
  r = Exec(id, Sh("echo x >> /usr/bin/ls"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(sandbox::PathExists("/usr/hutch-write-test"));
  // The rest of the root is writable (the overlay's upper layer).
  EXPECT_EQ(Exec(id, Cmd({"touch", "/etc/new-file", "/var/tmp/x", "/opt/y"})).exit_code, 0);
  // The host's secrets are not there.
  EXPECT_EQ(Exec(id, Cmd({"test", "-e", "/etc/shadow"})).exit_code, 1);
}

TEST_F(LocalDriverTest, MemoryLimitKillsTheHogAndTheSandboxStillAnswers) {
  SandboxSpec spec;
  spec.resources.memory_mb = 64;
  std::string id = Create(spec);
  ASSERT_FALSE(id.empty());
  // tail keeps the whole newline-free input in memory: 300 MiB against a 64 MiB limit.
  core::ExecResult r = Exec(id, Sh("head -c 300M /dev/zero | tail; echo rc=$?"));
  EXPECT_NE(r.stdout_data.find("rc=137"), std::string::npos)
      << r.stdout_data.substr(0, 200) << " / " << r.stderr_data;
  EXPECT_EQ(Stdout(id, Cmd({"echo", "alive"})), "alive\n");
  // The kernel says so too.
  auto state = ParsedState(id);
  bool saw_oom = false;
  for (const auto& dir : state.cgroups) {
    for (const char* file : {"/memory.oom_control", "/memory.events"}) {
      auto text = sandbox::ReadFileToString(dir + file);
      if (!text.ok()) continue;
      size_t pos = text->find("oom_kill ");
      if (pos != std::string::npos && std::stoi(text->substr(pos + 9)) > 0) saw_oom = true;
    }
  }
  EXPECT_TRUE(saw_oom);
}

TEST_F(LocalDriverTest, ResourcesBecomeCgroupLimits) {
  SandboxSpec spec;
  spec.resources.cpus = 0.5;
  spec.resources.memory_mb = 128;
  spec.resources.pids = 100;
  std::string id = Create(spec);
  ASSERT_FALSE(id.empty());
  auto state = ParsedState(id);
  std::map<std::string, std::string> want = {{"cpu.cfs_quota_us", "50000"},
                                             {"cpu.cfs_period_us", "100000"},
                                             {"memory.limit_in_bytes", std::to_string(128 << 20)},
                                             {"pids.max", "100"},
                                             {"cpu.max", "50000 100000"},
                                             {"memory.max", std::to_string(128 << 20)}};
  int found = 0;
  for (const auto& dir : state.cgroups) {
    for (const auto& [file, value] : want) {
      auto text = sandbox::ReadFileToString(dir + "/" + file);
      if (!text.ok()) continue;
      ++found;
      EXPECT_EQ(*text, value + "\n") << dir << "/" << file;
    }
  }
  EXPECT_GE(found, 3);  // v1: quota, period, memory, pids; v2: cpu.max, memory.max, pids.max
}

TEST_F(LocalDriverTest, PidsLimitStopsAForkBomb) {
  SandboxSpec spec;
  spec.resources.pids = 64;
  std::string id = Create(spec);
  ASSERT_FALSE(id.empty());
  // The main process forks once, before the bomb exists, then execs: a shell that itself
  // hits "Cannot fork" would exit early and leave the bomb running past the timeout.
  core::ExecResult r = Exec(id, Sh("f() { f | f & }; f & exec sleep 100", 3000));
  EXPECT_TRUE(r.timed_out) << r.exit_code << " " << r.signal << " " << r.duration_ms << " "
                           << r.stdout_data << " " << r.stderr_data.substr(0, 500);
  // The limit held: the group was killed, and the sandbox answers again.
  EXPECT_EQ(Stdout(id, Cmd({"echo", "alive"})), "alive\n");
  std::string ps = Stdout(id, Cmd({"ps", "-e", "-o", "comm="}));
  EXPECT_EQ(std::count(ps.begin(), ps.end(), '\n'), 2) << ps;  // the agent and ps
  auto state = ParsedState(id);
  for (const auto& dir : state.cgroups) {
    auto events = sandbox::ReadFileToString(dir + "/pids.events");
    if (events.ok()) {
      EXPECT_NE(*events, "max 0\n") << "pids.max was never hit";
    }
  }
}

TEST_F(LocalDriverTest, TimeoutKillsTheWholeProcessGroup) {
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  // SIGTERM first: a shell that does not ignore it ends with it.
  core::ExecResult r = Exec(id, Sh("sleep 1000 & sleep 1000", 1000));
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.signal, SIGTERM);
  EXPECT_GE(r.duration_ms, 1000);
  EXPECT_LT(r.duration_ms, 10000);
  std::string ps = Stdout(id, Cmd({"ps", "-e", "-o", "comm="}));
  EXPECT_EQ(ps.find("sleep"), std::string::npos) << ps;
  // A group that ignores SIGTERM gets SIGKILL after the grace period.
  r = Exec(id, Sh("trap '' TERM; sleep 1000 & sleep 1000", 1000));
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_GE(r.duration_ms, 1000 + agent::kKillGraceMs);
  ps = Stdout(id, Cmd({"ps", "-e", "-o", "comm="}));
  EXPECT_EQ(ps.find("sleep"), std::string::npos) << ps;
  // A timeout shorter than the command's start-up still kills it.
  r = Exec(id, Cmd({"sleep", "100"}, 1));
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(r.duration_ms, 5000);
}

TEST_F(LocalDriverTest, BackgroundProcessDoesNotHoldTheCall) {
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  int64_t t0 = MonotonicMillis();
  core::ExecResult r = Exec(id, Sh("sleep 100 & echo started"));
  EXPECT_LT(MonotonicMillis() - t0, 5000);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.stdout_data, "started\n");
  // It keeps running after the call: a background job is the user's.
  EXPECT_NE(Stdout(id, Cmd({"ps", "-e", "-o", "comm="})).find("sleep"), std::string::npos);
}

TEST_F(LocalDriverTest, ExitCodesAndSignals) {
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  core::ExecResult r = Exec(id, Sh("exit 3"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.signal, 0);
  r = Exec(id, Sh("kill -TERM $$"));
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.signal, SIGTERM);
  r = Exec(id, Cmd({"true"}));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(r.truncated);
}

TEST_F(LocalDriverTest, MissingCommandIs127AndNonExecutableIs126) {
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  core::ExecResult r = Exec(id, Cmd({"no-such-command-hutch"}));
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.stderr_data.find("no-such-command-hutch: command not found"), std::string::npos)
      << r.stderr_data;
  r = Exec(id, Cmd({"/nonexistent/cmd"}));
  EXPECT_EQ(r.exit_code, 127);
  r = Exec(id, Cmd({"/etc/passwd"}));
  EXPECT_EQ(r.exit_code, 126);
  // A script without #! runs through /bin/sh, as shells do.
  ASSERT_EQ(Exec(id, Sh("printf 'echo from-script\\n' > /tmp/s && chmod +x /tmp/s")).exit_code, 0);
  EXPECT_EQ(Stdout(id, Cmd({"/tmp/s"})), "from-script\n");
}

TEST_F(LocalDriverTest, StdoutIsTruncatedAtTheCap) {
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  core::ExecRequest req = Sh("head -c 200000 /dev/zero; echo done >&2");
  req.max_output_bytes = 1000;
  core::ExecResult r = Exec(id, req);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.stdout_data.size(), 1000u);
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.stderr_data, "done\n");
  // Large output within the cap comes through whole.
  req = Sh("head -c 3000000 /dev/zero");
  req.max_output_bytes = 4 << 20;
  r = Exec(id, req);
  EXPECT_EQ(r.stdout_data.size(), 3000000u);
  EXPECT_FALSE(r.truncated);
}

TEST_F(LocalDriverTest, StdinPassesThrough) {
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  core::ExecRequest req = Cmd({"cat"});
  req.stdin_data = "hello\nworld\n";
  EXPECT_EQ(Stdout(id, req), "hello\nworld\n");
  req = Cmd({"wc", "-c"});
  req.stdin_data = std::string(5 << 20, 'x');
  EXPECT_EQ(Stdout(id, req), "5242880\n");
  // A command that does not read its stdin still finishes.
  req = Cmd({"true"});
  req.stdin_data = std::string(1 << 20, 'x');
  EXPECT_EQ(Exec(id, req).exit_code, 0);
}

TEST_F(LocalDriverTest, EnvAndCwd) {
  SandboxSpec spec;
  spec.env = {{"SESSION_VAR", "from-session"}, {"OVERRIDE", "session"}};
  std::string id = Create(spec);
  ASSERT_FALSE(id.empty());
  core::ExecRequest req = Sh("echo $SESSION_VAR $OVERRIDE $HOME $PATH; pwd");
  req.env = {{"OVERRIDE", "request"}};
  EXPECT_EQ(Stdout(id, req),
            "from-session request /root "
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/root\n");
  req = Cmd({"pwd"});
  req.cwd = "/tmp";
  EXPECT_EQ(Stdout(id, req), "/tmp\n");
  req.cwd = "/no/such/dir";
  auto r = driver_->Exec(id, StateOf(id), req);
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
}

// The agent serves the session log (its own and setup's output) through LogRead, from a
// read-only fd its driver gave it; the driver reads the same bytes on its control plane (for a
// sandbox whose agent cannot answer).
TEST_F(LocalDriverTest, AgentAndDriverServeTheSessionLog) {
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  auto c = agent::AgentClient::Connect(*TransportOf(id));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto chunk = c->ReadLog(0, 65536);
  ASSERT_TRUE(chunk.ok()) << chunk.status().ToString();
  EXPECT_NE(chunk->data.find("hutch-agent " + id + ": ready"), std::string::npos) << chunk->data;
  EXPECT_EQ(chunk->size, chunk->data.size());
  auto tail = c->ReadLog(3, 5);
  ASSERT_TRUE(tail.ok()) << tail.status().ToString();
  EXPECT_EQ(tail->data, chunk->data.substr(3, 5));
  auto past = c->ReadLog(chunk->size + 10, 100);
  ASSERT_TRUE(past.ok()) << past.status().ToString();
  EXPECT_TRUE(past->data.empty());
  auto from_driver = driver_->ReadLog(id, StateOf(id), 0, 65536);
  ASSERT_TRUE(from_driver.ok()) << from_driver.status().ToString();
  EXPECT_EQ(from_driver->data.substr(0, chunk->data.size()), chunk->data);
  EXPECT_EQ(driver_->ReadLog("ses_nosuchsession", "", 0, 10).status().code(), Code::kNotFound);
}

TEST_F(LocalDriverTest, AgentSurvivesClientsThatMisbehave) {
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  std::string socket = ParsedState(id).socket_path;
  {
    // Gone in the middle of an exec.
    auto c = agent::AgentClient::Connect(*TransportOf(id));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    core::ExecRequest req = Sh("sleep 0.3; echo late");
    ASSERT_TRUE(c->SendRaw(agent::EncodeFrame(agent::MessageType::kExecRequest, 1,
                                              agent::EncodeExecRequest(req)))
                    .ok());
  }
  {
    // Garbage instead of a Hello.
    auto c = agent::AgentClient::Connect(*TransportOf(id));
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(c->SendRaw(std::string("\xff\xff\xff\xff garbage", 13)).ok());
    auto f = c->ReadFrameForTest(5000);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    EXPECT_EQ(f->type, agent::MessageType::kError);
  }
  {
    // A malformed request on a stream, then an unknown message type: errors, and the
    // connection stays usable.
    auto c = agent::AgentClient::Connect(*TransportOf(id));
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(c->SendRaw(agent::EncodeFrame(agent::MessageType::kExecRequest, 5, "xx")).ok());
    auto f = c->ReadFrameForTest(5000);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f->type, agent::MessageType::kError);
    EXPECT_EQ(f->stream_id, 5u);
    ASSERT_TRUE(c->SendRaw(agent::EncodeFrame(static_cast<agent::MessageType>(99), 7, "")).ok());
    f = c->ReadFrameForTest(5000);
    ASSERT_TRUE(f.ok());
    agent::ErrorMessage em;
    std::string error;
    ASSERT_TRUE(agent::DecodeError(f->payload, &em, &error));
    EXPECT_EQ(em.code, agent::ErrorCode::kUnsupported);
    auto r = c->Exec(Cmd({"echo", "still"}));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->stdout_data, "still\n");
  }
  {
    // Connected and gone without a word.
    auto c = agent::AgentClient::Connect(*TransportOf(id));
    ASSERT_TRUE(c.ok());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_TRUE(driver_->IsAlive(id, StateOf(id)));
  EXPECT_EQ(Stdout(id, Cmd({"echo", "ok"})), "ok\n");
}

// A TCP echo server on the sandbox's loopback (network mode none: no host port anywhere).
constexpr char kEchoServer[] =
    "import socket\n"
    "s = socket.socket()\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', 7001))\n"
    "s.listen(8)\n"
    "while True:\n"
    "    c, _ = s.accept()\n"
    "    while True:\n"
    "        d = c.recv(65536)\n"
    "        if not d: break\n"
    "        c.sendall(d)\n"
    "    c.close()\n";

TEST_F(LocalDriverTest, TcpRelayCarriesBytesBothWaysToTheSandboxLoopback) {
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  std::string socket = ParsedState(id).socket_path;
  // Nothing listens yet: the relay says so instead of hanging.
  auto refused =
      agent::AgentStream::OpenTcp(*TransportOf(id), agent::TcpConnectRequest{7001, 65536});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kUnavailable);
  EXPECT_NE(refused.status().message().find("ECONNREFUSED"), std::string::npos)
      << refused.status().message();

  core::ExecRequest start = Cmd({"python3", "-c", kEchoServer});
  start.timeout_ms = 0;
  auto client = agent::AgentClient::Connect(*TransportOf(id));
  ASSERT_TRUE(client.ok());
  agent::ProcessStartRequest ps;
  ps.exec = start;
  ps.tag = "echo";
  auto started =
      client->Call(agent::MessageType::kProcessStart, agent::EncodeProcessStartRequest(ps));
  ASSERT_TRUE(started.ok()) << started.status().ToString();

  Result<agent::AgentStream> relay = Unavailable("not yet");
  for (int i = 0; i < 500 && !relay.ok(); ++i) {
    relay = agent::AgentStream::OpenTcp(*TransportOf(id), agent::TcpConnectRequest{7001, 65536});
    if (!relay.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(relay.ok()) << relay.status().ToString();
  // 4 MiB: many times both windows, so the credits have to flow back for it to finish.
  std::string sent(4 << 20, '\0');
  for (size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<char>('a' + (i * 7) % 26);
  std::string received;
  size_t off = 0;
  while (off < sent.size()) {
    // Small pieces with a drain after each: WriteStdin waits for credit, which comes back only
    // as the echo server reads, which it does only while its echoes are taken.
    size_t n = std::min<size_t>(32 * 1024, sent.size() - off);
    ASSERT_TRUE(relay->WriteStdin(std::string_view(sent).substr(off, n)).ok());
    off += n;
    // Drain what came back so far, so the echo server never blocks on a full socket.
    for (;;) {
      auto e = relay->Next(0);
      ASSERT_TRUE(e.ok()) << e.status().ToString();
      if (!e->has_value()) break;
      ASSERT_EQ((*e)->kind, agent::AgentStream::Event::Kind::kStdout);
      received += (*e)->data;
    }
  }
  ASSERT_TRUE(relay->CloseStdin().ok());
  for (;;) {
    auto e = relay->Next(30000);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    ASSERT_TRUE(e->has_value()) << "no end of stream; got " << received.size() << " bytes";
    if ((*e)->kind == agent::AgentStream::Event::Kind::kExit) {
      EXPECT_EQ((*e)->exit.exit_code, 0);
      break;
    }
    received += (*e)->data;
  }
  EXPECT_EQ(received.size(), sent.size());
  EXPECT_TRUE(received == sent);
}

// Every sandbox gets a secret of its own at create, kept in its driver state; its agent
// refuses a client whose Hello lacks it or carries another (docs/architecture.md, "One
// credential scheme").
TEST_F(LocalDriverTest, AgentRefusesAClientWithoutTheSandboxSecret) {
  std::string a = Create();
  std::string b = Create();
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  std::string secret_a = ParsedState(a).secret;
  std::string secret_b = ParsedState(b).secret;
  EXPECT_EQ(secret_a.size(), 64u);  // 32 random bytes, hex
  EXPECT_NE(secret_a, secret_b);
  std::string socket = ParsedState(a).socket_path;
  std::string wrong = secret_a;
  wrong[0] = wrong[0] == '0' ? '1' : '0';
  for (const std::string& given : {std::string(), wrong, secret_b}) {
    auto c = agent::AgentClient::Connect(*agent::NewUnixTransport(socket, a, given));
    ASSERT_FALSE(c.ok()) << "secret '" << given << "' was let in";
    EXPECT_NE(c.status().message().find("refused this server"), std::string::npos)
        << c.status().ToString();
  }
  // The right one is let in, and the agent still serves after the refusals.
  auto right = agent::AgentClient::Connect(*agent::NewUnixTransport(socket, a, secret_a));
  ASSERT_TRUE(right.ok()) << right.status().ToString();
  auto r = right->Exec(Sh("echo in"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_data, "in\n");
}

TEST_F(LocalDriverTest, AgentRejectsAnotherProtocolVersion) {
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  std::string socket = ParsedState(id).socket_path;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  socket.copy(addr.sun_path, sizeof addr.sun_path - 1);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string error;
  ASSERT_EQ(agent::WriteFrame(fd, agent::MessageType::kHello, 0,
                              agent::EncodeHello(agent::Hello{99, "future-hutch", ""}),
                              agent::MonotonicMs() + 5000, &error),
            agent::IoStatus::kOk);
  agent::FrameParser parser;
  agent::Frame frame;
  ASSERT_EQ(agent::ReadFrame(fd, &parser, &frame, agent::MonotonicMs() + 5000, &error),
            agent::IoStatus::kOk)
      << error;
  close(fd);
  ASSERT_EQ(frame.type, agent::MessageType::kError);
  agent::ErrorMessage em;
  ASSERT_TRUE(agent::DecodeError(frame.payload, &em, &error));
  EXPECT_EQ(em.code, agent::ErrorCode::kVersionMismatch);
  EXPECT_NE(em.message.find("protocol 1"), std::string::npos) << em.message;
  EXPECT_NE(em.message.find("future-hutch speaks 99"), std::string::npos) << em.message;
}

TEST_F(LocalDriverTest, DestroyLeavesNothingBehind) {
  // Warm up: the image and the cgroup parents are made once and stay.
  std::string warm = Create();
  ASSERT_FALSE(warm.empty());
  ASSERT_TRUE(Destroy(warm).ok());

  auto before = Snapshot();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    std::string id = Create();
    ASSERT_FALSE(id.empty());
    ids.push_back(id);
    ASSERT_EQ(Stdout(id, Sh("sleep 300 & sleep 300 & echo started")), "started\n");
  }
  auto during = TakeLeakSnapshot(DataDir(), cgroup_root_);
  // No sandbox mount is ever visible on the host.
  EXPECT_EQ(during.host_mounts, before.host_mounts);
  EXPECT_GT(during.processes, before.processes);
  EXPECT_GT(during.cgroup_dirs, before.cgroup_dirs);
  EXPECT_EQ(during.session_dirs, before.session_dirs + 3);
  for (const auto& id : ids) ASSERT_TRUE(Destroy(id).ok());
  ExpectNoLeaks(before);
  EXPECT_EQ(hutch::testing::PidsInCgroups(cgroup_root_), std::vector<int>{});
}

TEST_F(LocalDriverTest, DestroyIsIdempotentAndTheAgentIsGoneAfterwards) {
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  std::string state = StateOf(id);
  ASSERT_TRUE(driver_->IsAlive(id, state));
  ASSERT_TRUE(Destroy(id).ok());
  EXPECT_FALSE(driver_->IsAlive(id, state));
  EXPECT_TRUE(driver_->Destroy(id, state).ok());
  EXPECT_TRUE(driver_->Destroy(id, "").ok());
  auto r = driver_->Exec(id, state, Cmd({"true"}));
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("does not answer"), std::string::npos)
      << r.status().message();
  EXPECT_FALSE(sandbox::PathExists(DataDir() + "/sessions/" + id));
}

// What a server restart looks like to the driver: the driver that made the sandbox goes away
// (without killing it), a new one takes over with only the stored state.
TEST_F(LocalDriverTest, SandboxOutlivesItsDriverAndANewDriverDestroysIt) {
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(Exec(id, Sh("echo kept > /root/state")).exit_code, 0);
  auto before_pid = ParsedState(id).agent_pid;
  driver_.reset();
  ASSERT_EQ(kill(before_pid, 0), 0) << "the agent died with its driver";
  auto driver = MakeDriver();
  ASSERT_TRUE(driver.ok()) << driver.status().ToString();
  driver_ = std::move(*driver);
  EXPECT_TRUE(driver_->IsAlive(id, StateOf(id)));
  EXPECT_EQ(Stdout(id, Cmd({"cat", "/root/state"})), "kept\n");
  auto before = hutch::testing::CountTestProcesses(cgroup_root_);
  ASSERT_TRUE(Destroy(id).ok());
  EXPECT_LT(hutch::testing::CountTestProcesses(cgroup_root_), before);
  // Reaped, not left as a zombie of this process.
  EXPECT_EQ(kill(before_pid, 0), -1);
  EXPECT_EQ(hutch::testing::CountCgroupDirs(cgroup_root_), 0);
}

TEST_F(LocalDriverTest, StopKeepsTheDiskAcrossDriversAndStartRunsOnIt) {
  auto before = Snapshot();
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(Exec(id, Sh("echo kept > /root/state && mkdir -p /opt/x && rm -f /etc/mtab")).exit_code,
            0);
  std::string state = StateOf(id);
  ASSERT_TRUE(driver_->Stop(id, state).ok());
  EXPECT_FALSE(driver_->IsAlive(id, state));
  EXPECT_TRUE(hutch::testing::PidsInCgroups(cgroup_root_).empty());
  // A server restart between stop and start: the disk's image is all that is left.
  driver_.reset();
  auto driver = MakeDriver();
  ASSERT_TRUE(driver.ok()) << driver.status().ToString();
  driver_ = std::move(*driver);
  SandboxSpec again;
  again.session_id = id;
  again.image = "host";
  again.reuse_layer = true;
  auto started = driver_->Create(again);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::erase_if(live_, [&](const auto& p) { return p.first == id; });
  live_.emplace_back(id, *started);
  EXPECT_EQ(
      Stdout(id, Sh("cat /root/state; test -d /opt/x && echo dir; test -L /etc/mtab || echo gone")),
      "kept\ndir\ngone\n");
  // Stopped and started again within one driver, then destroyed: nothing is left.
  ASSERT_TRUE(driver_->Stop(id, *started).ok());
  started = driver_->Create(again);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  live_.back().second = *started;
  EXPECT_EQ(Stdout(id, Cmd({"cat", "/root/state"})), "kept\n");
  ASSERT_TRUE(Destroy(id).ok());
  SandboxSpec gone = again;
  EXPECT_EQ(driver_->Create(gone).status().code(), Code::kNotFound);
  ExpectNoLeaks(before);
}

TEST_F(LocalDriverTest, FailedCreateLeavesNothingBehind) {
  // An "agent" that exits at once: Create fails, and unwinds.
  LocalDriverOptions opts;
  opts.data_dir = DataDir();
  opts.agent_path = "/bin/false";
  opts.cgroup_root_name = cgroup_root_;
  auto bad = NewLocalDriver(opts);
  ASSERT_TRUE(bad.ok()) << bad.status().ToString();
  auto before = Snapshot({bad->get()});
  SandboxSpec spec;
  spec.session_id = NewId("ses");
  spec.image = "host";
  auto state = (*bad)->Create(spec);
  ASSERT_FALSE(state.ok());
  EXPECT_NE(state.status().message().find("exited before it was ready"), std::string::npos)
      << state.status().message();
  ExpectNoLeaks(before, {bad->get()});

  // Bad requests fail before anything is made.
  spec.session_id = "../etc";
  EXPECT_EQ(driver_->Create(spec).status().code(), Code::kInvalidArgument);
  spec.session_id = NewId("ses");
  spec.image = "ubuntu";
  EXPECT_EQ(driver_->Create(spec).status().code(), Code::kNotFound);
  ExpectNoLeaks(before, {bad->get()});
}

// The cgroup v2 code path end to end (clone3 into the group, cgroup.kill, rmdir), on the
// host's cgroup2 mount. On a v1 host that mount has no controllers, so no limits apply there.
// The line of /proc/<pid>/cgroup text that names the hierarchy pausing acts on: v1's freezer,
// v2's unified one ("0::").
std::string PauseHierarchyLine(const std::string& cgroup_text, bool v1) {
  std::istringstream in(cgroup_text);
  for (std::string line; std::getline(in, line);) {
    if (v1 ? line.find(":freezer:") != std::string::npos : line.rfind("0::", 0) == 0) return line;
  }
  return "";
}

// A process started each way the agent starts one — exec, a background process, a terminal
// (a PTY stream) and a service — runs in the work leaf from its first instruction: each reads
// its own /proc/self/cgroup into a file. The sandbox's cgroup namespace is rooted where its
// agent was born, the agent leaf, so from inside the work leaf is "/../work".
void ExpectEveryKindOfStartInWork(Driver& driver, const std::string& id, const std::string& state,
                                  bool v1) {
  const std::string work_rel = "/../work";
  auto transport = driver.ConnectAgent(id, state);
  ASSERT_TRUE(transport.ok()) << transport.status().ToString();
  auto exec = driver.Exec(id, state, Sh("cat /proc/self/cgroup > /tmp/exec"));
  ASSERT_TRUE(exec.ok() && exec->exit_code == 0);

  auto client = agent::AgentClient::Connect(**transport);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  agent::ProcessStartRequest ps;
  ps.exec = Sh("cat /proc/self/cgroup > /tmp/process.new && mv /tmp/process.new /tmp/process");
  ps.tag = "probe";
  auto started =
      client->Call(agent::MessageType::kProcessStart, agent::EncodeProcessStartRequest(ps));
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  core::ServiceSpec service;
  service.name = "probe-service";
  service.exec =
      Sh("cat /proc/self/cgroup > /tmp/service.new && mv /tmp/service.new "
         "/tmp/service; exec sleep 300");
  auto services =
      client->CallServices(agent::MessageType::kServiceStart, agent::EncodeServiceSpec(service));
  ASSERT_TRUE(services.ok()) << services.status().ToString();

  core::StreamExecRequest terminal;
  terminal.exec = Sh("cat /proc/self/cgroup > /tmp/terminal");
  terminal.tty = true;
  auto stream = agent::AgentStream::OpenExec(**transport, terminal);
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  for (;;) {
    auto e = stream->Next(30000);
    ASSERT_TRUE(e.ok() && e->has_value()) << "the terminal did not end";
    if ((*e)->kind == agent::AgentStream::Event::Kind::kExit) break;
  }

  for (const char* kind : {"exec", "process", "service", "terminal"}) {
    auto read = driver.Exec(id, state,
                            Sh(std::string("for i in $(seq 200); do [ -s /tmp/") + kind +
                               " ] && break; sleep 0.05; done; cat /tmp/" + kind));
    ASSERT_TRUE(read.ok() && read->exit_code == 0) << kind;
    std::string line = PauseHierarchyLine(read->stdout_data, v1);
    EXPECT_TRUE(line.ends_with(":" + work_rel)) << kind << ": " << read->stdout_data;
  }
}

TEST_F(LocalDriverTest, CgroupV2PathWorksEndToEnd) {
  sandbox::CgroupLayout layout;
  layout.version = sandbox::CgroupVersion::kV2;
  for (const auto& h : hutch::testing::CgroupHierarchies()) {
    auto type = sandbox::ReadFileToString(h + "/cgroup.controllers");
    if (type.ok()) layout.v2 = h;  // only cgroup2 has cgroup.controllers
  }
  if (layout.v2.empty()) GTEST_SKIP() << "no cgroup2 mount";
  LocalDriverOptions opts;
  opts.data_dir = DataDir();
  opts.agent_path = HUTCH_AGENT_BINARY;
  opts.cgroup_root_name = cgroup_root_;
  auto v2 = NewLocalDriverWithCgroupLayout(opts, layout);
  ASSERT_TRUE(v2.ok()) << v2.status().ToString();
  auto before = Snapshot({v2->get()});
  std::string id = NewId("ses");
  SandboxSpec spec;
  spec.session_id = id;
  spec.image = "host";
  auto state = (*v2)->Create(spec);
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  auto parsed = local::DecodeState(*state);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->cgroup_version, "v2");
  ASSERT_EQ(parsed->cgroups.size(), 1u);
  EXPECT_EQ(parsed->cgroups[0], layout.v2 + "/" + cgroup_root_ + "/" + id);
  // The agent is in the group's agent leaf, what it starts in the work leaf.
  EXPECT_TRUE(parsed->cgroup_leaves);
  auto procs = sandbox::ReadFileToString(parsed->cgroups[0] + "/agent/cgroup.procs");
  ASSERT_TRUE(procs.ok());
  EXPECT_EQ(*procs, std::to_string(parsed->agent_pid) + "\n");
  auto r = (*v2)->Exec(id, *state, Sh("sleep 300 & echo hi"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_data, "hi\n");
  procs = sandbox::ReadFileToString(parsed->cgroups[0] + "/work/cgroup.procs");
  ASSERT_TRUE(procs.ok());
  EXPECT_EQ(std::count(procs->begin(), procs->end(), '\n'), 1) << *procs;  // sleep
  ExpectEveryKindOfStartInWork(**v2, id, *state, /*v1=*/false);
  // Paused: the work leaf is frozen, the agent answers; destroyed while paused, nothing stays.
  ASSERT_TRUE((*v2)->Pause(id, *state).ok());
  EXPECT_EQ(hutch::testing::IsCgroupFrozen(cgroup_root_ + "/" + id + "/work"), true);
  EXPECT_TRUE((*v2)->IsAlive(id, *state));
  ASSERT_TRUE((*v2)->Destroy(id, *state).ok());
  ExpectNoLeaks(before, {v2->get()});
}

// On cgroup v1 the agent forks on a spawner thread that joined the work leaf once (agent/reaper.h):
// every kind of start lands in work without a migration of its own, and of the agent only that
// thread is in work — the rest of it stays in the agent leaf.
TEST_F(LocalDriverTest, OnV1EveryStartLandsInWorkAndOnlyTheSpawnerThreadIsThere) {
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  local::LocalSandboxState parsed = ParsedState(id);
  if (parsed.cgroup_version != "v1" || !parsed.cgroup_leaves) GTEST_SKIP() << "not cgroup v1";
  const std::string group = "/" + cgroup_root_ + "/" + id;
  ExpectEveryKindOfStartInWork(*driver_, id, StateOf(id), /*v1=*/true);
  int in_work = 0, in_agent = 0;
  const std::string proc = "/proc/" + std::to_string(parsed.agent_pid);
  for (const auto& task : std::filesystem::directory_iterator(proc + "/task")) {
    // A thread that ended since the listing (the agent's short-lived ones) has no file left.
    auto text = sandbox::ReadFileToString(task.path().string() + "/cgroup");
    if (!text.ok() && !std::filesystem::exists(task.path())) continue;
    ASSERT_TRUE(text.ok()) << text.status().ToString();
    std::string line = PauseHierarchyLine(*text, true);
    if (line.ends_with(":" + group + "/work")) ++in_work;
    if (line.ends_with(":" + group + "/agent")) ++in_agent;
  }
  EXPECT_EQ(in_work, 1);
  EXPECT_GE(in_agent, 2);  // the main thread and the reaper at least
  auto main_thread = sandbox::ReadFileToString(proc + "/cgroup");
  ASSERT_TRUE(main_thread.ok());
  EXPECT_TRUE(PauseHierarchyLine(*main_thread, true).ends_with(":" + group + "/agent"));
}

// On the host's layout (v1 here): a paused sandbox's agent answers (ping, a file through its
// files server, its log) while the workload stands still; a checkpoint of it freezes the agent
// for the copy only and leaves the workload frozen; resume continues; destroyed while paused,
// no cgroup stays.
TEST_F(LocalDriverTest, PauseFreezesTheWorkloadAndTheAgentKeepsAnswering) {
  auto before = Snapshot();
  std::string id = NewId("ses");
  SandboxSpec spec;
  spec.session_id = id;
  spec.image = "host";
  auto state = driver_->Create(spec);
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  auto started = driver_->Exec(id, *state,
                               Sh("nohup sh -c 'while :; do date +%s%N > /tmp/t.new; mv /tmp/t.new "
                                  "/tmp/t; sleep 0.01; done' >/dev/null 2>&1 &"));
  ASSERT_TRUE(started.ok() && started->exit_code == 0);
  auto transport = driver_->ConnectAgent(id, *state);
  ASSERT_TRUE(transport.ok());
  auto stamp = [&] {
    auto d = agent::FileOpenRead(**transport, "/tmp/t");
    if (!d.ok() || !d->fd) return std::string();
    char buf[64];
    ssize_t n = pread(d->fd.get(), buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  };
  for (int i = 0; i < 500 && stamp().empty(); ++i) usleep(10000);
  ASSERT_TRUE(driver_->Pause(id, *state).ok());
  std::string at_pause = stamp();
  ASSERT_FALSE(at_pause.empty());
  EXPECT_TRUE(driver_->IsAlive(id, *state));
  usleep(200000);
  EXPECT_EQ(stamp(), at_pause);
  auto cp = driver_->Checkpoint(id, *state, "p", /*freeze=*/false);
  if (cp.status().code() != Code::kConflict) {  // a server without session disks: no checkpoints
    ASSERT_TRUE(cp.ok()) << cp.status().ToString();
    EXPECT_TRUE(driver_->IsAlive(id, *state));
    usleep(100000);
    EXPECT_EQ(stamp(), at_pause);
  }
  // A process the agent starts while paused joins the frozen work leaf before it runs anything
  // (the controller refuses exec while paused; the driver's Exec does not): it stands still
  // until the resume.
  std::atomic<bool> exec_done{false};
  Result<core::ExecResult> late = Internal("not run");
  std::thread exec([&] {
    late = driver_->Exec(id, *state, Sh("echo late"));
    exec_done = true;
  });
  usleep(300000);
  EXPECT_FALSE(exec_done) << "a process started while paused ran";
  ASSERT_TRUE(driver_->Resume(id, *state).ok());
  exec.join();
  ASSERT_TRUE(late.ok()) << late.status().ToString();
  EXPECT_EQ(late->stdout_data, "late\n");
  usleep(200000);
  EXPECT_NE(stamp(), at_pause);
  ASSERT_TRUE(driver_->Pause(id, *state).ok());
  ASSERT_TRUE(driver_->Destroy(id, *state).ok());
  (void)driver_->DeleteCheckpoints(id);
  ExpectNoLeaks(before);
}

// A sandbox made before the agent/work split (no cgroup_leaves in its state) pauses whole, as
// before: its agent is frozen, so ConnectAgent says conflict at once instead of letting a
// caller wait for a frozen agent, and the driver still serves its log.
TEST_F(LocalDriverTest, ASandboxWithoutLeavesPausesWholeAndRefusesItsAgent) {
  auto before = Snapshot();
  std::string id = NewId("ses");
  SandboxSpec spec;
  spec.session_id = id;
  spec.image = "host";
  auto made = driver_->Create(spec);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  auto decoded = local::DecodeState(*made);
  ASSERT_TRUE(decoded.ok());
  decoded->cgroup_leaves = false;
  const std::string old = local::EncodeState(*decoded);
  ASSERT_TRUE(driver_->Pause(id, old).ok());
  EXPECT_EQ(hutch::testing::IsCgroupFrozen(cgroup_root_ + "/" + id), true);
  EXPECT_EQ(driver_->ConnectAgent(id, old).status().code(), Code::kConflict);
  EXPECT_TRUE(driver_->ReadLog(id, old, 0, 4096).ok());
  ASSERT_TRUE(driver_->Resume(id, old).ok());
  EXPECT_TRUE(driver_->IsAlive(id, old));
  ASSERT_TRUE(driver_->Destroy(id, old).ok());
  ExpectNoLeaks(before);
}

// The sandbox's upper layer holds whatever it wrote, symlinks to host paths included; seen
// from the host they point at the host's files. Destroy must unlink them, not follow them.
TEST_F(LocalDriverTest, DestroyDoesNotFollowSymlinksOutOfTheSandbox) {
  std::string victim = dir_.path() + "/victim";
  ASSERT_TRUE(sandbox::MakeDirs(victim + "/sub", 0755).ok());
  ASSERT_TRUE(sandbox::WriteNewFile(victim + "/sub/file", "keep", 0644).ok());
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(Exec(id, Sh("ln -s " + victim + " /root/dir-link && ln -s " + victim +
                        "/sub/file /root/file-link && mkdir -p /root/d/e && ln -s " + victim +
                        "/sub /root/d/e/deep-link"))
                .exit_code,
            0);
  ASSERT_TRUE(Destroy(id).ok());
  auto kept = sandbox::ReadFileToString(victim + "/sub/file");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(*kept, "keep");
  EXPECT_FALSE(sandbox::PathExists(DataDir() + "/sessions/" + id));
}

// A setup step that fails inside the agent is reported with the step and errno, and the
// half-made sandbox is gone. (An image whose /dev is a symlink: the agent refuses to mount
// through it.)
TEST_F(LocalDriverTest, AgentSetupFailureNamesTheStepAndUnwinds) {
  std::string dev = DataDir() + "/images/host/rootfs/dev";
  ASSERT_EQ(rename(dev.c_str(), (dev + ".away").c_str()), 0);
  ASSERT_EQ(symlink("/etc", dev.c_str()), 0);
  auto before = Snapshot();
  SandboxSpec spec;
  spec.session_id = NewId("ses");
  spec.image = "host";
  auto state = driver_->Create(spec);
  ASSERT_EQ(unlink(dev.c_str()), 0);
  ASSERT_EQ(rename((dev + ".away").c_str(), dev.c_str()), 0);
  ASSERT_FALSE(state.ok());
  EXPECT_NE(state.status().message().find("/dev is not a directory"), std::string::npos)
      << state.status().message();
  EXPECT_NE(state.status().message().find("(ENOTDIR)"), std::string::npos)
      << state.status().message();
  ExpectNoLeaks(before);
  EXPECT_FALSE(Create().empty());  // and the next one works
}

TEST_F(LocalDriverTest, NewLocalDriverExplainsAMissingAgent) {
  LocalDriverOptions opts;
  opts.data_dir = DataDir();
  opts.agent_path = "/nonexistent/hutch-agent";
  auto d = NewLocalDriver(opts);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("build it"), std::string::npos) << d.status().message();
}

// Not a pass/fail test: prints create→ready and exec round-trip latencies (DESIGN.md §8 says
// timing belongs in bench/, so nothing is asserted).
TEST_F(LocalDriverTest, PrintsLatencies) {
  std::vector<double> create_ms, exec_ms, destroy_ms;
  for (int i = 0; i < 20; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    std::string id = Create();
    auto t1 = std::chrono::steady_clock::now();
    ASSERT_FALSE(id.empty());
    create_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    for (int j = 0; j < 5; ++j) {
      auto e0 = std::chrono::steady_clock::now();
      core::ExecResult r = Exec(id, Cmd({"true"}));
      auto e1 = std::chrono::steady_clock::now();
      ASSERT_EQ(r.exit_code, 0);
      exec_ms.push_back(std::chrono::duration<double, std::milli>(e1 - e0).count());
    }
    auto d0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(Destroy(id).ok());
    destroy_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - d0).count());
  }
  auto pct = [](std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
  };
  std::printf("create->ready ms: p50 %.2f p90 %.2f max %.2f (n=%zu)\n", pct(create_ms, 0.5),
              pct(create_ms, 0.9), pct(create_ms, 1), create_ms.size());
  std::printf("exec true ms:     p50 %.2f p90 %.2f max %.2f (n=%zu)\n", pct(exec_ms, 0.5),
              pct(exec_ms, 0.9), pct(exec_ms, 1), exec_ms.size());
  std::printf("destroy ms:       p50 %.2f p90 %.2f max %.2f (n=%zu)\n", pct(destroy_ms, 0.5),
              pct(destroy_ms, 0.9), pct(destroy_ms, 1), destroy_ms.size());
}

}  // namespace
}  // namespace hutch::drivers
