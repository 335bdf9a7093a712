// See leftovers.h for what counts as a leftover and how ownership is decided.
#include "drivers/local/leftovers.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <ctime>
#include <tuple>

#include <fmt/format.h>

#include "common/unique_fd.h"
#include "sandbox/fs.h"
#include "sandbox/mountinfo.h"

namespace hutch::drivers::local {

namespace {

// How long removing an agent's group waits for its killed processes to leave it.
constexpr int64_t kEmptyTimeoutMs = 5000;

// Names that can be a session's or a volume's: path components and cgroup names the driver made.
bool ValidName(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

std::vector<std::string> DirEntries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") out.emplace_back(n);
  }
  closedir(d);
  return out;
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The data dir as the kernel names it in /proc links, mountinfo and loop backing files, with a
// trailing slash: a prefix that matches nothing outside it.
Result<std::string> DataDirPrefix(const std::string& data_dir) {
  char real[PATH_MAX];
  if (!realpath(data_dir.c_str(), real)) return ErrnoError("realpath " + data_dir, errno);
  return std::string(real) + "/";
}

// The session or volume a path below the data dir belongs to: sessions/<id>/…,
// checkpoints/<id>/…, volumes/<vol>.img.
void NameOwner(std::string_view rel, Leftover* l) {
  auto second = [&](std::string_view top) -> std::string {
    if (!rel.starts_with(top)) return "";
    std::string_view rest = rel.substr(top.size());
    std::string name(rest.substr(0, rest.find('/')));
    return ValidName(name) ? name : "";
  };
  if (std::string s = second("sessions/"); !s.empty()) l->session_id = s;
  if (std::string s = second("checkpoints/"); !s.empty()) l->session_id = s;
  if (rel.starts_with("volumes/") && rel.ends_with(".img")) {
    std::string v(rel.substr(8, rel.size() - 8 - 4));
    if (ValidName(v)) l->volume_id = v;
  }
}

// Whether a process holds a file below `prefix` open.
bool HoldsFileUnder(pid_t pid, const std::string& prefix) {
  std::string fd_dir = fmt::format("/proc/{}/fd", pid);
  for (const std::string& fd : DirEntries(fd_dir)) {
    char target[PATH_MAX];
    ssize_t n = readlink((fd_dir + "/" + fd).c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    if (std::string_view(target, static_cast<size_t>(n)).starts_with(prefix)) return true;
  }
  return false;
}

// Seconds since the newest of the directories changed (a group's: made, or a leaf made in it).
int64_t AgeSeconds(const std::vector<std::string>& dirs) {
  time_t newest = 0;
  for (const std::string& d : dirs) {
    struct stat st;
    if (stat(d.c_str(), &st) == 0) newest = std::max(newest, st.st_mtim.tv_sec);
  }
  return newest == 0 ? 0 : static_cast<int64_t>(time(nullptr) - newest);
}

void FindCgroups(const std::string& data_dir, const std::string& prefix,
                 const sandbox::CgroupManager& cgroups, std::chrono::seconds min_age,
                 std::vector<Leftover>* out) {
  auto groups = cgroups.ListGroups();
  if (!groups.ok()) return;  // no root yet: nothing made
  for (const std::string& name : *groups) {
    if (!ValidName(name) || sandbox::PathExists(fmt::format("{}/sessions/{}", data_dir, name)))
      continue;
    sandbox::CgroupView group = cgroups.OpenGroup(name);
    std::vector<std::string> dirs = group.paths();
    std::string rel = group.rel_path();
    auto pids = group.Pids();
    if (!pids.ok()) continue;
    Leftover l;
    l.path = rel;
    l.session_id = name;
    if (pids->empty()) {
      int64_t age = AgeSeconds(dirs);
      l.young = age < min_age.count();
      l.kind = "cgroup";
      l.detail = fmt::format("empty for {} s", age);
    } else {
      bool ours = std::any_of(pids->begin(), pids->end(),
                              [&](pid_t p) { return HoldsFileUnder(p, prefix); });
      if (!ours) continue;  // another server's sandbox
      l.kind = "agent";
      std::string list;
      for (pid_t p : *pids) {
        auto comm = sandbox::ReadFileToString(fmt::format("/proc/{}/comm", p));
        list +=
            fmt::format("{}{} ({})", list.empty() ? "" : ", ", p, comm.ok() ? Trimmed(*comm) : "?");
      }
      l.detail = "no session directory; processes " + list;
    }
    out->push_back(std::move(l));
  }
}

void FindMounts(const std::string& prefix, std::vector<Leftover>* out) {
  auto mounts = sandbox::ReadSelfMountInfo();
  if (!mounts.ok()) return;
  for (const auto& m : *mounts) {
    std::string_view mp = m.mount_point;
    if (!mp.starts_with(prefix)) continue;
    std::string_view rel = mp.substr(prefix.size());
    if (rel.find('/') == std::string_view::npos) continue;  // a top-level directory: an admin's
    Leftover l;
    l.kind = "mount";
    l.path = m.mount_point;
    l.detail = fmt::format("{} from {}", m.fs_type, m.source);
    NameOwner(rel, &l);
    out->push_back(std::move(l));
  }
}

// A loop device's backing file when it is below `prefix` and the device has no autoclear.
std::optional<std::string> StaleLoopBacking(const std::string& dev, const std::string& prefix) {
  std::string base = "/sys/block/" + dev + "/loop";
  auto backing = sandbox::ReadFileToString(base + "/backing_file");
  if (!backing.ok()) return std::nullopt;  // not attached
  std::string b = Trimmed(*backing);
  if (b.ends_with(" (deleted)")) b.resize(b.size() - 10);
  if (!b.starts_with(prefix)) return std::nullopt;
  auto autoclear = sandbox::ReadFileToString(base + "/autoclear");
  if (!autoclear.ok() || autoclear->starts_with("1")) return std::nullopt;
  return b;
}

// /dev/loopN opened exclusively: fails with EBUSY while it is mounted (in any namespace).
UniqueFd OpenUnusedLoop(const std::string& dev) {
  return UniqueFd(open(("/dev/" + dev).c_str(), O_RDONLY | O_EXCL | O_CLOEXEC));
}

void FindLoops(const std::string& prefix, std::vector<Leftover>* out) {
  for (const std::string& dev : DirEntries("/sys/block")) {
    if (!dev.starts_with("loop")) continue;
    std::optional<std::string> backing = StaleLoopBacking(dev, prefix);
    if (!backing || !OpenUnusedLoop(dev)) continue;
    Leftover l;
    l.kind = "loop";
    l.path = "/dev/" + dev;
    l.detail = "backed by " + *backing + ", no autoclear, not mounted";
    NameOwner(std::string_view(*backing).substr(prefix.size()), &l);
    out->push_back(std::move(l));
  }
}

void FindFiles(const std::string& data_dir, std::vector<Leftover>* out) {
  for (const std::string& f : DirEntries(data_dir + "/volumes")) {
    if (!f.ends_with(".img") || !ValidName(f.substr(0, f.size() - 4))) continue;
    Leftover l;
    l.kind = "volume_image";
    l.path = fmt::format("{}/volumes/{}", data_dir, f);
    l.volume_id = f.substr(0, f.size() - 4);
    out->push_back(std::move(l));
  }
  for (const std::string& id : DirEntries(data_dir + "/checkpoints")) {
    std::string path = fmt::format("{}/checkpoints/{}", data_dir, id);
    struct stat st;
    if (!ValidName(id) || lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    Leftover l;
    l.kind = "checkpoints";
    l.path = path;
    l.session_id = id;
    l.detail = fmt::format("{} checkpoint file(s)", DirEntries(path).size());
    out->push_back(std::move(l));
  }
}

Status RemoveAgentGroup(const std::string& data_dir, const sandbox::CgroupManager& cgroups,
                        const std::string& name) {
  if (sandbox::PathExists(fmt::format("{}/sessions/{}", data_dir, name)))
    return Conflict(fmt::format("{} has a session directory again", name));
  sandbox::Cgroup group(cgroups.OpenGroup(name));
  // A frozen process cannot die on v1: thaw the work leaf (a pause) and the group.
  (void)group.Leaf(sandbox::kWorkLeaf).Thaw();
  (void)group.Thaw();
  RETURN_IF_ERROR(group.KillAll());
  RETURN_IF_ERROR(group.WaitEmpty(kEmptyTimeoutMs));
  return group.Remove();
}

Status RemoveEmptyGroup(const sandbox::CgroupManager& cgroups, const std::string& name) {
  sandbox::CgroupView view = cgroups.OpenGroup(name);
  auto pids = view.Pids();
  if (!pids.ok() || !pids->empty())
    return Conflict(fmt::format("cgroup {} is not empty any more", name));
  return sandbox::Cgroup(std::move(view)).Remove();
}

Status DetachLoop(const std::string& path, const std::string& prefix) {
  std::string dev = path.substr(path.rfind('/') + 1);
  if (!path.starts_with("/dev/loop") || !StaleLoopBacking(dev, prefix))
    return Conflict(path + " is no stale loop device of this data dir");
  UniqueFd fd = OpenUnusedLoop(dev);
  if (!fd) return ErrnoError("open " + path + " exclusively", errno);
  if (ioctl(fd.get(), LOOP_CLR_FD) != 0) return ErrnoError("LOOP_CLR_FD " + path, errno);
  return Status::Ok();
}

}  // namespace

Result<std::vector<Leftover>> FindLeftovers(const std::string& data_dir,
                                            const sandbox::CgroupManager& cgroups,
                                            std::chrono::seconds min_age) {
  ASSIGN_OR_RETURN(std::string prefix, DataDirPrefix(data_dir));
  std::vector<Leftover> out;
  FindCgroups(data_dir, prefix, cgroups, min_age, &out);
  FindMounts(prefix, &out);
  FindLoops(prefix, &out);
  FindFiles(data_dir, &out);
  std::sort(out.begin(), out.end(), [](const Leftover& a, const Leftover& b) {
    return std::tie(a.kind, a.path) < std::tie(b.kind, b.path);
  });
  return out;
}

Status RemoveLeftoverObject(const std::string& data_dir, const sandbox::CgroupManager& cgroups,
                            const Leftover& l) {
  ASSIGN_OR_RETURN(std::string prefix, DataDirPrefix(data_dir));
  if (l.kind == "agent" || l.kind == "cgroup") {
    if (!ValidName(l.session_id)) return InvalidArgument("bad cgroup name: " + l.session_id);
    return l.kind == "agent" ? RemoveAgentGroup(data_dir, cgroups, l.session_id)
                             : RemoveEmptyGroup(cgroups, l.session_id);
  }
  if (l.kind == "loop") return DetachLoop(l.path, prefix);
  if (l.kind == "mount") {
    if (!l.path.starts_with(prefix)) return InvalidArgument(l.path + " is not below the data dir");
    // Detached lazily: a process may still have a file open there. EINVAL: no mount any more
    // (an enclosing one went first and took it along).
    if (umount2(l.path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0 && errno != EINVAL)
      return ErrnoError("umount " + l.path, errno);
    return Status::Ok();
  }
  if (l.kind == "volume_image") {
    if (!ValidName(l.volume_id)) return InvalidArgument("bad volume id: " + l.volume_id);
    std::string path = fmt::format("{}/volumes/{}.img", data_dir, l.volume_id);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError("unlink " + path, errno);
    return Status::Ok();
  }
  return InvalidArgument("the local driver removes no leftover of kind " + l.kind);
}

}  // namespace hutch::drivers::local
