#include "testing/net_util.h"

#include "testing/test_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

namespace hutch::testing {

namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> DirEntries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  closedir(d);
  return out;
}

// The python server of FakeWorld: "hello\n" → "ok <local address> <peer address>\n";
// "big N\n" → N bytes, then close.
constexpr const char* kServer = R"PY(
import os, socket, sys, threading
def serve(c):
    try:
        c.settimeout(10)
        line = b""
        while not line.endswith(b"\n") and len(line) < 100:
            d = c.recv(100)
            if not d: break
            line += d
        words = line.decode().split()
        if words[:1] == ["big"]:
            n = int(words[1]); chunk = b"x" * 65536
            while n > 0:
                c.sendall(chunk[:min(n, len(chunk))]); n -= min(n, len(chunk))
        else:
            c.sendall(("ok %s %s\n" % (c.getsockname()[0], c.getpeername()[0])).encode())
    except Exception:
        pass
    finally:
        c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(64)
# One write, then stdout is /dev/null: the test closes its end once it has read this.
os.write(1, b"listening\n"); os.dup2(os.open("/dev/null", os.O_WRONLY), 1)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
)PY";

}  // namespace

int CountNetNamespaces(const std::string& cgroup_root) {
  std::set<ino_t> seen;
  struct stat st;
  std::set<int> pids = {getpid()};
  for (int p : DescendantPids()) pids.insert(p);
  for (int p : PidsInCgroups(cgroup_root)) pids.insert(p);
  for (int p : pids) {
    std::string pid = std::to_string(p);
    for (const auto& tid : DirEntries("/proc/" + pid + "/task")) {
      if (stat(("/proc/" + pid + "/task/" + tid + "/ns/net").c_str(), &st) == 0)
        seen.insert(st.st_ino);
    }
    std::string fds = "/proc/" + pid + "/fd";
    for (const auto& fd : DirEntries(fds)) {
      char target[64];
      ssize_t n = readlink((fds + "/" + fd).c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      target[n] = '\0';
      if (strncmp(target, "net:[", 5) == 0 && stat((fds + "/" + fd).c_str(), &st) == 0)
        seen.insert(st.st_ino);
    }
  }
  // Bind mounts (ip netns add): nsfs mounts in mountinfo.
  std::istringstream lines(ReadAll("/proc/self/mountinfo"));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find(" - nsfs ") == std::string::npos) continue;
    std::istringstream f(line);
    std::string a, b, c, d, mount_point;
    f >> a >> b >> c >> d >> mount_point;
    if (stat(mount_point.c_str(), &st) == 0) seen.insert(st.st_ino);
  }
  return static_cast<int>(seen.size());
}

int CountInterfaces(const std::string& prefix) {
  int n = 0;
  for (const auto& name : DirEntries("/sys/class/net"))
    if (name.rfind(prefix, 0) == 0) ++n;
  return n;
}

