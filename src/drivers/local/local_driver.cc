// The local driver: a session is a set of Linux namespaces on this machine whose PID 1 is
// hutch-agent (DESIGN.md §5; the hardening is described in docs/security.md). This file makes the
// driver and reaches the sessions it runs; local_driver_impl.h lists where the other parts are.
#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>

#include <fmt/format.h>

#include "agent/client.h"
#include "agent/tls_ca.h"
#include "agent/tls_transport.h"
#include "common/log.h"
#include "common/time.h"
#include "drivers/local/local_driver_impl.h"
#include "sandbox/fs.h"
#include "sandbox/mountinfo.h"
#include "sandbox/netns.h"
#include "sandbox/process.h"
#include "sandbox/usage.h"

namespace hutch::drivers::local {

// Session ids become path components and cgroup names.
bool ValidSessionId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  }
  return true;
}

Result<local::LocalNetwork*> LocalDriver::Network() {
  std::lock_guard<std::mutex> lock(network_mu_);
  if (!network_) {
    ASSIGN_OR_RETURN(network_, local::LocalNetwork::Start(options_.nat, options_.tcp_agents));
  }
  return network_.get();
}

Result<core::ExecResult> LocalDriver::Exec(const std::string& session_id,
                                           const std::string& driver_state,
                                           const core::ExecRequest& request) {
  ASSIGN_OR_RETURN(std::shared_ptr<const agent::Transport> transport,
                   ConnectAgent(session_id, driver_state));
  return agent::ExecOnAgent(*transport, request);
}

Result<std::shared_ptr<const agent::Transport>> LocalDriver::ConnectAgent(
    const std::string& session_id, const std::string& driver_state) {
  if (!ValidSessionId(session_id)) return InvalidArgument("bad session id: " + session_id);
  std::string socket = SocketPath(session_id);
  std::string secret;
  if (auto state = DecodeState(driver_state); state.ok()) {
    if (!state->socket_path.empty()) socket = state->socket_path;
    secret = state->secret;
    if (!state->cgroup_leaves) {
      // Made before the split: a paused one's agent is frozen with it and would let a caller
      // wait for its timeout (and then take the sandbox for dead).
      if (cgroups_->OpenGroup(session_id).IsFrozen())
        return Conflict(fmt::format(
            "the agent of {} is paused with it (a sandbox made before pausing kept agents "
            "running); resume the session first",
            session_id));
    }
    if (state->agent_port > 0) {
      if (!hardening_.agent_dialer) {
        return Unavailable(fmt::format(
            "the agent of {} is reached over TCP (driver local-tcp); this server runs driver "
            "local",
            session_id));
      }
      return agent::NewTlsTransport(state->address, static_cast<uint16_t>(state->agent_port),
                                    session_id, std::move(secret), hardening_.agent_dialer);
    }
  }
  return agent::NewUnixTransport(std::move(socket), session_id, std::move(secret));
}

Result<core::LogChunk> LocalDriver::ReadLog(const std::string& session_id,
                                            const std::string& driver_state, uint64_t offset,
                                            uint32_t max_bytes) {
  (void)driver_state;
  if (!ValidSessionId(session_id)) return InvalidArgument("bad session id: " + session_id);
  std::string path = SessionDir(session_id) + "/agent.log";
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd && errno == ENOENT) {
    return NotFound(fmt::format(
        "session {} has no log (its sandbox was never started or was removed)", session_id));
  }
  if (!fd) return ErrnoError("open " + path, errno);
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoError("fstat " + path, errno);
  core::LogChunk chunk;
  chunk.size = static_cast<uint64_t>(st.st_size);
  if (offset >= chunk.size) return chunk;
  chunk.data.resize(static_cast<size_t>(std::min<uint64_t>(max_bytes, chunk.size - offset)));
  ssize_t n = pread(fd.get(), chunk.data.data(), chunk.data.size(), static_cast<off_t>(offset));
  if (n < 0) return ErrnoError("read " + path, errno);
  chunk.data.resize(static_cast<size_t>(n));
  return chunk;
}

bool LocalDriver::IsAlive(const std::string& session_id, const std::string& driver_state) {
  auto transport = ConnectAgent(session_id, driver_state);
  return transport.ok() && agent::PingAgent(**transport, 2000).ok();
}

// The agent's /proc entry: gone, naming a later process, or exiting. The last matters for a
// paused sandbox (cgroup v1): its killed PID 1 waits in do_exit for the frozen processes of its
// pid namespace and is no zombie yet, so neither a pidfd nor waitid would tell, but its fds are
// closed and the kernel has set PF_EXITING and the exit code.
std::optional<std::string> LocalDriver::AgentExited(const std::string& session_id,
                                                    const std::string& driver_state) {
  Result<LocalSandboxState> state = DecodeState(driver_state);
  if (!state.ok() || state->agent_pid <= 0) return std::nullopt;
  Result<sandbox::ProcessStat> stat = sandbox::ReadProcessStat(state->agent_pid);
  if (!stat.ok()) {
    if (stat.status().code() == Code::kNotFound) return "agent exited";
    LOG_SESSION_DEBUG(session_id, "agent liveness: {}", stat.status().ToString());
    return std::nullopt;
  }
  if (state->agent_start_time != 0 && stat->start_time != state->agent_start_time)
    return "agent exited";  // reaped, and its pid taken by another process since
  if (!stat->Exiting()) return std::nullopt;
  const int code = stat->exit_code;
  if (code < 0) return "agent exited";
  if ((code & 0x7f) != 0) return fmt::format("agent exited (signal {})", code & 0x7f);
  return fmt::format("agent exited (status {})", (code >> 8) & 0xff);
}

