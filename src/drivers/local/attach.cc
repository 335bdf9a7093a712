#include "drivers/local/attach.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/protocol.h"
#include "agent/transport.h"
#include "common/log.h"
#include "common/scope_guard.h"
#include "common/time.h"
#include "drivers/local/agent_start.h"
#include "drivers/local/docker_engine.h"
#include "sandbox/attach_target.h"
#include "sandbox/cgroup.h"
#include "sandbox/fs.h"
#include "sandbox/process.h"
#include "sandbox/runc_process.h"

namespace hutch::drivers::local {

namespace {

constexpr int64_t kReadyTimeoutMs = 10000;
constexpr int64_t kEmptyTimeoutMs = 5000;
constexpr std::chrono::milliseconds kDockerTimeout{5000};

bool ValidId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  return true;
}

std::string DockerHost(const core::AttachTarget& t) {
  return t.docker_host.empty() ? std::string(core::kDefaultDockerHost) : t.docker_host;
}

Result<pid_t> ResolvePid(const core::AttachTarget& t) {
  if (t.kind == "process") {
    if (t.pid > 0) {
      if (kill(static_cast<pid_t>(t.pid), 0) != 0 && errno == ESRCH)
        return NotFound(fmt::format("process {} does not exist", t.pid));
      return static_cast<pid_t>(t.pid);
    }
    if (!t.pid_file.empty()) return sandbox::PidFromFile(t.pid_file);
    return sandbox::PidOfCgroup(t.cgroup);
  }
  if (t.kind == "systemd") {
    ASSIGN_OR_RETURN(std::string dir, sandbox::CgroupOfUnit(t.unit));
    return sandbox::PidOfCgroup(dir);
  }
  if (t.kind == "runc") {
    return sandbox::PidOfRuncContainer(
        t.runc_root.empty() ? std::string(core::kDefaultRuncRoot) : t.runc_root, t.container_id);
  }
  if (t.kind == "docker") {
    ASSIGN_OR_RETURN(std::string id, FindDockerContainer(DockerHost(t), t.container_id,
                                                         t.container_name, kDockerTimeout));
    return DockerContainerPid(DockerHost(t), id, kDockerTimeout);
  }
  return InvalidArgument(fmt::format("the local driver cannot attach to a {} target", t.kind));
}

// The children of `pid` (/proc/<pid>/task/<pid>/children).
std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> out;
  auto text = sandbox::ReadFileToString(fmt::format("/proc/{}/task/{}/children", pid, pid));
  if (!text.ok()) return out;
  const char* p = text->data();
  const char* end = p + text->size();
  while (p < end) {
    pid_t v = 0;
    auto [next, ec] = std::from_chars(p, end, v);
    if (ec == std::errc() && v > 0) out.push_back(v);
    p = next == p ? p + 1 : next;
  }
  return out;
}

class LocalAttachedAgent final : public AttachedAgent {
 public:
  LocalAttachedAgent(std::string id, std::string dir, sandbox::ChildProcess agent, pid_t server_pid,
                     sandbox::Cgroup group, std::shared_ptr<const agent::Transport> transport)
      : id_(std::move(id)),
        dir_(std::move(dir)),
        agent_(std::move(agent)),
        server_pid_(server_pid),
        group_(std::move(group)),
        transport_(std::move(transport)) {}
  ~LocalAttachedAgent() override {
    if (Status st = End(); !st.ok()) LOG_WARN("end attached shell {}: {}", id_, st.ToString());
  }

  std::shared_ptr<const agent::Transport> transport() const override { return transport_; }

  Status End() override {
    if (ended_) return Status::Ok();
    KillAllButTheAgent();
    // Then the agent that served, reaped by its parent (ours), which then exits: killed
    // together, the agent would go to the target's init as a zombie.
    if (server_pid_ > 0) {
      kill(server_pid_, SIGKILL);
      (void)agent_.WaitExited(2000);
    }
    agent_.KillAndReap();
    // Whatever is left in the shell's group (also what double-forked away: the group keeps
    // it). The target is in the parent group, untouched.
    Status st = group_.KillAll();
    if (st.ok()) st = group_.WaitEmpty(kEmptyTimeoutMs);
    if (st.ok()) st = group_.Remove();
    if (!st.ok()) return st.WithContext(fmt::format("end attached shell {}", id_));
    (void)sandbox::RemoveTree(dir_);
    ended_ = true;
    return Status::Ok();
  }

