// Leak counting for tests that create and destroy sandboxes: mounts in this process's mount
// namespace, cgroup directories under hutch's root, processes, session directories and this
// process's open fds. Take a snapshot before, one after, and compare.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace hutch::testing {

bool IsRoot();

// Lines of /proc/self/mountinfo: the mounts the host (this test's mount namespace) sees.
int CountHostMounts();
// Mount points of /proc/self/mountinfo, for messages.
std::vector<std::string> HostMountPoints();

// Mount points of every cgroup hierarchy: v1 controllers and cgroup2.
std::vector<std::string> CgroupHierarchies();
// Directories below <hierarchy>/<root_name>, recursively, summed over all hierarchies (the
// root directory itself not counted). A missing root counts 0.
int CountCgroupDirs(const std::string& root_name = "hutch");
// Directories below `dir`, recursively; symlinks are not followed.
int CountDirsUnder(const std::string& dir);

// Pids of the processes in cgroups below <hierarchy>/<root_name> (all hierarchies).
std::vector<int> PidsInCgroups(const std::string& root_name = "hutch");
// Pids of this process's descendants (children, grandchildren …), not itself.
std::vector<int> DescendantPids();
// Processes that descend from this test process or sit in a cgroup under `root_name`: other
// activity on the machine (builds, other test runs) does not move this count.
int CountTestProcesses(const std::string& root_name = "hutch");
// Host processes whose comm (/proc/<pid>/comm) is `name`.
int CountProcessesNamed(const std::string& name);

// Whether the cgroup <hierarchy>/<group> is frozen (v1 freezer.state other than THAWED, v2
// cgroup.freeze 1); nullopt when no hierarchy has that group with a freezer.
std::optional<bool> IsCgroupFrozen(const std::string& group);
// Freezes or thaws <hierarchy>/<group> directly, behind its owner's back; false when no hierarchy
// has it with a freezer or the write fails.
bool SetCgroupFrozen(const std::string& group, bool frozen);

// Entries of a directory other than "." and ".."; 0 if it does not exist.
int CountDirEntries(const std::string& dir);
// Open fds of this process.
int CountOpenFds();

struct LeakSnapshot {
  int host_mounts = 0;
  int cgroup_dirs = 0;   // below <hierarchy>/hutch
  int processes = 0;     // CountTestProcesses
  int session_dirs = 0;  // entries of data_dir/sessions
  int open_fds = 0;      // of this process
  bool operator==(const LeakSnapshot&) const = default;
};

LeakSnapshot TakeLeakSnapshot(const std::string& data_dir,
                              const std::string& cgroup_root = "hutch");
// The same, counting only what belongs to one server's data dir and `session_ids`, for tests that
// share the machine with other hutch servers and their tests: host_mounts are the mounts under
// data_dir or whose path names one of the ids, cgroup_dirs the groups
// <hierarchy>/<cgroup_root>/<id> (and below) that exist, processes this process's descendants
// plus the pids in those groups.
LeakSnapshot TakeLeakSnapshotOf(const std::string& data_dir,
                                const std::vector<std::string>& session_ids,
                                const std::string& cgroup_root = "hutch");
std::ostream& operator<<(std::ostream& os, const LeakSnapshot& s);

// A fresh directory under /tmp, removed (without following symlinks) by the destructor unless
// HUTCH_KEEP_TEST_DIRS is set.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "hutch-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A self-signed certificate for 127.0.0.1 made with openssl in `dir`: dir/cert.pem and
// dir/key.pem. False when openssl failed.
bool MakeSelfSignedCert(const std::string& dir, std::string* cert, std::string* key);

}  // namespace hutch::testing
