// cgroups for sandboxes, v1 and v2, behind one interface.
//
// Each sandbox gets one group `<hierarchy>/<root_name>/<name>`: one directory on v2, one per
// joined hierarchy on v1. The parent `<root_name>` holds no processes, which keeps v2's "no
// internal processes" rule. On v2 the parent enables memory, cpu and pids for its children;
// on v1 hutch joins memory, cpu and pids (limits), cpuacct (usage) and freezer (pause).
//
// A sandbox's group is split once more for pausing (CreateLeaves): its agent lives in the leaf
// `agent`, everything the agent starts in the leaf `work`, and a pause freezes `work` only, so
// the agent keeps answering (files, logs, pings) while its workload stands still. The limits
// stay on the group itself and cover both leaves as one: v2 enables no controller below the
// group (the leaves are freeze boundaries and nothing else, which also keeps v2's "no internal
// processes" rule out of play), and v1 splits only the freezer hierarchy — memory, cpu, cpuacct
// and pids see one group as before. docs/architecture.md ("Pausing") says why this design.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"
#include "sandbox/mountinfo.h"

namespace hutch::sandbox {

enum class CgroupVersion { kV1, kV2 };

std::string_view ToString(CgroupVersion v);

// The v1 controllers hutch joins, in the order it writes them.
inline constexpr std::string_view kV1Controllers[] = {"memory", "cpu", "cpuacct", "pids",
                                                      "freezer"};
// The v2 controllers hutch enables for sandboxes.
inline constexpr std::string_view kV2Controllers[] = {"memory", "cpu", "pids"};

// The leaves of a sandbox's group (see the top of this file).
inline constexpr std::string_view kAgentLeaf = "agent";
inline constexpr std::string_view kWorkLeaf = "work";

struct CgroupLayout {
  CgroupVersion version = CgroupVersion::kV2;
  // v1: controller → mount point of the hierarchy that carries it. Co-mounted controllers
  // ("cpu,cpuacct") map to the same path. Only controllers of kV1Controllers appear.
  std::map<std::string, std::string> v1;
  // v2: mount point of the unified hierarchy.
  std::string v2;
};

// v1 when some v1 hierarchy carries the memory controller (it cannot then be on v2, so v2 would
// give no memory limit), else v2 when a cgroup2 filesystem is mounted (/sys/fs/cgroup
// preferred); not_found when neither.
Result<CgroupLayout> DetectCgroupLayout(const std::vector<MountInfoEntry>& mounts);

struct CgroupLimits {
  int64_t memory_bytes = 0;  // 0: no limit
  int64_t swap_bytes = 0;    // swap allowed beyond memory_bytes; applies only with memory_bytes
  int64_t cpu_quota_us = 0;  // per cpu_period_us; 0: no limit
  int64_t cpu_period_us = 100000;
  int64_t pids_max = 0;  // 0: no limit
};

// One sandbox's group by its directories, without owning them: what can be read of it and done
// to it. Cgroup (below) is the owner that removes them.
class CgroupView {
 public:
  CgroupView() = default;
  // `rel_path` is the group's path inside each hierarchy ("/hutch/ses_x"), as /proc/<pid>/cgroup
  // shows it; `freezer_path` the v1 freezer directory (empty on v2 or without a freezer).
  CgroupView(CgroupVersion version, std::string rel_path, std::vector<std::string> paths,
             std::string freezer_path)
      : version_(version),
        rel_path_(std::move(rel_path)),
        paths_(std::move(paths)),
        freezer_path_(std::move(freezer_path)) {}

  CgroupVersion version() const { return version_; }
  // One directory per hierarchy (v2: exactly one).
  const std::vector<std::string>& paths() const { return paths_; }
  const std::string& rel_path() const { return rel_path_; }

  // v2 only: a directory fd for clone3's CLONE_INTO_CGROUP.
  Result<UniqueFd> OpenDirFd() const;
  // Moves `pid` (all its threads) into the group in every hierarchy.
  Status AddProcess(pid_t pid) const;
  // v1: the `tasks` file of every hierarchy, for a new single-threaded child to join the
  // group itself (see SpawnOptions::join_cgroup_tasks); in the freezer hierarchy that of
  // `freezer_leaf` below the group when one is given. Empty on v2.
  std::vector<std::string> TasksFiles(std::string_view freezer_leaf = {}) const;
  // The leaf `leaf` below this group (CgroupManager::CreateLeaves): v2 its directory; v1 the
  // freezer hierarchy's (the others are not split). Freeze, Thaw, IsFrozen and OpenProcsFile
  // act on it. The group's Remove removes it.
  CgroupView Leaf(std::string_view leaf) const;
  // Whether the group's directory exists (v1: its freezer's, where leaves live).
  bool Exists() const;
  // Whether the kernel reports the group frozen (by itself or an ancestor).
  bool IsFrozen() const;
  // Its cgroup.procs opened for writing (O_CLOEXEC). A process that writes "0" to it moves
  // itself there; the kernel checks the opener's credentials (Linux 5.16+), so a process of
  // the sandbox may use the fd without any right of its own over the hierarchy.
  Result<UniqueFd> OpenProcsFile() const;
  // v1 only: its `tasks` file opened for writing (O_CLOEXEC). Like cgroup.procs, but "0" moves
  // only the writing thread (agent/reaper.h: the spawner thread).
  Result<UniqueFd> OpenTasksFile() const;
  // The processes in the group and the groups below it, over all hierarchies. Missing
  // directories count as empty.
  Result<std::vector<pid_t>> Pids() const;
  // Whether `pid` is in the group or a group below it in some hierarchy, per /proc/<pid>/cgroup.
  bool HasProcess(pid_t pid) const;
  // SIGKILLs every process in the group: cgroup.kill on v2; on v1 the freezer first stops the
  // group (so no pid listed can exit and be reused before the kill lands), then every listed
  // pid is killed and the group thawed.
  Status KillAll() const;
  // Stops every process of the group where it is (v1 freezer.state FROZEN, v2 cgroup.freeze),
  // and returns once the kernel reports the group frozen; memory and files stay. unavailable
  // without a freezer, or when freezing does not complete (v1: after four tries of a second,
  // the group thawed again).
  Status Freeze() const;
  // Lets a frozen group run again. Thawing a group that is not frozen is fine. A group below
  // it that was frozen by itself stays frozen (v1 and v2 alike).
  Status Thaw() const;
  // Polls (every ~1 ms) until every hierarchy's cgroup.procs is empty; unavailable on timeout.
  Status WaitEmpty(int64_t timeout_ms) const;

