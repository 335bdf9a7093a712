#include "sandbox/usage.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <set>
#include <utility>

#include <fmt/format.h>

#include "common/unique_fd.h"
#include "sandbox/fs.h"

namespace hutch::sandbox {

namespace {

// The first line of `text` as a number; "max" (v2's "no limit") and garbage are 0.
int64_t ParseCounter(std::string_view text) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() ? v : 0;
}

// The value of `key` in a flat-keyed file ("usage_usec 1234\n…").
int64_t KeyedValue(std::string_view text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ' ')
      return ParseCounter(line.substr(key.size() + 1));
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return 0;
}

// The contents of `file` in whichever directory has it; false when none has.
bool ReadFromAny(const std::vector<std::string>& dirs, const std::string& file, std::string* out) {
  for (const auto& d : dirs) {
    auto text = ReadFileToString(d + "/" + file);
    if (text.ok()) {
      *out = std::move(*text);
      return true;
    }
  }
  return false;
}

// v1 reports "no limit" as a huge page-aligned number (PAGE_COUNTER_MAX × page size).
int64_t Limit(int64_t v) { return v >= (int64_t{1} << 62) ? 0 : v; }

// The counters of what the group ran into at its limits (v1 and v2 keep them in different files).
void ReadLimitHits(const std::vector<std::string>& dirs, CgroupUsage* u) {
  std::string text;
  if (ReadFromAny(dirs, "pids.events", &text)) u->pids_max_events = KeyedValue(text, "max");
  if (ReadFromAny(dirs, "memory.failcnt", &text)) u->memory_max_events = ParseCounter(text);
  if (ReadFromAny(dirs, "memory.oom_control", &text)) u->oom_kills = KeyedValue(text, "oom_kill");
  if (ReadFromAny(dirs, "memory.events", &text)) {
    u->memory_max_events = KeyedValue(text, "max");
    u->oom_kills = KeyedValue(text, "oom_kill");
  }
  if (ReadFromAny(dirs, "cpu.stat", &text))
    u->cpu_throttled_periods = KeyedValue(text, "nr_throttled");
}

}  // namespace

Result<CgroupUsage> ReadCgroupUsage(const std::vector<std::string>& dirs) {
  bool any = false;
  for (const auto& d : dirs) any = any || PathExists(d);
  if (!any) return NotFound("the sandbox's cgroup is gone");
  CgroupUsage u;
  std::string text;
  if (ReadFromAny(dirs, "cpuacct.usage", &text)) {
    u.cpu_seconds = static_cast<double>(ParseCounter(text)) / 1e9;  // nanoseconds
  } else if (ReadFromAny(dirs, "cpu.stat", &text)) {
    u.cpu_seconds = static_cast<double>(KeyedValue(text, "usage_usec")) / 1e6;
  }
  if (ReadFromAny(dirs, "memory.usage_in_bytes", &text)) {
    u.memory_bytes = ParseCounter(text);
    if (ReadFromAny(dirs, "memory.max_usage_in_bytes", &text))
      u.memory_peak_bytes = ParseCounter(text);
    if (ReadFromAny(dirs, "memory.limit_in_bytes", &text))
      u.memory_limit_bytes = Limit(ParseCounter(text));
  } else if (ReadFromAny(dirs, "memory.current", &text)) {
    u.memory_bytes = ParseCounter(text);
    if (ReadFromAny(dirs, "memory.peak", &text)) u.memory_peak_bytes = ParseCounter(text);
    if (ReadFromAny(dirs, "memory.max", &text)) u.memory_limit_bytes = ParseCounter(text);
  }
  if (ReadFromAny(dirs, "pids.current", &text)) u.pids = ParseCounter(text);
  if (ReadFromAny(dirs, "pids.max", &text)) u.pids_limit = ParseCounter(text);
  ReadLimitHits(dirs, &u);
  return u;
}

namespace {

// Deeper than this is counted as partial: each level holds one fd while its children are
// walked, so depth, not width, bounds the fds in use.
constexpr int kMaxDepth = 256;

struct TreeWalk {
  dev_t dev = 0;
  int64_t max_entries = 0;
  TreeUsage usage;
  std::set<std::pair<dev_t, ino_t>> linked;  // inodes with several names, counted once

  // Takes ownership of `fd`. Each level is opened relative to its parent with O_NOFOLLOW, so a
  // symlink the sandbox planted is counted as a symlink, never followed.
  void Walk(int fd, int depth) {
    DIR* d = fdopendir(fd);
    if (!d) {
      close(fd);
      return;
    }
    struct stat st;
    while (dirent* e = readdir(d)) {
      std::string_view name = e->d_name;
      if (name == "." || name == "..") continue;
      if (usage.entries >= max_entries) {
        usage.partial = true;
        break;
      }
      ++usage.entries;
      if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (st.st_dev != dev) continue;
      if (st.st_nlink > 1 && !S_ISDIR(st.st_mode) && !linked.insert({st.st_dev, st.st_ino}).second)
        continue;
      usage.bytes += static_cast<int64_t>(st.st_blocks) * 512;
      if (!S_ISDIR(st.st_mode)) continue;
      if (depth + 1 >= kMaxDepth) {
        usage.partial = true;
        continue;
      }
      int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) Walk(sub, depth + 1);
      if (usage.partial && usage.entries >= max_entries) break;
    }
    closedir(d);
  }
};

}  // namespace

Result<FsUsage> MeasureFilesystem(const std::string& path) {
  struct statvfs v;
  if (statvfs(path.c_str(), &v) != 0) return ErrnoError("statvfs " + path, errno);
  FsUsage u;
  u.used_bytes = static_cast<int64_t>((v.f_blocks - v.f_bfree) * v.f_frsize);
  u.total_bytes = static_cast<int64_t>(v.f_blocks * v.f_frsize);
  u.used_inodes = static_cast<int64_t>(v.f_files - v.f_ffree);
  u.total_inodes = static_cast<int64_t>(v.f_files);
  return u;
}

Result<TreeUsage> MeasureTree(const std::string& root, int64_t max_entries) {
  UniqueFd top(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!top) {
    if (errno == ENOENT) return TreeUsage{};
    return ErrnoError("open " + root, errno);
  }
  struct stat st;
  if (fstat(top.get(), &st) != 0) return ErrnoError("stat " + root, errno);
  TreeWalk walk;
  walk.dev = st.st_dev;
  walk.max_entries = max_entries;
  walk.usage.bytes = static_cast<int64_t>(st.st_blocks) * 512;
  walk.Walk(top.Release(), 0);
  return walk.usage;
}

Result<InterfaceCounters> ReadInterfaceCounters(const std::string& ifname) {
  if (ifname.empty() || ifname.find('/') != std::string::npos || ifname == "." || ifname == "..")
    return InvalidArgument("bad interface name: " + ifname);
  std::string dir = "/sys/class/net/" + ifname + "/statistics/";
  InterfaceCounters c;
  for (auto [file, field] :
       {std::pair{"rx_bytes", &c.rx_bytes}, std::pair{"tx_bytes", &c.tx_bytes},
        std::pair{"rx_packets", &c.rx_packets}, std::pair{"tx_packets", &c.tx_packets}}) {
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(dir + file));
    *field = ParseCounter(text);
  }
  return c;
}

}  // namespace hutch::sandbox
