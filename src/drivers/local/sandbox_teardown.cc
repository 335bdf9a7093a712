// Destroy and Stop: the agent is killed (PID 1 of the sandbox's pid namespace: everything in it
// dies with it), the cgroup emptied and removed, the nat rules and the id slot given back. Destroy
// returns the disk to the pool and removes the session's directory; Stop keeps the disk's image
// there for a later Create with reuse_layer.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/log.h"
#include "common/scope_guard.h"
#include "common/time.h"
#include "drivers/local/local_driver_impl.h"
#include "sandbox/fs.h"
#include "sandbox/process.h"

namespace hutch::drivers::local {

namespace {

// How long Destroy waits for a killed sandbox's processes to leave its cgroup.
constexpr int64_t kEmptyTimeoutMs = 5000;

}  // namespace

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

}  // namespace hutch::drivers::local
