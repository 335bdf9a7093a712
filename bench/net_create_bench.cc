// Create latency of network mode nat against none, on the local driver (docs/benchmarks.md,
// "Network modes"). Needs root. Prints percentiles and ratios; asserts nothing.
//
//   net_create_bench [iterations]   (default 100 per mode)
//
// Three drivers side by side — mode none; nat from a warm pool; nat with pool_size 0, so every
// namespace and veth is made on the create path — and the iterations interleave them, so a
// noisy machine (a build next door) weighs on each the same. Per iteration and mode: Create
// (until the agent is ready), one exec of `true` (the first exec), Destroy, then a 5 ms pause
// (a client's pace: the pool refills between creates as it does between requests).
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/ids.h"
#include "common/log.h"
#include "drivers/driver.h"
#include "drivers/local/local_driver.h"
#include "sandbox/fs.h"

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

struct Mode {
  std::string label;
  std::string network;
  int pool_size = 0;
  std::string cgroup_root;
  std::unique_ptr<hutch::drivers::Driver> driver;
  std::vector<double> create, first_exec, destroy;
  double shutdown_ms = 0;
};

void RemoveCgroupRoot(const std::string& name) {
  rmdir(("/sys/fs/cgroup/" + name).c_str());
  if (DIR* d = opendir("/sys/fs/cgroup")) {
    while (dirent* e = readdir(d)) {
      rmdir((std::string("/sys/fs/cgroup/") + e->d_name + "/" + name).c_str());
    }
    closedir(d);
  }
}

bool Once(Mode& m, bool record) {
  hutch::drivers::SandboxSpec spec;
  spec.session_id = hutch::NewId("ses");
  spec.image = "host";
  spec.network.mode = m.network;
  if (m.label == "nat, pool, lists") {
    spec.network.allow_out = {"10.1.0.0/16"};
    spec.network.deny_out = {"198.51.100.0/24", "203.0.113.0/24"};
  }
  auto t0 = Clock::now();
  auto state = m.driver->Create(spec);
  auto t1 = Clock::now();
  if (!state.ok()) {
    std::fprintf(stderr, "%s: create: %s\n", m.label.c_str(), state.status().ToString().c_str());
    return false;
  }
  hutch::core::ExecRequest req;
  req.argv = {"true"};
  auto r = m.driver->Exec(spec.session_id, *state, req);
  auto t2 = Clock::now();
  if (!r.ok() || r->exit_code != 0) {
    std::fprintf(stderr, "%s: exec failed\n", m.label.c_str());
    return false;
  }
  auto st = m.driver->Destroy(spec.session_id, *state);
  auto t3 = Clock::now();
  if (!st.ok()) {
    std::fprintf(stderr, "%s: destroy: %s\n", m.label.c_str(), st.ToString().c_str());
    return false;
  }
  if (record) {
    m.create.push_back(Ms(t1 - t0));
    m.first_exec.push_back(Ms(t2 - t0));
    m.destroy.push_back(Ms(t3 - t2));
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "net_create_bench needs root\n");
    return 2;
  }
  hutch::log::SetLevel(hutch::log::Level::kWarn);
  int n = argc > 1 ? std::atoi(argv[1]) : 100;
  char tmpl[] = "/tmp/hutch-net-bench-XXXXXX";
  std::string dir = mkdtemp(tmpl);

  std::vector<Mode> modes(4);
  modes[0] = Mode{"none", "none", 0, hutch::NewId("hutch-bench"), nullptr, {}, {}, {}, 0};
  modes[1] =
      Mode{"nat, warm pool (8)", "nat", 8, hutch::NewId("hutch-bench"), nullptr, {}, {}, {}, 0};
  modes[2] = Mode{"nat, no pool", "nat", 0, hutch::NewId("hutch-bench"), nullptr, {}, {}, {}, 0};
  // With allow_out/deny_out: a session chain written on create, deleted on destroy.
  modes[3] =
      Mode{"nat, pool, lists", "nat", 8, hutch::NewId("hutch-bench"), nullptr, {}, {}, {}, 0};
  for (auto& m : modes) {
    hutch::drivers::LocalDriverOptions opts;
    opts.data_dir = dir + "/data";
    opts.agent_path = HUTCH_AGENT_BINARY;
    opts.cgroup_root_name = m.cgroup_root;
    opts.nat.pool_size = m.pool_size;
    opts.nat.prewarm = m.network == "nat";
    opts.nat.dns = {"192.0.2.53"};  // never queried: nothing here resolves a name
    auto driver = hutch::drivers::NewLocalDriver(opts);
    if (!driver.ok()) {
      std::fprintf(stderr, "driver: %s\n", driver.status().ToString().c_str());
      return 1;
    }
    m.driver = std::move(*driver);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // pools fill
  int rc = 0;
  for (int i = 0; i < n + 5 && rc == 0; ++i) {
    for (auto& m : modes) {
      if (!Once(m, i >= 5)) rc = 1;  // the first 5: warm-up
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  for (auto& m : modes) {
    auto t = Clock::now();
    m.driver.reset();
    m.shutdown_ms = Ms(Clock::now() - t);
    RemoveCgroupRoot(m.cgroup_root);
  }
  (void)hutch::sandbox::RemoveTree(dir);
  if (rc != 0) return rc;

  std::printf("n=%d per mode, interleaved; ms\n", n);
  std::printf("%-20s %-22s %7s %7s %7s %7s\n", "mode", "", "p50", "p90", "p99", "max");
  for (const auto& m : modes) {
    for (auto [what, v] :
         {std::pair{"create -> ready", &m.create}, std::pair{"create -> first exec", &m.first_exec},
          std::pair{"destroy", &m.destroy}}) {
      std::printf("%-20s %-22s %7.2f %7.2f %7.2f %7.2f\n", m.label.c_str(), what, Pct(*v, 0.5),
                  Pct(*v, 0.9), Pct(*v, 0.99), Pct(*v, 1));
    }
    std::printf("%-20s %-22s %7.1f\n", m.label.c_str(), "driver shutdown", m.shutdown_ms);
  }
  auto ratio = [&](size_t a, const std::vector<double> Mode::*f) {
    return Pct(modes[a].*f, 0.5) / Pct(modes[0].*f, 0.5);
  };
  std::printf(
      "p50 ratio to none, create -> ready: nat pool %.2fx, nat no pool %.2fx, "
      "nat pool + lists %.2fx\n",
      ratio(1, &Mode::create), ratio(2, &Mode::create), ratio(3, &Mode::create));
  std::printf(
      "p50 ratio to none, create -> first exec: nat pool %.2fx, nat no pool %.2fx, "
      "nat pool + lists %.2fx\n",
      ratio(1, &Mode::first_exec), ratio(2, &Mode::first_exec), ratio(3, &Mode::first_exec));
  return 0;
}
