#include "agent/agent.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/magic.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "agent/command.h"
#include "agent/config.h"
#include "agent/files_server.h"
#include "agent/frame_io.h"
#include "agent/message_bridge.h"
#include "agent/process_table.h"
#include "agent/protocol.h"
#include "agent/reaper.h"
#include "agent/services.h"
#include "agent/streams.h"
#include "agent/tls.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "sandbox/caps.h"
#include "sandbox/inside_net.h"
#include "sandbox/rootfs.h"
#include "sandbox/seccomp_load.h"

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
int g_log_fd = -1;     // kLogFd once setup found it open; read-only after setup
Reaper g_reaper;
// Whether the reaper is to fork on a spawner thread in the work cgroup (v1; reaper.h).
bool g_spawner_wanted = false;
// Background processes outlive connections; their thread starts with the first one.
ProcessTable g_processes(&g_reaper, &g_config.env);
// Services are processes of g_processes the agent supervises; their thread starts with the first.
ServiceTable g_services(&g_processes);
// Set when clients come over TCP (AgentConfig::tls_cert): every connection is TLS, terminated
// here. Read-only after setup.
SslCtxPtr g_tls;

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

// Reads the config socket to EOF, collecting the fds that come with it (SCM_RIGHTS; on a
// stream socket they ride on the first byte of the sendmsg that carried them, so every read
// looks for them).
bool ReadConfigAndFds(int fd, std::string* out, std::vector<UniqueFd>* fds) {
  char buf[16384];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 64)];
  for (;;) {
    iovec iov{buf, sizeof buf};
    msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const unsigned char* data = CMSG_DATA(c);
      for (size_t i = 0; i < count; ++i) {
        int received;
        memcpy(&received, data + i * sizeof(int), sizeof(int));
        fds->emplace_back(received);
      }
    }
    if (msg.msg_flags & MSG_CTRUNC) {
      errno = EMSGSIZE;
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
int SetupFailed(const Status& status) { return SetupFailed(status.message()); }

// A setup step of sandbox/ as the agent's Status ("mount overlay: Device or resource busy
// (EBUSY)").
Status StepStatus(const sandbox::StepError& step) {
  return step.ok() ? Status::Ok() : ErrnoError(step.step, step.err);
}
// A failed call of the agent's own setup, with errno.
Status SetupCallFailed(std::string_view what) { return ErrnoError(what, errno); }

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
  ErrorMessage refusal;
  if (!AcceptClientHello(hello, g_config.secret, kPeerName, &refusal)) {
    if (refusal.code == ErrorCode::kUnauthenticated)
      Log("refused a client: %s", refusal.message.c_str());
    SendError(fd, 0, refusal.code, refusal.message);
    return;
  }
  if (WriteFrame(fd, MessageType::kHello, 0, EncodeHello(Hello{kProtocolVersion, kPeerName, ""}),
                 MonotonicMs() + 5000, &error) != IoStatus::kOk) {
    return;
  }

  ServeStreams(fd, &parser,
               StreamContext{&g_config.env, &g_reaper, &g_processes, &g_services, g_log_fd});
}

// A TLS client: the handshake (its certificate must chain to the server's agent CA), then the
// protocol as on any connection, served on a thread of its own on one end of a socketpair
// while this thread relays between the other end and the TLS stream (tls.h). TLS state and
// the relay's buffers exist only while the connection is open.
void ServeTlsConnection(int fd) {
  // Answers are small writes: without this, Nagle holds each behind the ACK of the one before.
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::string error;
  SslPtr ssl =
      TlsHandshake(g_tls.get(), fd, /*server=*/true, "", MonotonicMs() + kHelloTimeoutMs, &error);
  if (!ssl) {
    Log("refused a TLS client: %s", error.c_str());
    return;
  }
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return;
  auto plain = std::make_shared<UniqueFd>(pair[0]);
  UniqueFd relayed(pair[1]);
  try {
    // The serving thread owns the plain end; the relay's end goes when the relay is over, so
    // the server sees EOF.
    std::thread serve([plain] {
      ServeConnection(plain->get());
      plain->Reset();
    });
    RelayTls(ssl.get(), fd, relayed.get());
    relayed.Reset();
    serve.join();
  } catch (const std::system_error& e) {
    Log("cannot start a thread for a TLS client: %s", e.what());
  }
}

