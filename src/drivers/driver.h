// A Driver turns a session spec into a running sandbox whose PID 1 is hutch-agent, runs
// commands in it through the agent, and tears it down. Implementations live in their own
// directories (drivers/local/) and are made by name through drivers/registry.h; this header
// names none of them (docs/architecture.md). Methods block: call them off network threads.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "common/unique_fd.h"
#include "core/attach.h"
#include "core/exec.h"
#include "core/process.h"
#include "core/session.h"
#include "core/stats.h"

namespace hutch::agent {
class Transport;  // agent/transport.h
}  // namespace hutch::agent

namespace hutch::drivers {

// A volume to attach (docs/server.md, "Volumes"): its data mounted at `path` inside.
struct VolumeAttach {
  std::string volume_id;  // "vol_…"
  std::string path;       // absolute, checked by core::CheckVolumePath
  bool read_only = false;
};

// What a volume holds, from its filesystem's superblock: exact while no session writes to it;
// while one does, as of the last time its filesystem wrote the superblock back.
struct VolumeUsage {
  int64_t size_bytes = 0;       // the filesystem's size
  int64_t used_bytes = 0;       // blocks in use, including the filesystem's own (~1-2%)
  int64_t allocated_bytes = 0;  // what its image takes on the host's disk now
};

// The live sandbox a volume is attached to read-write, for a copy of it (Driver::CopyVolume).
struct VolumeHolder {
  std::string session_id;
  std::string driver_state;
  std::string path;  // where the volume is mounted inside
};

// A shell's transient agent in something hutch did not start (Driver::Attach, docs/attach.md).
// Destroying it ends it as End() does.
class AttachedAgent {
 public:
  virtual ~AttachedAgent() = default;
  // How to reach it: the same transport contract as a sandbox's agent.
  virtual std::shared_ptr<const agent::Transport> transport() const = 0;
  // Kills every process in the shell's cgroup (the agent and all it started) and removes the
  // cgroup and what the agent was given; the target is never touched. Idempotent.
  virtual Status End() = 0;
  // Whether the agent still runs.
  virtual bool Alive() const = 0;
};

struct SandboxSpec {
  std::string session_id;
  std::string hostname;  // the session's name
  std::string image;     // "host"
  core::Resources resources;
  std::map<std::string, std::string> env;  // the session's env, given to every process
  // Start again on the writable layer a Stop() kept, instead of a fresh one.
  bool reuse_layer = false;
  core::NetworkSpec network;  // mode none (loopback only) or nat
  // Start on a verified copy of this checkpoint's files instead of an empty layer (fork,
  // from_checkpoint): the checkpoint `layer_from_name` of session `layer_from_session`. The
  // disk's size is then the checkpoint's.
  std::string layer_from_session;
  std::string layer_from_name;
  // Volumes, attached after the image's layers in this order. The controller makes sure a
  // volume written by this sandbox is attached nowhere else.
  std::vector<VolumeAttach> volumes;
};

// A checkpoint of a session's writable layer (docs/server.md, "Checkpoints").
struct CheckpointInfo {
  std::string session_id;
  std::string name;
  int64_t size_bytes = 0;  // the disk's size
  int64_t data_bytes = 0;  // what the image holds (its data extents)
  std::string sha256;      // digest of the data extents
  TimePoint created_at;
  int64_t freeze_ms = 0;    // how long the session's processes stood still
  int64_t duration_ms = 0;  // the whole capture
};

// An image sessions start from (docs/server.md, "Images"): `host` is built in; others are stacks
// of layers stored once by digest.
struct ImageLayerInfo {
  std::string digest;  // "sha256:<hex>" of the layer's uncompressed tar
  int64_t size_bytes = 0;
};
struct ImageInfo {
  std::string name;
  bool builtin = false;  // `host`
  std::string owner;     // who imported, built or committed it (user id)
  std::string source;    // "rootfs", "oci", "docker-archive", "debootstrap", "commit"
  std::string source_digest;
  std::vector<ImageLayerInfo> layers;  // bottom first
  int64_t size_bytes = 0;
  TimePoint created_at;
  std::vector<std::string> env;  // "K=V", given to the image's sessions under their own env
  std::vector<std::string> cmd;
  std::string workdir;
};
// POST /v1/images {build: {debootstrap: …}}.
struct DebootstrapSpec {
  std::string suite;                 // "bookworm"
  std::vector<std::string> include;  // extra packages
  std::string variant = "minbase";
  std::string mirror;  // "" : http://deb.debian.org/debian
};
// Progress of a long operation: fraction 0..1 and what it does now.
using ProgressFn = std::function<void(double fraction, const std::string& message)>;

// An image archive being received (POST /v1/images/{name}/import): the driver's own sink,
// made by Driver::BeginImageUpload and given back to the same driver's ImportImage. Where the
// bytes go (a spool file, a node's disk, an object store) is the driver's business. Dropping it
// discards what was written. Not thread-safe: one writer.
class ImageUpload {
 public:
  virtual ~ImageUpload() = default;
  // Appends `bytes`; an error (a full disk) ends the upload.
  virtual Status Write(std::string_view bytes) = 0;
  // All bytes were written: flushes them. Write may not be called afterwards.
  virtual Status Finish() = 0;
};

// Something a driver made on the host that may be left over after a crash or a failed
// teardown, beyond the sandboxes ListSandboxes names (`hutch gc`; docs/server.md, "Garbage
// collection"). The driver says whose it is (a session, a volume, or nobody it can name); the
// controller decides from the store whether anything still owns it, and only then asks the
// driver to remove it. A driver lists only what it can tell is its own (its data dir's), never
// another server's objects.
struct Leftover {
  std::string kind;        // "agent", "cgroup", "mount", "loop", "volume_image", "checkpoints"
  std::string path;        // where: a cgroup path, a mount point, /dev/loopN, a file or directory
  std::string session_id;  // the session it belongs to; empty when it names none
  std::string volume_id;   // a volume's image or loop device: the volume
  std::string detail;      // for people: "pids 12 40 (hutch-agent)", "empty for 3600 s"
  // An empty cgroup newer than the collection's min_age: another server's create may be between
  // its mkdir and its clone, so only a session this store knows, and that ended, frees it.
  bool young = false;
};

class Driver {
 public:
  virtual ~Driver() = default;

