// Checkpoints of a session's writable layer (its disk's image), their signed manifests
// (checkpoint_files.h), and restoring a layer from one. Only with session disks: a tmpfs layer
// has no image to copy.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "common/ids.h"
#include "common/log.h"
#include "common/scope_guard.h"
#include "common/time.h"
#include "drivers/local/local_driver_impl.h"
#include "sandbox/fs.h"

namespace hutch::drivers::local {

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
  info.sha256 = m.digest.sha256;
  info.name = m.name;
  info.data_bytes = m.digest.data_bytes;
  info.size_bytes = m.size_bytes;
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

}  // namespace hutch::drivers::local
