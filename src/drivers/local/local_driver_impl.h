// LocalDriver, the class behind local_driver.h, declared for the files that implement its parts:
//   local_driver.cc      making it (MakeLocalDriver) and reaching a session (exec, agent, log,
//                        stats, the list of sandboxes)
//   sandbox_create.cc    Create: the sandbox and its agent, step by step
//   sandbox_teardown.cc  Destroy and Stop: killing the agent and the cgroup
//   sandbox_pause.cc     Pause and Resume: the freezer
//   sandbox_resize.cc    UpdateResources: new cgroup limits, a larger disk
//   volumes.cc           volumes: ext4 images attached as idmapped mounts
//   checkpoints.cc       checkpoints of a session's disk and restoring from them
//   image_build.cc       images: upload, import, debootstrap builds, commits
//   host_probe.cc        what the host offers (user namespaces, disks) and the hardening set up
//                        once for every sandbox
// Nothing outside drivers/local includes it.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "agent/config.h"
#include "drivers/driver.h"
#include "drivers/local/attach.h"
#include "drivers/local/checkpoint_files.h"
#include "drivers/local/disk_pool.h"
#include "drivers/local/driver_state.h"
#include "drivers/local/host_image.h"
#include "drivers/local/host_probe.h"
#include "drivers/local/image_store.h"
#include "drivers/local/leftovers.h"
#include "drivers/local/local_driver.h"
#include "drivers/local/network.h"
#include "sandbox/cgroup.h"
#include "sandbox/idmap.h"
#include "sandbox/process.h"

namespace hutch::drivers::local {

// A step on the host's own files failed (the session's directory, its cgroup, a socketpair).
// ErrnoError names errnos in the API's codes, but here ENOENT is no missing session and EACCES
// no caller's lack of rights: whatever the errno, the failure is the server's (internal); the
// message keeps the errno.
inline Status HostFailure(Status st) {
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

// Session ids become path components and cgroup names.
bool ValidSessionId(std::string_view id);

// The cgroup limits of a session's resources (sandbox_resize.cc).
sandbox::CgroupLimits LimitsOf(const core::Resources& res);

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
  std::optional<std::string> AgentExited(const std::string& session_id,
                                         const std::string& driver_state) override;
  Status Destroy(const std::string& session_id, const std::string& driver_state) override;
  Status Pause(const std::string& session_id, const std::string& driver_state) override;
  Status Resume(const std::string& session_id, const std::string& driver_state) override;
  Status Stop(const std::string& session_id, const std::string& driver_state) override;
  Status UpdateResources(const std::string& session_id, const std::string& driver_state,
                         const core::Resources& from, const core::Resources& to) override;
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
  // Grows the session's disk (its image, loop device and ext4) to `mb` while it is mounted;
  // conflict for a smaller size (sandbox_resize.cc).
  Status GrowDisk(const std::string& id, int64_t mb);
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
  // Step 1 of Create: the session's directory, new, or (reuse_layer) the one a Stop kept.
  Status MakeSessionDir(const SandboxSpec& spec);
  // Step 3b of Create: for nat, and for every sandbox of local-tcp, a wired namespace from the
  // pool with the session's rules; *resolv_conf: what nat sandboxes use for DNS.
  Result<std::optional<NatLease>> WireNetwork(const SandboxSpec& spec, bool nat,
                                              std::string* resolv_conf);
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

}  // namespace hutch::drivers::local