  // The node this driver places sandboxes on, recorded as the session's `node` when it is
  // created ("local" for the local driver).
  virtual std::string Node() const = 0;

  // Builds the sandbox and returns once its agent answers. The returned string is the driver's
  // opaque state for this sandbox (stored with the session, handed back on every later call,
  // also after a server restart). On failure nothing of the sandbox is left behind.
  virtual Result<std::string> Create(const SandboxSpec& spec) = 0;

  // Runs a command to completion in the sandbox. `unavailable` when the agent is gone.
  virtual Result<core::ExecResult> Exec(const std::string& session_id,
                                        const std::string& driver_state,
                                        const core::ExecRequest& request) = 0;

  // How to reach the sandbox's agent (docs/architecture.md, "The transport contract"): the
  // only data-plane thing a driver hands out. Everything done inside the sandbox (streaming
  // exec, PTYs, background processes, services, ports) connects through it. `unavailable` for
  // a driver whose sandboxes cannot be reached now.
  virtual Result<std::shared_ptr<const agent::Transport>> ConnectAgent(
      const std::string& session_id, const std::string& driver_state) {
    (void)session_id;
    (void)driver_state;
    return Unavailable("this driver does not reach its agents");
  }
  // The session log (the output of the sandbox's agent and setup; GET …/logs) read on the
  // control plane: at most max_bytes from `offset`. A running or paused sandbox's log is read
  // through its agent (LogRead); this is for the states in which the agent cannot answer —
  // stopped, dead, or frozen (a driver that cannot keep its agent out of a pause) — in any
  // state but purged. not_found when there is none;
  // `unavailable` for a driver that keeps none.
  virtual Result<core::LogChunk> ReadLog(const std::string& session_id,
                                         const std::string& driver_state, uint64_t offset,
                                         uint32_t max_bytes) {
    (void)session_id, (void)driver_state, (void)offset, (void)max_bytes;
    return Unavailable("this driver keeps no session log");
  }

  // Starts a transient agent in the namespaces of `target` (process, systemd or runc kinds),
  // in a child of the target's cgroups, serving until End(). `env` is given to every command.
  // `attach_id` names its cgroup and files.
  virtual Result<std::unique_ptr<AttachedAgent>> Attach(
      const std::string& attach_id, const core::AttachTarget& target,
      const std::map<std::string, std::string>& env) {
    (void)attach_id, (void)target, (void)env;
    return Unavailable("this driver does not attach to processes it did not start");
  }

  // Whether the sandbox's agent still answers.
  virtual bool IsAlive(const std::string& session_id, const std::string& driver_state) = 0;

