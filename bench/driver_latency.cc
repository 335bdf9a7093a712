// hutch_driver_bench: create → first exec latency of the local driver, without HTTP in the way,
// for comparing sandbox setups (docs/benchmarks.md, "Hardening overhead"). Needs root.
//
//   hutch_driver_bench --agent build/src/exe/hutch-agent [--n 100] [--userns on|off]
//                      [--disk auto|tmpfs] [--data-dir DIR]
//
// Each round: Create (default resources), Exec `true` (the first exec), five more Execs, and
// Destroy; prints p50/p90/p99 of create→ready, create→first exec returned, exec, destroy.
// Compiles against older trees too (options they lack are skipped), so one program measures
// both sides of a change.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/ids.h"
#include "drivers/driver.h"
#include "drivers/local/local_driver.h"

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double Pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5)];
}

void Print(const char* what, const std::vector<double>& v) {
  std::printf("%-26s p50 %7.2f  p90 %7.2f  p99 %7.2f  (n=%zu)\n", what, Pct(v, 0.5), Pct(v, 0.9),
              Pct(v, 0.99), v.size());
}

// Older trees lack these options: in a template, the discarded branch is never compiled.
template <typename Options>
void SetHardeningOptions(Options& o, bool userns, const std::string& disk) {
  if constexpr (requires { o.user_namespaces; }) o.user_namespaces = userns;
  if constexpr (requires { o.disk; }) o.disk = disk;
}

}  // namespace

int main(int argc, char** argv) {
  std::string agent, data_dir, userns = "on", disk = "auto";
  int n = 100;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--agent")
      agent = v;
    else if (k == "--n")
      n = std::atoi(v.c_str());
    else if (k == "--userns")
      userns = v;
    else if (k == "--disk")
      disk = v;
    else if (k == "--data-dir")
      data_dir = v;
  }
  if (agent.empty() || n <= 0) {
    std::fprintf(stderr,
                 "usage: %s --agent PATH [--n 100] [--userns on|off] [--disk auto|tmpfs] "
                 "[--data-dir DIR]\n",
                 argv[0]);
    return 2;
  }
  char tmpl[] = "/tmp/hutch-bench-XXXXXX";
  if (data_dir.empty()) {
    if (!mkdtemp(tmpl)) return 1;
    data_dir = tmpl;
  }
  hutch::drivers::LocalDriverOptions opts;
  opts.data_dir = data_dir;
  opts.agent_path = agent;
  opts.cgroup_root_name = hutch::NewId("hutch-bench");
  SetHardeningOptions(opts, userns == "on", disk);
  auto driver = hutch::drivers::NewLocalDriver(opts);
  if (!driver.ok()) {
    std::fprintf(stderr, "%s\n", driver.status().ToString().c_str());
    return 1;
  }
  std::vector<double> ready, first, exec, destroy;
  for (int i = 0; i < n + 3; ++i) {  // the first three warm up (image, templates, pools)
    hutch::drivers::SandboxSpec spec;
    spec.session_id = hutch::NewId("ses");
    spec.image = "host";
    hutch::core::ExecRequest t;
    t.argv = {"true"};
    t.timeout_ms = 30000;
    auto t0 = Clock::now();
    auto state = (*driver)->Create(spec);
    auto t1 = Clock::now();
    if (!state.ok()) {
      std::fprintf(stderr, "create: %s\n", state.status().ToString().c_str());
      return 1;
    }
    auto r = (*driver)->Exec(spec.session_id, *state, t);
    auto t2 = Clock::now();
    if (!r.ok() || r->exit_code != 0) {
      std::fprintf(stderr, "exec failed\n");
      return 1;
    }
    std::vector<double> execs;
    for (int j = 0; j < 5; ++j) {
      auto e0 = Clock::now();
      (void)(*driver)->Exec(spec.session_id, *state, t);
      execs.push_back(Ms(e0, Clock::now()));
    }
    auto d0 = Clock::now();
    auto st = (*driver)->Destroy(spec.session_id, *state);
    auto d1 = Clock::now();
    if (!st.ok()) {
      std::fprintf(stderr, "destroy: %s\n", st.ToString().c_str());
      return 1;
    }
    if (i < 3) continue;
    ready.push_back(Ms(t0, t1));
    first.push_back(Ms(t0, t2));
    exec.insert(exec.end(), execs.begin(), execs.end());
    destroy.push_back(Ms(d0, d1));
  }
  Print("create -> ready (ms)", ready);
  Print("create -> first exec (ms)", first);
  Print("exec true (ms)", exec);
  Print("destroy (ms)", destroy);
  driver->reset();
  for (const char* c : {"memory", "cpu", "cpuacct", "pids", "freezer", "unified"}) {
    rmdir(("/sys/fs/cgroup/" + std::string(c) + "/" + opts.cgroup_root_name).c_str());
  }
  if (data_dir == tmpl) std::system(("rm -rf " + data_dir).c_str());
  return 0;
}
