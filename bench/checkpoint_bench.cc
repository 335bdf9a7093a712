// hutch_checkpoint_bench: checkpoint, restore and fork latency of the local driver at 1 MiB,
// 100 MiB and 1 GiB of changed data, beside `cp -a` and `tar | tar` of the same data on the same
// disk (docs/benchmarks.md, "Checkpoints and forks"). Needs root and session disks.
//
//   hutch_checkpoint_bench --agent build/src/exe/hutch-agent [--rounds 5] [--sizes 1,100,1024]
//                          [--data-dir DIR]
//
// Measured through the Driver, as the server calls it (the HTTP round trip and the store write,
// ~1 ms together, are not in these numbers):
//   checkpoint  Checkpoint(running session): freeze, syncfs, sparse copy of the disk image,
//               thaw, SHA-256 of the copy, signed manifest; "frozen" is the freeze window alone
//   restore     Stop, RestoreLayer (copy + verify), Create on the restored layer: until the
//               session answers again
//   fork N      one capture and N Creates on verified copies of it, until all N answer
//   cp -a, tar  inside the session, on its disk: copy the changed data to a new directory and
//               sync it (`cp -a` / `tar -c | tar -x`, then `sync -f`), as a plain copy would
//               cost; the floor without integrity (no hashing) and without block sharing
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "common/ids.h"
#include "drivers/driver.h"
#include "drivers/local/local_driver.h"

namespace {

using Clock = std::chrono::steady_clock;
using hutch::drivers::Driver;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double Pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5)];
}

std::string Cell(const std::vector<double>& v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%9.1f / %9.1f", Pct(v, 0.5), Pct(v, 0.99));
  return buf;
}

void Die(const std::string& what, const hutch::Status& st) {
  std::fprintf(stderr, "%s: %s\n", what.c_str(), st.ToString().c_str());
  std::exit(1);
}

// Runs a shell script in the session; its stdout.
std::string Sh(Driver& d, const std::string& id, const std::string& state,
               const std::string& script) {
  hutch::core::ExecRequest r;
  r.argv = {"/bin/sh", "-c", script};
  r.timeout_ms = 600000;
  auto res = d.Exec(id, state, r);
  if (!res.ok()) Die("exec " + script, res.status());
  if (res->exit_code != 0) {
    std::fprintf(stderr, "exec %s: exit %d: %s\n", script.c_str(), res->exit_code,
                 res->stderr_data.c_str());
    std::exit(1);
  }
  return res->stdout_data;
}

