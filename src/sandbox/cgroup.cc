#include "sandbox/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "common/log.h"
#include "common/time.h"
#include "sandbox/fs.h"

namespace hutch::sandbox {

namespace {

std::vector<std::string> SplitOn(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(sep, i);
    if (j == std::string_view::npos) j = s.size();
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool Contains(const std::vector<std::string>& v, std::string_view x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

bool ValidGroupName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos;
}

void SleepMillis(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// The groups directly below `dir` (a cgroup directory holds files and its child groups).
std::vector<std::string> SubGroups(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string_view n = e->d_name;
    if (e->d_type == DT_DIR && n != "." && n != "..") out.push_back(dir + "/" + std::string(n));
  }
  closedir(d);
  return out;
}

// The pids in cgroup.procs of `dir` and of every group below it.
Status CollectPids(const std::string& dir, std::set<pid_t>* pids) {
  auto text = ReadFileToString(dir + "/cgroup.procs");
  if (!text.ok()) return text.status().code() == Code::kNotFound ? Status::Ok() : text.status();
  for (const auto& line : SplitOn(*text, '\n')) {
    pid_t pid = 0;
    auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), pid);
    if (ec == std::errc() && pid > 0) pids->insert(pid);
  }
  for (const auto& sub : SubGroups(dir)) RETURN_IF_ERROR(CollectPids(sub, pids));
  return Status::Ok();
}

// rmdir of `dir` after the groups below it; a missing one is fine.
Status RemoveGroupDir(const std::string& dir) {
  for (const auto& sub : SubGroups(dir)) RETURN_IF_ERROR(RemoveGroupDir(sub));
  int64_t deadline = MonotonicMillis() + 1000;
  for (;;) {
    if (rmdir(dir.c_str()) == 0 || errno == ENOENT) return Status::Ok();
    int err = errno;
    if (err != EBUSY || MonotonicMillis() >= deadline) return ErrnoError("rmdir " + dir, err);
    SleepMillis(1);
  }
}

}  // namespace

std::string_view ToString(CgroupVersion v) { return v == CgroupVersion::kV1 ? "v1" : "v2"; }

Result<CgroupLayout> DetectCgroupLayout(const std::vector<MountInfoEntry>& mounts) {
  CgroupLayout layout;
  std::string v2;
  for (const auto& m : mounts) {
    if (m.fs_type == "cgroup2") {
      // Prefer the conventional location when cgroup2 is mounted more than once.
      if (v2.empty() || m.mount_point == "/sys/fs/cgroup") v2 = m.mount_point;
      continue;
    }
    if (m.fs_type != "cgroup") continue;
    // v1 names its controllers in the superblock options: "rw,cpu,cpuacct". Named hierarchies
    // ("name=systemd") carry no controller.
    for (const auto& opt : SplitOn(m.super_options, ',')) {
      for (std::string_view c : kV1Controllers) {
        // The first mount of a hierarchy wins; later ones are bind mounts of the same.
        if (opt == c && !layout.v1.count(opt)) layout.v1[opt] = m.mount_point;
      }
    }
  }
  if (layout.v1.count("memory")) {
    layout.version = CgroupVersion::kV1;
    return layout;
  }
  if (!v2.empty()) {
    layout.version = CgroupVersion::kV2;
    layout.v1.clear();
    layout.v2 = v2;
    return layout;
  }
  return NotFound(
      "no cgroup hierarchy found in /proc/self/mountinfo: mount cgroup2 at /sys/fs/cgroup "
      "(or cgroup v1 controllers, memory at least)");
}

// ---- Cgroup ----

Cgroup::Cgroup(Cgroup&& other) noexcept
    : CgroupView(other.version_, std::move(other.rel_path_), std::exchange(other.paths_, {}),
                 std::move(other.freezer_path_)) {}

Cgroup& Cgroup::operator=(Cgroup&& other) noexcept {
  if (this != &other) {
    (void)Remove();
    version_ = other.version_;
    rel_path_ = std::move(other.rel_path_);
    paths_ = std::exchange(other.paths_, {});
    freezer_path_ = std::move(other.freezer_path_);
  }
  return *this;
}

Cgroup::~Cgroup() { (void)Remove(); }

