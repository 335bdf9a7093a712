// hutch_bench: how fast hutch makes, uses and removes sessions, with its peers (bubblewrap, runc)
// measured in the same run, because these machines are noisy. See docs/benchmarks.md.
//
//   hutch_bench --hutch build/release/src/exe/hutch        start a server of its own
//   hutch_bench --url http://127.0.0.1:7070 --token T      measure a running server
//
// Everything it makes — sessions, runc containers, temp dirs, the server it started — it removes
// again, also after Ctrl-C (the round in flight finishes first; a second Ctrl-C kills it).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/http_client.h"
#include "hutch_runner.h"
#include "hutch_server.h"
#include "peers.h"
#include "process.h"
#include "report.h"
#include "stats.h"

namespace hutch::bench {
namespace {

constexpr int kExitInterrupted = 130;

struct Options {
  std::string hutch;  // executable to start, or empty
  std::string url;    // a running server, or empty
  std::string token;
  int sessions = 50;
  int exec_iterations = 200;
  int warmup = 2;
  std::vector<std::string> peers = {"bwrap", "runc"};
  bool peers_given = false;
  std::string output = "text";
  std::string server_log_level = "info";
  std::string tmp_dir;  // where the work dir is made; empty: $TMPDIR or /tmp
  bool keep = false;
};

void Note(const std::string& message) { fmt::print(stderr, "hutch_bench: {}\n", message); }

// The bench's temp dir: the started server's data dir, the runc bundle and state, stderr
// captures. Removed on every exit path unless --keep.
class WorkDir {
 public:
  static Result<std::unique_ptr<WorkDir>> Make(const std::string& parent, bool keep) {
    std::string tmpl = parent + "/hutch-bench-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) return ErrnoError("mkdtemp " + tmpl, errno);
    return std::unique_ptr<WorkDir>(new WorkDir(tmpl, keep));
  }
  ~WorkDir() {
    if (keep_) {
      Note("kept " + path_);
    } else if (!RemoveTree(path_)) {
      Note(fmt::format("could not remove all of {} (a mount left behind?)", path_));
    }
  }
  const std::string& path() const { return path_; }

