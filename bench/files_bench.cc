// hutch_files_bench: file transfer throughput (DESIGN.md §8: "file transfer within 2× of a local
// cp"), measured the way users move files — `hutch cp` in both directions — beside the floor on
// the same disk: plain `cp` for a file, `tar | tar` for a tree.
//
//   1. a 1 GiB file: upload (hutch cp FILE ID:/bench/), download (hutch cp ID:/bench/FILE DIR);
//      floor: cp FILE DIR.
//   2. a tree of 10,000 files of 4 KiB in 100 directories: upload and download (tar streams);
//      floor: tar -C SRC -cf - . | tar -C DST -xf -.
//   3. watch latency: from a PUT of a small file to its `created` event on a watch stream.
//
// Everything runs in a temp dir beside the server's data dir, so the sandbox's writable layer
// and the floor's copies share one filesystem. Each transfer is repeated --reps times (page
// cache warm: the first run is a warm-up and not counted); p50/p99 by nearest rank and the
// throughput of the p50. Needs root (the server creates sandboxes).
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/http_client.h"
#include "hutch_server.h"
#include "stats.h"

namespace hutch::bench {
namespace {

struct Options {
  std::string hutch = HUTCH_BINARY;
  std::string dir;  // where the temp dir goes; default /tmp
  int reps = 5;
  int64_t file_mib = 1024;
  int tree_files = 10000;
  int watch_samples = 50;
};

int Run(const std::string& cmd) {
  int rc = system(cmd.c_str());
  if (rc != 0) fmt::print(stderr, "command failed ({}): {}\n", rc, cmd);
  return rc;
}

// Times `cmd` reps+1 times (the first is a warm-up); `before` runs untimed before each.
Summary Time(const std::string& cmd, const std::string& before, int reps) {
  std::vector<int64_t> samples;
  for (int i = 0; i <= reps; ++i) {
    if (!before.empty()) Run(before);
    int64_t t0 = MonotonicNs();
    if (Run(cmd) != 0) return {};
    int64_t t = MonotonicNs() - t0;
    if (i > 0) samples.push_back(t);
  }
  return Summarize(samples);
}

void Row(const std::string& what, const Summary& s, double bytes, const Summary& floor) {
  double mibs = s.p50_ms > 0 ? bytes / (1 << 20) / (s.p50_ms / 1000) : 0;
  double ratio = floor.p50_ms > 0 ? s.p50_ms / floor.p50_ms : 0;
  fmt::print("{:<34} {:>9.1f} {:>9.1f} {:>10.1f} {:>8.2f}\n", what, s.p50_ms, s.p99_ms, mibs,
             ratio);
}

int Main(const Options& o) {
  if (geteuid() != 0) {
    fmt::print(stderr, "hutch_files_bench needs root (the server creates sandboxes)\n");
    return 1;
  }
  std::string base = (o.dir.empty() ? std::string("/tmp") : o.dir) + "/hutch-files-bench-XXXXXX";
  std::vector<char> tmpl(base.begin(), base.end());
  tmpl.push_back('\0');
  if (!mkdtemp(tmpl.data())) {
    perror("mkdtemp");
    return 1;
  }
  std::string tmp = tmpl.data();
  auto server = HutchServer::Start(o.hutch, tmp + "/data", "warn");
  if (!server.ok()) {
    fmt::print(stderr, "start server: {}\n", server.status().ToString());
    return 1;
  }
  auto http = client::HttpClient::Create((*server)->url(), (*server)->token());
  client::ApiClient api(std::move(*http));
  auto session = api.CreateSession(json::parse(R"({"name": "files-bench"})").as_object());
  if (!session.ok()) {
    fmt::print(stderr, "create session: {}\n", session.status().ToString());
    return 1;
  }
  std::string id = session->id;
  std::string env =
      fmt::format("HUTCH_URL={} HUTCH_TOKEN={} ", (*server)->url(), (*server)->token());
  std::string hutch = env + o.hutch;
  std::string fs_type;
  {
    FILE* p = popen(("stat -f -c %T " + tmp).c_str(), "r");
    char buf[64] = {};
    if (p && fgets(buf, sizeof buf, p)) fs_type = buf;
    if (p) pclose(p);
    while (!fs_type.empty() && fs_type.back() == '\n') fs_type.pop_back();
  }
  fmt::print("files bench: {} MiB file, {} files of 4 KiB, {} reps (+1 warm-up), on {} ({})\n",
             o.file_mib, o.tree_files, o.reps, tmp, fs_type);

  // Inputs.
  Run(fmt::format("head -c {} /dev/urandom > {}/big.bin", o.file_mib << 20, tmp));
  Run(fmt::format("mkdir -p {}/tree {}/out", tmp, tmp));
  int dirs = std::max(1, o.tree_files / 100);
  std::string make_tree = fmt::format(
      "cd {}/tree && for d in $(seq 1 {}); do mkdir d$d; for f in $(seq 1 {}); do head -c 4096 "
      "/dev/urandom > d$d/f$f; done; done",
      tmp, dirs, o.tree_files / dirs);
  Run("bash -c '" + make_tree + "'");
  Run(fmt::format("{} cp {}/tree {}:/bench >/dev/null", hutch, tmp, id));  // makes /bench
  double file_bytes = static_cast<double>(o.file_mib << 20);
  double tree_bytes = 4096.0 * o.tree_files;

  fmt::print("\n{:<34} {:>9} {:>9} {:>10} {:>8}\n", "", "p50 ms", "p99 ms", "MiB/s", "x floor");
  Summary cp_floor = Time(fmt::format("cp {}/big.bin {}/out/big.bin", tmp, tmp),
                          fmt::format("rm -f {}/out/big.bin", tmp), o.reps);
  Row(fmt::format("floor: cp {} MiB file", o.file_mib), cp_floor, file_bytes, cp_floor);
  Summary up =
      Time(fmt::format("{} cp {}/big.bin {}:/bench/ </dev/null", hutch, tmp, id), "", o.reps);
  Row("hutch cp file → session", up, file_bytes, cp_floor);
  Summary down = Time(fmt::format("{} cp {}:/bench/big.bin {}/out/big.bin", hutch, id, tmp),
                      fmt::format("rm -f {}/out/big.bin", tmp), o.reps);
  Row("hutch cp session → file", down, file_bytes, cp_floor);

  Summary tar_floor = Time(
      fmt::format(
          "bash -c 'mkdir -p {0}/out/t && tar -C {0}/tree -cf - . | tar -C {0}/out/t -xf -'", tmp),
      fmt::format("rm -rf {}/out/t", tmp), o.reps);
  Row(fmt::format("floor: tar | tar {} files", o.tree_files), tar_floor, tree_bytes, tar_floor);
  Summary cpr_floor = Time(fmt::format("cp -r {}/tree {}/out/t", tmp, tmp),
                           fmt::format("rm -rf {}/out/t", tmp), o.reps);
  Row(fmt::format("floor: cp -r {} files", o.tree_files), cpr_floor, tree_bytes, tar_floor);
  Summary tree_up =
      Time(fmt::format("{} cp {}/tree {}:/bench/up", hutch, tmp, id),
           fmt::format("{} exec {} -- rm -rf /bench/up >/dev/null", hutch, id), o.reps);
  Row("hutch cp tree → session", tree_up, tree_bytes, tar_floor);
  Summary tree_down = Time(fmt::format("{} cp {}:/bench/tree {}/out/t", hutch, id, tmp),
                           fmt::format("rm -rf {}/out/t", tmp), o.reps);
  Row("hutch cp session → tree", tree_down, tree_bytes, tar_floor);

  // Watch latency: PUT a small file, time until its event arrives on the stream.
  std::atomic<int64_t> seen_ns{0};
  std::atomic<bool> stop{false};
  std::atomic<bool> ready{false};
  std::string want;
  std::mutex mu;
  std::thread watcher([&] {
    auto w = client::HttpClient::Create((*server)->url(), (*server)->token());
    std::string buf;
    (void)w->Stream("GET", "/v1/sessions/" + id + "/files/watch?path=/bench",
                    {{"Accept", "text/event-stream"}}, [&](std::string_view d) {
                      buf.append(d);
                      if (buf.find("event: ready") != std::string::npos) ready = true;
                      std::lock_guard lock(mu);
                      if (!want.empty() && buf.find(want) != std::string::npos) {
                        seen_ns = MonotonicNs();
                        want.clear();
                        buf.clear();
                      }
                      return !stop.load();
                    });
  });
  for (int i = 0; i < 500 && !ready; ++i) usleep(10000);
  std::vector<int64_t> lat;
  for (int i = 0; i < o.watch_samples && ready; ++i) {
    std::string name = fmt::format("w{}", i);
    {
      std::lock_guard lock(mu);
      want = "\"/bench/" + name + "\"";
      seen_ns = 0;
    }
    int64_t t0 = MonotonicNs();
    auto r = api.http().Request("PUT", "/v1/sessions/" + id + "/files?path=/bench/" + name, "x",
                                "application/octet-stream");
    if (!r.ok()) break;
    while (seen_ns.load() == 0 && MonotonicNs() - t0 < 2'000'000'000) usleep(100);
    if (seen_ns.load()) lat.push_back(seen_ns.load() - t0);
  }
  stop = true;
  (void)api.http().Request("PUT", "/v1/sessions/" + id + "/files?path=/bench/stop", "x",
                           "application/octet-stream");
  watcher.join();
  Summary wl = Summarize(lat);
  fmt::print("{:<34} {:>9.2f} {:>9.2f} {:>10} {:>8}\n", "watch: PUT → created event", wl.p50_ms,
             wl.p99_ms, "-", "-");

  (void)api.DeleteSession(id);
  (*server)->Stop();
  Run("rm -rf " + tmp);
  return 0;
}

}  // namespace
}  // namespace hutch::bench

int main(int argc, char** argv) {
  hutch::bench::Options o;
  CLI::App app("hutch_files_bench: hutch cp up and down beside cp and tar on the same disk");
  app.add_option("--hutch", o.hutch, "the hutch executable");
  app.add_option("--dir", o.dir, "where the temp dir goes (default /tmp)");
  app.add_option("--reps", o.reps, "timed repetitions per transfer");
  app.add_option("--file-mib", o.file_mib, "size of the big file in MiB");
  app.add_option("--tree-files", o.tree_files, "files in the tree");
  app.add_option("--watch-samples", o.watch_samples, "watch latency samples");
  CLI11_PARSE(app, argc, argv);
  return hutch::bench::Main(o);
}
