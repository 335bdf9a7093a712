#include "agent/agent.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>

#include "agent/command.h"
#include "agent/config.h"
#include "agent/frame_io.h"
#include "agent/process_table.h"
#include "agent/protocol.h"
#include "agent/reaper.h"
#include "agent/streams.h"
#include "sandbox/inside_net.h"
#include "sandbox/rootfs.h"

namespace hutch::agent {

namespace {

constexpr const char* kPeerName = "hutch-agent";
// A client gets this long to say Hello; after that a connection may idle forever.
constexpr int64_t kHelloTimeoutMs = 10000;
// Connections beyond this are refused: each holds a thread, and threads count against the
// session's pids limit.
constexpr int kMaxConnections = 256;
constexpr size_t kMaxConfigBytes = 16 << 20;

std::string g_session_id;  // set once before any thread starts
std::atomic<int> g_connections{0};
AgentConfig g_config;  // read-only after setup
Reaper g_reaper;
// Background processes outlive connections; their thread starts with the first one.
ProcessTable g_processes(&g_reaper, &g_config.env);

// One line to stderr (the session's agent.log on the host), written with a single write(2)
// so lines from threads do not interleave.
void Log(const char* format, ...) __attribute__((format(printf, 1, 2)));
void Log(const char* format, ...) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "hutch-agent %s: ", g_session_id.c_str());
  va_list ap;
  va_start(ap, format);
  int m = vsnprintf(buf + n, sizeof buf - static_cast<size_t>(n) - 1, format, ap);
  va_end(ap);
  size_t len = static_cast<size_t>(n) + static_cast<size_t>(m);
  if (len > sizeof buf - 2) len = sizeof buf - 2;
  buf[len++] = '\n';
  (void)!write(STDERR_FILENO, buf, len);
}

bool ReadAllFromFd(int fd, std::string* out) {
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) return true;
    out->append(buf, static_cast<size_t>(n));
    if (out->size() > kMaxConfigBytes) {
      errno = EFBIG;
      return false;
    }
  }
}

// Reports a setup failure to the driver (status pipe) and the log; the agent then exits.
int SetupFailed(const std::string& message) {
  std::string line = "error: " + message + "\n";
  (void)!write(kStatusFd, line.data(), line.size());
  Log("setup failed: %s", message.c_str());
  return 1;
}

void SendError(int fd, uint32_t stream, ErrorCode code, const std::string& message) {
  std::string ignored;
  WriteFrame(fd, MessageType::kError, stream, EncodeError(ErrorMessage{code, message}),
             MonotonicMs() + 5000, &ignored);
}

void ServeConnection(int fd) {
  FrameParser parser;
  Frame frame;
  std::string error;
  IoStatus st = ReadFrame(fd, &parser, &frame, MonotonicMs() + kHelloTimeoutMs, &error);
  if (st != IoStatus::kOk) {
    if (st == IoStatus::kMalformed) SendError(fd, 0, ErrorCode::kMalformed, error);
    return;
  }
  Hello hello;
  if (frame.type != MessageType::kHello || frame.stream_id != 0) {
    SendError(fd, 0, ErrorCode::kMalformed,
              "expected Hello on stream 0, got " + MessageTypeName(frame.type));
    return;
  }
  if (!DecodeHello(frame.payload, &hello, &error)) {
    SendError(fd, 0, ErrorCode::kMalformed, error);
    return;
  }
  if (hello.version != kProtocolVersion) {
    SendError(fd, 0, ErrorCode::kVersionMismatch,
              "hutch-agent speaks agent protocol " + std::to_string(kProtocolVersion) + ", " +
                  hello.peer + " speaks " + std::to_string(hello.version) +
                  ": recreate the session with a matching hutch-agent");
    return;
  }
  if (WriteFrame(fd, MessageType::kHello, 0, EncodeHello(Hello{kProtocolVersion, kPeerName}),
                 MonotonicMs() + 5000, &error) != IoStatus::kOk) {
    return;
  }

  ServeStreams(fd, &parser, StreamContext{&g_config.env, &g_reaper, &g_processes});
}

void StartConnection(int fd) {
  if (g_connections.fetch_add(1) >= kMaxConnections) {
    g_connections.fetch_sub(1);
    SendError(fd, 0, ErrorCode::kResourceExhausted, "too many connections to hutch-agent");
    close(fd);
    return;
  }
  try {
    std::thread([fd] {
      ServeConnection(fd);
      close(fd);
      g_connections.fetch_sub(1);
    }).detach();
  } catch (const std::system_error& e) {
    // EAGAIN: the pids limit counts threads too, and a fork bomb may have used it up.
    g_connections.fetch_sub(1);
    SendError(fd, 0, ErrorCode::kResourceExhausted,
              std::string("hutch-agent cannot start a thread: ") + e.what());
    close(fd);
  }
}