 private:
  WorkDir(std::string path, bool keep) : path_(std::move(path)), keep_(keep) {}
  std::string path_;
  bool keep_;
};

Status RunHutch(const Options& o, const std::string& work_dir, Report* report,
                std::vector<int64_t>* total_ns) {
  std::unique_ptr<HutchServer> server;
  std::string url = o.url, token = o.token;
  if (!o.hutch.empty()) {
    ASSIGN_OR_RETURN(server,
                     HutchServer::Start(o.hutch, work_dir + "/hutch-data", o.server_log_level));
    url = server->url();
    token = server->token();
  }
  report->hutch_url = url;
  report->hutch_started = server != nullptr;
  report->hutch_log_level = o.server_log_level;
  if (server) report->hutch_data_fs = FileSystemOf(work_dir + "/hutch-data");

  ASSIGN_OR_RETURN(client::HttpClient http, client::HttpClient::Create(url, token));
  http.set_user_agent("hutch-bench/" + std::string(client::ClientVersion()));
  // The label that marks this run's sessions: unique per process and start.
  std::string run_label = fmt::format("r{}-{}", getpid(), MonotonicNs() % 1'000'000'000);
  HutchSamples samples;
  Status st;
  {
    // The runner's destructor deletes what a failed or interrupted run left, while the server
    // is still up.
    HutchRunner runner(client::ApiClient(std::move(http)), run_label);
    Result<std::string> version = runner.ServerVersion();
    if (!version.ok()) return version.status().WithContext("GET /v1/version");
    report->hutch_version = *version;
    HutchOptions ho{o.sessions, o.exec_iterations, o.warmup};
    st = runner.Run(ho, &samples);
    int leftovers = runner.Cleanup();
    if (st.ok() && leftovers > 0)
      Note(fmt::format("deleted {} sessions left after the run", leftovers));
  }
  if (server) server->Stop();
  if (!st.ok()) {
    if (server && !Interrupted()) {
      Note(o.keep ? "the server's log: " + server->log_path()
                  : "run with --keep to keep the server's log");
    }
    return st;
  }
  report->hutch_connections = samples.connections_opened;
  report->rows.push_back({"hutch_create_first_exec", "hutch create → first exec", false,
                          Summarize(samples.create_first_exec_ns), Target{5, 25}});
  report->rows.push_back({"hutch_create", "create (POST /v1/sessions)", true,
                          Summarize(samples.create_ns), std::nullopt});
  report->rows.push_back({"hutch_first_exec", "first exec (POST …/exec)", true,
                          Summarize(samples.first_exec_ns), std::nullopt});
  report->rows.push_back({"hutch_exec_round_trip", "hutch exec round trip (true)", false,
                          Summarize(samples.exec_ns), Target{2, 5}});
  report->rows.push_back(
      {"hutch_delete", "hutch delete", false, Summarize(samples.delete_ns), std::nullopt});
  report->rows.push_back({"hutch_create_exec_delete", "hutch create + exec + delete", false,
                          Summarize(samples.total_ns), std::nullopt});
  *total_ns = samples.total_ns;
  return Status::Ok();
}

Status RunPeer(const Options& o, Peer& peer, Report* report, double hutch_total_p50) {
  std::vector<int64_t> samples;
  {
    Progress progress(peer.name() + " warm-up", o.warmup);
    for (int i = 0; i < o.warmup; ++i) {
      if (Interrupted()) return Unavailable("interrupted");
      RETURN_IF_ERROR(peer.RunOnce(o.sessions + i).status());  // names apart from the timed ones
      progress.Update(i + 1);
    }
  }
  {
    Progress progress(peer.name() + " up + true + down", o.sessions);
    for (int i = 0; i < o.sessions; ++i) {
      if (Interrupted()) return Unavailable("interrupted");
      ASSIGN_OR_RETURN(int64_t ns, peer.RunOnce(i));
      samples.push_back(ns);
      progress.Update(i + 1);
    }
  }
  Summary s = Summarize(samples);
  report->rows.push_back(
      {peer.name() + "_up_true_down", peer.name() + " up + true + down", false, s, std::nullopt});
  if (hutch_total_p50 > 0) report->ratios.emplace_back(peer.name(), s.p50_ms / hutch_total_p50);
  return Status::Ok();
}

int Main(int argc, char** argv) {
  Options o;
  CLI::App app{"hutch_bench: hutch's session latency beside bubblewrap and runc, in one run"};
  auto* hutch_opt =
      app.add_option("--hutch", o.hutch, "Start this hutch executable (serve on port 0, temp dir)");
  auto* url_opt = app.add_option("--url", o.url, "Measure the hutch server running at this URL");
  app.add_option("--token", o.token, "Token for --url (default: $HUTCH_TOKEN)");
  hutch_opt->excludes(url_opt);
  app.add_option("-n,--sessions", o.sessions, "Sessions, and rounds of each peer")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--exec-iterations", o.exec_iterations, "Exec round trips in one session")
      ->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  app.add_option("--warmup", o.warmup, "Untimed rounds before each measure")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  auto* peers_opt = app.add_option("--peers", o.peers,
                                   "Peers to run: bwrap,runc or none (default: those installed)")
                        ->delimiter(',');
  app.add_option("-o,--output", o.output, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--server-log-level", o.server_log_level,
                 "--log-level of the server the bench starts")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--tmp-dir", o.tmp_dir,
                 "Where to make the temp dir, and so the started server's data dir "
                 "(default: $TMPDIR or /tmp)");
  app.add_flag("--keep", o.keep, "Keep the temp dir (the started server's log and data)");
  app.footer(
      "Without --hutch or --url only the peers run.\n"
      "Example: hutch_bench --hutch build/release/src/exe/hutch -n 50 -o json");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  o.peers_given = peers_opt->count() > 0;
  if (o.token.empty() && !o.url.empty()) {
    if (const char* t = getenv("HUTCH_TOKEN")) o.token = t;
  }
  std::set<std::string> wanted;
  for (const std::string& p : o.peers) {
    if (p == "none" || p.empty()) continue;
    if (p != "bwrap" && p != "runc") {
      Note(fmt::format("unknown peer \"{}\"; known: bwrap, runc", p));
      return 2;
    }
    wanted.insert(p);
  }
  if (geteuid() != 0) Note("not running as root: hutch and runc sandboxes need root");

  InstallInterruptHandlers();
  Report report;
  report.host = ReadHostInfo();
  report.sessions = o.sessions;
  report.exec_iterations = o.exec_iterations;
  report.warmup = o.warmup;

  if (o.tmp_dir.empty()) {
    const char* tmp = getenv("TMPDIR");
    o.tmp_dir = tmp && *tmp ? tmp : "/tmp";
  }
  Result<std::unique_ptr<WorkDir>> work = WorkDir::Make(o.tmp_dir, o.keep);
  if (!work.ok()) {
    Note(work.status().message());
    return 1;
  }
  const std::string& dir = (*work)->path();
  auto fail = [](const Status& st) {
    if (Interrupted()) {
      Note("interrupted; cleaned up");
      return kExitInterrupted;
    }
    Note("error: " + st.message());
    return 1;
  };

  std::vector<int64_t> hutch_total_ns;
  if (!o.hutch.empty() || !o.url.empty()) {
    if (Status st = RunHutch(o, dir, &report, &hutch_total_ns); !st.ok()) return fail(st);
  }
  double hutch_total_p50 = Summarize(hutch_total_ns).p50_ms;

  for (const std::string& name : {std::string("bwrap"), std::string("runc")}) {
    if (!wanted.count(name)) continue;
    PeerInfo info{name, "", "", ""};
    std::string path = name == "bwrap" ? FindExecutable("bwrap", {"/usr/bin/bwrap"})
                                       : FindExecutable("runc", {"/usr/sbin/runc"});
    if (path.empty()) {
      info.skipped =
          fmt::format("not installed (Debian package {})", name == "bwrap" ? "bubblewrap" : "runc");
      if (o.peers_given) Note(name + " " + info.skipped);
      report.peers.push_back(info);
      continue;
    }
    Result<std::unique_ptr<Peer>> peer =
        name == "bwrap" ? MakeBwrapPeer(path, dir) : MakeRuncPeer(path, dir);
    if (!peer.ok()) return fail(peer.status());
    info.version = (*peer)->version();
    info.command = (*peer)->command();
    report.peers.push_back(info);
    if (Status st = RunPeer(o, **peer, &report, hutch_total_p50); !st.ok()) return fail(st);
  }

  if (o.output == "json") {
    std::fputs(PrettyJson(ToJson(report)).c_str(), stdout);
  } else {
    std::fputs(FormatText(report).c_str(), stdout);
  }
  std::fflush(stdout);  // before the work dir's notes on stderr
  return 0;
}

}  // namespace
}  // namespace hutch::bench

int main(int argc, char** argv) { return hutch::bench::Main(argc, argv); }
