// attach_bench: attached shells (docs/attach.md, docs/benchmarks.md "Attached shells"):
//   - attach → first output per target kind (a process in fresh namespaces, a runc container, a
//     Docker container of the bench's own dockerd, a hutch session): POST /v1/attach with
//     `echo ready`, open the terminal, until "ready" is back — beside `nsenter -a`, `runc exec`
//     and `docker exec` running the same command directly;
//   - keystroke echo through an attached shell (`cat` on a terminal) beside a hutch session's
//     own terminal (the exec WebSocket).
//
//   attach_bench [--hutch build/release/src/exe/hutch] [--attaches 30] [--keystrokes 500]
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/attach_socket.h"
#include "cli/http_client.h"
#include "cli/ws_client.h"
#include "common/ids.h"
#include "hutch_server.h"
#include "process.h"
#include "stats.h"
#include "testing/attach_targets.h"

namespace hutch::bench {
namespace {

using Opener = std::function<Result<std::unique_ptr<client::ExecSocket>>(const json::object&)>;

struct Options {
  std::string hutch = HUTCH_BINARY;
  int attaches = 30;
  int keystrokes = 500;
};

void PrintSummary(const std::string& what, const Summary& s) {
  fmt::print("  {:<48} n={:<4} p50 {:>8.3f} ms   p99 {:>8.3f} ms\n", what, s.n, s.p50_ms, s.p99_ms);
}

// Runs `command` with /bin/sh until "ready" is on its stdout; the time that took.
Result<int64_t> TimeToReady(const std::string& command) {
  int64_t t0 = MonotonicNs();
  FILE* p = popen(command.c_str(), "r");
  if (!p) return ErrnoError("popen", errno);
  std::string out;
  char buf[256];
  int64_t t1 = 0;
  while (fgets(buf, sizeof buf, p)) {
    out += buf;
    if (t1 == 0 && out.find("ready") != std::string::npos) t1 = MonotonicNs();
  }
  int st = pclose(p);
  if (t1 == 0 || st != 0)
    return Internal(fmt::format("{}: exit {}, output '{}'", command, st, out));
  return t1 - t0;
}

Result<Summary> Direct(const std::string& command, int n) {
  std::vector<int64_t> samples;
  for (int i = 0; i < n + 3; ++i) {
    ASSIGN_OR_RETURN(int64_t ns, TimeToReady(command));
    if (i >= 3) samples.push_back(ns);
  }
  return Summarize(samples);
}

// POST /v1/attach, the terminal, until "ready"; then the shell's end.
Result<Summary> AttachToReady(client::ApiClient& api, const std::string& url,
                              const std::string& token, const std::string& service, int n) {
  std::vector<int64_t> samples;
  for (int i = 0; i < n + 3; ++i) {
    int64_t t0 = MonotonicNs();
    ASSIGN_OR_RETURN(json::object a,
                     api.Call("POST", "/v1/attach",
                              json::object{{"service_name", service}, {"command", "echo ready"}}));
    std::string id(a["id"].as_string());
    ASSIGN_OR_RETURN(auto ws, client::OpenAttachSocket(
                                  url, token, id,
                                  json::object{{"tty", json::object{{"rows", 24}, {"cols", 80}}}}));
    std::string out;
    int64_t t1 = 0;
    for (;;) {
      ASSIGN_OR_RETURN(auto f, ws->Read(10000));
      if (!f.has_value()) break;
      if (f->channel == client::kChannelStdout) out += f->data;
      if (t1 == 0 && out.find("ready") != std::string::npos) t1 = MonotonicNs();
      if (f->channel == client::kChannelStatus) break;
    }
    if (t1 == 0) return Internal(fmt::format("attach {}: no \"ready\" in '{}'", id, out));
    if (i >= 3) samples.push_back(t1 - t0);
  }
  return Summarize(samples);
}

Result<Summary> Echo(const Opener& open, int n) {
  json::object spec;
  spec["cmd"] = json::array{"cat"};
  spec["tty"] = json::object{{"rows", 24}, {"cols", 80}};
  ASSIGN_OR_RETURN(auto ws, open(spec));
  std::vector<int64_t> samples;
  for (int i = 0; i < n + 20; ++i) {
    if (i % 100 == 99) {
      RETURN_IF_ERROR(ws->SendStdin("\r"));
      for (;;) {
        auto f = ws->Read(50);
        if (!f.ok()) break;
        if (!f->has_value()) return Unavailable("the WebSocket closed");
      }
      continue;
    }
    int64_t t0 = MonotonicNs();
    RETURN_IF_ERROR(ws->SendStdin("x"));
    for (bool echoed = false; !echoed;) {
      ASSIGN_OR_RETURN(auto f, ws->Read(5000));
      if (!f.has_value()) return Unavailable("the WebSocket closed");
      echoed = f->channel == client::kChannelStdout && f->data.find('x') != std::string::npos;
    }
    if (i >= 20) samples.push_back(MonotonicNs() - t0);
  }
  ws->Close();
  return Summarize(samples);
}

int Report(const std::string& what, const Result<Summary>& s) {
  if (!s.ok()) {
    fmt::print(stderr, "attach_bench: {}: {}\n", what, s.status().ToString());
    return 1;
  }
  PrintSummary(what, *s);
  return 0;
}

int RunWith(const Options& o, HutchServer& server, const std::string& dir) {
  const std::string& url = server.url();
  const std::string& token = server.token();
  auto http = client::HttpClient::Create(url, token);
  if (!http.ok()) return 1;
  client::ApiClient api(std::move(*http));
  auto session = api.CreateSession(json::object{{"name", "attach-bench"}});
  if (!session.ok()) {
    fmt::print(stderr, "attach_bench: create: {}\n", session.status().ToString());
    return 1;
  }
  testing::UnsharedProcess proc("bench-proc", "x");
  std::string cid = NewId("hutch-bench-c");
  testing::RuncContainer box(dir, cid, "bench-runc", "x");
  int failed = 0;
  auto reg = [&](const std::string& name, json::object target) {
    auto r = api.Call("POST", "/v1/targets",
                      json::object{{"service_name", name}, {"target", std::move(target)}});
    if (!r.ok()) fmt::print(stderr, "attach_bench: register {}: {}\n", name, r.status().ToString());
  };
  reg("proc", json::object{{"kind", "process"}, {"pid", proc.pid()}});
  if (box.ok())
    reg("box", json::object{{"kind", "runc"}, {"container_id", cid}, {"runc_root", box.root()}});
  reg("sess", json::object{{"kind", "session"}, {"session", session->id}});
  // A dockerd of the bench's own, where docker.io is installed.
  std::unique_ptr<testing::DockerDaemon> docker;
  std::string docker_name = NewId("hutch-bench-web");
  if (access("/usr/sbin/dockerd", X_OK) == 0) {
    docker = std::make_unique<testing::DockerDaemon>(dir);
    if (!docker->ok() || docker->Run(docker_name, "bench-docker", "x").empty()) {
      fmt::print(stderr, "attach_bench: no Docker target: {}\n", docker->error());
      docker.reset();
    } else {
      reg("web", json::object{{"kind", "docker"},
                              {"container_id", docker_name},
                              {"docker_host", docker->socket()}});
    }
  }

  fmt::print("Attach → first output (`echo ready`), per target kind, beside running it directly\n");
  failed += Report(
      "nsenter -a -t PID (a process in fresh namespaces)",
      Direct(fmt::format("nsenter -a -t {} /bin/sh -c 'echo ready'", proc.pid()), o.attaches));
  failed +=
      Report("hutch attach, process target", AttachToReady(api, url, token, "proc", o.attaches));
  if (box.ok()) {
    failed += Report(
        "runc exec (a runc container)",
        Direct(fmt::format("runc --root {} exec {} /bin/sh -c 'echo ready'", box.root(), cid),
               o.attaches));
    failed +=
        Report("hutch attach, runc target", AttachToReady(api, url, token, "box", o.attaches));
  }
  if (docker) {
    failed += Report("docker exec (a Docker container)",
                     Direct(fmt::format("/usr/bin/docker -H unix://{} exec {} /bin/sh -c 'echo "
                                        "ready'",
                                        docker->socket(), docker_name),
                            o.attaches));
    failed +=
        Report("hutch attach, docker target", AttachToReady(api, url, token, "web", o.attaches));
  }
  failed +=
      Report("hutch attach, session target", AttachToReady(api, url, token, "sess", o.attaches));

  fmt::print("Keystroke echo (one byte typed into `cat` on a terminal, echo back)\n");
  failed += Report("hutch session terminal (exec WebSocket)",
                   Echo(
                       [&](const json::object& spec) {
                         return client::ExecSocket::Open(url, token, session->id, spec);
                       },
                       o.keystrokes));
  failed += Report(
      "hutch attach, process target",
      Echo(
          [&](const json::object& spec) -> Result<std::unique_ptr<client::ExecSocket>> {
            ASSIGN_OR_RETURN(
                json::object a,
                api.Call("POST", "/v1/attach",
                         json::object{{"service_name", "proc"}, {"command", json::array{"cat"}}}));
            return client::OpenAttachSocket(url, token, std::string(a["id"].as_string()), spec);
          },
          o.keystrokes));
  (void)api.DeleteSession(session->id);
  return failed == 0 ? 0 : 1;
}

int Run(const Options& o) {
  char tmpl[] = "/tmp/hutch-attach-bench-XXXXXX";
  if (!mkdtemp(tmpl)) return 1;
  std::string dir = tmpl;
  int code = 1;
  {
    auto server = HutchServer::Start(o.hutch, dir + "/data", "warn");
    if (!server.ok()) {
      fmt::print(stderr, "attach_bench: {}\n", server.status().ToString());
    } else {
      code = RunWith(o, **server, dir);
    }
  }
  RemoveTree(dir);
  return code;
}

}  // namespace
}  // namespace hutch::bench

int main(int argc, char** argv) {
  hutch::bench::Options o;
  CLI::App app{"Attached shells: attach → first output per target kind, and keystroke echo"};
  app.add_option("--hutch", o.hutch, "the hutch executable (hutch-agent beside it)");
  app.add_option("--attaches", o.attaches, "attaches to time per target")
      ->check(CLI::Range(1, 10000));
  app.add_option("--keystrokes", o.keystrokes, "keystrokes to time")
      ->check(CLI::Range(10, 1000000));
  CLI11_PARSE(app, argc, argv);
  return hutch::bench::Run(o);
}