 protected:
  CgroupVersion version_ = CgroupVersion::kV2;
  std::string rel_path_;
  std::vector<std::string> paths_;
  std::string freezer_path_;

 private:
  // Freeze() on a v1 freezer hierarchy.
  Status FreezeV1() const;
  // v1: thaws the groups below this one in the freezer hierarchy (KillAll: a task frozen there
  // cannot die).
  void ThawBelowV1() const;
};

// One sandbox's group, owning its directories: the destructor removes them (best effort) unless
// Release() was called. Removing needs the group empty; see KillAll and WaitEmpty.
class Cgroup : public CgroupView {
 public:
  Cgroup() = default;
  Cgroup(CgroupVersion version, std::string rel_path, std::vector<std::string> paths,
         std::string freezer_path)
      : CgroupView(version, std::move(rel_path), std::move(paths), std::move(freezer_path)) {}
  // Takes the directories `view` names over (teardown of a group found by name).
  explicit Cgroup(CgroupView view) : CgroupView(std::move(view)) {}
  Cgroup(Cgroup&& other) noexcept;
  Cgroup& operator=(Cgroup&& other) noexcept;
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;
  ~Cgroup();

  // rmdir of every directory, groups below it first; already missing ones are fine. Retries
  // EBUSY briefly (a task that just exited may still be unlinking).
  Status Remove();
  // Forgets the directories without removing them.
  void Release() { paths_.clear(); }
};

class CgroupManager {
 public:
  // Creates `<hierarchy>/<root_name>` (idempotent) and, on v2, enables the controllers there.
  // Controllers that are not available are listed in missing_controllers(); their limits are
  // skipped.
  static Result<std::unique_ptr<CgroupManager>> Open(const CgroupLayout& layout,
                                                     std::string root_name);

  CgroupVersion version() const { return layout_.version; }
  const CgroupLayout& layout() const { return layout_; }
  const std::vector<std::string>& missing_controllers() const { return missing_; }

  // Creates the group `name` and applies `limits`. An existing group of that name is an error
  // (conflict). On failure nothing is left behind.
  Result<Cgroup> CreateGroup(std::string_view name, const CgroupLimits& limits) const;
  // New limits for the existing group `name` while its processes run (cgroup_change.cc).
  // Lowering memory or pids below what the group uses now is refused (conflict, saying what it
  // uses) and leaves every limit as it was; memory is reclaimed first where the kernel can
  // (v1: memory.limit_in_bytes itself, v2: memory.reclaim). cpu_quota_us 0 removes the quota.
  Status ChangeLimits(std::string_view name, const CgroupLimits& limits) const;
  // The group `name` whether or not it exists, to read or act on; Cgroup(OpenGroup(name)) to
  // remove it (teardown, e.g. after a server restart).
  CgroupView OpenGroup(std::string_view name) const;
  // Makes the leaves kAgentLeaf and kWorkLeaf below `group` (made by CreateGroup; see the top
  // of this file). unavailable on v1 without a freezer hierarchy: then nothing can pause.
  // Removing the group removes them.
  Status CreateLeaves(const CgroupView& group) const;
  // Names of the groups that exist under the root (orphan sweeps).
  Result<std::vector<std::string>> ListGroups() const;

 private:
  CgroupManager(CgroupLayout layout, std::string root_name)
      : layout_(std::move(layout)), root_name_(std::move(root_name)) {}
  // Deduplicated hierarchy mount points (v1) or the unified one (v2).
  std::vector<std::string> Hierarchies() const;
  std::string ControllerDir(std::string_view controller, std::string_view name) const;
  Status ApplyLimits(std::string_view name, const CgroupLimits& limits) const;

  CgroupLayout layout_;
  std::string root_name_;
  std::vector<std::string> enabled_;  // v2: controllers enabled for sandboxes
  std::vector<std::string> missing_;
};

}  // namespace hutch::sandbox
