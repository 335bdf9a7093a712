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
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/utsname.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <openssl/rand.h>

#include "agent/agent.h"
#include "agent/client.h"
#include "agent/config.h"
#include "agent/tls_ca.h"
#include "agent/tls_transport.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/scope_guard.h"
#include "common/time.h"
#include "drivers/driver.h"
#include "drivers/local/agent_start.h"
#include "drivers/local/attach.h"
#include "drivers/local/checkpoint_files.h"
#include "drivers/local/disk_pool.h"
#include "drivers/local/driver_state.h"
#include "drivers/local/host_image.h"
#include "drivers/local/id_slots.h"
#include "drivers/local/image_store.h"
#include "drivers/local/leftovers.h"
#include "drivers/local/local_driver.h"
#include "drivers/local/network.h"
#include "sandbox/caps.h"
#include "sandbox/cgroup.h"
#include "sandbox/dev.h"
#include "sandbox/fs.h"
#include "sandbox/idmap.h"
#include "sandbox/mount_api.h"
#include "sandbox/mountinfo.h"
#include "sandbox/netns.h"
#include "sandbox/process.h"
#include "sandbox/seccomp_policy.h"
#include "sandbox/usage.h"

namespace hutch::drivers {

namespace {

using local::ConnectOnce;
using local::DecodeState;
using local::EncodeState;
using local::HostImage;
using local::ListenAt;
using local::LocalSandboxState;
using local::LogTail;
using local::NewSandboxSecret;
using local::ReadStatusLine;
using local::SendAll;
using local::SendConfig;

// A step on the host's own files failed (the session's directory, its cgroup, a socketpair).
// ErrnoError names errnos in the API's codes, but here ENOENT is no missing session and EACCES
// no caller's lack of rights: whatever the errno, the failure is the server's (internal); the
// message keeps the errno.
Status HostFailure(Status st) {
  switch (st.code()) {
    case Code::kNotFound:
    case Code::kPermissionDenied:
    case Code::kConflict:
      return Status(Code::kInternal, st.message());
    default:
      return st;
  }
}
template <typename T>
Result<T> HostFailure(Result<T> r) {
  if (r.ok()) return r;
  return HostFailure(r.status());
}

// How long an agent gets from clone3 to "ready".
constexpr int64_t kReadyTimeoutMs = 10000;
// How long Destroy waits for a killed sandbox's processes to leave its cgroup.
constexpr int64_t kEmptyTimeoutMs = 5000;
constexpr uint64_t kNamespaces =
    CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET;
constexpr const char* kAgentEnvPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin";

// Session ids become path components and cgroup names.
bool ValidSessionId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  }
  return true;
}

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

// What MakeLocalDriver found out about this host and prepared once for every sandbox.
struct Hardening {
  UniqueFd agent_exe;                        // sealed memfd copy of hutch-agent
  std::string seccomp_filter;                // compiled DefaultSeccompRules()
  bool user_namespaces = false;              // whether sandboxes get one
  std::unique_ptr<local::IdSlots> id_slots;  // when they do
  std::unique_ptr<local::DiskPool> disks;    // null: tmpfs layers
  // local-tcp: the server's agent CA (data_dir/tls) and the client side every transport uses.
  std::unique_ptr<agent::AgentCa> agent_ca;
  std::shared_ptr<const agent::TlsDialer> agent_dialer;
};

class LocalDriver final : public Driver {
 public:
  LocalDriver(LocalDriverOptions options, std::unique_ptr<sandbox::CgroupManager> cgroups,
              HostImage image, std::unique_ptr<local::ImageStore> images, Hardening hardening)
      : options_(std::move(options)),
        cgroups_(std::move(cgroups)),
        image_(std::move(image)),
        images_(std::move(images)),
        hardening_(std::move(hardening)) {}

  // Sandboxes outlive the server: let go of the agents without killing them.
  ~LocalDriver() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [id, child] : children_) child.Detach();
    }
    // The pool goes; the rules stay while any nat sandbox lives (network.h).
    std::lock_guard<std::mutex> lock(network_mu_);
    network_.reset();
  }

  std::string Node() const override { return "local"; }
  Result<std::string> Create(const SandboxSpec& spec) override;
  Result<core::ExecResult> Exec(const std::string& session_id, const std::string& driver_state,
                                const core::ExecRequest& request) override;
  bool IsAlive(const std::string& session_id, const std::string& driver_state) override;
  Status Destroy(const std::string& session_id, const std::string& driver_state) override;
  Status Pause(const std::string& session_id, const std::string& driver_state) override;
  Status Resume(const std::string& session_id, const std::string& driver_state) override;
  Status Stop(const std::string& session_id, const std::string& driver_state) override;
  Status CheckStoppable() const override;
  Result<std::vector<std::string>> ListSandboxes() override;
  Result<std::shared_ptr<const agent::Transport>> ConnectAgent(
      const std::string& session_id, const std::string& driver_state) override;
  Result<core::LogChunk> ReadLog(const std::string& session_id, const std::string& driver_state,
                                 uint64_t offset, uint32_t max_bytes) override;
  Result<std::unique_ptr<AttachedAgent>> Attach(
      const std::string& attach_id, const core::AttachTarget& target,
      const std::map<std::string, std::string>& env) override {
    return local::StartAttachedAgent(
        {options_.data_dir, options_.agent_path, hardening_.agent_exe.get()}, attach_id, target,
        env);
  }
  Result<core::SandboxStats> Stats(const std::string& session_id,
                                   const std::string& driver_state) override;
  Result<CheckpointInfo> Checkpoint(const std::string& session_id, const std::string& driver_state,
                                    const std::string& name, bool freeze) override;
  Result<std::vector<CheckpointInfo>> ListCheckpoints(const std::string& session_id) override;
  Result<CheckpointInfo> GetCheckpoint(const std::string& session_id,
                                       const std::string& name) override;
  Status DeleteCheckpoint(const std::string& session_id, const std::string& name) override;
  Status DeleteCheckpoints(const std::string& session_id) override;
  Status RestoreLayer(const std::string& session_id, const std::string& from_session,
                      const std::string& name) override;
  Result<std::vector<ImageInfo>> ListImages() override;
  Result<ImageInfo> GetImage(const std::string& name) override;
  Result<std::unique_ptr<ImageUpload>> BeginImageUpload() override;
  Result<ImageInfo> ImportImage(const std::string& name, const std::string& owner,
                                ImageUpload& upload, const std::string& format,
                                const ProgressFn& progress) override;
  Result<ImageInfo> BuildImage(const std::string& name, const std::string& owner,
                               const DebootstrapSpec& spec, const ProgressFn& progress,
                               const std::atomic<bool>* cancel) override;
  Status DeleteImage(const std::string& name) override;
  Result<ImageInfo> CommitSession(const std::string& session_id, const std::string& driver_state,
                                  const std::string& base_image, const std::string& image,
                                  const std::string& owner, bool freeze,
                                  const ProgressFn& progress) override;
  Status CreateVolume(const std::string& volume_id, int64_t size_mb) override;
  Status DeleteVolume(const std::string& volume_id) override;
  Result<VolumeUsage> GetVolumeUsage(const std::string& volume_id) override;
  Status CopyVolume(const std::string& from, const std::string& to,
                    const VolumeHolder* holder) override;
  Result<std::vector<Leftover>> ListLeftovers(std::chrono::seconds min_age) override {
    return local::FindLeftovers(options_.data_dir, *cgroups_, min_age);
  }
  Status RemoveLeftover(const Leftover& leftover) override {
    if (leftover.kind == "checkpoints") return DeleteCheckpoints(leftover.session_id);
    return local::RemoveLeftoverObject(options_.data_dir, *cgroups_, leftover);
  }

  // Starts nat networking (pool and firewall) if it is not running yet.
  Result<local::LocalNetwork*> Network();
  const LocalDriverOptions& options() const { return options_; }

  bool WaitIdle(int timeout_ms) {
    return !hardening_.disks || hardening_.disks->WaitIdle(timeout_ms);
  }

 private:
  std::string SessionDir(std::string_view id) const {
    return fmt::format("{}/sessions/{}", options_.data_dir, id);
  }
  std::string SocketPath(std::string_view id) const { return SessionDir(id) + "/agent.sock"; }
  std::string LayerImagePath(std::string_view id) const { return SessionDir(id) + "/layer.img"; }
  std::string CheckpointsDir() const { return options_.data_dir + "/checkpoints"; }
  std::string CheckpointDir(std::string_view id) const {
    return fmt::format("{}/{}", CheckpointsDir(), id);
  }
  std::string VolumesDir() const { return options_.data_dir + "/volumes"; }
  std::string VolumeImagePath(std::string_view volume_id) const {
    return fmt::format("{}/{}.img", VolumesDir(), volume_id);
  }
  // The detached, idmapped mount of a volume for a sandbox (step 6 of Create).
  Result<UniqueFd> MountVolume(std::string_view session_id, const VolumeAttach& volume,
                               int userns_fd);
  Status CheckCheckpointable() const;
  Result<std::string> CheckpointKey();
  // Reads and checks the manifest of a checkpoint (not its image).
  Result<local::CheckpointManifest> ReadManifest(const std::string& session_id,
                                                 const std::string& name);
  // Copies checkpoint `name` of `from_session` to the new file `dest` and checks the copy —
  // what will be mounted, not the original, which could change after the check — against the
  // manifest. On any failure `dest` is removed.
  Status CopyVerifiedCheckpoint(const std::string& from_session, const std::string& name,
                                const std::string& dest);
  // Pushes everything the sandbox wrote to its disk into the image.
  Status SyncLayer(const std::string& id, const std::string& driver_state);
  // syncfs of the filesystem mounted at holder.path in the sandbox, through its agent's /proc
  // entry (checked to be the same process); nothing when the agent is gone.
  Status SyncMountOf(const VolumeHolder& holder);
  Status KillAgent(const std::string& id, const LocalSandboxState* state,
                   const sandbox::CgroupView& group);
  // Whether the sandbox's group is split into agent and work leaves (made since pausing keeps
  // the agent running).
  static bool HasLeaves(const std::string& driver_state);
  // Thaws the group and its work leaf (whichever is frozen).
  static void ThawAll(const sandbox::CgroupView& group);
  // Kills the agent and everything in the cgroup, removes the cgroup and the nat rules, and
  // releases the id slot (Stop and Destroy). The session's disk, if this process holds it, is
  // handed to *disk.
  Status KillSandbox(const std::string& id, const std::string& driver_state,
                     std::pair<int64_t, local::DiskPool::Disk>* disk);
  // Step 6 of Create: the detached mounts of the new root, and the config that points at them.
  // *disk_ref: the session's disk from the pool (or, reuse_layer, the one a Stop kept).
  // `image_layers`: the verified layer directories of an imported image, bottom first; empty
  // for `host`.
  Status PrepareRoot(std::string_view id, int64_t disk_mb, bool reuse_layer,
                     const std::string& layer_from_session, const std::string& layer_from_name,
                     const std::vector<std::string>& image_layers,
                     const std::vector<VolumeAttach>& volumes, int userns_fd,
                     const sandbox::IdRange& range, agent::AgentConfig* config,
                     std::vector<UniqueFd>* fds, local::DiskPool::Disk* disk_ref,
                     int64_t* disk_ref_mb);

  const LocalDriverOptions options_;
  const std::unique_ptr<sandbox::CgroupManager> cgroups_;
  const HostImage image_;
  const std::unique_ptr<local::ImageStore> images_;
  const Hardening hardening_;

  std::mutex mu_;
  // Agents this process started, by session id: reaped through their pidfd on Destroy.
  std::map<std::string, sandbox::ChildProcess> children_;  // GUARDED_BY(mu_)
  // The disks of the sandboxes this process made, by session id, with their size.
  std::map<std::string, std::pair<int64_t, local::DiskPool::Disk>> disk_refs_;  // GUARDED_BY(mu_)

  std::mutex network_mu_;
  std::unique_ptr<local::LocalNetwork> network_;  // GUARDED_BY(network_mu_); made on first use

  std::mutex key_mu_;
  std::string checkpoint_key_;  // GUARDED_BY(key_mu_); loaded on first use
};