// Milliseconds a script took inside the session, timed there.
double TimedInside(Driver& d, const std::string& id, const std::string& state,
                   const std::string& script) {
  std::string out = Sh(
      d, id, state, "a=$(date +%s%N); " + script + "; b=$(date +%s%N); echo $(( (b - a) / 1000 ))");
  return std::atof(out.c_str()) / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string agent, data_dir, sizes_arg = "1,100,1024";
  int rounds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--agent")
      agent = v;
    else if (k == "--rounds")
      rounds = std::atoi(v.c_str());
    else if (k == "--sizes")
      sizes_arg = v;
    else if (k == "--data-dir")
      data_dir = v;
  }
  if (agent.empty() || rounds <= 0) {
    std::fprintf(stderr,
                 "usage: %s --agent PATH [--rounds 5] [--sizes 1,100,1024] [--data-dir DIR]\n",
                 argv[0]);
    return 2;
  }
  std::vector<int> sizes;
  {
    std::stringstream ss(sizes_arg);
    std::string part;
    while (std::getline(ss, part, ',')) sizes.push_back(std::atoi(part.c_str()));
  }
  char tmpl[] = "/var/tmp/hutch-ckpt-bench-XXXXXX";
  if (data_dir.empty()) {
    if (!mkdtemp(tmpl)) return 1;
    data_dir = tmpl;
  }
  constexpr int64_t kDiskMb = 4096;
  hutch::drivers::LocalDriverOptions opts;
  opts.data_dir = data_dir;
  opts.agent_path = agent;
  opts.cgroup_root_name = hutch::NewId("hutch-bench");
  opts.warm_disk_mb = kDiskMb;
  opts.warm_disks = 2;
  auto made = hutch::drivers::NewLocalDriver(opts);
  if (!made.ok()) Die("driver", made.status());
  Driver& d = **made;

  std::printf("%-10s %-22s %-22s %-22s %-22s %-22s\n", "changed", "checkpoint p50/p99 ms",
              "(frozen) p50/p99 ms", "restore p50/p99 ms", "cp -a+sync p50/p99 ms",
              "tar|tar+sync p50/p99 ms");
  std::vector<std::pair<int, std::vector<double>>> fork_rows;
  for (int mb : sizes) {
    hutch::drivers::SandboxSpec spec;
    spec.session_id = hutch::NewId("ses");
    spec.image = "host";
    spec.resources.disk_mb = kDiskMb;
    auto state = d.Create(spec);
    if (!state.ok()) Die("create", state.status());
    std::string st = *state;
    Sh(d, spec.session_id, st,
       "mkdir -p /srv/data && head -c " + std::to_string(int64_t{mb} << 20) +
           " /dev/urandom > /srv/data/blob && sync -f /srv/data/blob");
    std::vector<double> ckpt, frozen, restore, cp, tar;
    for (int r = 0; r < rounds; ++r) {
      std::string name = "b" + std::to_string(r);
      auto t0 = Clock::now();
      auto info = d.Checkpoint(spec.session_id, st, name, true);
      auto t1 = Clock::now();
      if (!info.ok()) Die("checkpoint", info.status());
      ckpt.push_back(Ms(t0, t1));
      frozen.push_back(static_cast<double>(info->freeze_ms));

      auto r0 = Clock::now();
      if (auto s = d.Stop(spec.session_id, st); !s.ok()) Die("stop", s);
      if (auto s = d.RestoreLayer(spec.session_id, spec.session_id, name); !s.ok())
        Die("restore", s);
      hutch::drivers::SandboxSpec again = spec;
      again.reuse_layer = true;
      auto restarted = d.Create(again);
      if (!restarted.ok()) Die("start after restore", restarted.status());
      st = *restarted;
      Sh(d, spec.session_id, st, "true");
      restore.push_back(Ms(r0, Clock::now()));
      if (auto s = d.DeleteCheckpoint(spec.session_id, name); !s.ok()) Die("delete", s);

      cp.push_back(
          TimedInside(d, spec.session_id, st, "cp -a /srv/data /srv/cp && sync -f /srv/cp/blob"));
      Sh(d, spec.session_id, st, "rm -rf /srv/cp");
      tar.push_back(
          TimedInside(d, spec.session_id, st,
                      "mkdir /srv/tar && tar -C /srv -cf - data | tar -C /srv/tar -xf - && sync -f "
                      "/srv/tar/data/blob"));
      Sh(d, spec.session_id, st, "rm -rf /srv/tar; sync -f /srv");
    }
    std::printf("%-10s %-22s %-22s %-22s %-22s %-22s\n", (std::to_string(mb) + " MiB").c_str(),
                Cell(ckpt).c_str(), Cell(frozen).c_str(), Cell(restore).c_str(), Cell(cp).c_str(),
                Cell(tar).c_str());
    std::fflush(stdout);

    // Fork: a capture and N children on copies of it, at this size (1 and 100 MiB only: at
    // 1 GiB ten children would need 10 GiB of host disk).
    if (mb <= 100) {
      for (int n : {1, 10}) {
        std::vector<double> fork;
        for (int r = 0; r < std::max(1, rounds / (n == 10 ? 2 : 1)); ++r) {
          std::string name = ".fork" + std::to_string(r);
          auto f0 = Clock::now();
          auto info = d.Checkpoint(spec.session_id, st, name, true);
          if (!info.ok()) Die("fork capture", info.status());
          std::vector<std::pair<std::string, std::string>> kids;
          for (int k = 0; k < n; ++k) {
            hutch::drivers::SandboxSpec child;
            child.session_id = hutch::NewId("ses");
            child.image = "host";
            child.layer_from_session = spec.session_id;
            child.layer_from_name = name;
            auto cs = d.Create(child);
            if (!cs.ok()) Die("fork child", cs.status());
            kids.emplace_back(child.session_id, *cs);
          }
          for (auto& [kid, ks] : kids) Sh(d, kid, ks, "test -s /srv/data/blob");
          fork.push_back(Ms(f0, Clock::now()));
          (void)d.DeleteCheckpoint(spec.session_id, name);
          for (auto& [kid, ks] : kids) (void)d.Destroy(kid, ks);
        }
        fork_rows.emplace_back(mb * 1000 + n, fork);
      }
    }
    (void)d.Destroy(spec.session_id, st);
    (void)d.DeleteCheckpoints(spec.session_id);
  }
  std::printf("\n%-10s %-10s %-22s\n", "changed", "children", "fork p50/p99 ms");
  for (const auto& [key, v] : fork_rows) {
    std::printf("%-10s %-10d %-22s\n", (std::to_string(key / 1000) + " MiB").c_str(), key % 1000,
                Cell(v).c_str());
  }
  made->reset();
  for (const char* c : {"memory", "cpu", "cpuacct", "pids", "freezer", "unified"}) {
    rmdir(("/sys/fs/cgroup/" + std::string(c) + "/" + opts.cgroup_root_name).c_str());
  }
  if (data_dir == tmpl) std::system(("rm -rf " + data_dir).c_str());
  return 0;
}
