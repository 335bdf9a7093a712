// hutch_workshop_bench: a workshop of N participants (default 50) from `scheduled` to every
// environment ready, and bulk pause and resume of the whole class, beside the same count of plain
// creates, pauses and resumes (docs/benchmarks.md, "Workshops").
//
//   1. workshop: N participants imported from CSV into a workshop that starts 3 s ahead with
//      pre_provision_seconds 2, so it sits in `scheduled` for a second, then provisions. Per
//      environment: its session's started_at (ready) − the workshop.provisioning event's time
//      (how long after the class began to be made this participant's environment was ready),
//      and create → ready of the session itself; total: provisioning → the last one ready.
//   2. bulk: POST /v1/workshops/{id}/pause and …/resume, each round trip for the whole class,
//      repeated --rounds times.
//   3. plain: N POST /v1/sessions {template} (wait: true) from N client threads at once — what
//      the workshop's controller does for its participants, done by a client — then N pauses and
//      N resumes, each sent by N threads at once.
//
// Starts its own `hutch serve` (needs root). Server times (created_at, started_at, the event's
// at) are the server's clock in milliseconds; client round trips are CLOCK_MONOTONIC.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/http_client.h"
#include "common/json.h"
#include "common/time.h"
#include "hutch_server.h"
#include "stats.h"

namespace hutch::bench {
namespace {

using client::HttpClient;
using Clock = std::chrono::steady_clock;

constexpr const char* kTemplate = R"yaml(kind: SessionTemplate
metadata: {name: lab}
spec:
  env: {COURSE: bench}
)yaml";

struct Options {
  std::string hutch = HUTCH_BINARY;
  int participants = 50;
  int rounds = 5;
};

int64_t Ns(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}
int64_t Ns(TimePoint a, TimePoint b) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}
std::string Str(const json::object& o, std::string_view k) {
  const json::value* v = o.if_contains(k);
  return v && v->is_string() ? std::string(v->as_string()) : "";
}

// `n` calls of `call(i)` from n threads at once; answers each one's round trip.
Result<std::vector<int64_t>> AllAtOnce(int n, const std::function<Status(int)>& call) {
  std::vector<int64_t> ns(n);
  std::vector<Status> st(n);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      auto t0 = Clock::now();
      st[i] = call(i);
      ns[i] = Ns(Clock::now() - t0);
    });
  go = true;
  for (auto& t : threads) t.join();
  for (const Status& s : st) RETURN_IF_ERROR(s);
  return ns;
}

void Row(const char* what, const Summary& s) {
  std::printf("| %s | %zu | %.1f ms | %.1f ms | %.1f ms | %.1f ms |\n", what, s.n, s.p50_ms,
              s.p99_ms, s.mean_ms, s.max_ms);
}

