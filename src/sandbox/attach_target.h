// Finding a process hutch did not start, and a cgroup beside it for a shell attached to it
// (docs/attach.md): by pid file, cgroup, systemd unit (through the name=systemd v1 hierarchy or
// cgroup v2, so no systemd as PID 1 is needed) or runc container; the namespaces that differ
// from ours; and a child group under each of the process's cgroups.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "sandbox/cgroup.h"

namespace hutch::sandbox {

// The pid written in `path` (the first number; a pid file). not_found when the process is gone.
Result<pid_t> PidFromFile(const std::string& path);
// The lowest pid in the cgroup `path` or below it: an absolute directory under a cgroup mount
// ("/sys/fs/cgroup/memory/x"), or a path inside the hierarchy ("/system.slice/x.service"),
// looked up in the name=systemd v1 hierarchy, then the v2 one, then every v1 one.
Result<pid_t> PidOfCgroup(const std::string& path);
// The cgroup of systemd unit `unit` ("nginx.service"), found in the name=systemd hierarchy or
// v2 (no systemd as PID 1 needed: only the hierarchy it made).
Result<std::string> CgroupOfUnit(std::string_view unit);
// The init process of the runc container `id` under the state root `root` ("/run/runc"): its
// state.json's init_process_pid, checked against init_process_start (a recycled pid is
// not_found).
Result<pid_t> PidOfRuncContainer(const std::string& root, std::string_view id);
// CLONE_NEW* flags of the namespaces of `pid` that are not ours (user, mnt, pid, net, uts, ipc,
// cgroup), the ones nsenter would enter.
Result<uint64_t> ForeignNamespaces(pid_t pid);
// Creates the group `name` under each cgroup of `pid`: v1, in every mounted hierarchy the
// process is in (cpuset's cpus and mems copied from the parent, which v1 does not inherit);
// v2, under its unified group. The group owns the directories (Cgroup::Remove).
Result<Cgroup> CreateChildCgroup(pid_t pid, std::string_view name);

}  // namespace hutch::sandbox
