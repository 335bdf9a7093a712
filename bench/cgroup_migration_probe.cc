// Where the first exec's tail came from (docs/benchmarks.md, "Pausing only the workload"): the
// time a new child takes to move itself into a cgroup v1 freezer leaf (write "0" to its
// cgroup.procs, what every child of the agent did), beside a child forked from a thread that sits
// in the leaf already (what the agent's spawner thread does now; agent/reaper.h). For each of
// --groups fresh groups `<freezer>/hutch-probe-<pid>/g<i>/{agent,work}` this process joins
// `agent`, then starts --children children each way, --gap-ms apart (sessions' execs are spaced,
// not back to back). Needs root and a v1 freezer hierarchy; removes its groups at the end.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

namespace {

double NowUs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_nsec) / 1e3;
}

bool WriteFile(const std::string& path, const std::string& value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
  close(fd);
  return ok;
}

// Forks a child that writes "0" to `procs_fd` (unless -1) and reports how long that took;
// returns {the write, fork to reaped}, or {-1, -1} on failure.
std::pair<double, double> TimedChild(int procs_fd) {
  int p[2];
  if (pipe(p) != 0) return {-1, -1};
  double t0 = NowUs();
  pid_t pid = fork();
  if (pid == 0) {
    double a = NowUs();
    if (procs_fd >= 0 && write(procs_fd, "0", 1) != 1) _exit(2);
    double d = NowUs() - a;
    _exit(write(p[1], &d, sizeof d) == sizeof d ? 0 : 3);
  }
  double d = -1;
  if (pid < 0 || read(p[0], &d, sizeof d) != sizeof d) d = -1;
  double total = NowUs() - t0;
  int status = 0;
  if (pid > 0) waitpid(pid, &status, 0);
  close(p[0]);
  close(p[1]);
  return {d, d < 0 ? -1 : total};
}

void Report(const char* name, std::vector<double> v) {
  if (v.empty()) return;
  std::sort(v.begin(), v.end());
  auto q = [&](double p) { return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))]; };
  fmt::print("{:<46} n={:4}  p50 {:8.3f} ms  p90 {:8.3f}  p99 {:8.3f}  max {:8.3f}\n", name,
             v.size(), q(.5) / 1e3, q(.9) / 1e3, q(.99) / 1e3, v.back() / 1e3);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cgroup v1 migration cost of a new child vs. a child born in the leaf"};
  std::string freezer = "/sys/fs/cgroup/freezer";
  int groups = 30, children = 10, gap_ms = 20;
  app.add_option("--freezer", freezer, "mount point of the v1 freezer hierarchy");
  app.add_option("--groups", groups, "fresh groups (sandboxes)");
  app.add_option("--children", children, "children per group and way");
  app.add_option("--gap-ms", gap_ms, "pause between two children");
  CLI11_PARSE(app, argc, argv);

  const std::string base = fmt::format("{}/hutch-probe-{}", freezer, getpid());
  if (mkdir(base.c_str(), 0755) != 0) {
    perror(base.c_str());
    return 1;
  }
  std::vector<double> first_write, later_write, first_total, later_total, born_first, born_later;
  for (int g = 0; g < groups; ++g) {
    const std::string dir = fmt::format("{}/g{}", base, g);
    mkdir(dir.c_str(), 0755);
    mkdir((dir + "/agent").c_str(), 0755);
    mkdir((dir + "/work").c_str(), 0755);
    if (!WriteFile(dir + "/agent/cgroup.procs", "0")) {
      perror("join agent");
      return 1;
    }
    int procs = open((dir + "/work/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    for (int i = 0; i < children; ++i) {
      auto [w, t] = TimedChild(procs);
      if (w < 0) return 1;
      (i == 0 ? first_write : later_write).push_back(w);
      (i == 0 ? first_total : later_total).push_back(t);
      std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
    }
    close(procs);
    int tasks = open((dir + "/work/tasks").c_str(), O_WRONLY | O_CLOEXEC);
    bool ok = true;
    std::thread([&] {
      if (write(tasks, "0", 1) != 1) ok = false;
      std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
      for (int i = 0; ok && i < children; ++i) {
        auto [w, t] = TimedChild(-1);
        if (w < 0) ok = false;
        (i == 0 ? born_first : born_later).push_back(t);
        std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
      }
    }).join();
    close(tasks);
    if (!ok) return 1;
    WriteFile(freezer + "/cgroup.procs", "0");
    rmdir((dir + "/agent").c_str());
    rmdir((dir + "/work").c_str());
    rmdir(dir.c_str());
  }
  rmdir(base.c_str());
  Report("child's write of 0 to work/cgroup.procs, 1st", first_write);
  Report("child's write of 0 to work/cgroup.procs, later", later_write);
  Report("fork to reaped, child migrates, 1st", first_total);
  Report("fork to reaped, child migrates, later", later_total);
  Report("fork to reaped, born in work (spawner), 1st", born_first);
  Report("fork to reaped, born in work (spawner), later", born_later);
  return 0;
}
