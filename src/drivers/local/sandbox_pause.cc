#include "drivers/local/local_driver_impl.h"

namespace hutch::drivers::local {

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

}  // namespace hutch::drivers::local
