#include "testing/test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace hutch::testing {

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

bool ParsePid(std::string_view s, int* pid) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *pid);
  return ec == std::errc() && p == s.data() + s.size() && *pid > 0;
}

std::vector<int> AllPids() {
  std::vector<int> pids;
  DIR* d = opendir("/proc");
  if (!d) return pids;
  while (dirent* e = readdir(d)) {
    int pid;
    if (ParsePid(e->d_name, &pid)) pids.push_back(pid);
  }
  closedir(d);
  return pids;
}

// "\040" → " " in mountinfo paths.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

template <typename F>
void ForEachDirUnder(const std::string& dir, F&& f) {
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  std::vector<std::string> subdirs;
  while (dirent* e = readdir(d)) {
    std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    std::string path = dir + "/" + std::string(n);
    struct stat st;
    if (lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) subdirs.push_back(path);
  }
  closedir(d);
  for (const auto& s : subdirs) {
    f(s);
    ForEachDirUnder(s, f);
  }
}

}  // namespace

bool IsRoot() { return geteuid() == 0; }

int CountHostMounts() { return static_cast<int>(HostMountPoints().size()); }

std::vector<std::string> HostMountPoints() {
  std::vector<std::string> out;
  for (const auto& line : Split(ReadFile("/proc/self/mountinfo"), '\n')) {
    auto f = Split(line, ' ');
    if (f.size() > 4) out.push_back(Unescape(f[4]));
  }
  return out;
}

std::vector<std::string> CgroupHierarchies() {
  std::set<std::string> out;
  for (const auto& line : Split(ReadFile("/proc/self/mountinfo"), '\n')) {
    auto f = Split(line, ' ');
    size_t sep = 6;
    while (sep < f.size() && f[sep] != "-") ++sep;
    if (sep + 1 >= f.size() || f.size() < 5) continue;
    const std::string& type = f[sep + 1];
    if (type == "cgroup2") {
      out.insert(Unescape(f[4]));
    } else if (type == "cgroup" && sep + 3 < f.size()) {
      // Only hierarchies with a controller (not name=systemd).
      for (const auto& opt : Split(f[sep + 3], ',')) {
        if (opt != "rw" && opt != "ro" && opt.find('=') == std::string::npos) {
          out.insert(Unescape(f[4]));
          break;
        }
      }
    }
  }
  return {out.begin(), out.end()};
}

int CountDirsUnder(const std::string& dir) {
  int n = 0;
  ForEachDirUnder(dir, [&](const std::string&) { ++n; });
  return n;
}

int CountCgroupDirs(const std::string& root_name) {
  int n = 0;
  for (const auto& h : CgroupHierarchies()) n += CountDirsUnder(h + "/" + root_name);
  return n;
}

std::vector<int> PidsInCgroups(const std::string& root_name) {
  std::set<int> pids;
  for (const auto& h : CgroupHierarchies()) {
    std::string root = h + "/" + root_name;
    std::vector<std::string> dirs = {root};
    ForEachDirUnder(root, [&](const std::string& d) { dirs.push_back(d); });
    for (const auto& d : dirs) {
      for (const auto& line : Split(ReadFile(d + "/cgroup.procs"), '\n')) {
        int pid;
        if (ParsePid(line, &pid)) pids.insert(pid);
      }
    }
  }
  return {pids.begin(), pids.end()};
}

std::vector<int> DescendantPids() {
  std::map<int, std::vector<int>> children;
  for (int pid : AllPids()) {
    std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    auto f = Split(stat.substr(close + 1), ' ');  // state, ppid, …
    int ppid;
    if (f.size() > 1 && ParsePid(f[1], &ppid)) children[ppid].push_back(pid);
  }
  std::vector<int> out;
  std::vector<int> todo = {getpid()};
  while (!todo.empty()) {
    int p = todo.back();
    todo.pop_back();
    for (int c : children[p]) {
      out.push_back(c);
      todo.push_back(c);
    }
  }
  return out;
}

int CountTestProcesses(const std::string& root_name) {
  std::set<int> pids;
  for (int p : DescendantPids()) pids.insert(p);
  for (int p : PidsInCgroups(root_name)) pids.insert(p);
  return static_cast<int>(pids.size());
}

int CountProcessesNamed(const std::string& name) {
  int n = 0;
  for (int pid : AllPids()) {
    std::string comm = ReadFile("/proc/" + std::to_string(pid) + "/comm");
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
    if (comm == name) ++n;
  }
  return n;
}

std::optional<bool> IsCgroupFrozen(const std::string& group) {
  for (const auto& h : CgroupHierarchies()) {
    std::string dir = h + "/" + group, line;
    if (std::ifstream v1(dir + "/freezer.state"); v1 && std::getline(v1, line))
      return line != "THAWED";
    if (std::ifstream v2(dir + "/cgroup.freeze"); v2 && std::getline(v2, line)) return line != "0";
  }
  return std::nullopt;
}