Result<std::vector<std::string>> LocalDriver::ListSandboxes() {
  // Only this data dir's sessions: the cgroup root is shared by every hutch server on the host
  // (tests run several), and a sweep must never take another server's sandbox for an orphan.
  // Create makes the directory before the cgroup and Destroy removes it last, so every sandbox
  // of ours has one.
  std::vector<std::string> ids;
  std::string sessions = options_.data_dir + "/sessions";
  DIR* d = opendir(sessions.c_str());
  if (!d) return ErrnoError("open " + sessions, errno);
  while (struct dirent* e = readdir(d))
    if (ValidSessionId(e->d_name)) ids.emplace_back(e->d_name);
  closedir(d);
  std::sort(ids.begin(), ids.end());
  return ids;
}

Result<core::SandboxStats> LocalDriver::Stats(const std::string& session_id,
                                              const std::string& driver_state) {
  if (!ValidSessionId(session_id)) return InvalidArgument("bad session id: " + session_id);
  LocalSandboxState state;
  if (auto decoded = DecodeState(driver_state); decoded.ok()) state = *decoded;
  // Paths from the id, as in Destroy.
  std::vector<std::string> dirs = cgroups_->OpenGroup(session_id).paths();
  core::SandboxStats stats;
  stats.at = Now();
  // The agent's pid and start time name this sandbox: its cgroup (and counters) began with it.
  stats.instance = fmt::format("{}:{}", state.agent_pid, state.agent_start_time);
  auto usage = sandbox::ReadCgroupUsage(dirs);
  if (!usage.ok()) {
    if (usage.status().code() == Code::kNotFound)
      return NotFound(fmt::format("the sandbox of {} is gone", session_id));
    return usage.status();
  }
  stats.cpu_seconds = usage->cpu_seconds;
  stats.memory_bytes = usage->memory_bytes;
  stats.memory_peak_bytes = usage->memory_peak_bytes;
  stats.memory_limit_bytes = usage->memory_limit_bytes;
  stats.pids = usage->pids;
  stats.pids_limit = usage->pids_limit;
  stats.hits.pids_max = usage->pids_max_events;
  stats.hits.memory_max = usage->memory_max_events;
  stats.hits.oom_kills = usage->oom_kills;
  stats.hits.cpu_throttled_periods = usage->cpu_throttled_periods;
  // The writable layer is a filesystem of its own (the disk, or the tmpfs fallback); the
  // sandbox's root, an overlay, reports its upper filesystem's usage. Reached through the
  // agent's /proc entry, checked to be the same process (start time) and in this cgroup.
  if (state.agent_pid > 0) {
    auto start = sandbox::ReadProcessStartTime(state.agent_pid);
    if (start.ok() && *start == state.agent_start_time) {
      ASSIGN_OR_RETURN(sandbox::FsUsage fs,
                       sandbox::MeasureFilesystem(fmt::format("/proc/{}/root", state.agent_pid)));
      stats.disk_bytes = fs.used_bytes;
      // Full: less than 1 MiB (or 1%) of its blocks, or no inode, left.
      int64_t free_bytes = fs.total_bytes - fs.used_bytes;
      stats.hits.disk_full =
          free_bytes < std::max<int64_t>(int64_t{1} << 20, fs.total_bytes / 100) ||
          (fs.total_inodes > 0 && fs.used_inodes >= fs.total_inodes);
    }
  }
  if (!state.veth.empty()) {
    // The host side's counters, turned around: what the host side received, the sandbox sent.
    auto c = sandbox::ReadInterfaceCounters(state.veth);
    if (c.ok()) {
      stats.network = core::NetworkStats{c->tx_bytes, c->rx_bytes, c->tx_packets, c->rx_packets};
    } else {
      LOG_SESSION_WARN(session_id, "stats of {}: {}", state.veth, c.status().ToString());
    }
  }
  return stats;
}