// Binds the listening socket at the host-visible path. Done before pivot_root, while that
// path is still reachable; the listening fd keeps working after the old root is gone.
int ListenOn(const std::string& path, std::string* error) {
  sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    *error = "socket path too long: " + path;
    return -1;
  }
  memcpy(addr.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = sandbox::StepFailed("socket").ToString();
    return -1;
  }
  unlink(path.c_str());
  // Only root (the server) may connect: the socket file is created 0600.
  mode_t old = umask(077);
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int bind_err = errno;
  umask(old);
  if (rc != 0 || listen(fd, 128) != 0) {
    *error =
        sandbox::StepFailed(rc != 0 ? "bind " + path : "listen " + path, rc != 0 ? bind_err : errno)
            .ToString();
    close(fd);
    return -1;
  }
  return fd;
}

void ResetSignals() {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &sa, nullptr);
  // A client that disconnects must not kill the agent with a write.
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, nullptr);
  Reaper::BlockSigchld();
}

}  // namespace

int RunSandboxAgent() {
  int64_t t_start = MonotonicMs();
  umask(022);
  ResetSignals();

  std::string raw;
  if (!ReadAllFromFd(kConfigFd, &raw)) {
    return SetupFailed(sandbox::StepFailed("read config from fd 3").ToString());
  }
  close(kConfigFd);
  std::string error;
  if (!DecodeAgentConfig(raw, &g_config, &error)) return SetupFailed(error);
  g_session_id = g_config.session_id;

  // A session of our own: the server's terminal and process group signals do not reach us,
  // and we outlive the server.
  if (setsid() < 0) return SetupFailed(sandbox::StepFailed("setsid").ToString());
  // The driver put us into our cgroups before sending the config; a cgroup namespace rooted
  // there makes /proc/self/cgroup show "/" and hides the host's hierarchy.
  if (unshare(CLONE_NEWCGROUP) != 0) {
    return SetupFailed(sandbox::StepFailed("unshare(CLONE_NEWCGROUP)").ToString());
  }

  int64_t t_config = MonotonicMs();
  sandbox::StepError step = sandbox::MakeMountsPrivate();
  if (!step.ok()) return SetupFailed(step.ToString());
  sandbox::RootfsSpec spec;
  spec.root_dir = g_config.root_dir;
  spec.lower_dirs = g_config.lower_dirs;
  spec.upper_dir = g_config.upper_dir;
  spec.work_dir = g_config.work_dir;
  for (const auto& b : g_config.binds) spec.binds.push_back({b.source, b.target, b.read_only});
  step = sandbox::BuildRootfs(spec);
  if (!step.ok()) return SetupFailed(step.ToString());

  int listen_fd = ListenOn(g_config.socket_path, &error);
  if (listen_fd < 0) return SetupFailed(error);

  int64_t t_mounts = MonotonicMs();
  step = sandbox::PivotRoot(g_config.root_dir);
  if (!step.ok()) return SetupFailed(step.ToString());
  if (!g_config.hostname.empty()) {
    step = sandbox::SetHostname(g_config.hostname);
    if (!step.ok()) return SetupFailed(step.ToString());
  }
  if (!g_config.resolv_conf.empty()) {
    step = sandbox::WriteResolvConf(g_config.resolv_conf);
    if (!step.ok()) return SetupFailed(step.ToString());
  }
  int64_t t_pivot = MonotonicMs();
  step = sandbox::BringUpLoopback();
  if (!step.ok()) return SetupFailed(step.ToString());
  // Nothing started from here on can gain privileges through setuid binaries or file caps.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return SetupFailed(sandbox::StepFailed("prctl(PR_SET_NO_NEW_PRIVS)").ToString());
  }

  int64_t t_net = MonotonicMs();
  g_reaper.Start();
  // "ready <protocol version>": the driver learns the version without a round trip.
  std::string ready = "ready " + std::to_string(kProtocolVersion) + "\n";
  (void)!write(kStatusFd, ready.data(), ready.size());
  close(kStatusFd);
  Log("ready in %lld ms (config %lld, mounts %lld, pivot+hostname %lld, loopback %lld)",
      static_cast<long long>(MonotonicMs() - t_start), static_cast<long long>(t_config - t_start),
      static_cast<long long>(t_mounts - t_config), static_cast<long long>(t_pivot - t_mounts),
      static_cast<long long>(t_net - t_pivot));

  for (;;) {
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      StartConnection(fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
      // Out of fds or memory: wait for connections to finish instead of spinning.
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    Log("accept: %s", strerror(errno));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace hutch::agent