bool SetCgroupFrozen(const std::string& group, bool frozen) {
  for (const auto& h : CgroupHierarchies()) {
    std::string dir = h + "/" + group;
    struct stat st;
    if (stat((dir + "/freezer.state").c_str(), &st) == 0) {
      std::ofstream(dir + "/freezer.state") << (frozen ? "FROZEN" : "THAWED");
      return IsCgroupFrozen(group) == frozen;
    }
    if (stat((dir + "/cgroup.freeze").c_str(), &st) == 0) {
      std::ofstream(dir + "/cgroup.freeze") << (frozen ? "1" : "0");
      return IsCgroupFrozen(group) == frozen;
    }
  }
  return false;
}

int CountDirEntries(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return 0;
  int n = 0;
  while (dirent* e = readdir(d)) {
    std::string_view name = e->d_name;
    if (name != "." && name != "..") ++n;
  }
  closedir(d);
  return n;
}

int CountOpenFds() {
  // The DIR stream's own fd is one of the entries.
  return CountDirEntries("/proc/self/fd") - 1;
}

LeakSnapshot TakeLeakSnapshot(const std::string& data_dir, const std::string& cgroup_root) {
  LeakSnapshot s;
  s.host_mounts = CountHostMounts();
  s.cgroup_dirs = CountCgroupDirs(cgroup_root);
  s.processes = CountTestProcesses(cgroup_root);
  s.session_dirs = CountDirEntries(data_dir + "/sessions");
  s.open_fds = CountOpenFds();
  return s;
}

LeakSnapshot TakeLeakSnapshotOf(const std::string& data_dir,
                                const std::vector<std::string>& session_ids,
                                const std::string& cgroup_root) {
  LeakSnapshot s;
  for (const auto& m : HostMountPoints()) {
    bool ours = m == data_dir || m.starts_with(data_dir + "/");
    for (const auto& id : session_ids) ours = ours || m.find(id) != std::string::npos;
    if (ours) ++s.host_mounts;
  }
  std::set<int> pids;
  for (int p : DescendantPids()) pids.insert(p);
  for (const auto& h : CgroupHierarchies()) {
    for (const auto& id : session_ids) {
      std::string group = h + "/" + cgroup_root + "/" + id;
      struct stat st;
      if (lstat(group.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
      s.cgroup_dirs += 1 + CountDirsUnder(group);
    }
  }
  for (const auto& id : session_ids)
    for (int p : PidsInCgroups(cgroup_root + "/" + id)) pids.insert(p);
  s.processes = static_cast<int>(pids.size());
  s.session_dirs = CountDirEntries(data_dir + "/sessions");
  s.open_fds = CountOpenFds();
  return s;
}

std::ostream& operator<<(std::ostream& os, const LeakSnapshot& s) {
  return os << "{host_mounts=" << s.host_mounts << " cgroup_dirs=" << s.cgroup_dirs
            << " processes=" << s.processes << " session_dirs=" << s.session_dirs
            << " open_fds=" << s.open_fds << "}";
}

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (mkdtemp(tmpl.data())) path_ = tmpl;
}

TempDir::~TempDir() {
  if (path_.empty() || getenv("HUTCH_KEEP_TEST_DIRS") != nullptr) return;
  // rm -rf without following symlinks: sandboxes write arbitrary symlinks into their layers.
  std::vector<std::string> dirs;
  ForEachDirUnder(path_, [&](const std::string& d) { dirs.push_back(d); });
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    DIR* d = opendir(it->c_str());
    if (!d) continue;
    while (dirent* e = readdir(d)) {
      std::string_view n = e->d_name;
      if (n == "." || n == "..") continue;
      unlink((*it + "/" + std::string(n)).c_str());  // fails harmlessly on subdirectories
    }
    closedir(d);
    rmdir(it->c_str());
  }
  DIR* d = opendir(path_.c_str());
  if (d) {
    while (dirent* e = readdir(d)) {
      std::string_view n = e->d_name;
      if (n != "." && n != "..") unlink((path_ + "/" + std::string(n)).c_str());
    }
    closedir(d);
  }
  rmdir(path_.c_str());
}

bool MakeSelfSignedCert(const std::string& dir, std::string* cert, std::string* key) {
  *cert = dir + "/cert.pem";
  *key = dir + "/key.pem";
  std::string gen =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
      "-addext subjectAltName=IP:127.0.0.1 -keyout " +
      *key + " -out " + *cert + " 2>/dev/null";
  return system(gen.c_str()) == 0;
}

}  // namespace hutch::testing