int RunShell(const std::string& command, std::string* out) {
  FILE* p = popen(command.c_str(), "r");
  if (!p) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  int status = pclose(p);
  if (out) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool NftTableExists(const std::string& name) {
  return RunShell("nft list table inet " + name + " >/dev/null 2>&1") == 0;
}

int CountNftRulesetLines() {
  std::string out;
  RunShell("nft list ruleset 2>/dev/null", &out);
  int n = 0;
  for (char c : out) n += c == '\n';
  return n;
}

NetLeakSnapshot TakeNetLeakSnapshot(const std::string& cgroup_root) {
  NetLeakSnapshot s;
  s.netns = CountNetNamespaces(cgroup_root);
  s.hutch_veths = CountInterfaces("hutch-");
  s.hutch_table = NftTableExists("hutch");
  s.ruleset_lines = CountNftRulesetLines();
  s.ip_forward = ReadAll("/proc/sys/net/ipv4/ip_forward");
  return s;
}

std::ostream& operator<<(std::ostream& os, const NetLeakSnapshot& s) {
  return os << "{netns=" << s.netns << " hutch_veths=" << s.hutch_veths
            << " hutch_table=" << s.hutch_table << " ruleset_lines=" << s.ruleset_lines
            << " ip_forward=" << (s.ip_forward.empty() ? "?" : s.ip_forward.substr(0, 1)) << "}";
}

// ---- FakeWorld ----

FakeWorld::FakeWorld() {
  std::mt19937 rng(std::random_device{}());
  char suffix[16];
  snprintf(suffix, sizeof suffix, "%06x", static_cast<unsigned>(rng() & 0xffffff));
  netns_ = std::string("hutchtest-world-") + suffix;
  host_if_ = std::string("htw") + suffix;  // not "hutch-": not a sandbox's
  port_ = 18080;
  auto run = [&](const std::string& cmd) {
    if (!error_.empty()) return;
    std::string out;
    if (RunShell(cmd + " 2>&1", &out) != 0) error_ = cmd + ": " + out;
  };
  std::string in = "ip -n " + netns_ + " ";
  run("ip netns add " + netns_);
  run("ip link add " + host_if_ + " type veth peer name eth0 netns " + netns_);
  run(std::string("ip addr add ") + kHostSide + "/30 dev " + host_if_);
  run("ip link set " + host_if_ + " up");
  run(in + "link set lo up");
  run(in + "addr add " + kWorldSide + "/30 dev eth0");
  run(in + "link set eth0 up");
  run(in + "route add default via " + kHostSide);
  for (const char* target : {kInternet, kInternet2, kMetadata, kTen, kOneNineTwo}) {
    run(in + "addr add " + target + "/32 dev lo");
    run(std::string("ip route add ") + target + "/32 via " + kWorldSide + " dev " + host_if_);
    if (error_.empty()) routes_.push_back(target);
    // The guard: the host must send this address into the world, nowhere else.
    std::string out;
    RunShell(std::string("ip -o route get ") + target, &out);
    if (error_.empty() && out.find("dev " + host_if_) == std::string::npos)
      error_ = std::string("route to ") + target + " does not go into the fake world: " + out;
  }
  if (!error_.empty()) return;
  // The server, in the world's namespace; its pid is ours to kill.
  int ready[2];
  if (pipe(ready) != 0) {
    error_ = "pipe";
    return;
  }
  server_ = fork();
  if (server_ == 0) {
    dup2(ready[1], 1);
    close(ready[0]);
    execlp("ip", "ip", "netns", "exec", netns_.c_str(), "python3", "-c", kServer,
           std::to_string(port_).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(ready[1]);
  char buf[32] = {};
  pollfd p{ready[0], POLLIN, 0};
  if (poll(&p, 1, 10000) <= 0 || read(ready[0], buf, sizeof buf - 1) <= 0 ||
      strncmp(buf, "listening", 9) != 0) {
    error_ = "the fake world's server did not start";
  }
  close(ready[0]);
}

FakeWorld::~FakeWorld() {
  if (server_ > 0) {
    kill(server_, SIGKILL);
    waitpid(server_, nullptr, 0);
  }
  for (const auto& r : routes_) RunShell("ip route del " + r + "/32 2>/dev/null");
  RunShell("ip link del " + host_if_ + " 2>/dev/null");
  RunShell("ip netns del " + netns_ + " 2>/dev/null");
}

int FakeWorld::Exec(const std::string& command, std::string* out) const {
  return RunShell("ip netns exec " + netns_ + " " + command, out);
}

// ---- host side ----

bool HostCanConnect(const std::string& address, int port, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, address.c_str(), &a.sin_addr);
  bool ok = false;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    ok = true;
  } else if (errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, timeout_ms) == 1) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      ok = err == 0;
    }
  }
  close(fd);
  return ok;
}

struct HostListener::State {
  std::atomic<int> accepted{0};
  std::thread thread;
};

HostListener::HostListener(const std::string& address) : state_(new State) {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, address.c_str(), &a.sin_addr);
  if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd_, 16) != 0) return;
  socklen_t len = sizeof a;
  getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  int fd = fd_;
  State* state = state_;
  state_->thread = std::thread([fd, state] {
    for (;;) {
      int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EINTR) continue;
        return;  // shut down
      }
      state->accepted.fetch_add(1);
      close(c);
    }
  });
}

HostListener::~HostListener() {
  if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);
  if (state_->thread.joinable()) state_->thread.join();
  if (fd_ >= 0) close(fd_);
  delete state_;
}

int HostListener::accepted() const { return state_->accepted.load(); }

int HostListener::WaitAccepted(int n) const {
  for (int i = 0; i < 500 && accepted() < n; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return accepted();
}

}  // namespace hutch::testing
