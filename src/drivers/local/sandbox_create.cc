// The local driver: a session is a set of Linux namespaces on this machine whose PID 1 is
// hutch-agent (DESIGN.md §5; the hardening is described in docs/security.md).
//
// Create, in order — every step's result is owned by an RAII object until the sandbox is
// complete, so any failure unwinds what came before:
//   1. data_dir/sessions/<id>/ with agent.log, and the agent's listening socket agent.sock
//      (bound here, handed over as an fd)                      (ScopeGuard: rm -rf)
//   2. with user namespaces: an id slot, the host id range     (ScopeGuard: release)
//   3. the cgroup <controller>/hutch/<id> with the limits, split into the leaves agent and work
//      (sandbox/cgroup.h: a pause freezes only work)              (sandbox::Cgroup: rmdir)
//   4. clone3 of hutch-agent — from a sealed memfd copy, never from a host path — into new
//      user (where allowed), mount, pid, uts, ipc and net namespaces, in its cgroup's agent
//      leaf before it execs (v2: CLONE_INTO_CGROUP; v1: the child writes 0 to each hierarchy's
//      `tasks`), holding work's cgroup.procs for its children to join
//                                                               (sandbox::ChildProcess: kill)
//      Network mode nat: no new net namespace; the agent is cloned from a thread standing in
//      a wired namespace from the pool (network.h), which stays owned by the host's user
//      namespace — the sandbox cannot reconfigure it               (local::NatLease: give back)
//   5. with a user namespace: its uid/gid maps, then a byte that lets the child become root
//      of it and exec the agent
//   6. the root's pieces as detached mounts (the image's rootfs and the host's /usr, idmapped
//      to the sandbox's namespace, read-only; the session's disk), sent with the config as
//      fds — the agent waits for the config before it does anything
//   7. the agent builds its root, pivots, hardens itself (capabilities, no_new_privs, seccomp)
//      and answers "ready <protocol version>" on the status channel; the driver checks that
//      the socket accepts.
// The agent's mounts exist only in its mount namespace, and the detached ones in none before
// it attaches them: nothing here mounts on the host.

#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

#include "agent/agent.h"
#include "agent/bridge_protocol.h"
#include "agent/config.h"
#include "agent/protocol.h"
#include "agent/tls_ca.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/scope_guard.h"
#include "common/time.h"
#include "drivers/local/agent_start.h"
#include "drivers/local/local_driver_impl.h"
#include "sandbox/caps.h"
#include "sandbox/dev.h"
#include "sandbox/fs.h"
#include "sandbox/idmap.h"
#include "sandbox/mount_api.h"
#include "sandbox/netns.h"
#include "sandbox/process.h"

namespace hutch::drivers::local {

namespace {

// How long an agent gets from clone3 to "ready".
constexpr int64_t kReadyTimeoutMs = 10000;
constexpr uint64_t kNamespaces =
    CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET;
constexpr const char* kAgentEnvPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin";

// A hostname the kernel takes: 1–64 characters of [A-Za-z0-9.-].
bool ValidHostname(std::string_view h) {
  if (h.empty() || h.size() > 64) return false;
  for (char c : h) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.')) {
      return false;
    }
  }
  return true;
}

// A local-tcp agent's listening socket, made here in the sandbox's network namespace (the
// calling thread stands in it) on the sandbox's own address, so only the veth reaches it.
Result<UniqueFd> ListenTcp(uint32_t address) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError("socket", errno);
  sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(kAgentTcpPort);
  addr.sin_addr.s_addr = htonl(address);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return ErrnoError(fmt::format("bind {}:{}", core::FormatIpv4(address), kAgentTcpPort), errno);
  }
  if (listen(fd.get(), 128) != 0) return ErrnoError("listen", errno);
  return fd;
}

}  // namespace