void StartConnection(UniqueFd fd) {
  if (g_connections.fetch_add(1) >= kMaxConnections) {
    g_connections.fetch_sub(1);
    SendError(fd.get(), 0, ErrorCode::kResourceExhausted, "too many connections to hutch-agent");
    return;
  }
  // Owned by the connection's thread once it runs; here until then.
  auto conn = std::make_shared<UniqueFd>(std::move(fd));
  try {
    std::thread([conn] {
      if (g_tls) {
        ServeTlsConnection(conn->get());
      } else {
        ServeConnection(conn->get());
      }
      conn->Reset();
      g_connections.fetch_sub(1);
      // What the connection's buffers took from this thread's malloc arena (a file transfer's
      // chunks and frames) goes back to the kernel: an idle agent stays within its memory
      // budget whatever it served before.
      malloc_trim(0);
    }).detach();
  } catch (const std::system_error& e) {
    // EAGAIN: the pids limit counts threads too, and a fork bomb may have used it up.
    g_connections.fetch_sub(1);
    SendError(conn->get(), 0, ErrorCode::kResourceExhausted,
              std::string("hutch-agent cannot start a thread: ") + e.what());
  }
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

// Accepts connections on kListenFd and serves each on a thread of its own; never returns.
[[noreturn]] void ServeForever() {
  const int listen_fd = kListenFd;
  for (;;) {
    UniqueFd fd(accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
    if (fd) {
      StartConnection(std::move(fd));
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

// What both kinds of agent do first.
void BeginProcess(const char* name) {
  // Executed from a memfd, the kernel named us "memfd:hutch-agent" (truncated); ps shows this.
  prctl(PR_SET_NAME, name, 0, 0, 0);
  umask(022);
  // Fixed malloc thresholds: glibc raises both after the first large buffer is freed (up to
  // 32 MiB), after which a file transfer's chunks come from a thread's arena and its free top
  // stays resident (0.75 MiB per agent after one transfer, measured; malloc_trim does not give
  // back an arena's top). With them fixed, buffers of 128 KiB and more are mmapped and
  // returned on free, and a free top beyond 128 KiB is trimmed.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  mallopt(M_TRIM_THRESHOLD, 128 * 1024);
  ResetSignals();
}

// Reads and decodes the config on kConfigFd; *fds are the fds that came with it, as many as
// it announces.
Status ReadConfig(std::vector<UniqueFd>* fds) {
  UniqueFd config_fd(kConfigFd);
  std::string raw;
  if (!ReadConfigAndFds(config_fd.get(), &raw, fds)) {
    return SetupCallFailed("read config from fd 3");
  }
  config_fd.Reset();
  std::string error;
  if (!DecodeAgentConfig(raw, &g_config, &error)) return InvalidArgument(error);
  g_session_id = g_config.session_id;
  if (fds->size() != g_config.fd_count) {
    return InvalidArgument("agent config: " + std::to_string(g_config.fd_count) +
                           " fds announced, " + std::to_string(fds->size()) + " received");
  }
  return Status::Ok();
}

// The server's TLS context for clients that come over TCP (AgentConfig::tls_cert).
Status SetUpTls() {
  // Not the image's openssl.cnf (or the host's): nothing but the config decides.
  OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_LOAD_SSL_STRINGS |
                       OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS,
                   nullptr);
  std::string error;
  g_tls = NewMutualTlsContext(/*server=*/true, g_config.tls_cert, g_config.tls_key, g_config.tls_ca,
                              &error);
  // The key lives in the context from here on, and nowhere else in this process.
  OPENSSL_cleanse(g_config.tls_key.data(), g_config.tls_key.size());
  g_config.tls_key.clear();
  g_config.tls_key.shrink_to_fit();
  if (!g_tls) return Internal("agent TLS: " + error);
  AllowFdPassing(false);
  return Status::Ok();
}

// hutch-milestone beside the agent's binary, which the driver binds read-only at
// kAgentInSandbox (docs/agents.md, "Activity lines"): a link, so nothing is copied. Not fatal.
void LinkMilestoneClient() {
  if (symlink("hutch-agent", kMilestoneInSandbox) != 0 && errno != EEXIST && errno != ENOENT)
    Log("cannot link %s: %s", kMilestoneInSandbox, strerror(errno));
}

Status BuildSandbox(std::vector<UniqueFd>* fds_in, int64_t* t_mounts) {
  const std::vector<UniqueFd>& fds = *fds_in;
  RETURN_IF_ERROR(StepStatus(sandbox::MakeMountsPrivate()));
  sandbox::RootfsSpec spec;
  spec.user_namespace = g_config.user_namespace;
  for (uint32_t i : g_config.lower_fd_indexes) spec.lower_fds.push_back(fds[i].get());
  spec.layer_fd = g_config.layer_fd_index >= 0 ? fds[g_config.layer_fd_index].get() : -1;
  spec.tmpfs_bytes = g_config.tmpfs_layer_bytes;
  spec.tmpfs_inodes = g_config.tmpfs_layer_inodes;
  for (const auto& b : g_config.binds) spec.binds.push_back({fds[b.fd_index].get(), b.target});
  spec.dev_fd = fds[g_config.dev_fd_index].get();
  std::string root;
  RETURN_IF_ERROR(StepStatus(sandbox::BuildRootfs(spec, &root)));
  fds_in->clear();
  *t_mounts = MonotonicMs();
  RETURN_IF_ERROR(StepStatus(sandbox::PivotRoot(root)));
  if (!g_config.hostname.empty()) {
    RETURN_IF_ERROR(StepStatus(sandbox::SetHostname(g_config.hostname)));
  }
  if (!g_config.resolv_conf.empty()) {
    RETURN_IF_ERROR(StepStatus(sandbox::WriteResolvConf(g_config.resolv_conf)));
  }
  LinkMilestoneClient();
  return Status::Ok();
}

// From here on nothing of the host is reachable by path. What is left: limit what the
// sandbox's processes — all children of this one — can do.
Status HardenSandbox() {
  // Every fd but the log (written and read), status and listening socket is closed (they are
  // close-on-exec, but a command could still reach them through /proc/self/fd between fork and
  // exec); the listening socket and the log's read side become close-on-exec too.
  if (syscall(SYS_close_range, kWorkCgroupFd + 1, ~0U, 0) != 0) {
    return SetupCallFailed("close_range");
  }
  // The work group's cgroup.procs (v2) or freezer `tasks` (v1), when the driver split the
  // sandbox's group; whatever else landed on that number (a driver that passes none: one of
  // the config's fds) is closed.
  if (struct statfs fs; fstatfs(kWorkCgroupFd, &fs) == 0 &&
                        (fs.f_type == CGROUP_SUPER_MAGIC || fs.f_type == CGROUP2_SUPER_MAGIC) &&
                        fcntl(kWorkCgroupFd, F_SETFD, FD_CLOEXEC) == 0) {
    g_spawner_wanted = fs.f_type == CGROUP_SUPER_MAGIC;
    g_reaper.SetChildCgroup(kWorkCgroupFd, g_spawner_wanted);
  } else {
    UniqueFd not_a_cgroup(kWorkCgroupFd);  // closed here
  }
  if (fcntl(kListenFd, F_SETFD, FD_CLOEXEC) != 0) {
    return SetupCallFailed("set close-on-exec on the listening socket");
  }
  if (fcntl(kLogFd, F_SETFD, FD_CLOEXEC) == 0) g_log_fd = kLogFd;
  // Not dumpable: /proc/1's fds, memory, environment, exe and root need CAP_SYS_PTRACE (which
  // the bounding set below removes) to open, and ptrace(2) of the agent fails the same way.
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return SetupCallFailed("prctl(PR_SET_DUMPABLE)");
  // Nothing started from here on can gain privileges through setuid binaries or file caps.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return SetupCallFailed("prctl(PR_SET_NO_NEW_PRIVS)");
  }
  RETURN_IF_ERROR(StepStatus(sandbox::LimitCapabilities(g_config.capabilities)));
  // Last: the filter forbids mount and unshare, and it must cover every thread, so it comes
  // before the first one starts.
  return StepStatus(sandbox::LoadSeccompProgram(g_config.seccomp_filter));
}

// "ready <protocol version>" on the status fd, which is then closed: the driver learns the
// version without a round trip.
void ReportReady() {
  UniqueFd status_fd(kStatusFd);
  std::string ready = "ready " + std::to_string(kProtocolVersion) + "\n";
  (void)!write(status_fd.get(), ready.data(), ready.size());
}

}  // namespace

// The agent's setup, in an order that matters: mounts need the capabilities that are dropped at
// the end; /proc/1 must be non-dumpable before any process of the sandbox exists; the seccomp
// filter comes last because it forbids mount and unshare, which setup uses.
int RunSandboxAgent() {
  int64_t t_start = MonotonicMs();
  BeginProcess("hutch-agent");

  std::vector<UniqueFd> fds;
  if (Status st = ReadConfig(&fds); !st.ok()) return SetupFailed(st);
  if (g_config.lower_fd_indexes.empty()) return SetupFailed("agent config: 1 to 64 lower layers");
  if (!g_config.tls_cert.empty()) {
    if (Status st = SetUpTls(); !st.ok()) return SetupFailed(st);
  }

  // A session of our own: the server's terminal and process group signals do not reach us,
  // and we outlive the server.
  if (setsid() < 0) return SetupFailed(SetupCallFailed("setsid"));
  // The driver put us into our cgroups before sending the config; a cgroup namespace rooted
  // there makes /proc/self/cgroup show "/" and hides the host's hierarchy.
  if (unshare(CLONE_NEWCGROUP) != 0)
    return SetupFailed(SetupCallFailed("unshare(CLONE_NEWCGROUP)"));

  int64_t t_config = MonotonicMs();
  int64_t t_mounts = t_config;
  if (Status st = BuildSandbox(&fds, &t_mounts); !st.ok()) return SetupFailed(st);
  // After the pivot: the image's workdir is a path in the sandbox's root.
  SetDefaultWorkdir(g_config.workdir);
  int64_t t_pivot = MonotonicMs();
  if (Status st = StepStatus(sandbox::BringUpLoopback()); !st.ok()) return SetupFailed(st);
  int64_t t_net = MonotonicMs();
  if (Status st = HardenSandbox(); !st.ok()) return SetupFailed(st);
  int64_t t_harden = MonotonicMs();

  g_reaper.Start();
  // The message socket is there from the start for activity lines (docs/agents.md).
  if (!StartMessageEndpoint()) Log("cannot serve %s: %s", kMessageSocketPath, strerror(errno));
  if (g_spawner_wanted && !g_reaper.ChildrenBornInGroup()) {
    Log("the spawner could not join the work cgroup; each child joins it itself");
  }
  ReportReady();
  Log("ready in %lld ms (config %lld, mounts %lld, pivot+hostname %lld, loopback %lld, "
      "hardening %lld)",
      static_cast<long long>(MonotonicMs() - t_start), static_cast<long long>(t_config - t_start),
      static_cast<long long>(t_mounts - t_config), static_cast<long long>(t_pivot - t_mounts),
      static_cast<long long>(t_net - t_pivot), static_cast<long long>(t_harden - t_net));

  ServeForever();
}

namespace {

// The target's process settings (a runc container's, as `runc exec` applies them), taken on by
// the agent itself before it serves, so every shell it starts inherits them. The order matters:
// the bounding set is cut while we are still root with every capability in effect; without
// no_new_privs the filter must be loaded while CAP_SYS_ADMIN is still in effect (before the
// user changes); setuid to a user other than 0 then clears the permitted and effective sets,
// and for root they are cut to the bounding set; with no_new_privs the filter comes last, as
// runc loads it, so it does not have to allow the calls that change the user.
Status TakeOnTargetSettings() {
  const AgentConfig& c = g_config;
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
    if (c.capabilities & (uint64_t{1} << cap)) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
      return SetupCallFailed("prctl(PR_CAPBSET_DROP)");
  }
  if (!c.attach_no_new_privs)
    RETURN_IF_ERROR(StepStatus(sandbox::LoadSeccompProgram(c.seccomp_filter)));
  std::vector<gid_t> groups(c.attach_groups.begin(), c.attach_groups.end());
  if (setgroups(groups.size(), groups.data()) != 0) return SetupCallFailed("setgroups");
  if (setresgid(c.attach_gid, c.attach_gid, c.attach_gid) != 0) return SetupCallFailed("setresgid");
  if (setresuid(c.attach_uid, c.attach_uid, c.attach_uid) != 0) return SetupCallFailed("setresuid");
  if (c.attach_uid == 0) RETURN_IF_ERROR(StepStatus(sandbox::LimitCapabilities(c.capabilities)));
  if (c.attach_no_new_privs) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
      return SetupCallFailed("prctl(PR_SET_NO_NEW_PRIVS)");
    RETURN_IF_ERROR(StepStatus(sandbox::LoadSeccompProgram(c.seccomp_filter)));
  }
  return Status::Ok();
}

// In the attach agent's child, in the target's pid namespace: a session of its own, the
// shell's orphans, the fds, and the target's settings when the config asks for them.
Status PrepareAttachedChild() {
  if (setsid() < 0) return SetupCallFailed("setsid");
  // The shell's orphans come back to us, not to the target's init: the target sees nothing of
  // what the shell leaves behind (and the driver kills our cgroup anyway).
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
    return SetupCallFailed("prctl(PR_SET_CHILD_SUBREAPER)");
  if (syscall(SYS_close_range, kListenFd + 1, ~0U, 0) != 0) return SetupCallFailed("close_range");
  if (fcntl(kListenFd, F_SETFD, FD_CLOEXEC) != 0)
    return SetupCallFailed("set close-on-exec on the listening socket");
  // The target's own root could otherwise ptrace us and reach the listening socket.
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return SetupCallFailed("prctl(PR_SET_DUMPABLE)");
  if (g_config.attach_settings) {
    RETURN_IF_ERROR(TakeOnTargetSettings());
    // setuid made us dumpable again; the target's processes of that user must not ptrace us.
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return SetupCallFailed("prctl(PR_SET_DUMPABLE)");
  }
  return Status::Ok();
}

}  // namespace