Result<UniqueFd> CgroupView::OpenDirFd() const {
  if (version_ != CgroupVersion::kV2 || paths_.size() != 1) {
    return Internal("a cgroup directory fd exists only for a v2 group");
  }
  UniqueFd fd(open(paths_[0].c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoError("open " + paths_[0], errno);
  return fd;
}

Status CgroupView::AddProcess(pid_t pid) const {
  std::string value = std::to_string(pid);
  for (const auto& p : paths_) RETURN_IF_ERROR(WriteExistingFile(p + "/cgroup.procs", value));
  return Status::Ok();
}

std::vector<std::string> CgroupView::TasksFiles(std::string_view freezer_leaf) const {
  std::vector<std::string> out;
  if (version_ != CgroupVersion::kV1) return out;
  for (const auto& p : paths_) {
    if (!freezer_leaf.empty() && p == freezer_path_) {
      out.push_back(fmt::format("{}/{}/tasks", p, freezer_leaf));
    } else {
      out.push_back(p + "/tasks");
    }
  }
  return out;
}

CgroupView CgroupView::Leaf(std::string_view leaf) const {
  std::string rel = fmt::format("{}/{}", rel_path_, leaf);
  std::string base =
      version_ == CgroupVersion::kV2 ? (paths_.empty() ? "" : paths_[0]) : freezer_path_;
  if (base.empty()) return CgroupView(version_, std::move(rel), {}, "");
  std::string dir = fmt::format("{}/{}", base, leaf);
  std::string freezer = version_ == CgroupVersion::kV1 ? dir : "";
  return CgroupView(version_, std::move(rel), {dir}, std::move(freezer));
}

bool CgroupView::Exists() const {
  if (version_ == CgroupVersion::kV1) return !freezer_path_.empty() && PathExists(freezer_path_);
  return !paths_.empty() && PathExists(paths_[0]);
}

bool CgroupView::IsFrozen() const {
  if (version_ == CgroupVersion::kV2) {
    if (paths_.empty()) return false;
    auto events = ReadFileToString(paths_[0] + "/cgroup.events");
    return events.ok() && events->find("frozen 1") != std::string::npos;
  }
  if (freezer_path_.empty()) return false;
  auto state = ReadFileToString(freezer_path_ + "/freezer.state");
  return state.ok() && Trim(*state) != "THAWED";
}

Result<UniqueFd> CgroupView::OpenProcsFile() const {
  if (paths_.size() != 1) return Internal("cgroup.procs of a group in several hierarchies");
  std::string file = paths_[0] + "/cgroup.procs";
  UniqueFd fd(open(file.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return ErrnoError("open " + file, errno);
  return fd;
}

Result<UniqueFd> CgroupView::OpenTasksFile() const {
  if (version_ != CgroupVersion::kV1 || paths_.size() != 1) {
    return Internal("a tasks file of one v1 directory");
  }
  std::string file = paths_[0] + "/tasks";
  UniqueFd fd(open(file.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return ErrnoError("open " + file, errno);
  return fd;
}

Result<std::vector<pid_t>> CgroupView::Pids() const {
  std::set<pid_t> pids;
  for (const auto& p : paths_) RETURN_IF_ERROR(CollectPids(p, &pids));
  return std::vector<pid_t>(pids.begin(), pids.end());
}

bool CgroupView::HasProcess(pid_t pid) const {
  auto text = ReadFileToString(fmt::format("/proc/{}/cgroup", pid));
  if (!text.ok()) return false;
  // Lines are "hierarchy-id:controllers:path"; the path is relative to the reader's cgroup
  // namespace, as our rel_path is.
  for (const auto& line : SplitOn(*text, '\n')) {
    size_t a = line.find(':');
    size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string_view path = std::string_view(line).substr(b + 1);
    if (path == rel_path_ || (path.starts_with(rel_path_) && path[rel_path_.size()] == '/'))
      return true;
  }
  return false;
}

Status CgroupView::KillAll() const {
  if (paths_.empty()) return Status::Ok();
  if (version_ == CgroupVersion::kV2) {
    std::string kill_file = paths_[0] + "/cgroup.kill";
    if (PathExists(kill_file)) {
      Status st = WriteExistingFile(kill_file, "1");
      if (st.ok() || !PathExists(paths_[0])) return Status::Ok();
      return st;
    }
    // Kernels before 5.14 have no cgroup.kill: fall through to killing pid by pid.
  }
  // v1: stop the group first. A frozen task cannot exit, so its pid cannot be reused by an
  // unrelated process between our reading cgroup.procs and kill(2).
  bool frozen = !freezer_path_.empty() && PathExists(freezer_path_) && Freeze().ok();
  auto pids = Pids();
  if (pids.ok()) {
    for (pid_t pid : *pids) kill(pid, SIGKILL);
  }
  // A task frozen by a group below (a paused sandbox's work leaf) stays frozen when this group
  // thaws, and a frozen task does not die on v1.
  ThawBelowV1();
  if (frozen) (void)WriteExistingFile(freezer_path_ + "/freezer.state", "THAWED");
  return pids.ok() ? Status::Ok() : pids.status();
}

void CgroupView::ThawBelowV1() const {
  if (freezer_path_.empty()) return;
  std::vector<std::string> todo = SubGroups(freezer_path_);
  while (!todo.empty()) {
    std::string dir = std::move(todo.back());
    todo.pop_back();
    (void)WriteExistingFile(dir + "/freezer.state", "THAWED");
    for (auto& sub : SubGroups(dir)) todo.push_back(std::move(sub));
  }
}

namespace {
// Polls `file` (every ~1 ms, up to a second) until `done` says its content is the wanted one.
//
// The wait starts at 20 µs and doubles up to 1 ms: a freeze usually completes within tens of
// microseconds but is rarely done at the first read, and a fixed 1 ms sleep made pause cost
// 1.8 ms p50 where the freezer itself takes 0.08 ms (bench/lifecycle_bench).
template <typename Pred>
Status PollFile(const std::string& file, Pred done, std::string_view what) {
  int64_t deadline = MonotonicMillis() + 1000;
  std::chrono::microseconds wait{20};
  for (;;) {
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(file));
    if (done(text)) return Status::Ok();
    if (MonotonicMillis() >= deadline)
      return Unavailable(fmt::format("{}: not done after 1 s ({})", what, Trim(text)));
    std::this_thread::sleep_for(wait);
    wait = std::min(wait * 2, std::chrono::microseconds(1000));
  }
}
}  // namespace

Status CgroupView::Freeze() const {
  if (version_ == CgroupVersion::kV2) {
    if (paths_.empty()) return Unavailable("freeze: the cgroup has no directory");
    RETURN_IF_ERROR(WriteExistingFile(paths_[0] + "/cgroup.freeze", "1"));
    // cgroup.events says "frozen 1" once every task has stopped.
    return PollFile(
        paths_[0] + "/cgroup.events",
        [](const std::string& t) { return t.find("frozen 1") != std::string::npos; },
        "freeze " + paths_[0]);
  }
  if (freezer_path_.empty() || !PathExists(freezer_path_))
    return Unavailable("freeze: no v1 freezer hierarchy is mounted; pausing needs one");
  return FreezeV1();
}

Status CgroupView::FreezeV1() const {
  // FREEZING until every task has stopped, then FROZEN. The v1 freezer can stay FREEZING when a
  // task forks while the group freezes (a shell loop starting `sleep` every 20 ms is enough): the
  // child is never asked to freeze. Writing FROZEN again asks every task anew, and a thaw and
  // refreeze clears a stuck one — runc's fs freezer does the same. Seen once in a test, as
  // "not done after 1 s (FREEZING)", with the group then left half frozen.
  const std::string state = freezer_path_ + "/freezer.state";
  auto frozen = [](const std::string& t) { return Trim(t) == "FROZEN"; };
  Status last;
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (attempt > 0) {
      (void)WriteExistingFile(state, "THAWED");
      SleepMillis(1);
    }
    RETURN_IF_ERROR(WriteExistingFile(state, "FROZEN"));
    last = PollFile(state, frozen, "freeze " + freezer_path_);
    if (last.ok()) return last;
  }
  // Never leave the group half frozen: a failed pause leaves the session running.
  if (Status st = WriteExistingFile(state, "THAWED"); !st.ok())
    LOG_WARN("thaw {} after a failed freeze: {}", freezer_path_, st.ToString());
  return last;
}

Status CgroupView::Thaw() const {
  if (version_ == CgroupVersion::kV2) {
    if (paths_.empty() || !PathExists(paths_[0] + "/cgroup.freeze")) return Status::Ok();
    return WriteExistingFile(paths_[0] + "/cgroup.freeze", "0");
  }
  if (freezer_path_.empty() || !PathExists(freezer_path_)) return Status::Ok();
  return WriteExistingFile(freezer_path_ + "/freezer.state", "THAWED");
}

Status CgroupView::WaitEmpty(int64_t timeout_ms) const {
  int64_t deadline = MonotonicMillis() + timeout_ms;
  for (;;) {
    ASSIGN_OR_RETURN(std::vector<pid_t> pids, Pids());
    if (pids.empty()) return Status::Ok();
    if (MonotonicMillis() >= deadline) {
      return Unavailable(fmt::format("cgroup {} still has {} processes after {} ms", rel_path_,
                                     pids.size(), timeout_ms));
    }
    SleepMillis(1);
  }
}

Status Cgroup::Remove() {
  Status first;
  for (const auto& p : paths_) {
    Status st = RemoveGroupDir(p);
    if (first.ok()) first = st;
  }
  if (first.ok()) paths_.clear();
  return first;
}

// ---- CgroupManager ----

std::vector<std::string> CgroupManager::Hierarchies() const {
  if (layout_.version == CgroupVersion::kV2) return {layout_.v2};
  std::vector<std::string> out;
  for (std::string_view c : kV1Controllers) {
    auto it = layout_.v1.find(std::string(c));
    if (it != layout_.v1.end() && !Contains(out, it->second)) out.push_back(it->second);
  }
  return out;
}

std::string CgroupManager::ControllerDir(std::string_view controller, std::string_view name) const {
  std::string base;
  if (layout_.version == CgroupVersion::kV2) {
    base = layout_.v2;
  } else {
    auto it = layout_.v1.find(std::string(controller));
    if (it == layout_.v1.end()) return "";
    base = it->second;
  }
  return fmt::format("{}/{}/{}", base, root_name_, name);
}

Result<std::unique_ptr<CgroupManager>> CgroupManager::Open(const CgroupLayout& layout,
                                                           std::string root_name) {
  if (!ValidGroupName(root_name)) return InvalidArgument("bad cgroup root name: " + root_name);
  std::unique_ptr<CgroupManager> m(new CgroupManager(layout, std::move(root_name)));
  if (layout.version == CgroupVersion::kV1) {
    for (std::string_view c : kV1Controllers) {
      if (!layout.v1.count(std::string(c))) m->missing_.emplace_back(c);
    }
    for (const auto& h : m->Hierarchies()) {
      RETURN_IF_ERROR(MakeDir(h + "/" + m->root_name_, 0755));
    }
    return m;
  }

  const std::string& top = layout.v2;
  ASSIGN_OR_RETURN(std::string available, ReadFileToString(top + "/cgroup.controllers"));
  ASSIGN_OR_RETURN(std::string enabled, ReadFileToString(top + "/cgroup.subtree_control"));
  auto available_list = SplitOn(Trim(available), ' ');
  auto enabled_list = SplitOn(Trim(enabled), ' ');
  for (std::string_view c : kV2Controllers) {
    if (!Contains(available_list, c)) {
      m->missing_.emplace_back(c);
      continue;
    }
    if (!Contains(enabled_list, c)) {
      Status st = WriteExistingFile(top + "/cgroup.subtree_control", fmt::format("+{}", c));
      if (!st.ok()) {
        // EBUSY: the top group holds processes and is not the real root (a container's cgroup
        // namespace); v2 forbids controllers in a group with member processes.
        return st.WithContext(fmt::format(
            "enable the {} controller in {} (if it has processes of its own, move them to a "
            "child group first)",
            c, top));
      }
    }
    m->enabled_.emplace_back(c);
  }
  std::string parent = top + "/" + m->root_name_;
  RETURN_IF_ERROR(MakeDir(parent, 0755));
  for (const auto& c : m->enabled_) {
    RETURN_IF_ERROR(WriteExistingFile(parent + "/cgroup.subtree_control", "+" + c)
                        .WithContext("enable controllers for sandboxes"));
  }
  return m;
}

Status CgroupManager::ApplyLimits(std::string_view name, const CgroupLimits& limits) const {
  bool v2 = layout_.version == CgroupVersion::kV2;
  auto have = [&](std::string_view c) {
    return v2 ? Contains(enabled_, c) : layout_.v1.count(std::string(c)) > 0;
  };
  if (limits.memory_bytes > 0 && have("memory")) {
    std::string dir = ControllerDir("memory", name);
    if (v2) {
      RETURN_IF_ERROR(WriteExistingFile(dir + "/memory.max", std::to_string(limits.memory_bytes)));
      // memory.swap.max exists only with swap accounting.
      if (PathExists(dir + "/memory.swap.max")) {
        RETURN_IF_ERROR(
            WriteExistingFile(dir + "/memory.swap.max", std::to_string(limits.swap_bytes)));
      }
    } else {
      // memsw limits memory+swap together and must not be below the memory limit, so the
      // memory limit goes first.
      RETURN_IF_ERROR(
          WriteExistingFile(dir + "/memory.limit_in_bytes", std::to_string(limits.memory_bytes)));
      if (PathExists(dir + "/memory.memsw.limit_in_bytes")) {
        RETURN_IF_ERROR(WriteExistingFile(dir + "/memory.memsw.limit_in_bytes",
                                          std::to_string(limits.memory_bytes + limits.swap_bytes)));
      }
    }
  }
  if (limits.cpu_quota_us > 0 && have("cpu")) {
    std::string dir = ControllerDir("cpu", name);
    if (v2) {
      RETURN_IF_ERROR(WriteExistingFile(
          dir + "/cpu.max", fmt::format("{} {}", limits.cpu_quota_us, limits.cpu_period_us)));
    } else {
      RETURN_IF_ERROR(
          WriteExistingFile(dir + "/cpu.cfs_period_us", std::to_string(limits.cpu_period_us)));
      RETURN_IF_ERROR(
          WriteExistingFile(dir + "/cpu.cfs_quota_us", std::to_string(limits.cpu_quota_us)));
    }
  }
  if (limits.pids_max > 0 && have("pids")) {
    RETURN_IF_ERROR(WriteExistingFile(ControllerDir("pids", name) + "/pids.max",
                                      std::to_string(limits.pids_max)));
  }
  return Status::Ok();
}

CgroupView CgroupManager::OpenGroup(std::string_view name) const {
  std::vector<std::string> paths;
  for (const auto& h : Hierarchies()) paths.push_back(fmt::format("{}/{}/{}", h, root_name_, name));
  std::string freezer;
  if (layout_.version == CgroupVersion::kV1) freezer = ControllerDir("freezer", name);
  return CgroupView(layout_.version, fmt::format("/{}/{}", root_name_, name), std::move(paths),
                    std::move(freezer));
}

Result<Cgroup> CgroupManager::CreateGroup(std::string_view name, const CgroupLimits& limits) const {
  if (!ValidGroupName(name)) return InvalidArgument(fmt::format("bad cgroup name: {}", name));
  Cgroup group(OpenGroup(name));
  std::vector<std::string> made;
  for (const auto& p : group.paths()) {
    if (mkdir(p.c_str(), 0755) != 0) {
      int err = errno;
      // Remove only what this call made: an existing group belongs to someone else.
      group.Release();
      Cgroup partial(layout_.version, group.rel_path(), made, "");
      return ErrnoError("mkdir " + p, err);
    }
    made.push_back(p);
  }
  RETURN_IF_ERROR(ApplyLimits(name, limits).WithContext(fmt::format("limits for {}", name)));
  return group;
}

Status CgroupManager::CreateLeaves(const CgroupView& group) const {
  for (std::string_view name : {kAgentLeaf, kWorkLeaf}) {
    // The group owns the leaf: its Remove removes the leaves first.
    std::vector<std::string> dirs = group.Leaf(name).paths();
    if (dirs.empty())
      return Unavailable("no v1 freezer hierarchy is mounted: sandboxes cannot be paused");
    if (mkdir(dirs[0].c_str(), 0755) != 0) return ErrnoError("mkdir " + dirs[0], errno);
  }
  return Status::Ok();
}

Result<std::vector<std::string>> CgroupManager::ListGroups() const {
  // Every hierarchy: a group a crash left half-made (or half-removed) may exist in only some.
  std::vector<std::string> out;
  bool any_root = false;
  for (const std::string& h : Hierarchies()) {
    std::string dir = h + "/" + root_name_;
    DIR* d = opendir(dir.c_str());
    if (!d) continue;
    any_root = true;
    while (dirent* e = readdir(d)) {
      std::string_view n = e->d_name;
      if (e->d_type == DT_DIR && n != "." && n != "..") out.emplace_back(n);
    }
    closedir(d);
  }
  if (!any_root) return NotFound(fmt::format("no cgroup root {}", root_name_));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace hutch::sandbox