Status LocalDriver::PrepareRoot(std::string_view id, int64_t disk_mb, bool reuse_layer,
                                const std::string& layer_from_session,
                                const std::string& layer_from_name,
                                const std::vector<std::string>& image_layers,
                                const std::vector<VolumeAttach>& volumes, int userns_fd,
                                const sandbox::IdRange& range, agent::AgentConfig* config,
                                std::vector<UniqueFd>* fds, local::DiskPool::Disk* disk_ref,
                                int64_t* disk_ref_mb) {
  auto add = [&](UniqueFd fd) {
    fds->push_back(std::move(fd));
    return static_cast<uint32_t>(fds->size() - 1);
  };
  // Read-only layers, idmapped so that the host's root-owned files are root's inside.
  sandbox::MountAttrs read_only;
  read_only.read_only = true;
  read_only.nosuid = true;
  read_only.nodev = true;
  read_only.idmap_userns_fd = userns_fd;
  if (image_layers.empty()) {
    ASSIGN_OR_RETURN(UniqueFd lower, sandbox::CloneMount(image_.rootfs));
    RETURN_IF_ERROR(sandbox::SetMountAttrs(lower.get(), read_only, image_.rootfs));
    config->lower_fd_indexes.push_back(add(std::move(lower)));
    for (const auto& b : image_.binds) {
      ASSIGN_OR_RETURN(UniqueFd bind, sandbox::CloneMount(b.source));
      RETURN_IF_ERROR(sandbox::SetMountAttrs(bind.get(), read_only, b.source));
      config->binds.push_back({add(std::move(bind)), b.target});
    }
  } else {
    // An imported image: its layers, each a directory stored with in-sandbox ids, stacked.
    for (const auto& dir : image_layers) {
      ASSIGN_OR_RETURN(UniqueFd lower, sandbox::CloneMount(dir));
      RETURN_IF_ERROR(sandbox::SetMountAttrs(lower.get(), read_only, dir));
      config->lower_fd_indexes.push_back(add(std::move(lower)));
    }
  }
  // The agent's own binary, read-only at /run/hutch/bin/hutch-agent: the client programs in the
  // session write activity lines with (docs/agents.md, "Activity lines"). Not fatal: a host whose
  // filesystem refuses the clone only leaves the sessions without the clients.
  if (Result<UniqueFd> binary = sandbox::CloneMount(options_.agent_path); binary.ok()) {
    if (Status st = sandbox::SetMountAttrs(binary->get(), read_only, options_.agent_path); st.ok())
      config->binds.push_back({add(std::move(*binary)), agent::kAgentInSandbox});
    else
      LOG_SESSION_WARN(id, "no activity clients: {}", st.ToString());
  } else {
    LOG_SESSION_WARN(id, "no activity clients: {}", binary.status().ToString());
  }
  std::optional<uid_t> dev_owner;
  if (userns_fd >= 0) dev_owner = range.host_base;
  ASSIGN_OR_RETURN(UniqueFd dev, sandbox::MakeDevTree(dev_owner));
  config->dev_fd_index = add(std::move(dev));
  if (hardening_.disks) {
    std::string image = LayerImagePath(id);
    const bool from_checkpoint = !layer_from_session.empty();
    if (from_checkpoint) {
      RETURN_IF_ERROR(CopyVerifiedCheckpoint(layer_from_session, layer_from_name, image));
    }
    ASSIGN_OR_RETURN(local::DiskPool::Lease lease, reuse_layer || from_checkpoint
                                                       ? hardening_.disks->Adopt(image)
                                                       : hardening_.disks->Take(disk_mb, image));
    if (userns_fd >= 0) {
      // On disk the files keep the ids they have inside (root is 0), whatever host range the
      // session maps: the disk moves on to other sessions' namespaces (and, later, forks).
      sandbox::MountAttrs idmap;
      idmap.idmap_userns_fd = userns_fd;
      RETURN_IF_ERROR(
          sandbox::SetMountAttrs(lease.mount.get(), idmap, fmt::format("disk of {}", id)));
    }
    config->layer_fd_index = static_cast<int32_t>(add(std::move(lease.mount)));
    // Kept until Destroy, which returns it to the pool, or Stop, which keeps its image.
    *disk_ref = std::move(lease.disk);
    *disk_ref_mb = lease.mb;
  } else if (!layer_from_session.empty()) {
    return Conflict(
        "sessions cannot start from a checkpoint on this server: it keeps writable layers in "
        "memory (tmpfs), so it has no checkpoints");
  } else if (reuse_layer) {
    return Conflict(
        fmt::format("{} has no disk to start again on: this server keeps writable layers in "
                    "memory (tmpfs)",
                    id));
  } else {
    config->layer_fd_index = -1;
    config->tmpfs_layer_bytes = disk_mb << 20;
    config->tmpfs_layer_inodes = local::DiskInodes(disk_mb);
  }
  // Volumes come after the image's binds (the agent attaches binds in order), each on a
  // directory it makes in the overlay.
  for (const VolumeAttach& v : volumes) {
    ASSIGN_OR_RETURN(UniqueFd mount, MountVolume(id, v, userns_fd));
    config->binds.push_back({add(std::move(mount)), v.path});
  }
  config->fd_count = static_cast<uint32_t>(fds->size());
  return Status::Ok();
}