  // Whether the sandbox's agent has exited (or is exiting), told without a round trip to it:
  // why ("agent exited (signal 9)"), or nullopt while it runs or when this driver cannot tell
  // that way (IsAlive asks the agent itself). Cheap: the controller asks it about every running
  // and paused session once a second (docs/server.md, "Faults").
  virtual std::optional<std::string> AgentExited(const std::string& session_id,
                                                 const std::string& driver_state) {
    (void)session_id, (void)driver_state;
    return std::nullopt;
  }

  // Kills every process of the sandbox and removes every mount, cgroup and directory it made.
  // Idempotent: destroying what is already gone is OK.
  virtual Status Destroy(const std::string& session_id, const std::string& driver_state) = 0;

  // Freezes every process of the sandbox where it stands; memory and files stay. Returns once
  // all are stopped. The agent should keep answering (files and logs of a paused session are
  // served through it; docs/architecture.md, "Pausing"); a driver whose agent is frozen too
  // answers ConnectAgent with `conflict` meanwhile, and such a session's files are refused.
  virtual Status Pause(const std::string& session_id, const std::string& driver_state) = 0;
  virtual Status Resume(const std::string& session_id, const std::string& driver_state) = 0;

  // New resources for a running or paused sandbox (PATCH of a session's resources): `from` is
  // what it was made with or last changed to. cpus, memory and pids take effect at once; a
  // larger disk_mb grows the writable layer's filesystem while it is mounted. conflict, saying
  // what is in use and what to do, when a limit would be below what the sandbox uses now
  // (memory that cannot be reclaimed, processes) or the disk would shrink; nothing changed then.
  virtual Status UpdateResources(const std::string& session_id, const std::string& driver_state,
                                 const core::Resources& from, const core::Resources& to) {
    (void)session_id, (void)driver_state, (void)from, (void)to;
    return Unavailable("this driver cannot change a running sandbox's resources");
  }

  // Kills every process and frees the sandbox's memory and cgroup, but keeps its writable
  // layer: Create with reuse_layer starts it again from its files. Idempotent.
  virtual Status Stop(const std::string& session_id, const std::string& driver_state) = 0;
  // Whether Stop can keep the files here; a conflict saying why not (and what to do instead)
  // when it cannot. Asked before a stop changes anything.
  virtual Status CheckStoppable() const { return Status::Ok(); }

  // Checkpoints of the writable layer. `freeze`: the sandbox is running — freeze its processes
  // for the capture (a paused one is frozen already, a stopped one has none). `conflict` where
  // the driver keeps no layer it can copy (tmpfs), or when `name` exists.
  virtual Result<CheckpointInfo> Checkpoint(const std::string& session_id,
                                            const std::string& driver_state,
                                            const std::string& name, bool freeze) {
    (void)session_id, (void)driver_state, (void)name, (void)freeze;
    return Conflict("this driver cannot checkpoint sessions");
  }
  // Newest first; internal ones (names starting with '.') left out.
  virtual Result<std::vector<CheckpointInfo>> ListCheckpoints(const std::string& session_id) {
    (void)session_id;
    return std::vector<CheckpointInfo>{};
  }
  // not_found when there is none; conflict when its manifest fails the integrity check.
  virtual Result<CheckpointInfo> GetCheckpoint(const std::string& session_id,
                                               const std::string& name) {
    (void)session_id, (void)name;
    return NotFound("this driver keeps no checkpoints");
  }
  virtual Status DeleteCheckpoint(const std::string& session_id, const std::string& name) {
    (void)session_id, (void)name;
    return NotFound("this driver keeps no checkpoints");
  }
  // Every checkpoint of the session (it is gone). Idempotent.
  virtual Status DeleteCheckpoints(const std::string& session_id) {
    (void)session_id;
    return Status::Ok();
  }
  // Replaces a stopped session's writable layer with a verified copy of checkpoint `name` of
  // `from_session`; Create with reuse_layer then starts on it. A checkpoint that fails its
  // integrity check (conflict) leaves the layer as it was.
  virtual Status RestoreLayer(const std::string& session_id, const std::string& from_session,
                              const std::string& name) {
    (void)session_id, (void)from_session, (void)name;
    return Conflict("this driver cannot restore checkpoints");
  }

