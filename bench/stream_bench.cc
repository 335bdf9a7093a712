// stream_bench: interactive and streaming exec (docs/benchmarks.md, "Streams"):
//   - PTY keystroke echo over the exec WebSocket: one byte typed into `cat` on a terminal, until
//     its echo is back — p50/p99 — beside the floor of a local PTY's echo in this process;
//   - streaming throughput: `head -c N /dev/zero` over the WebSocket, in MB/s, beside the floor of
//     the same command writing into a local pipe.
//
//   stream_bench [--hutch build/release/src/exe/hutch] [--keystrokes 1000] [--megabytes 512]
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/http_client.h"
#include "cli/ws_client.h"
#include "hutch_server.h"
#include "process.h"
#include "stats.h"

namespace hutch::bench {
namespace {

struct Options {
  std::string hutch = HUTCH_BINARY;
  int keystrokes = 1000;
  int megabytes = 512;
  int rounds = 3;
};

void PrintSummary(const std::string& what, const Summary& s) {
  fmt::print("  {:<44} n={:<5} p50 {:>8.3f} ms   p99 {:>8.3f} ms\n", what, s.n, s.p50_ms, s.p99_ms);
}

// Echo of one byte through a PTY in this process: the kernel's part of a keystroke's trip.
Result<Summary> LocalPtyEcho(int n) {
  int master = -1, slave = -1;
  if (openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) return ErrnoError("openpty", errno);
  std::vector<int64_t> samples;
  char buf[256];
  for (int i = 0; i < n + 20; ++i) {
    char c = (i % 100 == 99) ? '\r' : 'x';
    int64_t t0 = MonotonicNs();
    (void)!write(master, &c, 1);
    ssize_t got = read(master, buf, sizeof buf);
    int64_t t1 = MonotonicNs();
    if (got <= 0) break;
    if (c == '\r') {
      // Drain the newline echo; the slave side is not read, so the line is discarded below.
      tcflush(slave, TCIFLUSH);
      continue;
    }
    if (i >= 20) samples.push_back(t1 - t0);
  }
  close(master);
  close(slave);
  return Summarize(samples);
}

// Throughput of `head -c bytes /dev/zero` into a pipe read by this process: the floor.
Result<double> LocalPipeMBps(int64_t bytes) {
  int p[2];
  if (pipe(p) != 0) return ErrnoError("pipe", errno);
  int64_t t0 = MonotonicNs();
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    std::string n = std::to_string(bytes);
    execlp("head", "head", "-c", n.c_str(), "/dev/zero", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(p[1]);
  std::vector<char> buf(1 << 16);
  int64_t total = 0;
  ssize_t got;
  while ((got = read(p[0], buf.data(), buf.size())) > 0) total += got;
  int64_t t1 = MonotonicNs();
  close(p[0]);
  waitpid(pid, nullptr, 0);
  if (total != bytes) return Internal(fmt::format("local pipe: read {} of {} bytes", total, bytes));
  return static_cast<double>(total) / 1e6 / (static_cast<double>(t1 - t0) / 1e9);
}

Result<Summary> WsPtyEcho(const std::string& url, const std::string& token, const std::string& id,
                          int n) {
  json::object spec;
  spec["cmd"] = json::array{"cat"};
  spec["tty"] = json::object{{"rows", 24}, {"cols", 80}};
  ASSIGN_OR_RETURN(auto ws, client::ExecSocket::Open(url, token, id, spec));
  std::vector<int64_t> samples;
  for (int i = 0; i < n + 20; ++i) {
    if (i % 100 == 99) {
      // End the line (cat prints it back) and drain until quiet, so lines stay short.
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
    bool echoed = false;
    while (!echoed) {
      ASSIGN_OR_RETURN(auto f, ws->Read(5000));
      if (!f.has_value()) return Unavailable("the WebSocket closed");
      if (f->channel == client::kChannelStdout && f->data.find('x') != std::string::npos)
        echoed = true;
    }
    int64_t t1 = MonotonicNs();
    if (i >= 20) samples.push_back(t1 - t0);
  }
  ws->Close();
  return Summarize(samples);
}

Result<double> WsThroughputMBps(const std::string& url, const std::string& token,
                                const std::string& id, int64_t bytes) {
  json::object spec;
  spec["cmd"] = json::array{"head", "-c", std::to_string(bytes), "/dev/zero"};
  int64_t t0 = MonotonicNs();
  ASSIGN_OR_RETURN(auto ws, client::ExecSocket::Open(url, token, id, spec));
  int64_t total = 0;
  for (;;) {
    ASSIGN_OR_RETURN(auto f, ws->Read(60000));
    if (!f.has_value()) return Unavailable("the WebSocket closed before the status");
    if (f->channel == client::kChannelStdout) total += static_cast<int64_t>(f->data.size());
    if (f->channel == client::kChannelStatus) break;
  }
  int64_t t1 = MonotonicNs();
  if (total != bytes)
    return Internal(fmt::format("WebSocket: received {} of {} bytes", total, bytes));
  return static_cast<double>(total) / 1e6 / (static_cast<double>(t1 - t0) / 1e9);
}

int Run(const Options& o) {
  char tmpl[] = "/tmp/hutch-stream-bench-XXXXXX";
  if (!mkdtemp(tmpl)) {
    fmt::print(stderr, "stream_bench: mkdtemp: {}\n", strerror(errno));
    return 1;
  }
  std::string dir = tmpl;
  int code = 1;
  {
    auto server = HutchServer::Start(o.hutch, dir + "/data", "warn");
    if (!server.ok()) {
      fmt::print(stderr, "stream_bench: {}\n", server.status().ToString());
      RemoveTree(dir);
      return 1;
    }
    auto http = client::HttpClient::Create((*server)->url(), (*server)->token());
    client::ApiClient api(std::move(*http));
    auto session = api.CreateSession(json::object{{"name", "stream-bench"}});
    if (!session.ok()) {
      fmt::print(stderr, "stream_bench: create: {}\n", session.status().ToString());
    } else {
      const std::string& url = (*server)->url();
      const std::string& token = (*server)->token();
      fmt::print("PTY keystroke echo (one byte typed into `cat` on a terminal, echo back)\n");
      auto floor = LocalPtyEcho(o.keystrokes);
      if (floor.ok()) PrintSummary("local PTY in this process (floor)", *floor);
      auto echo = WsPtyEcho(url, token, session->id, o.keystrokes);
      if (echo.ok()) {
        PrintSummary("hutch exec WebSocket, tty", *echo);
      } else {
        fmt::print(stderr, "stream_bench: echo: {}\n", echo.status().ToString());
      }
      int64_t bytes = int64_t{o.megabytes} << 20;
      fmt::print("Streaming throughput (head -c {} MiB /dev/zero), best of {}\n", o.megabytes,
                 o.rounds);
      double best_pipe = 0, best_ws = 0;
      bool ok = echo.ok();
      for (int r = 0; r < o.rounds; ++r) {
        auto pipe = LocalPipeMBps(bytes);
        auto ws = WsThroughputMBps(url, token, session->id, bytes);
        if (!pipe.ok() || !ws.ok()) {
          fmt::print(stderr, "stream_bench: throughput: {}\n",
                     (!pipe.ok() ? pipe.status() : ws.status()).ToString());
          ok = false;
          break;
        }
        best_pipe = std::max(best_pipe, *pipe);
        best_ws = std::max(best_ws, *ws);
      }
      fmt::print("  {:<44} {:>9.0f} MB/s\n", "local pipe (floor)", best_pipe);
      fmt::print("  {:<44} {:>9.0f} MB/s   ({:.0f}% of the floor)\n",
                 "hutch exec WebSocket, stdout", best_ws,
                 best_pipe > 0 ? 100 * best_ws / best_pipe : 0.0);
      (void)api.DeleteSession(session->id);
      code = ok ? 0 : 1;
    }
  }
  RemoveTree(dir);
  return code;
}

}  // namespace
}  // namespace hutch::bench

int main(int argc, char** argv) {
  hutch::bench::Options o;
  CLI::App app{"PTY keystroke echo latency and streaming throughput of hutch's exec WebSocket"};
  app.add_option("--hutch", o.hutch, "the hutch executable (hutch-agent beside it)");
  app.add_option("--keystrokes", o.keystrokes, "keystrokes to time")
      ->check(CLI::Range(10, 1000000));
  app.add_option("--megabytes", o.megabytes, "MiB to stream per round")
      ->check(CLI::Range(1, 65536));
  app.add_option("--rounds", o.rounds, "throughput rounds (the best counts)")
      ->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);
  return hutch::bench::Run(o);
}