namespace {

// What Create checked and looked up before it makes anything.
struct CreatePlan {
  std::string hostname;
  // An imported image's verified layer directories (bottom first), env and WORKDIR; for `host`
  // none of them.
  std::vector<std::string> image_layers;
  std::vector<std::string> image_env;
  std::string image_workdir;
  bool nat = false;
  int64_t disk_mb = 0;
};

// The checks of a spec that need nothing of the host, after the image's.
Status CheckSpec(const SandboxSpec& spec, const std::string& hostname) {
  const std::string& id = spec.session_id;
  if (!ValidHostname(hostname)) return InvalidArgument("bad hostname: " + hostname);
  const core::Resources& res = spec.resources;
  if (res.memory_mb < 0 || res.cpus < 0 || res.pids < 0 || res.disk_mb < 0) {
    return InvalidArgument("resources must not be negative");
  }
  if (!spec.layer_from_session.empty() &&
      (spec.reuse_layer || !ValidSessionId(spec.layer_from_session) ||
       !IsValidCheckpointFileName(spec.layer_from_name))) {
    return InvalidArgument(fmt::format("bad checkpoint to start {} from: {}/{}", id,
                                       spec.layer_from_session, spec.layer_from_name));
  }
  for (const VolumeAttach& v : spec.volumes) {
    if (!ValidSessionId(v.volume_id) || !core::CheckVolumePath(v.path).empty())
      return InvalidArgument(fmt::format("bad volume for {}: {} at {}", id, v.volume_id, v.path));
  }
  const std::string& mode = spec.network.mode;
  if (mode != "nat" && !mode.empty() && mode != "none") {
    return InvalidArgument("unknown network mode: " + mode);
  }
  return Status::Ok();
}

Result<CreatePlan> PlanCreate(const SandboxSpec& spec, ImageStore& images, int64_t warm_disk_mb) {
  const std::string& id = spec.session_id;
  if (!ValidSessionId(id)) return InvalidArgument(fmt::format("bad session id: {}", id));
  CreatePlan plan;
  // An imported image's layers are checked against their signed records before anything runs
  // on them (image_store.h: what is checked when).
  if (spec.image != "host" && !spec.image.empty()) {
    ASSIGN_OR_RETURN(ImageRecord record, images.Get(spec.image));
    ASSIGN_OR_RETURN(plan.image_layers, images.VerifiedLayerDirs(spec.image));
    plan.image_env = record.config.env;
    plan.image_workdir = record.config.workdir;
  }
  plan.hostname = spec.hostname.empty() ? id : spec.hostname;
  for (char& c : plan.hostname) {
    if (c == '_') c = '-';
  }
  RETURN_IF_ERROR(CheckSpec(spec, plan.hostname));
  plan.nat = spec.network.mode == "nat";
  plan.disk_mb = spec.resources.disk_mb > 0 ? spec.resources.disk_mb : warm_disk_mb;
  return plan;
}

// Step 1's files: what the agent gets as stdio, its log, and the socket it listens on.
struct AgentFiles {
  std::string log_path;
  std::string socket_path;  // "": a TCP agent, whose socket is made in step 3b
  UniqueFd log_fd;
  // The agent serves the log (LogRead) through a read-only fd of its own: it cannot open a
  // host path, and its stderr is write-only.
  UniqueFd log_read_fd;
  UniqueFd null_fd;
  UniqueFd listen_fd;
};

Result<AgentFiles> OpenAgentFiles(const std::string& dir, std::string socket_path) {
  AgentFiles f;
  f.log_path = dir + "/agent.log";
  f.log_fd.Reset(open(f.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!f.log_fd) return HostFailure(ErrnoError("create " + f.log_path, errno));
  f.log_read_fd.Reset(open(f.log_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!f.log_read_fd) return HostFailure(ErrnoError("open " + f.log_path, errno));
  f.null_fd.Reset(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!f.null_fd) return ErrnoError("open /dev/null", errno);
  f.socket_path = std::move(socket_path);
  if (!f.socket_path.empty()) {
    ASSIGN_OR_RETURN(f.listen_fd, ListenAt(f.socket_path));
  }
  return f;
}

// Step 3's cgroup.
struct SandboxGroup {
  sandbox::Cgroup group;
  bool split = false;   // whether it has the leaves agent and work
  UniqueFd work_procs;  // split: where the agent puts its children
};

Result<SandboxGroup> MakeSandboxGroup(sandbox::CgroupManager& cgroups, const std::string& id,
                                      const core::Resources& res) {
  ASSIGN_OR_RETURN(sandbox::Cgroup group, HostFailure(cgroups.CreateGroup(id, LimitsOf(res))));
  SandboxGroup g{std::move(group), false, UniqueFd()};
  // The leaves: without them (v1 without a freezer hierarchy, where nothing can pause) the
  // agent and its children share the group.
  Status leaves = cgroups.CreateLeaves(g.group);
  if (!leaves.ok() && leaves.code() != Code::kUnavailable) return HostFailure(leaves);
  g.split = leaves.ok();
  if (g.split) {
    // v1: the tasks file, which lets the agent move one thread — its spawner — there once
    // instead of every child migrating itself (agent/reaper.h says why).
    sandbox::CgroupView work = g.group.Leaf(sandbox::kWorkLeaf);
    ASSIGN_OR_RETURN(g.work_procs, HostFailure(g.group.version() == sandbox::CgroupVersion::kV1
                                                   ? work.OpenTasksFile()
                                                   : work.OpenProcsFile()));
  }
  return g;
}

// Config and status travel over socketpairs rather than pipes: send() with MSG_NOSIGNAL
// cannot SIGPIPE the server when the agent dies early, and the config carries fds.
struct AgentChannels {
  UniqueFd config_w, config_r;  // the server writes the config, the agent reads it
  UniqueFd status_r, status_w;  // the agent writes "ready" (or why not)
};

Result<AgentChannels> MakeAgentChannels() {
  int config_pair[2], status_pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, config_pair) != 0) {
    return ErrnoError("socketpair", errno);
  }
  AgentChannels c;
  c.config_w.Reset(config_pair[0]);
  c.config_r.Reset(config_pair[1]);
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, status_pair) != 0) {
    return ErrnoError("socketpair", errno);
  }
  c.status_r.Reset(status_pair[0]);
  c.status_w.Reset(status_pair[1]);
  return c;
}