Result<local::LocalNetwork*> LocalDriver::Network() {
  std::lock_guard<std::mutex> lock(network_mu_);
  if (!network_) {
    ASSIGN_OR_RETURN(network_, local::LocalNetwork::Start(options_.nat, options_.tcp_agents));
  }
  return network_.get();
}

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

Result<std::string> LocalDriver::Create(const SandboxSpec& spec) {
  const std::string& id = spec.session_id;
  if (!ValidSessionId(id)) return InvalidArgument(fmt::format("bad session id: {}", id));
  // An imported image's layers are checked against their signed records before anything runs
  // on them (image_store.h: what is checked when).
  std::vector<std::string> image_layers;
  std::vector<std::string> image_env;
  std::string image_workdir;
  if (spec.image != "host" && !spec.image.empty()) {
    ASSIGN_OR_RETURN(local::ImageRecord record, images_->Get(spec.image));
    ASSIGN_OR_RETURN(image_layers, images_->VerifiedLayerDirs(spec.image));
    image_env = record.config.env;
    image_workdir = record.config.workdir;
  }
  std::string hostname = spec.hostname.empty() ? id : spec.hostname;
  for (char& c : hostname) {
    if (c == '_') c = '-';
  }
  if (!ValidHostname(hostname)) return InvalidArgument("bad hostname: " + hostname);
  const core::Resources& res = spec.resources;
  if (res.memory_mb < 0 || res.cpus < 0 || res.pids < 0 || res.disk_mb < 0) {
    return InvalidArgument("resources must not be negative");
  }
  if (!spec.layer_from_session.empty() &&
      (spec.reuse_layer || !ValidSessionId(spec.layer_from_session) ||
       !local::IsValidCheckpointFileName(spec.layer_from_name))) {
    return InvalidArgument(fmt::format("bad checkpoint to start {} from: {}/{}", id,
                                       spec.layer_from_session, spec.layer_from_name));
  }
  for (const VolumeAttach& v : spec.volumes) {
    if (!ValidSessionId(v.volume_id) || !core::CheckVolumePath(v.path).empty())
      return InvalidArgument(fmt::format("bad volume for {}: {} at {}", id, v.volume_id, v.path));
  }
  const bool nat = spec.network.mode == "nat";
  if (!nat && !spec.network.mode.empty() && spec.network.mode != "none") {
    return InvalidArgument("unknown network mode: " + spec.network.mode);
  }
  // local-tcp: every sandbox has a veth, the agent's only way in.
  const bool tcp = options_.tcp_agents;
  const int64_t disk_mb = res.disk_mb > 0 ? res.disk_mb : options_.warm_disk_mb;
  int64_t t0 = MonotonicMillis();

  // 1. The session directory (new, or the one a Stop() kept with the disk's image), the log
  // and the agent's socket.
  std::string dir = SessionDir(id);
  if (spec.reuse_layer) {
    if (hardening_.disks && !sandbox::PathExists(LayerImagePath(id))) {
      return NotFound(fmt::format("the writable layer of {} is gone; it cannot start again", id));
    }
    unlink(SocketPath(id).c_str());
  } else if (mkdir(dir.c_str(), 0700) != 0) {
    if (errno == EEXIST) return Conflict(fmt::format("a sandbox for {} exists already", id));
    return HostFailure(ErrnoError("mkdir " + dir, errno));
  }
  // A failed create removes what it made, but never a kept layer.
  ScopeGuard remove_dir([&] {
    if (spec.reuse_layer) {
      unlink(SocketPath(id).c_str());
      return;
    }
    Status st = sandbox::RemoveTree(dir);
    if (!st.ok()) LOG_SESSION_WARN(id, "cleanup after failed create: {}", st.ToString());
  });
  std::string log_path = dir + "/agent.log";
  UniqueFd log_fd(open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log_fd) return HostFailure(ErrnoError("create " + log_path, errno));
  // The agent serves the log (LogRead) through a read-only fd of its own: it cannot open a
  // host path, and its stderr is write-only.
  UniqueFd log_read_fd(open(log_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!log_read_fd) return HostFailure(ErrnoError("open " + log_path, errno));
  UniqueFd null_fd(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null_fd) return ErrnoError("open /dev/null", errno);
  std::string socket_path = tcp ? std::string() : SocketPath(id);
  UniqueFd listen_fd;
  if (!tcp) {
    ASSIGN_OR_RETURN(listen_fd, ListenAt(socket_path));
  }

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

  // 3. The cgroup, with the limits.
  sandbox::CgroupLimits limits;
  if (res.memory_mb > 0) {
    limits.memory_bytes = res.memory_mb << 20;
    limits.swap_bytes = res.memory_mb << 20;  // "swap is limited to the same amount"
  }
  if (res.cpus > 0) {
    limits.cpu_period_us = 100000;
    limits.cpu_quota_us = static_cast<int64_t>(res.cpus * 100000.0 + 0.5);
    if (limits.cpu_quota_us < 1000) limits.cpu_quota_us = 1000;  // the kernel's minimum
  }
  limits.pids_max = res.pids;
  ASSIGN_OR_RETURN(sandbox::Cgroup group, HostFailure(cgroups_->CreateGroup(id, limits)));
  // The leaves: without them (v1 without a freezer hierarchy, where nothing can pause) the
  // agent and its children share the group.
  Status leaves = cgroups_->CreateLeaves(group);
  if (!leaves.ok() && leaves.code() != Code::kUnavailable) return HostFailure(leaves);
  const bool split = leaves.ok();
  UniqueFd work_procs;
  if (split) {
    // v1: the tasks file, which lets the agent move one thread — its spawner — there once
    // instead of every child migrating itself (agent/reaper.h says why).
    sandbox::CgroupView work = group.Leaf(sandbox::kWorkLeaf);
    ASSIGN_OR_RETURN(work_procs, HostFailure(group.version() == sandbox::CgroupVersion::kV1
                                                 ? work.OpenTasksFile()
                                                 : work.OpenProcsFile()));
  }

  // 3b. nat: a wired namespace from the pool, with the session's rules.
  std::optional<local::NatLease> lease;
  std::string resolv_conf;
  if (nat || tcp) {
    ASSIGN_OR_RETURN(local::LocalNetwork * network, Network());
    core::NetworkSpec wiring = spec.network;
    if (!nat) {
      // Mode none under local-tcp: the veth is there for the agent only. Nothing is forwarded
      // from the sandbox (a chain of its own drops every destination, DNS included; the
      // base rules drop what it sends to the host and let through only the replies of the
      // server's connections to the agent's port).
      wiring.allow_out.clear();
      wiring.deny_out = {"0.0.0.0/0"};
    }
    ASSIGN_OR_RETURN(local::NatLease acquired, network->Acquire(id, wiring));
    lease.emplace(std::move(acquired));
    if (nat) resolv_conf = network->resolv_conf();
  }
  if (tcp) {
    ASSIGN_OR_RETURN(sandbox::ScopedNetns inside, sandbox::ScopedNetns::Enter(lease->netns_fd()));
    ASSIGN_OR_RETURN(listen_fd, ListenTcp(lease->address()));
  }

  // Config and status travel over socketpairs rather than pipes: send() with MSG_NOSIGNAL
  // cannot SIGPIPE the server when the agent dies early, and the config carries fds.
  int config_pair[2], status_pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, config_pair) != 0) {
    return ErrnoError("socketpair", errno);
  }
  UniqueFd config_w(config_pair[0]), config_r(config_pair[1]);
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, status_pair) != 0) {
    return ErrnoError("socketpair", errno);
  }
  UniqueFd status_r(status_pair[0]), status_w(status_pair[1]);

  // 4. The agent, in its namespaces.
  sandbox::SpawnOptions spawn;
  spawn.path = options_.agent_path;
  spawn.exec_fd = hardening_.agent_exe.get();
  spawn.argv = {"hutch-agent", "--sandbox"};
  spawn.env = {kAgentEnvPath};
  spawn.clone_flags = lease ? kNamespaces & ~uint64_t{CLONE_NEWNET} : kNamespaces;
  spawn.child_fds = {
      null_fd.get(),  log_fd.get(),    log_fd.get(),      config_r.get(),
      status_w.get(), listen_fd.get(), log_read_fd.get(), split ? work_procs.get() : null_fd.get()};
  static_assert(agent::kConfigFd == 3 && agent::kStatusFd == 4 && agent::kListenFd == 5 &&
                agent::kLogFd == 6 && agent::kWorkCgroupFd == 7);
  spawn.exec_error_fd = agent::kStatusFd;
  if (hardening_.user_namespaces) {
    spawn.clone_flags |= CLONE_NEWUSER;
    spawn.userns_ready_fd = agent::kConfigFd;
  }
  UniqueFd cgroup_fd;
  if (group.version() == sandbox::CgroupVersion::kV2) {
    ASSIGN_OR_RETURN(cgroup_fd, HostFailure(split ? group.Leaf(sandbox::kAgentLeaf).OpenDirFd()
                                                  : group.OpenDirFd()));
    spawn.cgroup_fd = cgroup_fd.get();
  } else {
    spawn.join_cgroup_tasks = group.TasksFiles(split ? sandbox::kAgentLeaf : "");
  }
  Result<sandbox::ChildProcess> spawned = [&]() -> Result<sandbox::ChildProcess> {
    if (!lease) return sandbox::SpawnProcess(spawn);
    // clone3 gives the child the calling thread's network namespace: stand in the lease's for
    // the call, and only this thread, only for the call.
    ASSIGN_OR_RETURN(sandbox::ScopedNetns inside, sandbox::ScopedNetns::Enter(lease->netns_fd()));
    return sandbox::SpawnProcess(spawn);
  }();
  ASSIGN_OR_RETURN(sandbox::ChildProcess agent, HostFailure(std::move(spawned)));
  int64_t t_spawned = MonotonicMillis();
  // Our copies of the child's ends: closing them lets EOF tell us the agent died.
  config_r.Reset();
  status_w.Reset();
  listen_fd.Reset();
  log_read_fd.Reset();
  cgroup_fd.Reset();
  work_procs.Reset();

  // 5. Its user namespace: the maps, then the byte that lets it become root there and exec.
  // The agent is in its cgroups already: on v2 it was cloned into its group; on v1 the child
  // joined each hierarchy before waiting for this (see SpawnOptions::join_cgroup_tasks for why
  // the child does it and not we, with cgroup.procs).
  UniqueFd userns_fd;
  Status sent = Status::Ok();
  if (hardening_.user_namespaces) {
    RETURN_IF_ERROR(HostFailure(sandbox::WriteIdMaps(agent.pid(), range)));
    sent = SendAll(config_w.get(), "u");
    // The child is ours and not yet reaped, so its pid cannot name another process here.
    userns_fd.Reset(
        open(fmt::format("/proc/{}/ns/user", agent.pid()).c_str(), O_RDONLY | O_CLOEXEC));
    if (!userns_fd) return HostFailure(ErrnoError("open the user namespace of the agent", errno));
  }

  // 6. The root's pieces and the config. (The agent execs meanwhile.)
  agent::AgentConfig config;
  config.session_id = id;
  ASSIGN_OR_RETURN(config.secret, NewSandboxSecret());
  if (tcp) {
    ASSIGN_OR_RETURN(agent::IssuedCertificate cert, hardening_.agent_ca->IssueAgent(id));
    config.tls_cert = std::move(cert.cert_pem);
    config.tls_key = std::move(cert.key_pem);
    config.tls_ca = hardening_.agent_ca->ca_pem();
  }
  config.hostname = hostname;
  // The image's env under the session's own.
  for (const auto& kv : image_env) {
    size_t eq = kv.find('=');
    if (eq != std::string::npos && eq > 0) config.env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  for (const auto& [k, v] : spec.env) config.env[k] = v;
  // The image's WORKDIR: where its exec, terminals and services start unless they say.
  config.workdir = image_workdir;
  config.resolv_conf = resolv_conf;
  config.user_namespace = hardening_.user_namespaces;
  config.capabilities = sandbox::SandboxCapabilityMask();
  config.seccomp_filter = hardening_.seccomp_filter;
  std::vector<UniqueFd> mount_fds;
  local::DiskPool::Disk disk_ref;
  int64_t disk_ref_mb = 0;
  // Until the sandbox is complete a disk it took goes back to the pool; a kept one stays.
  ScopeGuard give_back_disk([&] {
    if (!disk_ref) return;
    if (spec.reuse_layer) {
      (void)local::DiskPool::Keep(std::move(disk_ref));
    } else {
      hardening_.disks->Return(disk_ref_mb, std::move(disk_ref));
    }
  });
  RETURN_IF_ERROR(PrepareRoot(id, disk_mb, spec.reuse_layer, spec.layer_from_session,
                              spec.layer_from_name, image_layers, spec.volumes, userns_fd.get(),
                              range, &config, &mount_fds, &disk_ref, &disk_ref_mb)
                      .WithContext(fmt::format("prepare the root of {}", id)));
  userns_fd.Reset();
  std::vector<int> raw_fds;
  for (const auto& f : mount_fds) raw_fds.push_back(f.get());
  // A failed send means the agent is gone already; the status channel says why (an exec
  // error), so it is read either way.
  if (sent.ok()) sent = SendConfig(config_w.get(), agent::EncodeAgentConfig(config), raw_fds);
  config_w.Reset();
  mount_fds.clear();

  // 7. Ready?
  auto line = ReadStatusLine(status_r.get(), t0 + kReadyTimeoutMs);
  if (!line.ok()) {
    return Unavailable(fmt::format("hutch-agent of {} did not get ready within {} ms{}", id,
                                   kReadyTimeoutMs, LogTail(log_path)));
  }
  std::string expected_ready = fmt::format("ready {}", agent::kProtocolVersion);
  if (line->starts_with("ready ") && *line != expected_ready) {
    return Internal(fmt::format(
        "start sandbox {}: hutch-agent at {} speaks agent protocol {}, this server {}: install "
        "the hutch-agent that was built with this hutch",
        id, options_.agent_path, line->substr(6), agent::kProtocolVersion));
  }
  if (*line != expected_ready) {
    std::string why = !line->empty() ? *line
                      : sent.ok()
                          ? "hutch-agent exited before it was ready"
                          : "hutch-agent exited before it was ready (" + sent.message() + ")";
    return Internal(fmt::format("start sandbox {}: {}{}", id, why, LogTail(log_path)));
  }
  int64_t t_ready = MonotonicMillis();
  // The socket was listening before "ready" was sent; a connect proves it is there. (The
  // protocol version came with "ready", so no Hello round trip is needed.)
  // (A TCP agent's socket was made here, listening, in its namespace: nothing to prove.)
  if (!tcp) RETURN_IF_ERROR(ConnectOnce(socket_path, id));

  LocalSandboxState state;
  state.agent_pid = agent.pid();
  ASSIGN_OR_RETURN(state.agent_start_time, sandbox::ReadProcessStartTime(agent.pid()));
  state.socket_path = socket_path;
  state.session_dir = dir;
  state.cgroup_version = std::string(sandbox::ToString(group.version()));
  state.cgroups = group.paths();
  state.cgroup_leaves = split;
  state.id_slot = id_slot;
  state.secret = config.secret;
  if (tcp) state.agent_port = kAgentTcpPort;
  if (lease) {
    state.veth = lease->ifname();
    state.address = core::FormatIpv4(lease->address());
    state.nat_rules = lease->has_rules();
  }

  remove_dir.Cancel();
  release_slot.Cancel();
  give_back_disk.Cancel();
  if (lease) lease->Commit();
  group.Release();
  {
    std::lock_guard<std::mutex> lock(mu_);
    children_[id] = std::move(agent);
    if (disk_ref) disk_refs_[id] = {disk_ref_mb, std::move(disk_ref)};
  }
  LOG_SESSION_DEBUG(id, "sandbox ready in {} ms (spawn {} ms, agent setup {} ms)",
                    MonotonicMillis() - t0, t_spawned - t0, t_ready - t_spawned);
  return EncodeState(state);
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

Status LocalDriver::KillAgent(const std::string& id, const LocalSandboxState* state,
                              const sandbox::CgroupView& group) {
  sandbox::ChildProcess child;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = children_.find(id);
    if (it != children_.end()) {
      child = std::move(it->second);
      children_.erase(it);
    }
  }
  if (child.valid()) {
    // Our own child: SIGKILL through the pidfd and reap it. Killing PID 1 of a pid namespace
    // kills every process in it, and the agent is reaped only after they are all gone.
    RETURN_IF_ERROR(child.Signal(SIGKILL));
    auto status = child.Wait();
    if (!status.ok()) LOG_SESSION_WARN(id, "reap hutch-agent: {}", status.status().ToString());
    return Status::Ok();
  }
  if (!state || state->agent_pid <= 0) return Status::Ok();
  // Started by an earlier server process: only the pid is known. Open a pidfd first, then
  // check that it is still the same process (start time) and one of ours (cgroup): a reused
  // pid fails the check, and the pidfd cannot switch to another process afterwards.
  auto pidfd = sandbox::OpenPidfd(state->agent_pid);
  if (!pidfd.ok()) return Status::Ok();  // gone
  auto start = sandbox::ReadProcessStartTime(state->agent_pid);
  if (!start.ok() || *start != state->agent_start_time || !group.HasProcess(state->agent_pid)) {
    return Status::Ok();  // the pid now names someone else
  }
  sandbox::ChildProcess foreign(state->agent_pid, std::move(*pidfd));
  RETURN_IF_ERROR(foreign.Signal(SIGKILL));
  if (!foreign.WaitExited(static_cast<int>(kEmptyTimeoutMs))) {
    LOG_SESSION_WARN(id, "hutch-agent pid {} did not exit after SIGKILL", state->agent_pid);
    foreign.Detach();
    return Status::Ok();
  }
  // Normally its parent (init, after the old server died) reaps it; if this process is still
  // its parent (a driver re-created in the same process), reap it here so no zombie stays.
  // waitid on a pidfd of a process that is not our child fails with ECHILD at once.
  (void)foreign.Wait();
  return Status::Ok();
}

