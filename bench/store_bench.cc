// hutch_store_bench: the same server on SQLite and on PostgreSQL, side by side in one run
// (docs/benchmarks.md, "Stores"). For each store it starts a `hutch serve` of its own — SQLite in
// its data dir, or a database in a PostgreSQL the bench starts itself (initdb in a temp dir, a
// private unix socket, no TCP port; store/postgres/test_server.h) — and measures
//   - create → first exec: POST /v1/sessions (waits until running) then exec `true`, one after
//     the other, p50/p99 of the pair;
//   - GET /v1/sessions/{id}: requests a second from --threads keep-alive clients for --seconds.
// Both servers run the defaults but the rate limiter (off: the bench is a runaway client on
// purpose). Needs root, like hutch serve.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/http_client.h"
#include "hutch_server.h"
#include "stats.h"
#include "store/postgres/test_server.h"

namespace hutch::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string hutch = HUTCH_BINARY;
  int creates = 30;
  int threads = 4;
  double seconds = 3;
};

struct Measured {
  std::string store;
  Summary create_exec;
  double gets_per_second = 0;
  int64_t get_errors = 0;
};

Result<Measured> Measure(const Options& o, const std::string& name, const std::string& data_dir,
                         std::vector<std::string> extra_args) {
  ASSIGN_OR_RETURN(auto server,
                   HutchServer::Start(o.hutch, data_dir, "warn", std::move(extra_args)));
  ASSIGN_OR_RETURN(client::HttpClient http,
                   client::HttpClient::Create(server->url(), server->token()));
  client::ApiClient api(std::move(http));
  Measured m;
  m.store = name;

  // One warm-up pair: the first create formats the disk template and fills caches.
  std::vector<std::string> ids;
  std::vector<int64_t> samples;
  for (int i = 0; i <= o.creates; ++i) {
    auto t0 = Clock::now();
    ASSIGN_OR_RETURN(core::Session s, api.CreateSession(json::object{}));
    ASSIGN_OR_RETURN(core::ExecResult r,
                     api.Exec(s.id, json::object{{"cmd", json::array{"true"}}}));
    auto t1 = Clock::now();
    if (r.exit_code != 0)
      return Internal(fmt::format("exec true in {}: exit {}", s.id, r.exit_code));
    if (i > 0)
      samples.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    ids.push_back(s.id);
  }
  m.create_exec = Summarize(samples);

  // GET throughput, every thread on its own connection, round-robin over the sessions made.
  std::atomic<int64_t> done{0}, errors{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back([&, t] {
      auto c = client::HttpClient::Create(server->url(), server->token());
      if (!c.ok()) {
        ++errors;
        return;
      }
      size_t k = static_cast<size_t>(t);
      while (!stop.load(std::memory_order_relaxed)) {
        auto r = c->Request("GET", "/v1/sessions/" + ids[k++ % ids.size()]);
        if (r.ok() && r->status == 200) {
          ++done;
        } else {
          ++errors;
        }
      }
    });
  }
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  stop = true;
  for (auto& th : threads) th.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  m.gets_per_second = static_cast<double>(done.load()) / elapsed;
  m.get_errors = errors.load();

  for (const auto& id : ids) (void)api.DeleteSession(id);
  server->Stop();
  return m;
}

int Run(const Options& o) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "hutch_store_bench: run as root (hutch serve needs it)\n");
    return 2;
  }
  std::string tmpl = (std::filesystem::temp_directory_path() / "hutch-store-bench-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::perror("mkdtemp");
    return 2;
  }
  std::vector<Measured> results;
  auto sqlite = Measure(o, "sqlite", tmpl + "/sqlite", {});
  if (!sqlite.ok()) {
    std::fprintf(stderr, "sqlite: %s\n", sqlite.status().ToString().c_str());
    return 1;
  }
  results.push_back(*sqlite);
  {
    auto pg = store::testing::PostgresServer::Start();
    if (!pg.ok()) {
      std::fprintf(stderr, "postgres: %s\n", pg.status().ToString().c_str());
      return 1;
    }
    auto url = (*pg)->CreateDatabase("hutch_bench");
    if (!url.ok()) {
      std::fprintf(stderr, "postgres: %s\n", url.status().ToString().c_str());
      return 1;
    }
    auto m = Measure(o, "postgres", tmpl + "/postgres", {"--store", *url});
    if (!m.ok()) {
      std::fprintf(stderr, "postgres: %s\n", m.status().ToString().c_str());
      return 1;
    }
    results.push_back(*m);
  }
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);

  std::printf(
      "%d creates → first exec each (after one warm-up), then GET /v1/sessions/{id} from %d "
      "clients for %.0f s\n\n",
      o.creates, o.threads, o.seconds);
  std::printf("| store | create→exec p50 | p99 | mean | GET /v1/sessions/{id} | GET errors |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (const auto& m : results)
    std::printf("| %s | %.2f ms | %.2f ms | %.2f ms | %.0f req/s | %lld |\n", m.store.c_str(),
                m.create_exec.p50_ms, m.create_exec.p99_ms, m.create_exec.mean_ms,
                m.gets_per_second, static_cast<long long>(m.get_errors));
  if (results.size() == 2 && results[0].gets_per_second > 0)
    std::printf("\npostgres/sqlite: create→exec p50 %.2f×, GET throughput %.2f×\n",
                results[1].create_exec.p50_ms / results[0].create_exec.p50_ms,
                results[1].gets_per_second / results[0].gets_per_second);
  return 0;
}

}  // namespace
}  // namespace hutch::bench

int main(int argc, char** argv) {
  hutch::bench::Options o;
  CLI::App app{"hutch_store_bench: the server on SQLite and on PostgreSQL, side by side"};
  app.add_option("--hutch", o.hutch, "the hutch executable");
  app.add_option("--creates", o.creates, "create → first exec pairs per store");
  app.add_option("--threads", o.threads, "GET clients");
  app.add_option("--seconds", o.seconds, "how long the GETs run per store");
  CLI11_PARSE(app, argc, argv);
  return hutch::bench::Run(o);
}