namespace {

Result<std::unique_ptr<Driver>> MakeLocalDriver(const LocalDriverOptions& options,
                                                const sandbox::CgroupLayout* forced_layout) {
  LocalDriverOptions opts = options;
  if (geteuid() != 0) {
    return PermissionDenied(
        "the local driver needs root: it creates namespaces, mounts and cgroups");
  }
  if (opts.agent_path.empty()) {
    return InvalidArgument("no hutch-agent path: set the agent path in the server configuration");
  }
  struct stat st;
  if (stat(opts.agent_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
      access(opts.agent_path.c_str(), X_OK) != 0) {
    return NotFound(fmt::format(
        "hutch-agent not found or not executable at {}: build it (ninja hutch-agent, or make) "
        "or point the server's agent path at it",
        opts.agent_path));
  }
  char resolved[PATH_MAX];
  if (!realpath(opts.agent_path.c_str(), resolved)) {
    return ErrnoError("realpath " + opts.agent_path, errno);
  }
  opts.agent_path = resolved;

  if (opts.data_dir.empty()) return InvalidArgument("no data dir");
  RETURN_IF_ERROR(sandbox::MakeDirs(opts.data_dir, 0755));
  if (!realpath(opts.data_dir.c_str(), resolved)) {
    return ErrnoError("realpath " + opts.data_dir, errno);
  }
  opts.data_dir = resolved;
  // sockaddr_un holds 107 bytes: data_dir/sessions/ses_<16>/agent.sock must fit.
  constexpr size_t kSocketSuffix = sizeof("/sessions/ses_0123456789abcdef/agent.sock") - 1;
  if (opts.data_dir.size() + kSocketSuffix >= sizeof(sockaddr_un::sun_path)) {
    return InvalidArgument(fmt::format(
        "data dir {} is too long: agent sockets under it would exceed the {} bytes of a unix "
        "socket path; use a data dir of at most {} characters",
        opts.data_dir, sizeof(sockaddr_un::sun_path) - 1,
        sizeof(sockaddr_un::sun_path) - 1 - kSocketSuffix));
  }
  RETURN_IF_ERROR(sandbox::MakeDirs(opts.data_dir + "/sessions", 0700));

  ASSIGN_OR_RETURN(HostImage image, local::PrepareHostImage(opts.data_dir + "/images/host"));
  sandbox::CgroupLayout layout;
  if (forced_layout) {
    layout = *forced_layout;
  } else {
    ASSIGN_OR_RETURN(auto mounts, sandbox::ReadSelfMountInfo());
    ASSIGN_OR_RETURN(layout, sandbox::DetectCgroupLayout(mounts));
  }
  ASSIGN_OR_RETURN(auto cgroups, sandbox::CgroupManager::Open(layout, opts.cgroup_root_name));
  if (!cgroups->missing_controllers().empty()) {
    std::string missing;
    for (const auto& c : cgroups->missing_controllers())
      missing += (missing.empty() ? "" : ", ") + c;
    LOG_WARN("cgroup {}: controllers {} are not available; their limits are not enforced",
             sandbox::ToString(layout.version), missing);
  }
  ASSIGN_OR_RETURN(Hardening hardening, PrepareHardening(opts, image));
  if (opts.tcp_agents) {
    RETURN_IF_ERROR(sandbox::MakeDirs(opts.data_dir + "/tls", 0700));
    ASSIGN_OR_RETURN(hardening.agent_ca, agent::AgentCa::LoadOrCreate(opts.data_dir + "/tls"));
    ASSIGN_OR_RETURN(hardening.agent_dialer, agent::TlsDialer::New(*hardening.agent_ca));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<local::ImageStore> images,
                   local::ImageStore::Open(opts.data_dir + "/images"));
  LOG_INFO("local driver: cgroup {}, data dir {}, agent {}{}", sandbox::ToString(layout.version),
           opts.data_dir, opts.agent_path,
           opts.tcp_agents ? fmt::format(", agents on TCP port {} with TLS", kAgentTcpPort) : "");
  auto driver = std::make_unique<LocalDriver>(std::move(opts), std::move(cgroups), std::move(image),
                                              std::move(images), std::move(hardening));
  if (driver->options().nat.prewarm) {
    // A host without nftables still serves mode none; nat creates then say why they fail.
    auto network = driver->Network();
    if (!network.ok()) LOG_WARN("network mode nat unavailable: {}", network.status().ToString());
  }
  return std::unique_ptr<Driver>(std::move(driver));
}

}  // namespace

}  // namespace hutch::drivers::local

namespace hutch::drivers {

LocalDriverOptions LocalDriverOptionsFrom(const DriverParams& params) {
  LocalDriverOptions o;
  o.data_dir = params.data_dir;
  o.agent_path = params.agent_path;
  o.nat = params.nat;
  o.warm_disk_mb = params.default_disk_mb;
  return o;
}

Result<std::unique_ptr<Driver>> NewLocalDriver(const LocalDriverOptions& options) {
  return local::MakeLocalDriver(options, nullptr);
}

Result<std::unique_ptr<Driver>> NewLocalDriverWithCgroupLayout(
    const LocalDriverOptions& options, const sandbox::CgroupLayout& layout) {
  return local::MakeLocalDriver(options, &layout);
}

bool WaitForLocalDriverIdle(Driver* driver, int timeout_ms) {
  auto* local = dynamic_cast<local::LocalDriver*>(driver);
  return !local || local->WaitIdle(timeout_ms);
}

}  // namespace hutch::drivers