// Step 7: waits for the agent's "ready <protocol version>". `sent`: whether the config reached
// it (a failed send means it died, and the status channel says why).
Status AwaitReady(const std::string& id, int status_fd, int64_t deadline_ms,
                  const std::string& log_path, const Status& sent, const std::string& agent_path) {
  auto line = ReadStatusLine(status_fd, deadline_ms);
  if (!line.ok()) {
    return Unavailable(fmt::format("hutch-agent of {} did not get ready within {} ms{}", id,
                                   kReadyTimeoutMs, LogTail(log_path)));
  }
  std::string expected_ready = fmt::format("ready {}", agent::kProtocolVersion);
  if (line->starts_with("ready ") && *line != expected_ready) {
    return Internal(fmt::format(
        "start sandbox {}: hutch-agent at {} speaks agent protocol {}, this server {}: install "
        "the hutch-agent that was built with this hutch",
        id, agent_path, line->substr(6), agent::kProtocolVersion));
  }
  if (*line != expected_ready) {
    std::string why = !line->empty() ? *line
                      : sent.ok()
                          ? "hutch-agent exited before it was ready"
                          : "hutch-agent exited before it was ready (" + sent.message() + ")";
    return Internal(fmt::format("start sandbox {}: {}{}", id, why, LogTail(log_path)));
  }
  return Status::Ok();
}