  // Images. Every method but ListImages and GetImage may take minutes: call them from a task.
  // Those a driver without images answers: only `host`.
  virtual Result<std::vector<ImageInfo>> ListImages() {
    ImageInfo host;
    host.name = "host";
    host.builtin = true;
    return std::vector<ImageInfo>{host};
  }
  virtual Result<ImageInfo> GetImage(const std::string& name) {
    if (name != "host") return NotFound("image " + name + " not found");
    ImageInfo host;
    host.name = "host";
    host.builtin = true;
    return host;
  }
  // A new sink for an image archive, for ImportImage.
  virtual Result<std::unique_ptr<ImageUpload>> BeginImageUpload() {
    return Unavailable("this driver cannot import images");
  }
  // Imports the archive received by `upload` (finished; made by this driver's
  // BeginImageUpload) in format "auto", "rootfs", "oci" or "docker-archive"; the caller drops
  // the upload afterwards. conflict when `name` exists; invalid_argument when the archive or a
  // digest in it is wrong.
  virtual Result<ImageInfo> ImportImage(const std::string& name, const std::string& owner,
                                        ImageUpload& upload, const std::string& format,
                                        const ProgressFn& progress) {
    (void)name, (void)owner, (void)upload, (void)format, (void)progress;
    return Unavailable("this driver cannot import images");
  }
  // Builds a Debian rootfs with debootstrap as image `name`. `cancel` set: stop soon.
  virtual Result<ImageInfo> BuildImage(const std::string& name, const std::string& owner,
                                       const DebootstrapSpec& spec, const ProgressFn& progress,
                                       const std::atomic<bool>* cancel) {
    (void)name, (void)owner, (void)spec, (void)progress, (void)cancel;
    return Unavailable("this driver cannot build images");
  }
  // Removes the image and the layers no other image has. The caller checks that no session
  // uses it.
  virtual Status DeleteImage(const std::string& name) {
    return name == "host" ? Conflict("image host is built in")
                          : NotFound("image " + name + " not found");
  }
  // A new image `image`: the session's image layers plus one made of its writable layer,
  // captured consistently (`freeze`: the sandbox runs; freeze it for the capture).
  virtual Result<ImageInfo> CommitSession(const std::string& session_id,
                                          const std::string& driver_state,
                                          const std::string& base_image, const std::string& image,
                                          const std::string& owner, bool freeze,
                                          const ProgressFn& progress) {
    (void)session_id, (void)driver_state, (void)base_image, (void)image, (void)owner, (void)freeze,
        (void)progress;
    return Conflict("this driver cannot commit sessions");
  }
  // Volumes: size-limited storage that outlives sessions. CreateVolume makes an empty one of
  // `size_mb` (conflict when it exists); DeleteVolume removes its data (idempotent; the caller
  // makes sure no session has it). unavailable where the driver cannot keep volumes.
  virtual Status CreateVolume(const std::string& volume_id, int64_t size_mb) {
    (void)volume_id, (void)size_mb;
    return Unavailable("this driver keeps no volumes");
  }
  virtual Status DeleteVolume(const std::string& volume_id) {
    (void)volume_id;
    return Status::Ok();
  }
  virtual Result<VolumeUsage> GetVolumeUsage(const std::string& volume_id) {
    (void)volume_id;
    return Unavailable("this driver keeps no volumes");
  }
  // Makes volume `to` (conflict when it exists) a copy of volume `from`. With `holder` (the
  // live sandbox that has `from` attached read-write), that sandbox stands still for the copy
  // and its filesystem is synced first: the copy holds what its processes wrote until then.
  virtual Status CopyVolume(const std::string& from, const std::string& to,
                            const VolumeHolder* holder) {
    (void)from, (void)to, (void)holder;
    return Unavailable("this driver keeps no volumes");
  }

  // The sessions this driver (this data dir, not others on the host) holds a sandbox for, for
  // orphan sweeps.
  virtual Result<std::vector<std::string>> ListSandboxes() = 0;
  // Leftovers of this driver's on the host (see Leftover). Objects that nothing here can own
  // only after a while (an empty cgroup of a session no data dir of this server knows) are
  // listed once they are `min_age` old.
  virtual Result<std::vector<Leftover>> ListLeftovers(std::chrono::seconds min_age) {
    (void)min_age;
    return std::vector<Leftover>{};
  }
  // Removes one leftover ListLeftovers returned; the caller decided nothing owns it. The
  // driver checks again what it can (a cgroup still empty, a loop device still unused) and
  // answers conflict when that no longer holds.
  virtual Status RemoveLeftover(const Leftover& leftover) {
    (void)leftover;
    return Unavailable("this driver leaves nothing to collect");
  }
  // What the sandbox uses now: CPU, memory, processes, disk, network (nat). `not_found` when
  // the sandbox is gone. disk_limit_bytes is left to the caller (it is the session's).
  virtual Result<core::SandboxStats> Stats(const std::string& session_id,
                                           const std::string& driver_state) {
    (void)session_id;
    (void)driver_state;
    return Unavailable("this driver does not report stats");
  }
};

}  // namespace hutch::drivers
