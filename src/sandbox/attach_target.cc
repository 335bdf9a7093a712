#include "sandbox/attach_target.h"

#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <set>
#include <vector>

#include <fmt/format.h>

#include "common/json.h"
#include "common/scope_guard.h"
#include "sandbox/fs.h"
#include "sandbox/mountinfo.h"
#include "sandbox/process.h"

namespace hutch::sandbox {

namespace {

// A hierarchy the host mounts: the controllers field of /proc/<pid>/cgroup it matches ("cpu",
// "name=systemd"; "" for v2) and where it is mounted.
struct Hierarchy {
  std::string key;
  std::string mount_point;
};

std::set<std::string> SplitCommas(std::string_view s) {
  std::set<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string_view::npos) comma = s.size();
    if (comma > start) out.emplace(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

// Mounts of whole hierarchies (root "/"), the first of each.
Result<std::vector<Hierarchy>> Hierarchies() {
  ASSIGN_OR_RETURN(auto mounts, ReadSelfMountInfo());
  std::vector<Hierarchy> out;
  std::set<std::string> seen;
  for (const auto& m : mounts) {
    if (m.root != "/") continue;
    std::string key;
    if (m.fs_type == "cgroup2") {
      key = "";
    } else if (m.fs_type == "cgroup") {
      std::set<std::string> opts = SplitCommas(m.super_options);
      std::vector<std::string> ctrl;
      for (const auto& o : opts) {
        if (o == "rw" || o == "ro" || o == "xattr" || o == "noprefix" ||
            o.starts_with("release_agent") || o == "clone_children" || o == "cpuset_v2_mode")
          continue;
        ctrl.push_back(o);
      }
      key = fmt::format("{}", fmt::join(ctrl, ","));
    } else {
      continue;
    }
    if (!seen.insert(key).second) continue;
    out.push_back({key, m.mount_point});
  }
  return out;
}

// The line's controllers in the order Hierarchies() keys them (sorted).
std::string NormalizeKey(std::string_view field) {
  std::set<std::string> c = SplitCommas(field);
  return fmt::format("{}", fmt::join(c, ","));
}

struct Membership {
  std::string key;   // as Hierarchy::key
  std::string path;  // inside the hierarchy
};

Result<std::vector<Membership>> CgroupsOf(pid_t pid) {
  auto text = ReadFileToString(fmt::format("/proc/{}/cgroup", pid));
  if (!text.ok()) return NotFound(fmt::format("process {} does not exist", pid));
  std::vector<Membership> out;
  size_t start = 0;
  while (start < text->size()) {
    size_t nl = text->find('\n', start);
    if (nl == std::string::npos) nl = text->size();
    std::string_view line(text->data() + start, nl - start);
    start = nl + 1;
    size_t a = line.find(':');
    size_t b = a == std::string_view::npos ? a : line.find(':', a + 1);
    if (b == std::string_view::npos) continue;
    out.push_back({NormalizeKey(line.substr(a + 1, b - a - 1)), std::string(line.substr(b + 1))});
  }
  return out;
}

// The lowest pid in `dir` or below it; 0 when there is none.
pid_t LowestPid(const std::string& dir, int depth) {
  pid_t best = 0;
  if (auto procs = ReadFileToString(dir + "/cgroup.procs"); procs.ok()) {
    const char* p = procs->data();
    const char* end = p + procs->size();
    while (p < end) {
      pid_t v = 0;
      auto [next, ec] = std::from_chars(p, end, v);
      if (ec == std::errc() && v > 0 && (best == 0 || v < best)) best = v;
      p = next == p ? p + 1 : next;
    }
  }
  if (best != 0 || depth > 8) return best;
  DIR* d = opendir(dir.c_str());
  if (!d) return 0;
  ScopeGuard close_dir([d] { closedir(d); });
  while (dirent* e = readdir(d)) {
    if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
    pid_t v = LowestPid(dir + "/" + e->d_name, depth + 1);
    if (v > 0 && (best == 0 || v < best)) best = v;
  }
  return best;
}

// The directory named `name` below `dir` (breadth of a few levels: slices nest).
std::string FindDir(const std::string& dir, std::string_view name, int depth) {
  DIR* d = opendir(dir.c_str());
  if (!d) return "";
  ScopeGuard close_dir([d] { closedir(d); });
  std::vector<std::string> subdirs;
  while (dirent* e = readdir(d)) {
    if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
    if (name == e->d_name) return dir + "/" + e->d_name;
    subdirs.push_back(dir + "/" + e->d_name);
  }
  if (depth >= 4) return "";
  for (const auto& s : subdirs) {
    std::string found = FindDir(s, name, depth + 1);
    if (!found.empty()) return found;
  }
  return "";
}

// Where systemd's hierarchy is: name=systemd (v1), else v2.
Result<std::string> SystemdHierarchy() {
  ASSIGN_OR_RETURN(auto hs, Hierarchies());
  for (const auto& h : hs)
    if (h.key == "name=systemd") return h.mount_point;
  for (const auto& h : hs)
    if (h.key.empty()) return h.mount_point;
  return NotFound("no name=systemd cgroup hierarchy and no cgroup v2 is mounted");
}

Status CopyCpuset(const std::string& parent, const std::string& child) {
  for (const char* f : {"cpuset.cpus", "cpuset.mems"}) {
    ASSIGN_OR_RETURN(std::string v, ReadFileToString(parent + "/" + f));
    RETURN_IF_ERROR(WriteExistingFile(child + "/" + f, v));
  }
  return Status::Ok();
}

}  // namespace

Result<pid_t> PidFromFile(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return NotFound(fmt::format("pid file {}: {}", path, text.status().message()));
  size_t i = text->find_first_of("0123456789");
  pid_t pid = 0;
  if (i != std::string::npos) std::from_chars(text->data() + i, text->data() + text->size(), pid);
  if (pid <= 0) return InvalidArgument(fmt::format("pid file {} holds no pid", path));
  if (kill(pid, 0) != 0 && errno == ESRCH)
    return NotFound(fmt::format("process {} of pid file {} is gone", pid, path));
  return pid;
}

Result<pid_t> PidOfCgroup(const std::string& path) {
  std::vector<std::string> dirs;
  if (path.starts_with("/sys/fs/cgroup/")) {
    if (path.find("/../") != std::string::npos || path.ends_with("/.."))
      return InvalidArgument("a cgroup path may not contain ..");
    dirs.push_back(path);
  } else {
    if (path.find("..") != std::string::npos)
      return InvalidArgument("a cgroup path may not contain ..");
    ASSIGN_OR_RETURN(auto hs, Hierarchies());
    std::stable_partition(hs.begin(), hs.end(),
                          [](const Hierarchy& h) { return h.key == "name=systemd"; });
    for (const auto& h : hs)
      dirs.push_back(h.mount_point + (path.starts_with("/") ? "" : "/") + path);
  }
  for (const auto& d : dirs) {
    struct stat st;
    if (stat(d.c_str(), &st) != 0) continue;
    if (pid_t pid = LowestPid(d, 0); pid > 0) return pid;
  }
  return NotFound(fmt::format("no process in cgroup {}", path));
}

Result<std::string> CgroupOfUnit(std::string_view unit) {
  if (unit.empty() || unit.find('/') != std::string_view::npos || unit.starts_with("."))
    return InvalidArgument(fmt::format("bad unit name '{}'", unit));
  ASSIGN_OR_RETURN(std::string root, SystemdHierarchy());
  std::string name(unit);
  if (name.find('.') == std::string::npos) name += ".service";
  std::string dir = FindDir(root, name, 0);
  if (dir.empty()) return NotFound(fmt::format("unit {} has no cgroup under {}", name, root));
  return dir;
}

Result<pid_t> PidOfRuncContainer(const std::string& root, std::string_view id) {
  if (id.empty() || id.find('/') != std::string_view::npos || id.starts_with("."))
    return InvalidArgument(fmt::format("bad container id '{}'", id));
  std::string file = fmt::format("{}/{}/state.json", root, id);
  auto text = ReadFileToString(file);
  if (!text.ok()) return NotFound(fmt::format("runc container {} not found under {}", id, root));
  ASSIGN_OR_RETURN(json::object state, ParseJsonObject(*text));
  const json::value* pid = state.if_contains("init_process_pid");
  if (!pid || !pid->is_int64() || pid->as_int64() <= 0)
    return Internal(fmt::format("{} has no init_process_pid", file));
  pid_t p = static_cast<pid_t>(pid->as_int64());
  const json::value* start = state.if_contains("init_process_start");
  auto now = ReadProcessStartTime(p);
  if (!now.ok()) return NotFound(fmt::format("runc container {} is not running", id));
  if (start && start->is_number() && start->to_number<uint64_t>() != *now)
    return NotFound(fmt::format("runc container {} is not running (its pid was reused)", id));
  return p;
}

Result<uint64_t> ForeignNamespaces(pid_t pid) {
  struct Ns {
    const char* name;
    uint64_t flag;
  };
  static constexpr Ns kNs[] = {{"user", CLONE_NEWUSER},    {"mnt", CLONE_NEWNS},
                               {"pid", CLONE_NEWPID},      {"net", CLONE_NEWNET},
                               {"uts", CLONE_NEWUTS},      {"ipc", CLONE_NEWIPC},
                               {"cgroup", CLONE_NEWCGROUP}};
  uint64_t flags = 0;
  for (const Ns& ns : kNs) {
    struct stat ours, theirs;
    if (stat(fmt::format("/proc/self/ns/{}", ns.name).c_str(), &ours) != 0) continue;
    if (stat(fmt::format("/proc/{}/ns/{}", pid, ns.name).c_str(), &theirs) != 0)
      return NotFound(fmt::format("process {} does not exist", pid));
    if (ours.st_ino != theirs.st_ino || ours.st_dev != theirs.st_dev) flags |= ns.flag;
  }
  return flags;
}

Result<Cgroup> CreateChildCgroup(pid_t pid, std::string_view name) {
  ASSIGN_OR_RETURN(auto hierarchies, Hierarchies());
  ASSIGN_OR_RETURN(auto memberships, CgroupsOf(pid));
  bool v1 = std::any_of(memberships.begin(), memberships.end(), [&](const Membership& m) {
    return !m.key.empty() && std::any_of(hierarchies.begin(), hierarchies.end(),
                                         [&](const Hierarchy& h) { return h.key == m.key; });
  });
  std::vector<std::string> paths;
  std::string rel, freezer;
  // Until the group is whole, what was made is removed.
  ScopeGuard undo([&] {
    for (auto it = paths.rbegin(); it != paths.rend(); ++it) rmdir(it->c_str());
  });
  for (const Membership& m : memberships) {
    if (m.key.empty() == v1) continue;
    auto h = std::find_if(hierarchies.begin(), hierarchies.end(),
                          [&](const Hierarchy& x) { return x.key == m.key; });
    if (h == hierarchies.end()) continue;
    std::string parent = h->mount_point + (m.path == "/" ? "" : m.path);
    std::string dir = fmt::format("{}/{}", parent, name);
    if (mkdir(dir.c_str(), 0755) != 0)
      return ErrnoError(fmt::format("create cgroup {}", dir), errno);
    paths.push_back(dir);
    if (SplitCommas(m.key).contains("cpuset")) RETURN_IF_ERROR(CopyCpuset(parent, dir));
    if (SplitCommas(m.key).contains("freezer")) freezer = dir;
    if (rel.empty()) rel = fmt::format("{}/{}", m.path == "/" ? "" : m.path, name);
  }
  if (paths.empty())
    return NotFound(fmt::format("process {} is in no cgroup hierarchy mounted here", pid));
  undo.Cancel();
  return Cgroup(v1 ? CgroupVersion::kV1 : CgroupVersion::kV2, rel, std::move(paths), freezer);
}

}  // namespace hutch::sandbox