  bool Alive() const override { return !ended_ && agent_.valid() && !agent_.WaitExited(0); }

 private:
  // The shell's processes go first, while the agent that serves still runs: it is their
  // subreaper, so it reaps them. Killed together with it, they would be reparented to the
  // target's init — which may never reap them, leaving zombies in the target.
  void KillAllButTheAgent() {
    if (server_pid_ <= 0) return;
    int64_t deadline = MonotonicMillis() + 2000;
    while (MonotonicMillis() < deadline) {
      auto pids = group_.Pids();
      if (!pids.ok()) return;
      bool others = false;
      for (pid_t p : *pids) {
        if (p == server_pid_ || p == agent_.pid()) continue;
        others = true;
        kill(p, SIGKILL);
      }
      if (!others && ChildrenOf(server_pid_).empty()) return;
      usleep(1000);
    }
  }

  std::string id_;
  std::string dir_;
  sandbox::ChildProcess agent_;
  pid_t server_pid_;  // the agent that serves, in the target's pid namespace (host pid)
  sandbox::Cgroup group_;
  std::shared_ptr<const agent::Transport> transport_;
  bool ended_ = false;
};

}  // namespace

Result<std::unique_ptr<AttachedAgent>> StartAttachedAgent(
    const AttachLaunch& launch, const std::string& attach_id, const core::AttachTarget& target,
    const std::map<std::string, std::string>& env) {
  if (!ValidId(attach_id)) return InvalidArgument("bad attach id " + attach_id);
  int64_t t0 = MonotonicMillis();
  ASSIGN_OR_RETURN(pid_t pid, ResolvePid(target));
  // The pidfd first: from here on a target that exits is ESRCH at setns, never another process
  // that reused its pid.
  ASSIGN_OR_RETURN(UniqueFd pidfd, sandbox::OpenPidfd(pid));
  // Docker gives no start time to check the pid against (runc's state.json does): asked again
  // now that the pidfd holds the process, the Engine still naming that pid means the pidfd is
  // of the container's init, not of a process that reused the pid of one that exited.
  if (target.kind == "docker") {
    auto again = ResolvePid(target);
    if (!again.ok() || *again != pid)
      return NotFound("the Docker container exited or restarted while being attached to");
  }
  ASSIGN_OR_RETURN(uint64_t namespaces, sandbox::ForeignNamespaces(pid));

  // A runc container's shell gets what `runc exec` would give it: its user, capabilities,
  // no_new_privileges and seccomp profile, from the bundle (the agent applies them).
  std::optional<sandbox::RuncProcessSettings> settings;
  if (target.kind == "runc") {
    ASSIGN_OR_RETURN(settings, sandbox::RuncProcessSettingsOf(
                                   target.runc_root.empty() ? std::string(core::kDefaultRuncRoot)
                                                            : target.runc_root,
                                   target.container_id));
  }

  std::string dir = fmt::format("{}/attach/{}", launch.data_dir, attach_id);
  RETURN_IF_ERROR(sandbox::MakeDirs(launch.data_dir + "/attach", 0700));
  RETURN_IF_ERROR(sandbox::MakeDir(dir, 0700));
  ScopeGuard remove_dir([&] { (void)sandbox::RemoveTree(dir); });
  std::string log_path = dir + "/agent.log";
  UniqueFd log_fd(open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log_fd) return ErrnoError("create " + log_path, errno);
  UniqueFd null_fd(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null_fd) return ErrnoError("open /dev/null", errno);
  std::string socket_path = dir + "/agent.sock";
  ASSIGN_OR_RETURN(UniqueFd listen_fd, ListenAt(socket_path));

  ASSIGN_OR_RETURN(sandbox::Cgroup group, sandbox::CreateChildCgroup(pid, attach_id));
  ScopeGuard remove_group([&] {
    (void)group.KillAll();
    (void)group.WaitEmpty(kEmptyTimeoutMs);
    (void)group.Remove();
  });

  int config_pair[2], status_pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, config_pair) != 0)
    return ErrnoError("socketpair", errno);
  UniqueFd config_w(config_pair[0]), config_r(config_pair[1]);
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, status_pair) != 0)
    return ErrnoError("socketpair", errno);
  UniqueFd status_r(status_pair[0]), status_w(status_pair[1]);

  sandbox::SpawnOptions spawn;
  spawn.path = launch.agent_path;
  spawn.exec_fd = launch.agent_exe_fd;
  spawn.argv = {"hutch-agent", "--attach", fmt::format("{:x}", namespaces)};
  spawn.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  // No log fd (6) for an attached agent: nothing serves its log.
  spawn.child_fds = {null_fd.get(),  log_fd.get(),    log_fd.get(),  config_r.get(),
                     status_w.get(), listen_fd.get(), null_fd.get(), pidfd.get()};
  static_assert(agent::kConfigFd == 3 && agent::kStatusFd == 4 && agent::kListenFd == 5 &&
                agent::kTargetFd == 7);
  spawn.exec_error_fd = agent::kStatusFd;
  UniqueFd cgroup_fd;
  if (group.version() == sandbox::CgroupVersion::kV2) {
    ASSIGN_OR_RETURN(cgroup_fd, group.OpenDirFd());
    spawn.cgroup_fd = cgroup_fd.get();
  } else {
    spawn.join_cgroup_tasks = group.TasksFiles();
  }
  ASSIGN_OR_RETURN(sandbox::ChildProcess child, sandbox::SpawnProcess(spawn));
  config_r.Reset();
  status_w.Reset();
  listen_fd.Reset();
  pidfd.Reset();
  cgroup_fd.Reset();

  agent::AgentConfig config;
  config.session_id = attach_id;
  ASSIGN_OR_RETURN(config.secret, NewSandboxSecret());
  config.env = env;
  if (settings) {
    config.attach_settings = true;
    config.attach_uid = settings->uid;
    config.attach_gid = settings->gid;
    config.attach_groups = settings->groups;
    config.capabilities = settings->capabilities;
    config.attach_no_new_privs = settings->no_new_privileges;
    config.seccomp_filter = settings->seccomp_filter;
  }
  Status sent = SendConfig(config_w.get(), agent::EncodeAgentConfig(config), {});
  config_w.Reset();
  auto line = ReadStatusLine(status_r.get(), t0 + kReadyTimeoutMs);
  if (!line.ok())
    return Unavailable(fmt::format("the agent of {} did not get ready within {} ms{}", attach_id,
                                   kReadyTimeoutMs, LogTail(log_path)));
  if (*line != fmt::format("ready {}", agent::kProtocolVersion)) {
    std::string why = !line->empty() ? *line
                      : sent.ok()
                          ? "hutch-agent exited before it was ready"
                          : "hutch-agent exited before it was ready (" + sent.message() + ")";
    return Unavailable(
        fmt::format("attach {} to pid {}: {}{}", attach_id, pid, why, LogTail(log_path)));
  }
  RETURN_IF_ERROR(ConnectOnce(socket_path, attach_id));
  LOG_INFO("attach {}: agent in the namespaces of pid {} (flags {:x}) in {} ms", attach_id, pid,
           namespaces, MonotonicMillis() - t0);
  auto transport = agent::NewUnixTransport(socket_path, attach_id, config.secret);
  std::vector<pid_t> serving = ChildrenOf(child.pid());
  remove_group.Cancel();
  remove_dir.Cancel();
  return std::unique_ptr<AttachedAgent>(std::make_unique<LocalAttachedAgent>(
      attach_id, dir, std::move(child), serving.empty() ? 0 : serving[0], std::move(group),
      std::move(transport)));
}

}  // namespace hutch::drivers::local