Status LocalDriver::KillSandbox(const std::string& id, const std::string& driver_state,
                                std::pair<int64_t, local::DiskPool::Disk>* disk) {
  // Paths come from the id, never from the stored state: a corrupt state must not point
  // rm -rf elsewhere. The state only contributes the agent's pid, the veth and the id slot.
  std::optional<LocalSandboxState> state;
  if (!driver_state.empty()) {
    auto decoded = DecodeState(driver_state);
    if (decoded.ok()) {
      state = *decoded;
    } else {
      LOG_SESSION_WARN(id, "destroy: ignoring driver state: {}", decoded.status().ToString());
    }
  }
  int64_t t0 = MonotonicMillis();
  sandbox::Cgroup group(cgroups_->OpenGroup(id));  // removed below
  // A paused sandbox's processes cannot die while frozen (v1); let them run into the kill.
  ThawAll(group);
  RETURN_IF_ERROR(KillAgent(id, state ? &*state : nullptr, group));
  int64_t t_killed = MonotonicMillis();

  // Whatever is left in the cgroup (nothing, normally: the pid namespace died with its PID 1).
  Status empty = group.WaitEmpty(100);
  if (!empty.ok()) {
    LOG_SESSION_WARN(id, "destroy: {}; killing what is left", empty.ToString());
    RETURN_IF_ERROR(group.KillAll());
    RETURN_IF_ERROR(group.WaitEmpty(kEmptyTimeoutMs));
  }
  int64_t t_empty = MonotonicMillis();
  RETURN_IF_ERROR(group.Remove());
  if (state && !state->veth.empty()) {
    // The veth goes with the namespace, which went with the last process; the rules are ours.
    // Rules left behind by a failure here are swept at the next start (network.h).
    auto network = Network();
    Status released =
        network.ok() ? (*network)->Release(state->veth, state->nat_rules) : network.status();
    if (!released.ok()) {
      LOG_SESSION_WARN(id, "destroy: rules of {}: {}", state->veth, released.ToString());
    }
  }
  // Every process of the sandbox is gone. (A sandbox of an earlier server process took its
  // disk's mount with it: the agent held the last reference.)
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = disk_refs_.find(id); it != disk_refs_.end()) {
      *disk = std::move(it->second);
      disk_refs_.erase(it);
    }
  }
  if (state && state->id_slot >= 0 && hardening_.id_slots) {
    RETURN_IF_ERROR(hardening_.id_slots->Release(static_cast<uint32_t>(state->id_slot), id));
  }
  LOG_SESSION_DEBUG(id, "killed in {} ms (kill {} ms, cgroup empty {} ms, rmdir {} ms)",
                    MonotonicMillis() - t0, t_killed - t0, t_empty - t_killed,
                    MonotonicMillis() - t_empty);
  return Status::Ok();
}