// A local-tcp agent's socket, made in the lease's namespace (step 3b).
Result<UniqueFd> ListenTcpIn(const NatLease& lease) {
  ASSIGN_OR_RETURN(sandbox::ScopedNetns inside, sandbox::ScopedNetns::Enter(lease.netns_fd()));
  return ListenTcp(lease.address());
}

// Step 5: the agent's uid/gid maps, then the byte on the config channel that lets it become
// root of its user namespace and exec; the namespace's fd, for idmapped mounts. The agent is in
// its cgroups already: on v2 it was cloned into its group; on v1 the child joined each hierarchy
// before waiting for this (see SpawnOptions::join_cgroup_tasks for why the child does it and not
// we, with cgroup.procs). *sent: whether the byte went out (if not, the agent is gone).
Result<UniqueFd> MapUserNamespace(const sandbox::ChildProcess& agent, const sandbox::IdRange& range,
                                  int config_fd, Status* sent) {
  RETURN_IF_ERROR(HostFailure(sandbox::WriteIdMaps(agent.pid(), range)));
  *sent = SendAll(config_fd, "u");
  // The child is ours and not yet reaped, so its pid cannot name another process here.
  UniqueFd userns_fd(
      open(fmt::format("/proc/{}/ns/user", agent.pid()).c_str(), O_RDONLY | O_CLOEXEC));
  if (!userns_fd) return HostFailure(ErrnoError("open the user namespace of the agent", errno));
  return userns_fd;
}

Status SendAgentConfig(int config_fd, const agent::AgentConfig& config,
                       const std::vector<UniqueFd>& mount_fds) {
  std::vector<int> raw_fds;
  for (const auto& f : mount_fds) raw_fds.push_back(f.get());
  return SendConfig(config_fd, agent::EncodeAgentConfig(config), raw_fds);
}

// Until the sandbox is complete, a disk Create took goes back to the pool; a kept one (a
// Stop's, reuse_layer) stays kept.
struct PendingDisk {
  PendingDisk(DiskPool* pool, bool kept) : pool(pool), kept(kept) {}
  PendingDisk(const PendingDisk&) = delete;
  PendingDisk& operator=(const PendingDisk&) = delete;
  ~PendingDisk() {
    if (!disk) return;
    if (kept) {
      (void)DiskPool::Keep(std::move(disk));
    } else {
      pool->Return(mb, std::move(disk));
    }
  }
  DiskPool* const pool;
  const bool kept;
  DiskPool::Disk disk;  // moved out when the sandbox is complete
  int64_t mb = 0;
};

