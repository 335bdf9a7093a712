// hutch_lifecycle_bench: what pausing, resuming and surviving a server crash cost (DESIGN.md §8:
// pause/resume ≤ 1 ms).
//
//   1. pause and resume: the API round trip of POST …/pause and …/resume on a running session
//      with a few processes, next to the floor — writing the cgroup freezer directly and reading
//      it until the kernel reports the change done — on that session's own cgroup and on a
//      scratch cgroup with one sleeping process, and hutch's own primitive
//      (sandbox::Cgroup::Freeze/Thaw) on the scratch cgroup;
//   2. many sessions: how long creating them takes, what memory each costs, how long a server
//      that was killed with SIGKILL takes to come back (first answer, then every session
//      answering exec again), and how fast they are deleted.
//
// It starts its own `hutch serve` on a temp data dir (needs root), or measures a running server
// with --url and --token (then the restart is skipped: it cannot kill a server it did not start).
// Clocks are CLOCK_MONOTONIC (steady_clock). Output: a table, or JSON with -o json.
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/http_client.h"
#include "common/json.h"
#include "common/time.h"
#include "sandbox/cgroup.h"
#include "sandbox/fs.h"
#include "sandbox/mountinfo.h"

namespace hutch::bench {
namespace {

using client::HttpClient;
using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// ---- statistics ---------------------------------------------------------------------------

struct Stats {
  size_t n = 0;
  double p50 = 0, p99 = 0, mean = 0, min = 0, max = 0;  // milliseconds
};

// Nearest-rank percentiles.
Stats Summarize(std::vector<double> ms) {
  Stats s;
  s.n = ms.size();
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  auto rank = [&](double p) {
    size_t i = static_cast<size_t>(p * static_cast<double>(ms.size()) + 0.999999);
    return ms[std::clamp<size_t>(i, 1, ms.size()) - 1];
  };
  s.p50 = rank(0.50);
  s.p99 = rank(0.99);
  s.mean = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size());
  s.min = ms.front();
  s.max = ms.back();
  return s;
}

json::object ToJson(const Stats& s) {
  return json::object{{"n", s.n},          {"p50_ms", s.p50}, {"p99_ms", s.p99},
                      {"mean_ms", s.mean}, {"min_ms", s.min}, {"max_ms", s.max}};
}

// ---- a server of our own --------------------------------------------------------------------

std::string ReadFirstLine(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

// `hutch serve` as a child process on a temp data dir. After the first start it keeps its port,
// so a restart can be timed from fork to the first answer without waiting for listen.addr.
class OwnServer {
 public:
  ~OwnServer() {
    Kill9();
    if (!data_dir_.empty() && getenv("HUTCH_KEEP_BENCH_DIR") == nullptr)
      (void)sandbox::RemoveTree(data_dir_);
  }

  Status Start(const std::string& binary) {
    binary_ = binary;
    char tmpl[] = "/tmp/hutch-lbench-XXXXXX";
    if (!mkdtemp(tmpl)) return ErrnoError("mkdtemp", errno);
    data_dir_ = tmpl;
    // No rate limit: the benchmark sends hundreds of calls per second with one token. Info logs,
    // as a server runs by default.
    std::ofstream(data_dir_ + "/config.yaml") << "rate_limit:\n  per_second: 0\n"
                                                 "orphan_sweep_seconds: 3600\n";
    RETURN_IF_ERROR(Spawn("127.0.0.1:0"));
    auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline) {
      std::string addr = ReadFirstLine(data_dir_ + "/listen.addr");
      if (!addr.empty()) {
        addr_ = addr;
        token_ = ReadFirstLine(data_dir_ + "/admin.token");
        return Status::Ok();
      }
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return Internal("hutch serve exited at start; see " + data_dir_ + "/serve.log");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return Internal("hutch serve did not listen within 30 s; see " + data_dir_ + "/serve.log");
  }

  // Starts the server again on the same address and data dir; does not wait.
  Status Respawn() { return Spawn(addr_); }

  void Kill9() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  std::string url() const { return "http://" + addr_; }
  const std::string& token() const { return token_; }
  pid_t pid() const { return pid_; }

 private:
  Status Spawn(const std::string& listen) {
    std::vector<std::string> args = {
        binary_,      "serve",   "--listen", listen,
        "--data-dir", data_dir_, "--config", data_dir_ + "/config.yaml"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string log_path = data_dir_ + "/serve.log";
    pid_ = fork();
    if (pid_ < 0) return ErrnoError("fork", errno);
    if (pid_ == 0) {
      FILE* log = fopen(log_path.c_str(), "a");
      if (log) {
        dup2(fileno(log), 1);
        dup2(fileno(log), 2);
      }
      execv(binary_.c_str(), argv.data());
      _exit(127);
    }
    return Status::Ok();
  }

  std::string binary_, data_dir_, addr_, token_;
  pid_t pid_ = -1;
};

// ---- the API --------------------------------------------------------------------------------

// One keep-alive connection; answers the parsed body of a 2xx answer, retrying 429 (the server's
// rate limit, when measuring a server that has one) after a short wait.
class Api {
 public:
  Api(const std::string& url, const std::string& token) {
    auto http = HttpClient::Create(url, token);
    if (!http.ok()) {
      std::fprintf(stderr, "error: %s\n", http.status().ToString().c_str());
      std::exit(2);
    }
    http_ = std::make_unique<HttpClient>(std::move(*http));
    http_->set_read_timeout(std::chrono::seconds(60));
  }

  Result<json::object> Call(std::string_view method, const std::string& target,
                            std::string_view body = {}) {
    for (int attempt = 0;; ++attempt) {
      ASSIGN_OR_RETURN(client::HttpResponse r, http_->Request(method, target, body));
      if (r.status == 429 && attempt < 100) {
        ++throttled_;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      if (r.status / 100 != 2) return client::StatusFromResponse(r);
      if (r.body.empty()) return json::object{};
      return client::ParseResponseJson(r.body);
    }
  }

  // Whether the server answers GET /healthz with 200 (no retries, no waiting).
  bool Healthy() {
    auto r = http_->Request("GET", "/healthz");
    return r.ok() && r->status == 200;
  }

  Status ExecEcho(const std::string& id) {
    ASSIGN_OR_RETURN(json::object r,
                     Call("POST", "/v1/sessions/" + id + "/exec", R"({"cmd": ["echo", "ok"]})"));
    auto out = r.find("stdout");
    if (out == r.end() || !out->value().is_string() || out->value().get_string() != "ok\n")
      return Internal(fmt::format("exec in {} answered {}", id, json::serialize(r)));
    return Status::Ok();
  }

  int throttled() const { return throttled_; }

 private:
  std::unique_ptr<HttpClient> http_;
  int throttled_ = 0;
};

// Runs `work(i)` for i in [0, n) on `clients` threads, each with its own connection; answers the
// first error.
Status Parallel(const std::string& url, const std::string& token, int clients, size_t n,
                const std::function<Status(Api&, size_t)>& work) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status first;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      Api api(url, token);
      for (size_t i; (i = next++) < n;) {
        Status st = work(api, i);
        if (!st.ok()) {
          std::lock_guard lock(mu);
          if (first.ok()) first = st;
          return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  return first;
}

// ---- the freezer floor --------------------------------------------------------------------

// Freezes and thaws a cgroup by writing its freezer directly and reading its state until the
// kernel reports the change done, busy polling (no sleeps): the floor any runtime pays.
class RawFreezer {
 public:
  RawFreezer() = default;
  // `dir`: the group's directory in the v1 freezer hierarchy, or its v2 directory.
  RawFreezer(sandbox::CgroupVersion version, std::string dir)
      : version_(version), dir_(std::move(dir)) {}

  Status Freeze() {
    if (version_ == sandbox::CgroupVersion::kV1) {
      RETURN_IF_ERROR(sandbox::WriteExistingFile(dir_ + "/freezer.state", "FROZEN"));
      return Poll(dir_ + "/freezer.state", "FROZEN\n");
    }
    RETURN_IF_ERROR(sandbox::WriteExistingFile(dir_ + "/cgroup.freeze", "1"));
    return Poll(dir_ + "/cgroup.events", "frozen 1");
  }
  Status Thaw() {
    if (version_ == sandbox::CgroupVersion::kV1) {
      RETURN_IF_ERROR(sandbox::WriteExistingFile(dir_ + "/freezer.state", "THAWED"));
      return Poll(dir_ + "/freezer.state", "THAWED\n");
    }
    RETURN_IF_ERROR(sandbox::WriteExistingFile(dir_ + "/cgroup.freeze", "0"));
    return Poll(dir_ + "/cgroup.events", "frozen 0");
  }
  // How many reads the last Freeze or Thaw took: more than one means the kernel was still
  // FREEZING when first asked.
  int last_reads() const { return last_reads_; }

 private:
  // v1's freezer.state is the whole answer; v2's cgroup.events has a "frozen 0|1" line.
  Status Poll(const std::string& file, std::string_view want) {
    for (last_reads_ = 1; last_reads_ <= 1000000; ++last_reads_) {
      ASSIGN_OR_RETURN(std::string text, sandbox::ReadFileToString(file));
      if (version_ == sandbox::CgroupVersion::kV1 ? text == want
                                                  : text.find(want) != std::string::npos)
        return Status::Ok();
    }
    return Unavailable(file + " never showed " + std::string(want));
  }

  sandbox::CgroupVersion version_ = sandbox::CgroupVersion::kV1;
  std::string dir_;
  int last_reads_ = 0;
};

// The freezer directory of hutch's group `name` (a session id), or of <root>/<name>.
Result<std::string> FreezerDir(const sandbox::CgroupLayout& layout, std::string_view root,
                               std::string_view name) {
  if (layout.version == sandbox::CgroupVersion::kV2)
    return fmt::format("{}/{}/{}", layout.v2, root, name);
  auto it = layout.v1.find("freezer");
  if (it == layout.v1.end()) return Unavailable("no v1 freezer hierarchy is mounted");
  return fmt::format("{}/{}/{}", it->second, root, name);
}

// A scratch cgroup with one sleeping process, made by hutch's own CgroupManager the way sandboxes
// get theirs (<hierarchy>/hutch-bench-<pid>/floor).
class ScratchCgroup {
 public:
  ~ScratchCgroup() { Remove(); }

  Status Create(const sandbox::CgroupLayout& layout) {
    std::string root = fmt::format("hutch-bench-{}", getpid());
    ASSIGN_OR_RETURN(manager_, sandbox::CgroupManager::Open(layout, root));
    ASSIGN_OR_RETURN(sandbox::Cgroup group, manager_->CreateGroup("floor", {}));
    group_ = std::make_unique<sandbox::Cgroup>(std::move(group));
    ASSIGN_OR_RETURN(std::string dir, FreezerDir(layout, root, "floor"));
    raw_ = RawFreezer(layout.version, dir);
    child_ = fork();
    if (child_ < 0) return ErrnoError("fork", errno);
    if (child_ == 0) {
      for (;;) pause();
    }
    return group_->AddProcess(child_);
  }

  RawFreezer& raw() { return raw_; }
  // hutch's primitive, as the local driver calls it for a pause.
  sandbox::Cgroup& group() { return *group_; }

  void Remove() {
    if (child_ > 0) {
      if (group_) (void)group_->Thaw();
      kill(child_, SIGKILL);
      waitpid(child_, nullptr, 0);
      child_ = -1;
    }
    if (group_) {
      std::vector<std::string> paths = group_->paths();
      (void)group_->Remove();
      group_.reset();
      for (const auto& p : paths) rmdir(p.substr(0, p.rfind('/')).c_str());  // the root
    }
  }

 private:
  std::unique_ptr<sandbox::CgroupManager> manager_;
  std::unique_ptr<sandbox::Cgroup> group_;
  RawFreezer raw_;
  pid_t child_ = -1;
};

// ---- memory ---------------------------------------------------------------------------------

// A "Key:   123 kB" line of a /proc file, in bytes; 0 when absent.
int64_t ProcKb(const std::string& path, std::string_view key) {
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key, 0) == 0 && line.size() > key.size() && line[key.size()] == ':')
      return std::atoll(line.c_str() + key.size() + 1) * 1024;
  }
  return 0;
}

struct Memory {
  int64_t cgroup_bytes = 0;  // memory.usage_in_bytes (v1) or memory.current (v2), summed
  int64_t rss_bytes = 0;     // VmRSS of every process in the sessions' cgroups
  int64_t pss_bytes = 0;     // Pss of the same: shared pages (the agent's text) divided up
  int processes = 0;
  int sessions_measured = 0;
};

Memory MeasureMemory(const sandbox::CgroupLayout& layout, const std::vector<std::string>& ids) {
  Memory m;
  std::string mem_root, procs_root;
  if (layout.version == sandbox::CgroupVersion::kV1) {
    auto it = layout.v1.find("memory");
    if (it != layout.v1.end()) mem_root = it->second + "/hutch/";
  } else {
    mem_root = layout.v2 + "/hutch/";
  }
  if (mem_root.empty()) return m;
  const char* usage_file =
      layout.version == sandbox::CgroupVersion::kV1 ? "/memory.usage_in_bytes" : "/memory.current";
  for (const auto& id : ids) {
    auto usage = sandbox::ReadFileToString(mem_root + id + usage_file);
    if (!usage.ok()) continue;
    ++m.sessions_measured;
    m.cgroup_bytes += std::atoll(usage->c_str());
    auto procs = sandbox::ReadFileToString(mem_root + id + "/cgroup.procs");
    if (!procs.ok()) continue;
    size_t pos = 0;
    while (pos < procs->size()) {
      size_t nl = procs->find('\n', pos);
      if (nl == std::string::npos) nl = procs->size();
      std::string pid = procs->substr(pos, nl - pos);
      pos = nl + 1;
      if (pid.empty()) continue;
      ++m.processes;
      m.rss_bytes += ProcKb("/proc/" + pid + "/status", "VmRSS");
      m.pss_bytes += ProcKb("/proc/" + pid + "/smaps_rollup", "Pss");
    }
  }
  return m;
}

// ---- the machine --------------------------------------------------------------------------

json::object Machine(const std::optional<sandbox::CgroupLayout>& layout) {
  utsname u;
  uname(&u);
  std::string load = ReadFirstLine("/proc/loadavg");
  time_t now = time(nullptr);
  char date[32];
  strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
  return json::object{
      {"date", date},
      {"cpus", std::thread::hardware_concurrency()},
      {"kernel", std::string(u.sysname) + " " + u.release},
      {"cgroup", layout ? std::string(sandbox::ToString(layout->version)) : "unknown"},
      {"loadavg_at_start", load.substr(0, load.find(' ', load.find(' ', load.find(' ') + 1) + 1))},
      {"build", HUTCH_BUILD_TYPE},
  };
}

// ---- the run --------------------------------------------------------------------------------

struct Options {
  std::string hutch = HUTCH_BINARY;
  std::string url, token;
  int iterations = 200;
  int sessions = 500;
  int clients = 4;
  std::string output = "table";
};

int Run(const Options& o) {
  auto fail = [](const std::string& what, const Status& st) {
    std::fprintf(stderr, "error: %s: %s\n", what.c_str(), st.ToString().c_str());
    return 1;
  };
  std::optional<sandbox::CgroupLayout> layout;
  if (auto mounts = sandbox::ReadSelfMountInfo(); mounts.ok())
    if (auto l = sandbox::DetectCgroupLayout(*mounts); l.ok()) layout = *l;

  OwnServer own;
  std::string url = o.url, token = o.token;
  if (url.empty()) {
    if (geteuid() != 0) {
      std::fprintf(stderr, "error: starting hutch serve needs root (or give --url and --token)\n");
      return 2;
    }
    if (Status st = own.Start(o.hutch); !st.ok()) return fail("start hutch serve", st);
    url = own.url();
    token = own.token();
  }
  json::object report;
  report["machine"] = Machine(layout);
  report["server"] = o.url.empty() ? "own (started by the benchmark)" : o.url;

  // Sessions this run created, deleted at the end whatever happens.
  std::vector<std::string> created;
  std::mutex created_mu;
  auto cleanup = [&] {
    if (created.empty()) return;
    // A run that failed after the kill: bring the server back so the sessions can be deleted.
    if (o.url.empty() && own.pid() <= 0 && own.Respawn().ok()) {
      Api probe(url, token);
      for (int i = 0; i < 10000 && !probe.Healthy(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    (void)Parallel(url, token, o.clients, created.size(), [&](Api& api, size_t i) {
      (void)api.Call("DELETE", "/v1/sessions/" + created[i]);
      return Status::Ok();
    });
    created.clear();
  };
  struct Guard {
    std::function<void()> f;
    ~Guard() { f(); }
  } guard{cleanup};

  // 1. Pause and resume on a running session with a few processes.
  Api api(url, token);
  {
    auto s = api.Call("POST", "/v1/sessions", "{}");
    if (!s.ok()) return fail("create a session", s.status());
    std::string id(s->at("id").as_string());
    created.push_back(id);
    auto r = api.Call("POST", "/v1/sessions/" + id + "/exec",
                      R"({"command": "for i in 1 2 3; do sleep 100000 >/dev/null 2>&1 & done"})");
    if (!r.ok()) return fail("start processes", r.status());
    std::vector<double> pause_ms, resume_ms;
    for (int i = -10; i < o.iterations; ++i) {  // 10 rounds of warm-up
      auto t0 = Clock::now();
      auto p = api.Call("POST", "/v1/sessions/" + id + "/pause");
      double tp = MsSince(t0);
      if (!p.ok()) return fail("pause", p.status());
      auto t1 = Clock::now();
      auto q = api.Call("POST", "/v1/sessions/" + id + "/resume");
      double tr = MsSince(t1);
      if (!q.ok()) return fail("resume", q.status());
      if (i < 0) continue;
      pause_ms.push_back(tp);
      resume_ms.push_back(tr);
    }
    if (Status st = api.ExecEcho(id); !st.ok()) return fail("exec after the pauses", st);
    report["pause"] = ToJson(Summarize(pause_ms));
    report["resume"] = ToJson(Summarize(resume_ms));
    // The same session's cgroup frozen and thawed directly, behind the server's back: the floor
    // for exactly these processes (the agent and three sleeps).
    // (Skipped when the session's cgroup is not on this host: a --url server elsewhere.)
    auto dir = layout ? FreezerDir(*layout, "hutch", id) : Unavailable("no cgroups");
    if (dir.ok() && geteuid() == 0 && sandbox::PathExists(*dir)) {
      RawFreezer raw(layout->version, *dir);
      std::vector<double> freeze_ms, thaw_ms;
      int multi_read = 0;
      for (int i = -10; i < o.iterations; ++i) {
        auto t0 = Clock::now();
        if (Status st = raw.Freeze(); !st.ok()) return fail("freeze the session's cgroup", st);
        double f = MsSince(t0);
        int reads = raw.last_reads();
        auto t1 = Clock::now();
        if (Status st = raw.Thaw(); !st.ok()) return fail("thaw the session's cgroup", st);
        double t = MsSince(t1);
        if (i < 0) continue;
        freeze_ms.push_back(f);
        thaw_ms.push_back(t);
        if (reads > 1) ++multi_read;
      }
      report["session_raw_freeze"] = ToJson(Summarize(freeze_ms));
      report["session_raw_thaw"] = ToJson(Summarize(thaw_ms));
      report["session_raw_freeze_still_freezing_at_first_read"] = multi_read;
    }
  }

  // The floor, and hutch's primitive, on a scratch cgroup.
  if (layout && geteuid() == 0) {
    ScratchCgroup scratch;
    if (Status st = scratch.Create(*layout); !st.ok()) return fail("scratch cgroup", st);
    std::vector<double> raw_freeze, raw_thaw, prim_freeze, prim_thaw;
    int multi_read = 0;
    for (int i = -10; i < o.iterations; ++i) {
      auto t0 = Clock::now();
      if (Status st = scratch.raw().Freeze(); !st.ok()) return fail("freeze", st);
      double f = MsSince(t0);
      if (i >= 0 && scratch.raw().last_reads() > 1) ++multi_read;
      auto t1 = Clock::now();
      if (Status st = scratch.raw().Thaw(); !st.ok()) return fail("thaw", st);
      double t = MsSince(t1);
      auto t2 = Clock::now();
      if (Status st = scratch.group().Freeze(); !st.ok()) return fail("Cgroup::Freeze", st);
      double pf = MsSince(t2);
      auto t3 = Clock::now();
      if (Status st = scratch.group().Thaw(); !st.ok()) return fail("Cgroup::Thaw", st);
      double pt = MsSince(t3);
      if (i < 0) continue;
      raw_freeze.push_back(f);
      raw_thaw.push_back(t);
      prim_freeze.push_back(pf);
      prim_thaw.push_back(pt);
    }
    report["freezer_raw_freeze"] = ToJson(Summarize(raw_freeze));
    report["freezer_raw_thaw"] = ToJson(Summarize(raw_thaw));
    report["freezer_raw_freeze_still_freezing_at_first_read"] = multi_read;
    report["cgroup_freeze"] = ToJson(Summarize(prim_freeze));
    report["cgroup_thaw"] = ToJson(Summarize(prim_thaw));
  }

  // 2. Many sessions.
  const size_t n = static_cast<size_t>(o.sessions);
  std::vector<std::string> many(n);
  int64_t server_rss_before =
      own.pid() > 0 ? ProcKb(fmt::format("/proc/{}/status", own.pid()), "VmRSS") : 0;
  auto t_create = Clock::now();
  Status st = Parallel(url, token, o.clients, n, [&](Api& a, size_t i) -> Status {
    ASSIGN_OR_RETURN(json::object s, a.Call("POST", "/v1/sessions", "{}"));
    many[i] = std::string(s.at("id").as_string());
    std::lock_guard lock(created_mu);
    created.push_back(many[i]);
    return Status::Ok();
  });
  double create_ms = MsSince(t_create);
  if (!st.ok()) return fail("create sessions", st);
  report["create"] = json::object{{"sessions", n},
                                  {"clients", o.clients},
                                  {"total_ms", create_ms},
                                  {"per_second", static_cast<double>(n) / (create_ms / 1000)}};
  if (layout) {
    Memory m = MeasureMemory(*layout, many);
    int64_t server_rss_after =
        own.pid() > 0 ? ProcKb(fmt::format("/proc/{}/status", own.pid()), "VmRSS") : 0;
    double per = m.sessions_measured > 0 ? 1.0 / m.sessions_measured : 0;
    report["memory_per_session"] = json::object{
        {"sessions_measured", m.sessions_measured},
        {"processes", m.processes},
        {"cgroup_usage_bytes", static_cast<double>(m.cgroup_bytes) * per},
        {"agent_rss_bytes", static_cast<double>(m.rss_bytes) * per},
        {"agent_pss_bytes", static_cast<double>(m.pss_bytes) * per},
    };
    if (own.pid() > 0)  // the growth of our server's RSS; unknown for a server given by --url
      report["memory_per_session"].as_object()["server_rss_bytes"] =
          static_cast<double>(server_rss_after - server_rss_before) / static_cast<double>(n);
  }
  auto t_exec = Clock::now();
  st = Parallel(url, token, o.clients, n, [&](Api& a, size_t i) { return a.ExecEcho(many[i]); });
  double exec_warm_ms = MsSince(t_exec);
  if (!st.ok()) return fail("exec in every session", st);
  report["exec_all_warm_ms"] = exec_warm_ms;

  if (own.pid() > 0) {
    own.Kill9();
    auto t0 = Clock::now();
    if (Status s2 = own.Respawn(); !s2.ok()) return fail("restart", s2);
    // The server listens only once it has reattached to every running sandbox.
    Api probe(url, token);
    while (!probe.Healthy()) {
      if (MsSince(t0) > 120000) return fail("restart", Unavailable("no answer within 120 s"));
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    double ready_ms = MsSince(t0);
    st = Parallel(url, token, o.clients, n, [&](Api& a, size_t i) { return a.ExecEcho(many[i]); });
    double all_ms = MsSince(t0);
    if (!st.ok()) return fail("exec after the restart", st);
    report["restart"] = json::object{
        {"sessions", n}, {"to_first_answer_ms", ready_ms}, {"to_all_answer_exec_ms", all_ms}};
  }

  auto t_delete = Clock::now();
  st = Parallel(url, token, o.clients, n, [&](Api& a, size_t i) {
    return a.Call("DELETE", "/v1/sessions/" + many[i]).status();
  });
  double delete_ms = MsSince(t_delete);
  if (!st.ok()) return fail("delete sessions", st);
  {
    std::lock_guard lock(created_mu);
    std::erase_if(created, [&](const std::string& id) {
      return std::find(many.begin(), many.end(), id) != many.end();
    });
  }
  report["delete"] = json::object{{"sessions", n},
                                  {"clients", o.clients},
                                  {"total_ms", delete_ms},
                                  {"per_second", static_cast<double>(n) / (delete_ms / 1000)}};
  cleanup();
  own.Stop();

  if (o.output == "json") {
    std::printf("%s\n", json::serialize(report).c_str());
    return 0;
  }
  // The table.
  const json::object& m = report["machine"].as_object();
  std::printf("hutch lifecycle bench · %s · %lld cpus · %s · cgroup %s · build %s · load %s\n",
              std::string(m.at("date").as_string()).c_str(),
              static_cast<long long>(m.at("cpus").to_number<int64_t>()),
              std::string(m.at("kernel").as_string()).c_str(),
              std::string(m.at("cgroup").as_string()).c_str(),
              std::string(m.at("build").as_string()).c_str(),
              std::string(m.at("loadavg_at_start").as_string()).c_str());
  std::printf("%-46s %5s %9s %9s %9s\n", "latency", "n", "p50 ms", "p99 ms", "mean ms");
  auto row = [&](const char* label, const char* key) {
    if (!report.contains(key)) return;
    const json::object& s = report[key].as_object();
    std::printf("%-46s %5lld %9.3f %9.3f %9.3f\n", label,
                static_cast<long long>(s.at("n").to_number<int64_t>()),
                s.at("p50_ms").to_number<double>(), s.at("p99_ms").to_number<double>(),
                s.at("mean_ms").to_number<double>());
  };
  std::string cg = layout ? std::string(sandbox::ToString(layout->version)) : "?";
  row("POST .../pause (session with 4 processes)", "pause");
  row("POST .../resume", "resume");
  row(fmt::format("  its cgroup, raw freezer write+poll ({})", cg).c_str(), "session_raw_freeze");
  row(fmt::format("  its cgroup, raw thaw write+poll ({})", cg).c_str(), "session_raw_thaw");
  row(fmt::format("scratch cgroup, 1 proc, raw freeze ({})", cg).c_str(), "freezer_raw_freeze");
  row(fmt::format("scratch cgroup, 1 proc, raw thaw ({})", cg).c_str(), "freezer_raw_thaw");
  row("  same, sandbox::Cgroup::Freeze (hutch's)", "cgroup_freeze");
  row("  same, sandbox::Cgroup::Thaw (hutch's)", "cgroup_thaw");
  for (auto [key, what] :
       {std::pair{"session_raw_freeze_still_freezing_at_first_read", "the session's cgroup"},
        std::pair{"freezer_raw_freeze_still_freezing_at_first_read", "the scratch cgroup"}}) {
    if (report.contains(key))
      std::printf("  (raw freeze of %s was still FREEZING at the first read %lld times of %d)\n",
                  what, static_cast<long long>(report[key].to_number<int64_t>()), o.iterations);
  }
  auto num = [&](const json::object& o, const char* k) { return o.at(k).to_number<double>(); };
  const json::object& c = report["create"].as_object();
  std::printf("\n%zu sessions (%d clients)\n", n, o.clients);
  std::printf("%-46s %9.0f ms  %7.1f /s\n", "create (wait=true)", num(c, "total_ms"),
              num(c, "per_second"));
  if (report.contains("memory_per_session")) {
    const json::object& mem = report["memory_per_session"].as_object();
    std::string server_rss =
        mem.contains("server_rss_bytes")
            ? fmt::format(", server RSS {:.3f} MiB", num(mem, "server_rss_bytes") / (1 << 20))
            : "";
    std::printf("%-46s cgroup %.2f MiB, agent RSS %.2f MiB, agent PSS %.2f MiB%s\n",
                "memory per session", num(mem, "cgroup_usage_bytes") / (1 << 20),
                num(mem, "agent_rss_bytes") / (1 << 20), num(mem, "agent_pss_bytes") / (1 << 20),
                server_rss.c_str());
  }
  std::printf("%-46s %9.0f ms\n", "exec in every one (warm server)",
              report["exec_all_warm_ms"].to_number<double>());
  if (report.contains("restart")) {
    const json::object& r = report["restart"].as_object();
    std::printf("%-46s %9.0f ms\n", "kill -9, restart -> first GET /healthz 200",
                num(r, "to_first_answer_ms"));
    std::printf("%-46s %9.0f ms\n", "kill -9, restart -> every one answers exec",
                num(r, "to_all_answer_exec_ms"));
  }
  const json::object& d = report["delete"].as_object();
  std::printf("%-46s %9.0f ms  %7.1f /s\n", "delete", num(d, "total_ms"), num(d, "per_second"));
  return 0;
}

}  // namespace
}  // namespace hutch::bench

int main(int argc, char** argv) {
  hutch::bench::Options o;
  CLI::App app(
      "hutch lifecycle benchmark: pause/resume against the freezer floor, and the "
      "restart of a server with many running sessions");
  app.add_option("--hutch", o.hutch, "The hutch executable to start (default: this build's)");
  app.add_option("--url", o.url, "Measure a running server instead of starting one");
  app.add_option("--token", o.token, "Its token (with --url)");
  app.add_option("-n,--iterations", o.iterations, "Pauses and resumes to time (200)")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--sessions", o.sessions, "Sessions to create, restart and delete (500)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--clients", o.clients, "Client threads for creates, execs, deletes (4)")
      ->check(CLI::Range(1, 256));
  app.add_option("-o,--output", o.output, "table or json")->check(CLI::IsMember({"table", "json"}));
  CLI11_PARSE(app, argc, argv);
  if (!o.url.empty() && o.token.empty()) {
    const char* t = getenv("HUTCH_TOKEN");
    if (t) o.token = t;
  }
  return hutch::bench::Run(o);
}
