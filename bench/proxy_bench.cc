// hutch_proxy_bench: the HTTP port proxy (GET /v1/sessions/{id}/ports/{port}/…) against direct
// access to the same server on loopback, as ratios (DESIGN.md §8: peers in the same run).
//
// The same Python server (http.server over a directory with a 1 KiB and a --big-mib file) runs
// twice: inside a session (network mode none, reached only through hutch → agent) and on the
// host's loopback. Both are asked the same requests by the same raw HTTP/1.1 client:
//   1. latency: GET of the 1 KiB file, --requests times (after 20 warm-up requests), one new
//      connection per request;
//   2. the same on one kept-alive connection (the server speaks HTTP/1.1, so both sides keep
//      it: hutch toward the client, the app toward the host client);
//   3. throughput: GET of the big file, --reps times (+1 warm-up).
// Needs root (the server creates sandboxes). The direct server's script is single-quoted for
// the shell: it holds no single quote.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
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
  int requests = 500;
  int reps = 5;
  int big_mib = 256;
};

constexpr char kServer[] = R"(import http.server, sys, os
os.chdir(sys.argv[1])
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), H)
print(s.server_port, os.getpid(), flush=True)
s.serve_forever()
)";

int PortOf(const std::string& url) { return std::stoi(url.substr(url.rfind(':') + 1)); }

// A TCP_NODELAY connection to 127.0.0.1:port, or -1.
int ConnectLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// One GET on a new connection to 127.0.0.1:port; answers the bytes received (head and body),
// or -1 when the exchange failed.
int64_t Get(int port, const std::string& target, const std::string& token) {
  int fd = ConnectLoopback(port);
  if (fd < 0) return -1;
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
  req += "\r\n";
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return -1;
  }
  static thread_local std::vector<char> buf(1 << 20);
  int64_t total = 0;
  for (;;) {
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n < 0) {
      total = -1;
      break;
    }
    if (n == 0) break;
    total += n;
  }
  close(fd);
  return total;
}

// A client connection kept alive across GETs: each answer is read to its Content-Length.
class KeptConnection {
 public:
  explicit KeptConnection(int port) : fd_(ConnectLoopback(port)) {}
  ~KeptConnection() {
    if (fd_ >= 0) close(fd_);
  }
  KeptConnection(const KeptConnection&) = delete;
  KeptConnection& operator=(const KeptConnection&) = delete;