// What the driver stores of a complete sandbox (driver_state.h).
Result<LocalSandboxState> StateOf(const sandbox::ChildProcess& agent, const AgentFiles& files,
                                  const std::string& dir, const SandboxGroup& g, int64_t id_slot,
                                  const std::string& secret, const std::optional<NatLease>& lease,
                                  bool tcp) {
  LocalSandboxState state;
  state.agent_pid = agent.pid();
  ASSIGN_OR_RETURN(state.agent_start_time, sandbox::ReadProcessStartTime(agent.pid()));
  state.socket_path = files.socket_path;
  state.session_dir = dir;
  state.cgroup_version = std::string(sandbox::ToString(g.group.version()));
  state.cgroups = g.group.paths();
  state.cgroup_leaves = g.split;
  state.id_slot = id_slot;
  state.secret = secret;
  if (tcp) state.agent_port = kAgentTcpPort;
  if (lease) {
    state.veth = lease->ifname();
    state.address = core::FormatIpv4(lease->address());
    state.nat_rules = lease->has_rules();
  }
  return state;
}

}  // namespace

Status LocalDriver::MakeSessionDir(const SandboxSpec& spec) {
  const std::string& id = spec.session_id;
  if (spec.reuse_layer) {
    if (hardening_.disks && !sandbox::PathExists(LayerImagePath(id))) {
      return NotFound(fmt::format("the writable layer of {} is gone; it cannot start again", id));
    }
    unlink(SocketPath(id).c_str());
  } else if (std::string dir = SessionDir(id); mkdir(dir.c_str(), 0700) != 0) {
    if (errno == EEXIST) return Conflict(fmt::format("a sandbox for {} exists already", id));
    return HostFailure(ErrnoError("mkdir " + dir, errno));
  }
  return Status::Ok();
}

Result<std::optional<NatLease>> LocalDriver::WireNetwork(const SandboxSpec& spec, bool nat,
                                                         std::string* resolv_conf) {
  if (!nat && !options_.tcp_agents) return std::optional<NatLease>();
  ASSIGN_OR_RETURN(LocalNetwork * network, Network());
  core::NetworkSpec wiring = spec.network;
  if (!nat) {
    // Mode none under local-tcp: the veth is there for the agent only. Nothing is forwarded
    // from the sandbox (a chain of its own drops every destination, DNS included; the
    // base rules drop what it sends to the host and let through only the replies of the
    // server's connections to the agent's port).
    wiring.allow_out.clear();
    wiring.deny_out = {"0.0.0.0/0"};
  }
  ASSIGN_OR_RETURN(NatLease acquired, network->Acquire(spec.session_id, wiring));
  if (nat) *resolv_conf = network->resolv_conf();
  return std::optional<NatLease>(std::move(acquired));
}