Status LocalDriver::Destroy(const std::string& session_id, const std::string& driver_state) {
  if (!ValidSessionId(session_id)) return InvalidArgument("bad session id: " + session_id);
  std::pair<int64_t, local::DiskPool::Disk> disk;
  RETURN_IF_ERROR(KillSandbox(session_id, driver_state, &disk));
  // The disk goes back to the pool, which empties it for the next session; its image moves
  // out of the session's directory first.
  if (disk.second && hardening_.disks) hardening_.disks->Return(disk.first, std::move(disk.second));
  return sandbox::RemoveTree(SessionDir(session_id));
}

Status LocalDriver::CheckStoppable() const {
  if (hardening_.disks) return Status::Ok();
  return Conflict(
      "sessions cannot be stopped on this server: it keeps writable layers in memory (tmpfs: "
      "no loop devices or mke2fs on this host, or disk: tmpfs configured), so a stop would lose "
      "the files; pause the session instead, or delete it");
}

Status LocalDriver::Stop(const std::string& session_id, const std::string& driver_state) {
  if (!ValidSessionId(session_id)) return InvalidArgument("bad session id: " + session_id);
  RETURN_IF_ERROR(CheckStoppable());
  std::pair<int64_t, local::DiskPool::Disk> disk;
  RETURN_IF_ERROR(KillSandbox(session_id, driver_state, &disk));
  // The layer stays, as the disk's image in the session's directory; the socket of the dead
  // agent goes so nothing mistakes it for a live one.
  unlink(SocketPath(session_id).c_str());
  if (disk.second) RETURN_IF_ERROR(local::DiskPool::Keep(std::move(disk.second)));
  return Status::Ok();
}

// Pausing freezes the work leaf: the workload stops, the agent keeps answering (files, logs,
// pings) — sandbox/cgroup.h and docs/architecture.md ("Pausing"). The split is permanent, made
// at Create, so a server that dies while a session is paused leaves nothing to undo: the leaf
// stays frozen, Resume thaws it, Destroy removes it with the group. A sandbox made before the
// split has no leaves; its whole group is frozen, agent included, as before.
Status LocalDriver::Pause(const std::string& session_id, const std::string& driver_state) {
  if (!ValidSessionId(session_id)) return InvalidArgument("bad session id: " + session_id);
  sandbox::CgroupView group = cgroups_->OpenGroup(session_id);
  Status st = HasLeaves(driver_state) ? group.Leaf(sandbox::kWorkLeaf).Freeze() : group.Freeze();
  return st.ok() ? st : HostFailure(st.WithContext("pause " + session_id));
}

Status LocalDriver::Resume(const std::string& session_id, const std::string&) {
  if (!ValidSessionId(session_id)) return InvalidArgument("bad session id: " + session_id);
  sandbox::CgroupView group = cgroups_->OpenGroup(session_id);
  // Both: the group itself is frozen for a sandbox without leaves, or by a checkpoint a crash
  // interrupted.
  Status st = group.Leaf(sandbox::kWorkLeaf).Thaw();
  if (st.ok()) st = group.Thaw();
  return st.ok() ? st : HostFailure(st.WithContext("resume " + session_id));
}

bool LocalDriver::HasLeaves(const std::string& driver_state) {
  auto state = DecodeState(driver_state);
  return state.ok() && state->cgroup_leaves;
}

void LocalDriver::ThawAll(const sandbox::CgroupView& group) {
  (void)group.Leaf(sandbox::kWorkLeaf).Thaw();
  (void)group.Thaw();
}

// --- volumes ----------------------------------------------------------------------------------
//
// A volume is an ext4 image, data_dir/volumes/<id>.img, made like a session's disk (a sparse copy
// of the size's mke2fs template), so its size is a hard limit: ENOSPC inside when it is full,
// nothing beyond it taken from the host. A sandbox gets it as a detached mount of its own loop
// device, idmapped to its user namespace (the files keep the ids they have inside on disk, root
// is 0, whatever host range a session maps) — like its disk. The mount lives only in the
// sandbox's mount namespace: when the sandbox goes the filesystem is unmounted (written back)
// and the loop device detaches itself (autoclear). Nothing is mounted on the host.
//
// ext4 is not a shared-disk filesystem: two superblocks on one image are safe only while neither
// writes. So a read-only attach mounts the filesystem read-only (the superblock, not just the
// mount: it never writes, not even at unmount), and the controller lets a volume be attached
// read-write by one live session and nothing else, or read-only by any number. What is left is
// the short time after a sandbox died in which its filesystem is still being unmounted: before
// attaching, MountVolume waits until no loop device that could write backs the image (any at
// all, for a read-write attach).

namespace {

// The loop devices backed by `path` (its real path), and whether each is read-only.
std::vector<std::pair<std::string, bool>> LoopDevicesBacking(const std::string& path) {
  std::vector<std::pair<std::string, bool>> out;
  DIR* d = opendir("/sys/block");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string_view name = e->d_name;
    if (!name.starts_with("loop")) continue;
    std::string base = fmt::format("/sys/block/{}", name);
    auto backing = sandbox::ReadFileToString(base + "/loop/backing_file");
    if (!backing.ok()) continue;
    std::string b = *backing;
    while (!b.empty() && b.back() == '\n') b.pop_back();
    if (b != path) continue;
    auto ro = sandbox::ReadFileToString(base + "/ro");
    out.emplace_back(std::string(name), ro.ok() && ro->starts_with("1"));
  }
  closedir(d);
  return out;
}

// How long an attach waits for the filesystem of a sandbox that just ended to let go.
constexpr int64_t kVolumeReleaseTimeoutMs = 10000;

bool ValidVolumeId(std::string_view id) { return id.starts_with("vol_") && ValidSessionId(id); }

}  // namespace

