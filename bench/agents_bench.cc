// hutch_agents_bench: agents and messages (docs/agents.md) beside the plain exec round trip.
//
//   1. exec round trip of `true` (POST …/exec) in the same session: the floor of a request that
//      reaches a process in the sandbox and comes back;
//   2. message → reply with the echo agent of examples/agents: from POST …/messages to the
//      reply arriving on a messages follow stream (SSE) that is open all along;
//   3. wake from IDLE → reply: the session has been paused by its waiting timeout (agent_state
//      IDLE, state paused); from POST …/messages (which resumes it) to the reply on the stream.
//
// p50/p99 by nearest rank. Needs root (the server creates sandboxes).
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/http_client.h"
#include "cli/sse.h"
#include "hutch_server.h"
#include "stats.h"

namespace hutch::bench {
namespace {

struct Options {
  std::string hutch = HUTCH_BINARY;
  std::string echo_agent = std::string(HUTCH_SOURCE_DIR) + "/examples/agents/echo_agent.py";
  int samples = 200;
  int wake_samples = 20;
};

// Reply arrival times (MonotonicNs) by the id of the message they answer, from one follow stream.
class Replies {
 public:
  void Arrived(int64_t reply_to) {
    std::lock_guard lock(mu_);
    at_[reply_to] = MonotonicNs();
    cv_.notify_all();
  }
  // When the reply to `id` arrived; 0 after 30 s without it.
  int64_t Wait(int64_t id) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(30), [&] { return at_.count(id) > 0; });
    auto it = at_.find(id);
    return it == at_.end() ? 0 : it->second;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, int64_t> at_;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Main(const Options& o) {
  if (geteuid() != 0) {
    fmt::print(stderr, "hutch_agents_bench needs root (the server creates sandboxes)\n");
    return 1;
  }
  char tmpl[] = "/tmp/hutch-agents-bench-XXXXXX";
  if (!mkdtemp(tmpl)) return 1;
  std::string tmp = tmpl;
  auto server = HutchServer::Start(o.hutch, tmp + "/data", "warn");
  if (!server.ok()) {
    fmt::print(stderr, "start server: {}\n", server.status().ToString());
    return 1;
  }
  auto http = client::HttpClient::Create((*server)->url(), (*server)->token());
  client::ApiClient api(std::move(*http));
  json::object agent{{"name", "echo"},
                     {"command", "exec python3 -u -c \"$AGENT_PY\""},
                     {"env", json::object{{"AGENT_PY", Slurp(o.echo_agent)}}}};
  if (auto r = api.Call("POST", "/v1/agents", agent); !r.ok()) {
    fmt::print(stderr, "register agent: {}\n", r.status().ToString());
    return 1;
  }
  // A long waiting timeout for the round trips; the wake-ups use a session of their own.
  auto make = [&](int64_t waiting) -> std::string {
    auto r = api.Call(
        "POST", "/v1/sessions",
        json::object{{"agent_ids", json::array{"echo"}}, {"waiting_timeout_seconds", waiting}});
    if (!r.ok()) {
      fmt::print(stderr, "create session: {}\n", r.status().ToString());
      return "";
    }
    std::string id(r->at("id").as_string());
    for (int i = 0; i < 1000; ++i) {
      auto s = api.Call("GET", "/v1/sessions/" + id);
      if (s.ok() && s->if_contains("agent_state") && s->at("agent_state") == "READY") return id;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    fmt::print(stderr, "session {} never became READY\n", id);
    return "";
  };
  std::string id = make(3600);
  std::string idle_id = make(1);
  if (id.empty() || idle_id.empty()) return 1;

  Replies replies;
  std::vector<std::thread> followers;
  std::atomic<bool> stop{false};
  for (const std::string& s : {id, idle_id}) {
    followers.emplace_back([&, s] {
      auto h = client::HttpClient::Create((*server)->url(), (*server)->token());
      client::SseParser parser;
      (void)h->Stream("GET", fmt::format("/v1/sessions/{}/messages?follow=true", s), {},
                      [&](std::string_view data) {
                        parser.Feed(data, [&](const client::SseEvent& e) {
                          boost::system::error_code ec;
                          json::value v = json::parse(e.data, ec);
                          if (ec || !v.is_object()) return;
                          const json::object& m = v.as_object();
                          if (m.if_contains("reply_to"))
                            replies.Arrived(m.at("reply_to").as_int64());
                        });
                        return !stop.load();
                      });
    });
  }

  std::vector<int64_t> exec_ns, msg_ns, wake_ns;
  json::object exec_body{{"cmd", json::array{"true"}}};
  for (int i = 0; i < o.samples + 5; ++i) {
    int64_t t0 = MonotonicNs();
    if (!api.Exec(id, exec_body).ok()) return 1;
    if (i >= 5) exec_ns.push_back(MonotonicNs() - t0);
  }
  for (int i = 0; i < o.samples + 5; ++i) {
    int64_t t0 = MonotonicNs();
    auto r = api.Call("POST", fmt::format("/v1/sessions/{}/messages", id),
                      json::object{{"content", fmt::format("m{}", i)}});
    if (!r.ok()) return 1;
    int64_t at = replies.Wait(r->at("id").as_int64());
    if (at == 0) {
      fmt::print(stderr, "no reply to message {}\n", i);
      return 1;
    }
    if (i >= 5) msg_ns.push_back(at - t0);
  }
  for (int i = 0; i < o.wake_samples; ++i) {
    for (int k = 0; k < 1000; ++k) {  // until the waiting timeout paused it
      auto s = api.Call("GET", "/v1/sessions/" + idle_id);
      if (s.ok() && s->at("state") == "paused" && s->at("agent_state") == "IDLE") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    int64_t t0 = MonotonicNs();
    auto r = api.Call("POST", fmt::format("/v1/sessions/{}/messages", idle_id),
                      json::object{{"content", "wake"}});
    if (!r.ok()) return 1;
    int64_t at = replies.Wait(r->at("id").as_int64());
    if (at == 0) return 1;
    wake_ns.push_back(at - t0);
  }
  fmt::print("{:<40} {:>6} {:>9} {:>9}\n", "", "n", "p50 ms", "p99 ms");
  for (auto [name, v] : {std::pair{"exec round trip (true)", &exec_ns},
                         std::pair{"message -> reply (echo agent)", &msg_ns},
                         std::pair{"wake from IDLE -> reply", &wake_ns}}) {
    Summary s = Summarize(*v);
    fmt::print("{:<40} {:>6} {:>9.2f} {:>9.2f}\n", name, s.n, s.p50_ms, s.p99_ms);
  }
  stop = true;
  (void)api.DeleteSession(id);
  (void)api.DeleteSession(idle_id);
  (*server)->Stop();
  for (auto& t : followers) t.join();
  std::string rm = "rm -rf " + tmp;
  (void)!system(rm.c_str());
  return 0;
}

}  // namespace
}  // namespace hutch::bench

int main(int argc, char** argv) {
  hutch::bench::Options o;
  CLI::App app("hutch_agents_bench: message -> reply and wake from IDLE beside exec");
  app.add_option("--hutch", o.hutch, "the hutch executable");
  app.add_option("--echo-agent", o.echo_agent, "the echo agent's source");
  app.add_option("--samples", o.samples, "round trips of each kind");
  app.add_option("--wake-samples", o.wake_samples, "wake-ups from IDLE");
  CLI11_PARSE(app, argc, argv);
  return hutch::bench::Main(o);
}