namespace {

// Step 4: clone3 of the agent into its namespaces and cgroup, with its fds.
Result<sandbox::ChildProcess> SpawnAgent(const LocalDriverOptions& options,
                                         const Hardening& hardening, const AgentFiles& files,
                                         const AgentChannels& channels, const SandboxGroup& g,
                                         const std::optional<NatLease>& lease) {
  sandbox::SpawnOptions spawn;
  spawn.path = options.agent_path;
  spawn.exec_fd = hardening.agent_exe.get();
  spawn.argv = {"hutch-agent", "--sandbox"};
  spawn.env = {kAgentEnvPath};
  spawn.clone_flags = lease ? kNamespaces & ~uint64_t{CLONE_NEWNET} : kNamespaces;
  spawn.child_fds = {files.null_fd.get(),     files.log_fd.get(),
                     files.log_fd.get(),      channels.config_r.get(),
                     channels.status_w.get(), files.listen_fd.get(),
                     files.log_read_fd.get(), g.split ? g.work_procs.get() : files.null_fd.get()};
  static_assert(agent::kConfigFd == 3 && agent::kStatusFd == 4 && agent::kListenFd == 5 &&
                agent::kLogFd == 6 && agent::kWorkCgroupFd == 7);
  spawn.exec_error_fd = agent::kStatusFd;
  if (hardening.user_namespaces) {
    spawn.clone_flags |= CLONE_NEWUSER;
    spawn.userns_ready_fd = agent::kConfigFd;
  }
  UniqueFd cgroup_fd;
  if (g.group.version() == sandbox::CgroupVersion::kV2) {
    ASSIGN_OR_RETURN(cgroup_fd, HostFailure(g.split ? g.group.Leaf(sandbox::kAgentLeaf).OpenDirFd()
                                                    : g.group.OpenDirFd()));
    spawn.cgroup_fd = cgroup_fd.get();
  } else {
    spawn.join_cgroup_tasks = g.group.TasksFiles(g.split ? sandbox::kAgentLeaf : "");
  }
  if (!lease) return HostFailure(sandbox::SpawnProcess(spawn));
  // clone3 gives the child the calling thread's network namespace: stand in the lease's for
  // the call, and only this thread, only for the call.
  ASSIGN_OR_RETURN(sandbox::ScopedNetns inside,
                   HostFailure(sandbox::ScopedNetns::Enter(lease->netns_fd())));
  return HostFailure(sandbox::SpawnProcess(spawn));
}

// Step 6: the config the agent gets, but for its root's pieces (PrepareRoot).
Result<agent::AgentConfig> AgentConfigFor(const LocalDriverOptions& options,
                                          const Hardening& hardening, const SandboxSpec& spec,
                                          const CreatePlan& plan, const std::string& resolv_conf) {
  agent::AgentConfig config;
  config.session_id = spec.session_id;
  ASSIGN_OR_RETURN(config.secret, NewSandboxSecret());
  if (options.tcp_agents) {
    ASSIGN_OR_RETURN(agent::IssuedCertificate cert,
                     hardening.agent_ca->IssueAgent(spec.session_id));
    config.tls_cert = std::move(cert.cert_pem);
    config.tls_key = std::move(cert.key_pem);
    config.tls_ca = hardening.agent_ca->ca_pem();
  }
  config.hostname = plan.hostname;
  // The image's env under the session's own.
  for (const auto& kv : plan.image_env) {
    size_t eq = kv.find('=');
    if (eq != std::string::npos && eq > 0) config.env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  for (const auto& [k, v] : spec.env) config.env[k] = v;
  // The image's WORKDIR: where its exec, terminals and services start unless they say.
  config.workdir = plan.image_workdir;
  config.resolv_conf = resolv_conf;
  config.user_namespace = hardening.user_namespaces;
  config.capabilities = sandbox::SandboxCapabilityMask();
  config.seccomp_filter = hardening.seccomp_filter;
  return config;
}

}  // namespace

Result<std::string> LocalDriver::Create(const SandboxSpec& spec) {
  const std::string& id = spec.session_id;
  ASSIGN_OR_RETURN(CreatePlan plan, PlanCreate(spec, *images_, options_.warm_disk_mb));
  // local-tcp: every sandbox has a veth, the agent's only way in.
  const bool tcp = options_.tcp_agents;
  int64_t t0 = MonotonicMillis();

  // 1. The session directory (new, or the one a Stop() kept with the disk's image), the log
  // and the agent's socket.
  RETURN_IF_ERROR(MakeSessionDir(spec));
  std::string dir = SessionDir(id);
  // A failed create removes what it made, but never a kept layer.
  ScopeGuard remove_dir([&] {
    if (spec.reuse_layer) {
      unlink(SocketPath(id).c_str());
      return;
    }
    Status st = sandbox::RemoveTree(dir);
    if (!st.ok()) LOG_SESSION_WARN(id, "cleanup after failed create: {}", st.ToString());
  });
  ASSIGN_OR_RETURN(AgentFiles files, OpenAgentFiles(dir, tcp ? std::string() : SocketPath(id)));

  // 2. The host id range.
  int64_t id_slot = -1;
  sandbox::IdRange range;
  if (hardening_.user_namespaces) {
    ASSIGN_OR_RETURN(uint32_t slot, hardening_.id_slots->Acquire(id));
    id_slot = slot;
    range = hardening_.id_slots->RangeOf(slot);
  }
  ScopeGuard release_slot([&] {
    if (id_slot >= 0) (void)hardening_.id_slots->Release(static_cast<uint32_t>(id_slot), id);
  });

  // 3. The cgroup, with the limits; 3b. nat (and local-tcp): a wired namespace from the pool,
  // with the session's rules.
  ASSIGN_OR_RETURN(SandboxGroup g, MakeSandboxGroup(*cgroups_, id, spec.resources));
  std::string resolv_conf;
  ASSIGN_OR_RETURN(std::optional<NatLease> lease, WireNetwork(spec, plan.nat, &resolv_conf));
  if (tcp) {
    ASSIGN_OR_RETURN(files.listen_fd, ListenTcpIn(*lease));
  }
  ASSIGN_OR_RETURN(AgentChannels channels, MakeAgentChannels());

  // 4. The agent, in its namespaces.
  ASSIGN_OR_RETURN(sandbox::ChildProcess agent,
                   SpawnAgent(options_, hardening_, files, channels, g, lease));
  int64_t t_spawned = MonotonicMillis();
  // Our copies of the child's ends: closing them lets EOF tell us the agent died.
  channels.config_r.Reset();
  channels.status_w.Reset();
  files.listen_fd.Reset();
  files.log_read_fd.Reset();
  g.work_procs.Reset();

  // 5. Its user namespace: the maps, then the byte that lets it become root there and exec.
  UniqueFd userns_fd;
  Status sent = Status::Ok();
  if (hardening_.user_namespaces) {
    ASSIGN_OR_RETURN(userns_fd, MapUserNamespace(agent, range, channels.config_w.get(), &sent));
  }

  // 6. The root's pieces and the config. (The agent execs meanwhile.)
  ASSIGN_OR_RETURN(agent::AgentConfig config,
                   AgentConfigFor(options_, hardening_, spec, plan, resolv_conf));
  std::vector<UniqueFd> mount_fds;
  PendingDisk disk(hardening_.disks.get(), spec.reuse_layer);
  RETURN_IF_ERROR(PrepareRoot(id, plan.disk_mb, spec.reuse_layer, spec.layer_from_session,
                              spec.layer_from_name, plan.image_layers, spec.volumes,
                              userns_fd.get(), range, &config, &mount_fds, &disk.disk, &disk.mb)
                      .WithContext(fmt::format("prepare the root of {}", id)));
  userns_fd.Reset();
  // A failed send means the agent is gone already; the status channel says why (an exec
  // error), so it is read either way.
  if (sent.ok()) sent = SendAgentConfig(channels.config_w.get(), config, mount_fds);
  channels.config_w.Reset();
  mount_fds.clear();

  // 7. Ready?
  RETURN_IF_ERROR(AwaitReady(id, channels.status_r.get(), t0 + kReadyTimeoutMs, files.log_path,
                             sent, options_.agent_path));
  int64_t t_ready = MonotonicMillis();
  // The socket was listening before "ready" was sent; a connect proves it is there. (The
  // protocol version came with "ready", so no Hello round trip is needed.)
  // (A TCP agent's socket was made here, listening, in its namespace: nothing to prove.)
  if (!tcp) RETURN_IF_ERROR(ConnectOnce(files.socket_path, id));
  ASSIGN_OR_RETURN(LocalSandboxState state,
                   StateOf(agent, files, dir, g, id_slot, config.secret, lease, tcp));

  remove_dir.Cancel();
  release_slot.Cancel();
  if (lease) lease->Commit();
  g.group.Release();
  {
    std::lock_guard<std::mutex> lock(mu_);
    children_[id] = std::move(agent);
    if (disk.disk) disk_refs_[id] = {disk.mb, std::move(disk.disk)};
  }
  LOG_SESSION_DEBUG(id, "sandbox ready in {} ms (spawn {} ms, agent setup {} ms)",
                    MonotonicMillis() - t0, t_spawned - t0, t_ready - t_spawned);
  return EncodeState(state);
}

}  // namespace hutch::drivers::local