Status Run(const Options& o) {
  char tmpl[] = "/tmp/hutch-workshop-bench-XXXXXX";
  if (!mkdtemp(tmpl)) return Internal("mkdtemp failed");
  const std::string dir = tmpl;
  ASSIGN_OR_RETURN(auto server, HutchServer::Start(o.hutch, dir + "/data", "warn"));
  ASSIGN_OR_RETURN(HttpClient admin, HttpClient::Create(server->url(), server->token()));
  client::ApiClient root(std::move(admin));
  ASSIGN_OR_RETURN(
      json::object user,
      root.Call("POST", "/v1/users", json::object{{"name", "ivy"}, {"role", "instructor"}}));
  ASSIGN_OR_RETURN(json::object tok, root.Call("POST", "/v1/tokens?owner=" + Str(user, "id"),
                                               json::object{{"name", "bench"}}));
  const std::string ivy = Str(tok, "token");
  ASSIGN_OR_RETURN(HttpClient ivy_http, HttpClient::Create(server->url(), ivy));
  client::ApiClient api(std::move(ivy_http));
  ASSIGN_OR_RETURN(client::HttpResponse put,
                   api.http().Request("POST", "/v1/templates", kTemplate, "application/yaml"));
  if (put.status != 201) return Internal("template: " + put.body);
  // One warm-up session: the first create formats the disk template and fills caches.
  ASSIGN_OR_RETURN(json::object warm,
                   api.Call("POST", "/v1/sessions", json::object{{"template", "lab"}}));
  RETURN_IF_ERROR(api.Call("DELETE", "/v1/sessions/" + Str(warm, "id")).status());

  // 1. The workshop.
  const int n = o.participants;
  ASSIGN_OR_RETURN(json::object w,
                   api.Call("POST", "/v1/workshops",
                            json::object{{"name", "bench"},
                                         {"template", "lab"},
                                         {"start_at", FormatTime(Now() + std::chrono::seconds(3))},
                                         {"pre_provision_seconds", 2},
                                         {"duration_seconds", 3600},
                                         {"max_participants", n},
                                         {"notices", json::object{{"on_ready", false},
                                                                  {"on_warning", false},
                                                                  {"on_ending", false}}}}));
  const std::string id = Str(w, "id");
  std::string csv = "name,email\n";
  for (int i = 1; i <= n; ++i) csv += fmt::format("P{},p{}@example.com\n", i, i);
  ASSIGN_OR_RETURN(
      client::HttpResponse imported,
      api.http().Request("POST", "/v1/workshops/" + id + "/participants/import", csv, "text/csv"));
  if (imported.status != 201) return Internal("import: " + imported.body);
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (true) {
    ASSIGN_OR_RETURN(json::object got, api.Call("GET", "/v1/workshops/" + id));
    const json::value& ready = got["environments"].at("ready");
    if (ready.as_int64() == n) break;
    if (Clock::now() > deadline) return Internal("not all ready in 120 s: " + json::serialize(got));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSIGN_OR_RETURN(json::object events, api.Call("GET", "/v1/events?type=workshop.provisioning"));
  const json::array& ev = events["events"].as_array();
  if (ev.empty()) return Internal("no workshop.provisioning event");
  const TimePoint provisioning = *ParseTime(Str(ev[0].as_object(), "at"));
  ASSIGN_OR_RETURN(json::object plist, api.Call("GET", "/v1/workshops/" + id + "/participants"));
  std::vector<int64_t> since_start, create_ready;
  TimePoint last = provisioning;
  std::vector<std::pair<std::string, std::string>> sessions;  // id, owner
  for (const auto& pv : plist["participants"].as_array()) {
    const json::object& p = pv.as_object();
    ASSIGN_OR_RETURN(json::object s, api.Call("GET", "/v1/sessions/" + Str(p, "session_id") +
                                                         "?owner=" + Str(p, "user_id")));
    TimePoint created = *ParseTime(Str(s, "created_at"));
    TimePoint started = *ParseTime(Str(s, "started_at"));
    since_start.push_back(Ns(provisioning, started));
    create_ready.push_back(Ns(created, started));
    last = std::max(last, started);
    sessions.emplace_back(Str(s, "id"), Str(p, "user_id"));
  }
  const double total_ms = Ns(provisioning, last) / 1e6;

  // 2. Bulk pause and resume of the class.
  std::vector<int64_t> pause_ns, resume_ns;
  for (int r = 0; r < o.rounds; ++r) {
    for (const char* op : {"pause", "resume"}) {
      auto t0 = Clock::now();
      ASSIGN_OR_RETURN(
          json::object out,
          api.Call("POST", fmt::format("/v1/workshops/{}/{}", id, op), json::object{}));
      (std::string_view(op) == "pause" ? pause_ns : resume_ns).push_back(Ns(Clock::now() - t0));
      if (out["failed"].as_int64() != 0)
        return Internal(fmt::format("bulk {}: {}", op, json::serialize(out)));
    }
  }
  RETURN_IF_ERROR(api.Call("DELETE", "/v1/workshops/" + id).status());

  // 3. The same count of plain creates, pauses and resumes, all at once.
  std::vector<std::string> plain(n);
  // One client (and connection) per thread, as N people would have.
  std::vector<std::unique_ptr<client::ApiClient>> clients;
  for (int i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(HttpClient c, HttpClient::Create(server->url(), ivy));
    clients.push_back(std::make_unique<client::ApiClient>(std::move(c)));
  }
  auto create_t0 = Clock::now();
  ASSIGN_OR_RETURN(std::vector<int64_t> creates, AllAtOnce(n, [&](int i) -> Status {
                     ASSIGN_OR_RETURN(json::object s,
                                      clients[i]->Call("POST", "/v1/sessions",
                                                       json::object{{"template", "lab"}}));
                     plain[i] = Str(s, "id");
                     return Status::Ok();
                   }));
  const double plain_total_ms = Ns(Clock::now() - create_t0) / 1e6;
  std::vector<int64_t> plain_pause_total, plain_resume_total, plain_pause, plain_resume;
  for (int r = 0; r < o.rounds; ++r) {
    for (const char* op : {"pause", "resume"}) {
      auto t0 = Clock::now();
      ASSIGN_OR_RETURN(std::vector<int64_t> each, AllAtOnce(n, [&](int i) -> Status {
                         return clients[i]
                             ->Call("POST", fmt::format("/v1/sessions/{}/{}", plain[i], op),
                                    json::object{})
                             .status();
                       }));
      const int64_t total = Ns(Clock::now() - t0);
      bool pause = std::string_view(op) == "pause";
      (pause ? plain_pause_total : plain_resume_total).push_back(total);
      auto& per = pause ? plain_pause : plain_resume;
      per.insert(per.end(), each.begin(), each.end());
    }
  }
  for (const std::string& s : plain) (void)api.Call("DELETE", "/v1/sessions/" + s);
  server->Stop();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);

  std::printf("%d participants; %d rounds of pause + resume; %u cpus\n\n", n, o.rounds,
              std::thread::hardware_concurrency());
  std::printf("| measure | n | p50 | p99 | mean | max |\n|---|---|---|---|---|---|\n");
  Row("workshop: provisioning → this environment ready", Summarize(since_start));
  Row("workshop: session create → ready", Summarize(create_ready));
  Row("plain: POST /v1/sessions (wait) round trip, all at once", Summarize(creates));
  Row("workshop: bulk pause of the class (round trip)", Summarize(pause_ns));
  Row("workshop: bulk resume of the class (round trip)", Summarize(resume_ns));
  Row("plain: N pauses at once, the last one back", Summarize(plain_pause_total));
  Row("plain: N resumes at once, the last one back", Summarize(plain_resume_total));
  Row("plain: one pause among N at once", Summarize(plain_pause));
  Row("plain: one resume among N at once", Summarize(plain_resume));
  std::printf(
      "\nworkshop: provisioning → all %d ready: %.0f ms; plain: %d creates at once → all "
      "back: %.0f ms\n",
      n, total_ms, n, plain_total_ms);
  return Status::Ok();
}

}  // namespace
}  // namespace hutch::bench

int main(int argc, char** argv) {
  hutch::bench::Options o;
  CLI::App app{
      "hutch_workshop_bench: a workshop from scheduled to all ready, bulk pause and "
      "resume, beside plain creates, pauses and resumes"};
  app.add_option("--hutch", o.hutch, "the hutch executable");
  app.add_option("--participants", o.participants, "participants (and plain sessions)");
  app.add_option("--rounds", o.rounds, "rounds of pause + resume");
  CLI11_PARSE(app, argc, argv);
  hutch::Status st = hutch::bench::Run(o);
  if (!st.ok()) {
    std::fprintf(stderr, "hutch_workshop_bench: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}