// The transient agent of an attached shell (docs/attach.md): it enters the namespaces of a
// process hutch did not start, as nsenter does, and serves there until the server kills its
// cgroup. It builds nothing and hardens nothing of the target: the shell is what an operator
// with nsenter would get, and the target keeps its own limits (the driver put us in a child of
// its cgroups before the clone).
int RunAttachAgent(uint64_t namespaces) {
  BeginProcess("hutch-attach");
  std::vector<UniqueFd> fds;
  if (Status st = ReadConfig(&fds); !st.ok()) return SetupFailed(st);
  // One call for every namespace, through the target's pidfd: all or none are entered, and a
  // target that exited meanwhile is ESRCH, never a recycled pid.
  UniqueFd target_fd(kTargetFd);
  if (setns(target_fd.get(), static_cast<int>(namespaces)) != 0)
    return SetupFailed(SetupCallFailed("setns into the target's namespaces"));
  target_fd.Reset();
  if (chdir("/") != 0) return SetupFailed(SetupCallFailed("chdir /"));
  // The pid namespace applies to children only: the one that serves is a child, and this
  // process (the one the driver owns) waits for it and exits as it does.
  pid_t child = fork();
  if (child < 0) return SetupFailed(SetupCallFailed("fork into the target's pid namespace"));
  if (child > 0) {
    {
      // The child serves on them; this process only waits.
      UniqueFd listen_fd(kListenFd), status_fd(kStatusFd);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
  if (Status st = PrepareAttachedChild(); !st.ok()) return SetupFailed(st);
  g_reaper.Start();
  ReportReady();
  ServeForever();
}

}  // namespace hutch::agent