Result<UniqueFd> LocalDriver::MountVolume(std::string_view session_id, const VolumeAttach& volume,
                                          int userns_fd) {
  if (!hardening_.disks)
    return Unavailable(
        "volumes need loop devices and mke2fs, which this server does not have (it keeps "
        "writable layers in memory)");
  const std::string image = VolumeImagePath(volume.volume_id);
  char real[PATH_MAX];
  if (!realpath(image.c_str(), real)) {
    if (errno == ENOENT)
      return NotFound(fmt::format("the data of volume {} is gone", volume.volume_id));
    return ErrnoError("realpath " + image, errno);
  }
  for (int64_t deadline = MonotonicMillis() + kVolumeReleaseTimeoutMs;;) {
    bool busy = false;
    for (const auto& [dev, ro] : LoopDevicesBacking(real)) {
      if (!volume.read_only || !ro) busy = true;
    }
    if (!busy) break;
    if (MonotonicMillis() > deadline)
      return Conflict(
          fmt::format("volume {} is still held by a session that ended (its filesystem is being "
                      "unmounted); retry in a moment",
                      volume.volume_id));
    usleep(20 * 1000);
  }
  UniqueFd fd(open(image.c_str(), (volume.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return ErrnoError("open " + image, errno);
  ASSIGN_OR_RETURN(UniqueFd fs, local::DiskPool::MountImageFile(fd.get(), volume.read_only));
  // idmapping needs a mount that was never attached; a clone of the filesystem's mount is one.
  UniqueFd mount(static_cast<int>(
      syscall(SYS_open_tree, fs.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH)));
  if (!mount) return ErrnoError("clone the mount of volume " + volume.volume_id, errno);
  sandbox::MountAttrs attrs;
  attrs.nosuid = true;
  attrs.nodev = true;
  attrs.read_only = volume.read_only;
  attrs.idmap_userns_fd = userns_fd;
  RETURN_IF_ERROR(sandbox::SetMountAttrs(
      mount.get(), attrs, fmt::format("volume {} of {}", volume.volume_id, session_id)));
  return mount;
}

Status LocalDriver::CreateVolume(const std::string& volume_id, int64_t size_mb) {
  if (!ValidVolumeId(volume_id)) return InvalidArgument("bad volume id: " + volume_id);
  if (!hardening_.disks)
    return Unavailable(
        "volumes need loop devices and mke2fs, which this server does not have (it keeps "
        "writable layers in memory)");
  if (size_mb < 16) return InvalidArgument("a volume has at least 16 MiB");
  struct statvfs vfs;
  if (statvfs(options_.data_dir.c_str(), &vfs) == 0) {
    uint64_t free_mb = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize >> 20;
    if (free_mb < static_cast<uint64_t>(size_mb))
      return Status(Code::kInsufficientStorage,
                    fmt::format("a {} MiB volume does not fit: {} has {} MiB free", size_mb,
                                options_.data_dir, free_mb));
  }
  RETURN_IF_ERROR(sandbox::MakeDirs(VolumesDir(), 0700));
  if (sandbox::PathExists(VolumeImagePath(volume_id)))
    return Conflict(fmt::format("volume {} exists already", volume_id));
  return hardening_.disks->MakeImage(size_mb, VolumeImagePath(volume_id));
}

Status LocalDriver::DeleteVolume(const std::string& volume_id) {
  if (!ValidVolumeId(volume_id)) return InvalidArgument("bad volume id: " + volume_id);
  // A loop device of a sandbox that is still going away keeps the file until it detaches.
  if (unlink(VolumeImagePath(volume_id).c_str()) != 0 && errno != ENOENT)
    return ErrnoError("remove " + VolumeImagePath(volume_id), errno);
  return Status::Ok();
}

Result<VolumeUsage> LocalDriver::GetVolumeUsage(const std::string& volume_id) {
  if (!ValidVolumeId(volume_id)) return InvalidArgument("bad volume id: " + volume_id);
  const std::string image = VolumeImagePath(volume_id);
  UniqueFd fd(open(image.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    if (errno == ENOENT) return NotFound(fmt::format("the data of volume {} is gone", volume_id));
    return ErrnoError("open " + image, errno);
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoError("stat " + image, errno);
  // The ext4 superblock, 1024 bytes in (little-endian fields; see ext4's struct ext4_super_block).
  unsigned char sb[1024];
  if (pread(fd.get(), sb, sizeof sb, 1024) != static_cast<ssize_t>(sizeof sb))
    return Internal(fmt::format("read the superblock of volume {}", volume_id));
  auto le32 = [&](size_t off) {
    return uint64_t{sb[off]} | uint64_t{sb[off + 1]} << 8 | uint64_t{sb[off + 2]} << 16 |
           uint64_t{sb[off + 3]} << 24;
  };
  if ((le32(0x38) & 0xffff) != 0xEF53)
    return Internal(fmt::format("volume {} holds no ext4 filesystem", volume_id));
  uint64_t block_size = uint64_t{1024} << le32(0x18);
  uint64_t blocks = le32(0x04), free_blocks = le32(0x0C);
  constexpr uint32_t kIncompat64Bit = 0x80;
  if (le32(0x60) & kIncompat64Bit) {
    blocks |= le32(0x150) << 32;
    free_blocks |= le32(0x158) << 32;
  }
  VolumeUsage u;
  u.size_bytes = static_cast<int64_t>(blocks * block_size);
  u.used_bytes = static_cast<int64_t>((blocks - std::min(blocks, free_blocks)) * block_size);
  u.allocated_bytes = static_cast<int64_t>(st.st_blocks) * 512;
  return u;
}

// The copy of a volume (remix): a reflink or sparse copy of its image. A volume a live sandbox
// writes is copied while the sandbox's whole group stands still (as for a checkpoint, the agent
// too: it may be writing a file for the files API), after a syncfs through the agent's view of
// the mount — so what the processes wrote reaches the image first. A paused sandbox is synced
// the same way: its agent is not frozen, and thawing the group leaves its work leaf frozen.
Status LocalDriver::CopyVolume(const std::string& from, const std::string& to,
                               const VolumeHolder* holder) {
  if (!ValidVolumeId(from) || !ValidVolumeId(to))
    return InvalidArgument(fmt::format("bad volume id: {} or {}", from, to));
  const std::string src_path = VolumeImagePath(from);
  UniqueFd src(open(src_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!src) {
    if (errno == ENOENT) return NotFound(fmt::format("the data of volume {} is gone", from));
    return ErrnoError("open " + src_path, errno);
  }
  const std::string dst_path = VolumeImagePath(to);
  if (sandbox::PathExists(dst_path)) return Conflict(fmt::format("volume {} exists already", to));
  const std::string tmp = fmt::format("{}.tmp-{}", dst_path, NewId("t"));
  UniqueFd dst(open(tmp.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  if (!dst) return ErrnoError("create " + tmp, errno);
  ScopeGuard remove_tmp([&] { unlink(tmp.c_str()); });
  {
    std::optional<sandbox::Cgroup> group;
    ScopeGuard thaw([&] {
      if (!group) return;
      if (Status st = group->Thaw(); !st.ok())
        LOG_SESSION_WARN(holder->session_id, "thaw after a volume copy: {}", st.ToString());
      group->Release();  // an opened group is not ours to remove
    });
    if (holder) {
      group.emplace(cgroups_->OpenGroup(holder->session_id));
      if (group->Exists()) {
        RETURN_IF_ERROR(group->Freeze().WithContext("freeze " + holder->session_id));
      }
      RETURN_IF_ERROR(SyncMountOf(*holder));
    }
    RETURN_IF_ERROR(local::CopyImage(src.get(), dst.get(), src_path));
  }
  if (fsync(dst.get()) != 0) return ErrnoError("fsync " + tmp, errno);
  if (rename(tmp.c_str(), dst_path.c_str()) != 0) return ErrnoError("rename " + tmp, errno);
  remove_tmp.Cancel();
  return Status::Ok();
}

Status LocalDriver::SyncMountOf(const VolumeHolder& holder) {
  auto state = DecodeState(holder.driver_state);
  if (!state.ok() || state->agent_pid <= 0) return Status::Ok();
  auto start = sandbox::ReadProcessStartTime(state->agent_pid);
  if (!start.ok() || *start != state->agent_start_time) return Status::Ok();  // the agent is gone
  // O_NOFOLLOW: the mount point itself, never where a symlink in the sandbox points.
  const std::string path = fmt::format("/proc/{}/root{}", state->agent_pid, holder.path);
  UniqueFd dir(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) return ErrnoError(fmt::format("open {} of {}", holder.path, holder.session_id), errno);
  if (syncfs(dir.get()) != 0)
    return ErrnoError(fmt::format("syncfs {} of {}", holder.path, holder.session_id), errno);
  return Status::Ok();
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
  // The writable layer is a filesystem of its own (the disk, or the tmpfs fallback); the
  // sandbox's root, an overlay, reports its upper filesystem's usage. Reached through the
  // agent's /proc entry, checked to be the same process (start time) and in this cgroup.
  if (state.agent_pid > 0) {
    auto start = sandbox::ReadProcessStartTime(state.agent_pid);
    if (start.ok() && *start == state.agent_start_time) {
      ASSIGN_OR_RETURN(sandbox::FsUsage fs,
                       sandbox::MeasureFilesystem(fmt::format("/proc/{}/root", state.agent_pid)));
      stats.disk_bytes = fs.used_bytes;
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

// --- checkpoints -------------------------------------------------------------------------------

Status LocalDriver::CheckCheckpointable() const {
  if (hardening_.disks) return Status::Ok();
  return Conflict(
      "checkpoints and forks need session disks, and this server keeps writable layers in "
      "memory (tmpfs: no loop devices or mke2fs on this host, or disk: tmpfs configured)");
}

Result<std::string> LocalDriver::CheckpointKey() {
  std::lock_guard<std::mutex> lock(key_mu_);
  if (checkpoint_key_.empty()) {
    ASSIGN_OR_RETURN(checkpoint_key_, local::LoadOrMakeCheckpointKey(CheckpointsDir()));
  }
  return checkpoint_key_;
}

Result<local::CheckpointManifest> LocalDriver::ReadManifest(const std::string& session_id,
                                                            const std::string& name) {
  if (!ValidSessionId(session_id)) return InvalidArgument("bad session id: " + session_id);
  if (!local::IsValidCheckpointFileName(name))
    return InvalidArgument(fmt::format("bad checkpoint name: {}", name));
  ASSIGN_OR_RETURN(std::string key, CheckpointKey());
  std::string path = fmt::format("{}/{}.json", CheckpointDir(session_id), name);
  auto text = sandbox::ReadFileToString(path);
  if (!text.ok()) {
    if (text.status().code() == Code::kNotFound)
      return NotFound(fmt::format("session {} has no checkpoint {}", session_id, name));
    return text.status();
  }
  auto m = local::DecodeManifest(*text, key);
  if (!m.ok()) return m.status().WithContext(fmt::format("checkpoint {}/{}", session_id, name));
  if (m->session_id != session_id || m->name != name) {
    return Conflict(fmt::format(
        "checkpoint {}/{}: integrity check failed: its manifest is {}/{}'s; it is not used",
        session_id, name, m->session_id, m->name));
  }
  return *m;
}

namespace {

CheckpointInfo InfoOf(const local::CheckpointManifest& m) {
  CheckpointInfo info;
  info.session_id = m.session_id;
  info.name = m.name;
  info.size_bytes = m.size_bytes;
  info.data_bytes = m.digest.data_bytes;
  info.sha256 = m.digest.sha256;
  info.created_at = m.created_at;
  info.freeze_ms = m.freeze_ms;
  info.duration_ms = m.duration_ms;
  return info;
}

}  // namespace

Status LocalDriver::SyncLayer(const std::string& id, const std::string& driver_state) {
  // The disk's mount, when this process made the sandbox; else the sandbox's root through its
  // agent's /proc entry (checked to be the same process): syncfs of the overlay syncs its upper
  // filesystem, the disk. A stopped session's disk was synced and unmounted by Stop.
  UniqueFd root;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = disk_refs_.find(id); it != disk_refs_.end()) {
      root.Reset(openat(it->second.second.mount.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!root) return ErrnoError(fmt::format("open the disk of {}", id), errno);
    }
  }
  if (!root) {
    auto state = DecodeState(driver_state);
    if (state.ok() && state->agent_pid > 0) {
      auto start = sandbox::ReadProcessStartTime(state->agent_pid);
      if (start.ok() && *start == state->agent_start_time) {
        root.Reset(open(fmt::format("/proc/{}/root", state->agent_pid).c_str(),
                        O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      }
    }
  }
  if (root && syncfs(root.get()) != 0) return ErrnoError(fmt::format("syncfs {}", id), errno);
  return Status::Ok();
}

Result<CheckpointInfo> LocalDriver::Checkpoint(const std::string& session_id,
                                               const std::string& driver_state,
                                               const std::string& name, bool freeze) {
  if (!ValidSessionId(session_id)) return InvalidArgument("bad session id: " + session_id);
  if (!local::IsValidCheckpointFileName(name))
    return InvalidArgument(fmt::format("bad checkpoint name: {}", name));
  RETURN_IF_ERROR(CheckCheckpointable());
  ASSIGN_OR_RETURN(std::string key, CheckpointKey());
  const int64_t t0 = MonotonicMillis();
  std::string layer = LayerImagePath(session_id);
  UniqueFd src(open(layer.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!src) {
    if (errno == ENOENT)
      return Conflict(fmt::format("{} has no writable layer to checkpoint", session_id));
    return ErrnoError("open " + layer, errno);
  }
  std::string dir = CheckpointDir(session_id);
  RETURN_IF_ERROR(sandbox::MakeDirs(dir, 0700));
  std::string image = fmt::format("{}/{}.img", dir, name);
  std::string manifest_path = fmt::format("{}/{}.json", dir, name);
  if (sandbox::PathExists(manifest_path))
    return Conflict(fmt::format("session {} has a checkpoint {} already", session_id, name));
  std::string tmp = fmt::format("{}.tmp-{}", image, NewId("t"));
  UniqueFd dst(open(tmp.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  if (!dst) return ErrnoError("create " + tmp, errno);
  ScopeGuard remove_tmp([&] { unlink(tmp.c_str()); });

  // Blocks the session freed stay allocated in the image (ext4 on the loop device does not
  // discard on delete): without a trim, a checkpoint would copy everything the session ever
  // wrote, not what it holds now (measured: 3 GiB copied for a 1 GiB file after two copies of
  // it had been made and removed). FITRIM punches the free blocks out of the image; it needs no
  // freeze (only free blocks are discarded) and costs little where they are holes already.
  // Only for disks this process mounted: an overlay does not pass FITRIM through.
  {
    UniqueFd disk_root;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = disk_refs_.find(session_id); it != disk_refs_.end()) {
        disk_root.Reset(
            openat(it->second.second.mount.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      }
    }
    fstrim_range range{0, ~0ULL, 0};
    if (disk_root && ioctl(disk_root.get(), FITRIM, &range) != 0) {
      LOG_SESSION_DEBUG(session_id, "checkpoint: FITRIM: {}",
                        strerrorname_np(errno) ? strerrorname_np(errno) : "?");
    }
  }
  // The capture: processes stand still (the freezer stops them between syscalls, so no write is
  // half done), everything they wrote goes through the loop device into the image, the image is
  // copied. Hashing the copy comes after the thaw: it is the copy that is immutable now.
  int64_t freeze_ms = 0;
  {
    sandbox::CgroupView group = cgroups_->OpenGroup(session_id);
    // A paused sandbox's agent still runs (and may write files for the files API): the whole
    // group stands still for the copy, the agent too. Thawing it leaves the paused work leaf
    // frozen (its own freeze).
    if (!freeze && HasLeaves(driver_state) && group.Exists()) freeze = true;
    if (freeze) RETURN_IF_ERROR(group.Freeze().WithContext("freeze " + session_id));
    const int64_t t_frozen = MonotonicMillis();
    ScopeGuard thaw([&] {
      if (!freeze) return;
      Status st = group.Thaw();
      if (!st.ok()) LOG_SESSION_WARN(session_id, "thaw after checkpoint: {}", st.ToString());
    });
    RETURN_IF_ERROR(SyncLayer(session_id, driver_state));
    RETURN_IF_ERROR(local::CopyImage(src.get(), dst.get(), layer));
    freeze_ms = MonotonicMillis() - t_frozen;
  }
  src.Reset();
  local::CheckpointManifest m;
  m.session_id = session_id;
  m.name = name;
  struct stat st;
  if (fstat(dst.get(), &st) != 0) return ErrnoError("stat " + tmp, errno);
  m.size_bytes = st.st_size;
  ASSIGN_OR_RETURN(m.digest, local::DigestImage(dst.get(), tmp));
  dst.Reset();
  if (rename(tmp.c_str(), image.c_str()) != 0) return ErrnoError("rename " + tmp, errno);
  remove_tmp.Cancel();
  m.created_at = Now();
  m.freeze_ms = freeze_ms;
  m.duration_ms = MonotonicMillis() - t0;
  std::string manifest_tmp = manifest_path + ".tmp";
  unlink(manifest_tmp.c_str());
  Status written = sandbox::WriteNewFile(manifest_tmp, local::EncodeManifest(m, key), 0600);
  if (written.ok() && rename(manifest_tmp.c_str(), manifest_path.c_str()) != 0)
    written = ErrnoError("rename " + manifest_tmp, errno);
  if (!written.ok()) {
    unlink(manifest_tmp.c_str());
    unlink(image.c_str());
    return written;
  }
  LOG_SESSION_INFO(session_id, "checkpoint {}: {} bytes of data in {} ms (frozen {} ms)", name,
                   m.digest.data_bytes, m.duration_ms, m.freeze_ms);
  return InfoOf(m);
}

Result<std::vector<CheckpointInfo>> LocalDriver::ListCheckpoints(const std::string& session_id) {
  if (!ValidSessionId(session_id)) return InvalidArgument("bad session id: " + session_id);
  std::vector<CheckpointInfo> out;
  if (!hardening_.disks) return out;
  std::string dir = CheckpointDir(session_id);
  DIR* d = opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    return ErrnoError("open " + dir, errno);
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string_view n = e->d_name;
    if (n.ends_with(".json") && !n.starts_with(".")) names.emplace_back(n.substr(0, n.size() - 5));
  }
  closedir(d);
  for (const auto& name : names) {
    auto m = ReadManifest(session_id, name);
    if (m.ok()) {
      out.push_back(InfoOf(*m));
    } else if (m.status().code() != Code::kNotFound) {
      // Listed (so it can be deleted), marked by an empty digest; restoring it is refused.
      LOG_SESSION_WARN(session_id, "checkpoint {}: {}", name, m.status().ToString());
      CheckpointInfo bad;
      bad.session_id = session_id;
      bad.name = name;
      out.push_back(bad);
    }
  }
  std::sort(out.begin(), out.end(), [](const CheckpointInfo& a, const CheckpointInfo& b) {
    return a.created_at != b.created_at ? a.created_at > b.created_at : a.name < b.name;
  });
  return out;
}

Result<CheckpointInfo> LocalDriver::GetCheckpoint(const std::string& session_id,
                                                  const std::string& name) {
  RETURN_IF_ERROR(CheckCheckpointable());
  ASSIGN_OR_RETURN(local::CheckpointManifest m, ReadManifest(session_id, name));
  return InfoOf(m);
}

Status LocalDriver::DeleteCheckpoint(const std::string& session_id, const std::string& name) {
  if (!ValidSessionId(session_id)) return InvalidArgument("bad session id: " + session_id);
  if (!local::IsValidCheckpointFileName(name))
    return InvalidArgument(fmt::format("bad checkpoint name: {}", name));
  std::string base = fmt::format("{}/{}", CheckpointDir(session_id), name);
  // The manifest first: without it the checkpoint no longer exists, whatever happens next.
  if (unlink((base + ".json").c_str()) != 0) {
    if (errno == ENOENT)
      return NotFound(fmt::format("session {} has no checkpoint {}", session_id, name));
    return ErrnoError("remove " + base + ".json", errno);
  }
  if (unlink((base + ".img").c_str()) != 0 && errno != ENOENT)
    return ErrnoError("remove " + base + ".img", errno);
  return Status::Ok();
}

namespace {

ImageInfo ImageInfoOf(const local::ImageRecord& m) {
  ImageInfo info;
  info.name = m.name;
  info.owner = m.owner;
  info.source = m.source;
  info.source_digest = m.source_digest;
  for (const auto& l : m.layers) info.layers.push_back({l.digest, l.size_bytes});
  info.size_bytes = m.size_bytes();
  info.created_at = m.created_at;
  info.env = m.config.env;
  info.cmd = m.config.cmd;
  info.workdir = m.config.workdir;
  return info;
}

// Where the debootstrap script is; "" when it is not installed.
std::string FindDebootstrap() {
  for (const char* p : {"/usr/sbin/debootstrap", "/sbin/debootstrap", "/usr/bin/debootstrap"})
    if (access(p, X_OK) == 0) return p;
  return "";
}

bool ValidDebianWord(std::string_view w, bool allow_url) {
  if (w.empty() || w.size() > 200) return false;
  for (char c : w) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '+' || c == '_';
    if (allow_url) ok = ok || c == ':' || c == '/' || c == '~' || c == '%';
    if (!ok) return false;
  }
  return w[0] != '-';
}

}  // namespace

Result<std::vector<ImageInfo>> LocalDriver::ListImages() {
  ASSIGN_OR_RETURN(std::vector<ImageInfo> out, Driver::ListImages());
  ASSIGN_OR_RETURN(auto records, images_->List());
  for (const auto& m : records) out.push_back(ImageInfoOf(m));
  return out;
}

Result<ImageInfo> LocalDriver::GetImage(const std::string& name) {
  if (name == "host") return Driver::GetImage(name);
  ASSIGN_OR_RETURN(local::ImageRecord m, images_->Get(name));
  return ImageInfoOf(m);
}

namespace {

// An upload spooled to a file of the image store's tmp/ (on the same filesystem as the layers
// it becomes), removed when the upload is dropped.
class SpoolUpload final : public ImageUpload {
 public:
  static Result<std::unique_ptr<SpoolUpload>> Create(const std::string& dir) {
    std::string path = fmt::format("{}/upload-{}", dir, NewId("u").substr(2));
    UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) return ErrnoError("create " + path, errno);
    return std::unique_ptr<SpoolUpload>(new SpoolUpload(std::move(path), std::move(fd)));
  }
  ~SpoolUpload() override { unlink(path_.c_str()); }

  Status Write(std::string_view bytes) override {
    if (!fd_) return Internal("write after the upload finished");
    while (!bytes.empty()) {
      ssize_t w = write(fd_.get(), bytes.data(), bytes.size());
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return ErrnoError("spool the upload", errno);
      bytes.remove_prefix(static_cast<size_t>(w));
    }
    return Status::Ok();
  }
  Status Finish() override {
    // close(2) reports a write-back error (a full disk on NFS) that write(2) did not.
    if (fd_ && close(fd_.Release()) != 0) return ErrnoError("spool the upload", errno);
    return Status::Ok();
  }
  const std::string& path() const { return path_; }

 private:
  SpoolUpload(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  UniqueFd fd_;
};

}  // namespace

Result<std::unique_ptr<ImageUpload>> LocalDriver::BeginImageUpload() {
  ASSIGN_OR_RETURN(std::unique_ptr<SpoolUpload> upload, SpoolUpload::Create(images_->TmpDir()));
  return std::unique_ptr<ImageUpload>(std::move(upload));
}

Result<ImageInfo> LocalDriver::ImportImage(const std::string& name, const std::string& owner,
                                           ImageUpload& upload, const std::string& format,
                                           const ProgressFn& progress) {
  auto* spooled = dynamic_cast<SpoolUpload*>(&upload);
  if (!spooled) return InvalidArgument("the upload was not made by this driver");
  RETURN_IF_ERROR(spooled->Finish());
  ASSIGN_OR_RETURN(local::ImageRecord m,
                   images_->Import(name, owner, spooled->path(), format, progress));
  return ImageInfoOf(m);
}

Status LocalDriver::DeleteImage(const std::string& name) {
  if (name == "host") return Conflict("image host is built in; it cannot be deleted");
  return images_->Delete(name);
}

Result<ImageInfo> LocalDriver::BuildImage(const std::string& name, const std::string& owner,
                                          const DebootstrapSpec& spec, const ProgressFn& progress,
                                          const std::atomic<bool>* cancel) {
  if (!local::IsValidImageName(name))
    return InvalidArgument(fmt::format("bad image name '{}'", name));
  if (images_->Get(name).ok()) return Conflict(fmt::format("image {} exists already", name));
  if (!ValidDebianWord(spec.suite, false)) return InvalidArgument("bad suite: " + spec.suite);
  if (!spec.variant.empty() && !ValidDebianWord(spec.variant, false))
    return InvalidArgument("bad variant: " + spec.variant);
  for (const auto& p : spec.include)
    if (!ValidDebianWord(p, false)) return InvalidArgument("bad package name: " + p);
  std::string mirror = spec.mirror.empty() ? "http://deb.debian.org/debian" : spec.mirror;
  if (!ValidDebianWord(mirror, true) ||
      (mirror.rfind("http://", 0) != 0 && mirror.rfind("https://", 0) != 0))
    return InvalidArgument("bad mirror (an http:// or https:// URL): " + mirror);
  std::string debootstrap = FindDebootstrap();
  if (debootstrap.empty())
    return Unavailable("debootstrap is not installed on the server (apt-get install debootstrap)");

  std::string dir = fmt::format("{}/debootstrap-{}", images_->TmpDir(), NewId("b").substr(2));
  RETURN_IF_ERROR(sandbox::MakeDirs(dir, 0700));
  ScopeGuard remove_dir([&] { (void)sandbox::RemoveTree(dir); });
  std::vector<std::string> args = {debootstrap};
  if (!spec.variant.empty()) args.push_back("--variant=" + spec.variant);
  if (!spec.include.empty()) {
    std::string inc = "--include=";
    for (size_t i = 0; i < spec.include.size(); ++i) inc += (i ? "," : "") + spec.include[i];
    args.push_back(inc);
  }
  args.push_back(spec.suite);
  args.push_back(dir + "/root");
  args.push_back(mirror);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const char* envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", nullptr};
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
  UniqueFd out_r(pipefd[0]), out_w(pipefd[1]);
  const int64_t t0 = MonotonicMillis();
  pid_t pid = fork();
  if (pid < 0) return ErrnoError("fork debootstrap", errno);
  if (pid == 0) {
    // In a mount namespace of its own: the /proc and /sys it mounts in the target vanish with
    // it, whatever way it ends, and never show in the host's mount table.
    // It dies with the server (a restart fails its task; the next start empties images/tmp).
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) _exit(126);
    if (unshare(CLONE_NEWNS) != 0) _exit(126);
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(126);
    dup2(out_w.get(), 1);
    dup2(out_w.get(), 2);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    execve(argv[0], argv.data(), const_cast<char* const*>(envp));
    _exit(127);
  }
  out_w.Reset();
  std::string pending, tail;
  int retrieved = 0, unpacked = 0, configured = 0;
  double fraction = 0.01;
  bool killed = false;
  for (;;) {
    if (cancel && cancel->load() && !killed) {
      kill(pid, SIGKILL);
      killed = true;
    }
    pollfd p{out_r.get(), POLLIN, 0};
    int n = poll(&p, 1, 500);
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    char buf[4096];
    ssize_t r = read(out_r.get(), buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    pending.append(buf, static_cast<size_t>(r));
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      tail += line + "\n";
      if (tail.size() > 2000) tail.erase(0, tail.size() - 2000);
      // debootstrap's phases: retrieve (~40%), extract, unpack, configure.
      if (line.rfind("I: Retrieving", 0) == 0) {
        fraction = std::min(0.35, 0.02 + 0.002 * ++retrieved);
      } else if (line.rfind("I: Extracting", 0) == 0) {
        fraction = std::max(fraction, 0.4);
      } else if (line.rfind("I: Unpacking", 0) == 0) {
        fraction = std::max(fraction, std::min(0.6, 0.45 + 0.002 * ++unpacked));
      } else if (line.rfind("I: Configuring", 0) == 0) {
        fraction = std::max(fraction, std::min(0.8, 0.6 + 0.002 * ++configured));
      } else if (line.rfind("I: Base system installed", 0) == 0) {
        fraction = 0.8;
      }
      if (progress && line.rfind("I: ", 0) == 0) progress(fraction, line.substr(3));
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (killed) return Unavailable("the build was cancelled");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return InvalidArgument(fmt::format("debootstrap failed (status {}): {}", status, tail));
  const int64_t t_debootstrap = MonotonicMillis() - t0;
  if (progress) progress(0.8, "debootstrap done; storing the rootfs as a layer");
  UniqueFd root(open((dir + "/root").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return ErrnoError("open " + dir + "/root", errno);
  local::ImageConfigInfo config;
  config.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  config.cmd = {"/bin/bash"};
  local::ImageProgressFn layer_progress = [&](double f, const std::string& m) {
    if (progress) progress(0.8 + 0.2 * f, m);
  };
  ASSIGN_OR_RETURN(local::ImageRecord m,
                   images_->ImportTree(name, owner, root.get(), {}, "debootstrap", spec.suite,
                                       config, layer_progress));
  LOG_INFO("image {}: debootstrap {} in {} ms, stored in {} ms", name, spec.suite, t_debootstrap,
           MonotonicMillis() - t0 - t_debootstrap);
  return ImageInfoOf(m);
}

Result<ImageInfo> LocalDriver::CommitSession(const std::string& session_id,
                                             const std::string& driver_state,
                                             const std::string& base_image,
                                             const std::string& image, const std::string& owner,
                                             bool freeze, const ProgressFn& progress) {
  if (!local::IsValidImageName(image))
    return InvalidArgument(fmt::format("bad image name '{}'", image));
  if (base_image.empty() || base_image == "host")
    return Conflict(fmt::format(
        "{} runs image host, whose files are the host's own (bound read-only), so it cannot "
        "become an image; commit a session of an imported or built image",
        session_id));
  if (images_->Get(image).ok()) return Conflict(fmt::format("image {} exists already", image));
  ASSIGN_OR_RETURN(local::ImageRecord base, images_->Get(base_image));
  const int64_t t0 = MonotonicMillis();
  // The writable layer is captured as an internal checkpoint — consistent (the session stands
  // still only while its disk is copied, by reflink where the filesystem can) — and then read
  // from a mount of that copy while the session runs on.
  std::string name = ".commit-" + NewId("c").substr(2, 10);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (progress) progress(0.05, "capturing the writable layer");
  ASSIGN_OR_RETURN(CheckpointInfo cp, Checkpoint(session_id, driver_state, name, freeze));
  ScopeGuard drop([&] { (void)DeleteCheckpoint(session_id, name); });
  ASSIGN_OR_RETURN(
      local::DiskPool::Lease lease,
      hardening_.disks->Adopt(fmt::format("{}/{}.img", CheckpointDir(session_id), name)));
  lease.mount.Reset();
  ScopeGuard unmount([&] { (void)local::DiskPool::Keep(std::move(lease.disk)); });
  UniqueFd upper(openat(lease.disk.mount.get(), "upper", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!upper) return ErrnoError(fmt::format("open the writable layer of {}", session_id), errno);
  local::ImageProgressFn layer_progress = [&](double f, const std::string& m) {
    if (progress) progress(0.1 + 0.85 * f, m);
  };
  ASSIGN_OR_RETURN(local::ImageRecord m,
                   images_->ImportTree(image, owner, upper.get(), base.layers, "commit", session_id,
                                       base.config, layer_progress));
  LOG_INFO("{}: committed as image {} in {} ms (freeze {} ms)", session_id, image,
           MonotonicMillis() - t0, cp.freeze_ms);
  return ImageInfoOf(m);
}

Status LocalDriver::DeleteCheckpoints(const std::string& session_id) {
  if (!ValidSessionId(session_id)) return InvalidArgument("bad session id: " + session_id);
  return sandbox::RemoveTree(CheckpointDir(session_id));
}

Status LocalDriver::CopyVerifiedCheckpoint(const std::string& from_session, const std::string& name,
                                           const std::string& dest) {
  ASSIGN_OR_RETURN(local::CheckpointManifest m, ReadManifest(from_session, name));
  std::string image = fmt::format("{}/{}.img", CheckpointDir(from_session), name);
  UniqueFd src(open(image.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!src) {
    if (errno == ENOENT)
      return Conflict(fmt::format(
          "checkpoint {}/{}: integrity check failed: its image is missing; it is not used",
          from_session, name));
    return ErrnoError("open " + image, errno);
  }
  UniqueFd dst(open(dest.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  if (!dst) return ErrnoError("create " + dest, errno);
  ScopeGuard remove_dest([&] { unlink(dest.c_str()); });
  RETURN_IF_ERROR(local::CopyImage(src.get(), dst.get(), image));
  struct stat st;
  if (fstat(dst.get(), &st) != 0) return ErrnoError("stat " + dest, errno);
  ASSIGN_OR_RETURN(local::ImageDigest d, local::DigestImage(dst.get(), dest));
  if (st.st_size != m.size_bytes || d.sha256 != m.digest.sha256 ||
      d.data_bytes != m.digest.data_bytes) {
    return Conflict(fmt::format(
        "checkpoint {}/{}: integrity check failed: its image does not match its manifest "
        "(sha256 {}, manifest {}); it is not used",
        from_session, name, d.sha256, m.digest.sha256));
  }
  remove_dest.Cancel();
  return Status::Ok();
}

Status LocalDriver::RestoreLayer(const std::string& session_id, const std::string& from_session,
                                 const std::string& name) {
  if (!ValidSessionId(session_id)) return InvalidArgument("bad session id: " + session_id);
  RETURN_IF_ERROR(CheckCheckpointable());
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (children_.count(session_id) || disk_refs_.count(session_id))
      return Conflict(
          fmt::format("{} is running; stop it before its layer is replaced", session_id));
  }
  std::string layer = LayerImagePath(session_id);
  if (!sandbox::PathExists(SessionDir(session_id)))
    return NotFound(fmt::format("{} has no session directory", session_id));
  std::string tmp = fmt::format("{}.restore-{}", layer, NewId("t"));
  RETURN_IF_ERROR(CopyVerifiedCheckpoint(from_session, name, tmp));
  // The old image goes with its name (no loop device holds it: the sandbox is stopped).
  if (rename(tmp.c_str(), layer.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return ErrnoError("replace " + layer, err);
  }
  return Status::Ok();
}
}  // namespace

namespace {

// Linux 5.19: overlayfs over idmapped layers (5.12 brought idmapped mounts, 5.11 overlayfs in
// user namespaces; the combination the driver uses needs all three).
bool KernelAtLeast(int major, int minor) {
  utsname u;
  if (uname(&u) != 0) return false;
  int a = 0, b = 0;
  if (sscanf(u.release, "%d.%d", &a, &b) != 2) return false;
  return a > major || (a == major && b >= minor);
}

// Whether sandboxes can get a user namespace here: one can be made and mapped, and the image's
// layers can be idmapped into it. "" when they can, else why not.
std::string ProbeUserNamespaces(const HostImage& image, local::DiskPool* disks) {
  if (!KernelAtLeast(5, 19)) return "the kernel is older than 5.19 (overlayfs on idmapped layers)";
  auto userns = sandbox::NewUserNamespace({local::kFirstSandboxHostId, sandbox::kIdsPerSandbox});
  if (!userns.ok()) return userns.status().message();
  sandbox::MountAttrs idmap;
  idmap.idmap_userns_fd = userns->get();
  std::vector<std::string> layers = {image.rootfs};
  for (const auto& b : image.binds) layers.push_back(b.source);
  for (const auto& path : layers) {
    auto tree = sandbox::CloneMount(path);
    if (!tree.ok()) return tree.status().message();
    Status st = sandbox::SetMountAttrs(tree->get(), idmap, path);
    if (!st.ok()) return st.message() + " (the filesystem has no idmapped mounts)";
  }
  if (disks) {
    auto lease = disks->Take(disks->warm_mb(), "");
    if (!lease.ok()) return lease.status().message();
    Status st = sandbox::SetMountAttrs(lease->mount.get(), idmap, "an ext4 disk");
    disks->Return(lease->mb, std::move(lease->disk));
    if (!st.ok()) return st.message();
  }
  return "";
}

// /etc/subuid and /etc/subgid: ranges the host gave to its users, never a sandbox's.
std::vector<sandbox::IdRange> HostSubIdRanges() {
  std::vector<sandbox::IdRange> out;
  for (const char* file : {"/etc/subuid", "/etc/subgid"}) {
    auto text = sandbox::ReadFileToString(file);
    if (!text.ok()) continue;
    for (const auto& r : local::ParseSubIdFile(*text)) out.push_back(r);
  }
  return out;
}

// Everything MakeLocalDriver prepares for sandboxes' hardening, with one start-log line that
// says what is on and, for what is off, why.
Result<Hardening> PrepareHardening(const LocalDriverOptions& opts, const HostImage& image) {
  Hardening h;
  ASSIGN_OR_RETURN(h.agent_exe, sandbox::SealedExecutableCopy(opts.agent_path));
  ASSIGN_OR_RETURN(h.seccomp_filter, sandbox::CompileSeccompFilter(sandbox::DefaultSeccompRules()));

  std::string disk_line;
  if (opts.disk == "auto") {
    local::DiskPool::Options d;
    d.dir = opts.data_dir + "/disks";
    d.warm_mb = opts.warm_disk_mb;
    d.warm_count = opts.warm_disks;
    auto pool = local::DiskPool::Open(d);
    if (pool.ok()) {
      h.disks = std::move(*pool);
      disk_line = fmt::format("ext4 per session on a loop device ({} warm of {} MiB)",
                              opts.warm_disks, opts.warm_disk_mb);
    } else {
      LOG_WARN(
          "session disks: {}; writable layers fall back to tmpfs (memory-backed, charged to "
          "the session's memory limit)",
          pool.status().message());
      disk_line = "tmpfs (fallback)";
    }
  } else if (opts.disk == "tmpfs") {
    disk_line = "tmpfs";
  } else {
    return InvalidArgument(fmt::format("disk backend {} is not auto or tmpfs", opts.disk));
  }

  std::string userns_line;
  if (opts.user_namespaces) {
    std::string why_not = ProbeUserNamespaces(image, h.disks.get());
    if (why_not.empty()) {
      auto data_dir = opts.data_dir;
      ASSIGN_OR_RETURN(
          h.id_slots, local::IdSlots::Open(
                          opts.data_dir + "/idmap",
                          [data_dir](std::string_view id) {
                            return sandbox::PathExists(fmt::format("{}/sessions/{}", data_dir, id));
                          },
                          HostSubIdRanges()));
      h.user_namespaces = true;
      userns_line = fmt::format("on (root of a sandbox is host uid {} + 65536·n)",
                                local::kFirstSandboxHostId);
    } else {
      LOG_WARN(
          "user namespaces are not available: {}. Sandboxes run as host root, held by the "
          "cut capability set, no_new_privs, seccomp and the masked /proc (docs/security.md)",
          why_not);
      userns_line = "OFF (" + why_not + ")";
    }
  } else {
    userns_line = "off (configured)";
  }
  LOG_INFO(
      "sandbox hardening: user namespaces {}; disks {}; {} capabilities kept; seccomp {} "
      "rules; agent from a sealed memfd",
      userns_line, disk_line, std::size(sandbox::kSandboxCapabilities),
      sandbox::DefaultSeccompRules().size());
  return h;
}

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

LocalDriverOptions LocalDriverOptionsFrom(const DriverParams& params) {
  LocalDriverOptions o;
  o.data_dir = params.data_dir;
  o.agent_path = params.agent_path;
  o.nat = params.nat;
  o.warm_disk_mb = params.default_disk_mb;
  return o;
}

Result<std::unique_ptr<Driver>> NewLocalDriver(const LocalDriverOptions& options) {
  return MakeLocalDriver(options, nullptr);
}

Result<std::unique_ptr<Driver>> NewLocalDriverWithCgroupLayout(
    const LocalDriverOptions& options, const sandbox::CgroupLayout& layout) {
  return MakeLocalDriver(options, &layout);
}

bool WaitForLocalDriverIdle(Driver* driver, int timeout_ms) {
  auto* local = dynamic_cast<LocalDriver*>(driver);
  return !local || local->WaitIdle(timeout_ms);
}

}  // namespace hutch::drivers