  // The answer's body size, or -1 when the exchange failed or the connection was not kept.
  int64_t Get(const std::string& target, const std::string& token) {
    if (fd_ < 0) return -1;
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
    req += "\r\n";
    if (send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
      return -1;
    size_t head_end;
    while ((head_end = in_.find("\r\n\r\n")) == std::string::npos) {
      if (!Read()) return -1;
    }
    std::string head = in_.substr(0, head_end);
    for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t cl = head.find("content-length:");
    if (cl == std::string::npos || head.find("connection: close") != std::string::npos) return -1;
    size_t length = std::stoul(head.substr(cl + 15));
    while (in_.size() < head_end + 4 + length) {
      if (!Read()) return -1;
    }
    in_.erase(0, head_end + 4 + length);
    return static_cast<int64_t>(length);
  }

 private:
  bool Read() {
    char buf[65536];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    in_.append(buf, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string in_;
};

struct Target {
  int port;
  std::string prefix;  // "" direct, "/v1/sessions/ID/ports/8000" proxied
  std::string token;
};

// `n` timed calls of get() (a GET answering its bytes, -1 on failure) after 20 untimed ones.
template <class Get>
Summary Timed(int n, int64_t* bytes, Get get) {
  for (int i = 0; i < 20; ++i) get();
  std::vector<int64_t> samples;
  for (int i = 0; i < n; ++i) {
    int64_t t0 = MonotonicNs();
    *bytes = get();
    if (*bytes < 0) return {};
    samples.push_back(MonotonicNs() - t0);
  }
  return Summarize(samples);
}

Summary Latency(const Target& t, int n, int64_t* bytes) {
  return Timed(n, bytes, [&] { return Get(t.port, t.prefix + "/small.txt", t.token); });
}

Summary KeptLatency(const Target& t, int n, int64_t* bytes) {
  KeptConnection c(t.port);
  return Timed(n, bytes, [&] { return c.Get(t.prefix + "/small.txt", t.token); });
}

Summary Download(const Target& t, int reps, int64_t* bytes) {
  std::vector<int64_t> samples;
  for (int i = 0; i <= reps; ++i) {
    int64_t t0 = MonotonicNs();
    *bytes = Get(t.port, t.prefix + "/big.bin", t.token);
    if (*bytes < 0) return {};
    if (i > 0) samples.push_back(MonotonicNs() - t0);
  }
  return Summarize(samples);
}

int Main(const Options& o) {
  if (geteuid() != 0) {
    fmt::print(stderr, "hutch_proxy_bench needs root (the server creates sandboxes)\n");
    return 1;
  }
  char tmpl[] = "/tmp/hutch-proxy-bench-XXXXXX";
  if (!mkdtemp(tmpl)) {
    perror("mkdtemp");
    return 1;
  }
  std::string tmp = tmpl;
  std::string www = tmp + "/www";
  std::string make_files = fmt::format(
      "mkdir -p {0} && head -c 1024 /dev/urandom > {0}/small.txt && "
      "head -c {1}M /dev/urandom > {0}/big.bin",
      www, o.big_mib);
  if (system(make_files.c_str()) != 0) return 1;

  auto server = HutchServer::Start(o.hutch, tmp + "/data", "warn");
  if (!server.ok()) {
    fmt::print(stderr, "start server: {}\n", server.status().ToString());
    return 1;
  }
  auto http = client::HttpClient::Create((*server)->url(), (*server)->token());
  client::ApiClient api(std::move(*http));
  auto session = api.CreateSession(json::parse(R"({"name": "proxy-bench"})").as_object());
  if (!session.ok()) {
    fmt::print(stderr, "create session: {}\n", session.status().ToString());
    return 1;
  }
  std::string id = session->id;
  // The same files inside the session (its /tmp is its own).
  json::object exec;
  exec["command"] = fmt::format(
      "mkdir -p /tmp/www && head -c 1024 /dev/urandom > /tmp/www/small.txt && "
      "head -c {}M /dev/urandom > /tmp/www/big.bin",
      o.big_mib);
  exec["timeout_seconds"] = 300;
  auto made = api.Exec(id, exec);
  if (!made.ok() || made->exit_code != 0) {
    fmt::print(stderr, "make files in the session failed\n");
    return 1;
  }
  json::object start;
  start["cmd"] = json::array{json::value("python3"), json::value("-c"), json::value(kServer),
                             json::value("/tmp/www"), json::value("8000")};
  start["tag"] = "web";
  if (auto p = api.Call("POST", "/v1/sessions/" + id + "/processes", start); !p.ok()) {
    fmt::print(stderr, "start the server in the session: {}\n", p.status().ToString());
    return 1;
  }
  // The direct peer: the same server on the host's loopback, on a free port it reports.
  std::string cmd = fmt::format("python3 -c '{}' {} 0", kServer, www);
  FILE* direct = popen(("exec " + cmd).c_str(), "r");
  int direct_port = 0, direct_pid = 0;
  if (!direct || fscanf(direct, "%d %d", &direct_port, &direct_pid) != 2) {
    fmt::print(stderr, "start the direct server failed\n");
    return 1;
  }
  Target proxied{PortOf((*server)->url()), "/v1/sessions/" + id + "/ports/8000",
                 (*server)->token()};
  Target plain{direct_port, "", ""};
  // Wait for the server in the session.
  for (int i = 0; i < 500 && Get(proxied.port, proxied.prefix + "/small.txt", proxied.token) < 600;
       ++i)
    usleep(10000);

  fmt::print("proxy bench: {} requests of 1 KiB, {} downloads of {} MiB (+1 warm-up)\n", o.requests,
             o.reps, o.big_mib);
  fmt::print("\n{:<30} {:>9} {:>9} {:>10}\n", "", "p50 ms", "p99 ms", "MiB/s");
  int64_t bytes = 0;
  Summary ld = Latency(plain, o.requests, &bytes);
  fmt::print("{:<30} {:>9.3f} {:>9.3f} {:>10}\n", "GET 1 KiB, direct loopback", ld.p50_ms,
             ld.p99_ms, "-");
  Summary lp = Latency(proxied, o.requests, &bytes);
  fmt::print("{:<30} {:>9.3f} {:>9.3f} {:>10}\n", "GET 1 KiB, through hutch", lp.p50_ms, lp.p99_ms,
             "-");
  Summary kd = KeptLatency(plain, o.requests, &bytes);
  fmt::print("{:<30} {:>9.3f} {:>9.3f} {:>10}\n", "same, kept alive, direct", kd.p50_ms, kd.p99_ms,
             "-");
  Summary kp = KeptLatency(proxied, o.requests, &bytes);
  fmt::print("{:<30} {:>9.3f} {:>9.3f} {:>10}\n", "same, kept alive, hutch", kp.p50_ms, kp.p99_ms,
             "-");
  Summary dd = Download(plain, o.reps, &bytes);
  double mib_direct = dd.p50_ms > 0 ? o.big_mib / (dd.p50_ms / 1000.0) : 0;
  fmt::print("{:<30} {:>9.1f} {:>9.1f} {:>10.0f}\n", "download, direct loopback", dd.p50_ms,
             dd.p99_ms, mib_direct);
  Summary dp = Download(proxied, o.reps, &bytes);
  double mib_proxied = dp.p50_ms > 0 ? o.big_mib / (dp.p50_ms / 1000.0) : 0;
  fmt::print("{:<30} {:>9.1f} {:>9.1f} {:>10.0f}\n", "download, through hutch", dp.p50_ms,
             dp.p99_ms, mib_proxied);
  fmt::print(
      "\nratios (hutch / direct): latency p50 {:.2f}x, p99 {:.2f}x; kept alive p50 {:.2f}x, "
      "p99 {:.2f}x; throughput {:.2f}x\n",
      ld.p50_ms > 0 ? lp.p50_ms / ld.p50_ms : 0, ld.p99_ms > 0 ? lp.p99_ms / ld.p99_ms : 0,
      kd.p50_ms > 0 ? kp.p50_ms / kd.p50_ms : 0, kd.p99_ms > 0 ? kp.p99_ms / kd.p99_ms : 0,
      mib_direct > 0 ? mib_proxied / mib_direct : 0);

  (void)api.DeleteSession(id);
  (*server)->Stop();
  kill(direct_pid, SIGTERM);
  pclose(direct);
  return system(("rm -rf " + tmp).c_str()) == 0 ? 0 : 1;
}

}  // namespace
}  // namespace hutch::bench

int main(int argc, char** argv) {
  hutch::bench::Options o;
  CLI::App app("hutch_proxy_bench: the HTTP port proxy beside direct loopback access");
  app.add_option("--hutch", o.hutch, "the hutch executable");
  app.add_option("--requests", o.requests, "timed 1 KiB requests per side");
  app.add_option("--reps", o.reps, "timed downloads per side");
  app.add_option("--big-mib", o.big_mib, "size of the downloaded file in MiB");
  CLI11_PARSE(app, argc, argv);
  return hutch::bench::Main(o);
}
