// Ports (issue 9) end to end: TCP relay over WebSocket (GET …/ports/{port}/tcp) and
// `hutch port-forward`, against a real `hutch serve`, real sandboxes and real servers inside
// them.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <fmt/format.h>

#include "cli/http_client.h"
#include "cli/ws_client.h"
#include "common/unique_fd.h"
#include "testing/server_process.h"
#include "testing/session_fixture.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::ApiClient;
using client::ExecSocket;
using client::HttpClient;

json::object Body(std::string_view text) { return json::parse(text).as_object(); }

// A TCP echo server on the session's loopback; one connection at a time is enough here.
constexpr char kEchoServer[] = R"(import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 7001))
s.listen(8)
while True:
    c, _ = s.accept()
    try:
        while True:
            d = c.recv(65536)
            if not d: break
            c.sendall(d)
    except OSError:  # a peer that reset the connection ends it, not the server
        pass
    c.close()
)";

class PortsTest : public hutch::testing::SessionFixture {
 protected:
  PortsTest() : SessionFixture("ports") {}

  void StartEchoServer() {
    json::object body;
    body["cmd"] = json::array{json::value("python3"), json::value("-c"), json::value(kEchoServer)};
    body["tag"] = "echo";
    auto p = Api().Call("POST", "/v1/sessions/" + id_ + "/processes", body);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
  }

  // Opens the relay, retrying while the server in the session is still starting.
  std::unique_ptr<ExecSocket> OpenRelay(int port) {
    Status last = Unavailable("not tried");
    for (int i = 0; i < 500; ++i) {
      auto s = ExecSocket::OpenPortTcp(server_->url(), server_->token(), id_, port);
      if (s.ok()) return std::move(*s);
      last = s.status();
      if (last.code() != Code::kUnavailable) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << last.ToString();
    return nullptr;
  }
};

// Reads from the relay until `want` bytes came (or it ended or timed out).
std::string ReadBytes(ExecSocket& s, size_t want, int64_t timeout_ms = 30000) {
  std::string got;
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (got.size() < want && std::chrono::steady_clock::now() < until) {
    auto f = s.Read(100);
    if (!f.ok()) continue;
    if (!f->has_value()) break;
    got += (**f).data;
  }
  return got;
}

TEST_F(PortsTest, TcpRelayEchoesBytesBothWaysAndEndsWhenTheProgramCloses) {
  StartEchoServer();
  auto relay = OpenRelay(7001);
  ASSERT_TRUE(relay);
  ASSERT_TRUE(relay->Send(0, "hello").ok());
  EXPECT_EQ(ReadBytes(*relay, 5), "hello");
  // 8 MiB: many times the agent's windows, so credit has to flow back both ways.
  std::string big(8 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) % 251);
  std::string echoed;
  std::thread reader([&] { echoed = ReadBytes(*relay, big.size(), 60000); });
  for (size_t off = 0; off < big.size(); off += 1 << 20) {
    ASSERT_TRUE(relay->Send(0, std::string_view(big).substr(off, 1 << 20)).ok());
  }
  reader.join();
  EXPECT_EQ(echoed.size(), big.size());
  EXPECT_TRUE(echoed == big);
  // Half-close: the echo server reads EOF and closes, and so the WebSocket ends.
  ASSERT_TRUE(relay->Send(0, {}).ok());
  auto end = relay->Read(10000);
  ASSERT_TRUE(end.ok()) << end.status().ToString();
  EXPECT_FALSE(end->has_value());
}

// Terminals and relays are GETs; each open and each close is in the audit trail (issue 21).
TEST_F(PortsTest, TerminalsAndTcpRelaysAreAuditedWhenTheyOpenAndClose) {
  StartEchoServer();
  {
    auto relay = OpenRelay(7001);
    ASSERT_TRUE(relay);
    ASSERT_TRUE(relay->Send(0, "hi").ok());
    EXPECT_EQ(ReadBytes(*relay, 2), "hi");
  }
  {
    auto term = ExecSocket::Open(server_->url(), server_->token(), id_,
                                 Body(R"({"cmd": ["sh"], "tty": {"rows": 24, "cols": 80}})"));
    ASSERT_TRUE(term.ok()) << term.status().ToString();
    ASSERT_TRUE((*term)->SendStdin("exit\n").ok());
    while (true) {
      auto f = (*term)->Read(10000);
      if (!f.ok() || !f->has_value() || (**f).channel == client::kChannelStatus) break;
    }
  }
  // The closes are recorded when the server notices the clients went away.
  std::map<std::string, int> seen;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < until) {
    seen.clear();
    auto trail = Api().Call("GET", "/v1/audit?session=" + id_ + "&limit=1000");
    ASSERT_TRUE(trail.ok()) << trail.status().ToString();
    for (const auto& r : trail->at("records").as_array()) {
      const json::object& rec = r.as_object();
      std::string action(rec.at("action").as_string());
      if (action.starts_with("sessions.exec.ws") || action.starts_with("sessions.ports.tcp")) {
        // OpenRelay retries while the echo server starts: those upgrades were refused (503).
        if (rec.at("status").as_int64() == 503 && action == "sessions.ports.tcp") continue;
        ++seen[action];
        EXPECT_EQ(rec.at("method").as_string(), "GET");
        EXPECT_EQ(rec.at("status").as_int64(), 101) << action;
        EXPECT_FALSE(rec.at("user_id").is_null());
      }
    }
    if (seen.size() == 4) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(seen["sessions.ports.tcp"], 1);
  EXPECT_EQ(seen["sessions.ports.tcp.closed"], 1);
  EXPECT_EQ(seen["sessions.exec.ws"], 1);
  EXPECT_EQ(seen["sessions.exec.ws.closed"], 1);
}

TEST_F(PortsTest, TcpRelayToAPortWithoutAListenerIs503WithTheErrorShape) {
  auto http = HttpClient::Create(server_->url(), server_->token());
  ASSERT_TRUE(http.ok());
  auto s = ExecSocket::OpenPortTcp(server_->url(), server_->token(), id_, 7999);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kUnavailable);
  EXPECT_NE(s.status().message().find("7999"), std::string::npos) << s.status().message();
  // The session still answers afterwards.
  json::object exec;
  exec["command"] = "echo ok";
  auto r = Api().Exec(id_, exec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_data, "ok\n");
}

TEST_F(PortsTest, TcpRelayRejectsBadPortsAndOtherUsersSessions) {
  for (int bad : {0, 65536}) {
    auto s = ExecSocket::OpenPortTcp(server_->url(), server_->token(), id_, bad);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), Code::kInvalidArgument) << s.status().ToString();
  }
  // Another user's valid token: the session does not exist for them.
  auto user = Api().Call("POST", "/v1/users", Body(R"({"name": "mallory"})"));
  ASSERT_TRUE(user.ok()) << user.status().ToString();
  std::string uid(user->at("id").as_string());
  auto tok = Api().Call("POST", "/v1/tokens?owner=" + uid, Body(R"({"name": "t"})"));
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  std::string token(tok->at("token").as_string());
  StartEchoServer();
  auto s = ExecSocket::OpenPortTcp(server_->url(), token, id_, 7001);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kNotFound) << s.status().ToString();
}

// A child process with its stdout on a pipe; SIGKILLed and reaped by the destructor.
struct Child {
  pid_t pid = -1;
  UniqueFd out;
  ~Child() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

TEST_F(PortsTest, PortForwardCarriesATcpStream) {
  StartEchoServer();
  // The relay works before port-forward starts, so its first connection finds the server up.
  ASSERT_TRUE(OpenRelay(7001));
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  Child child;
  child.out.Reset(fds[0]);
  child.pid = fork();
  ASSERT_GE(child.pid, 0);
  if (child.pid == 0) {
    dup2(fds[1], 1);
    execl(HUTCH_BINARY, HUTCH_BINARY, "port-forward", id_.c_str(), "0:7001", "--url",
          server_->url().c_str(), "--token", server_->token().c_str(), nullptr);
    _exit(127);
  }
  close(fds[1]);
  // "Forwarding from 127.0.0.1:PORT -> ID port 7001"
  std::string line;
  char c;
  while (line.find('\n') == std::string::npos && read(child.out.get(), &c, 1) == 1) line += c;
  ASSERT_NE(line.find("Forwarding from 127.0.0.1:"), std::string::npos) << line;
  int local = std::stoi(line.substr(line.find(':') + 1));
  ASSERT_GT(local, 0);

  UniqueFd conn(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(local));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(conn.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{30, 0};  // a broken relay fails the test instead of hanging it
  setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string sent(1 << 20, 'x');
  for (size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<char>('a' + i % 23);
  std::thread writer([&] {
    std::string_view left = sent;
    while (!left.empty()) {
      ssize_t n = send(conn.get(), left.data(), left.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      left.remove_prefix(static_cast<size_t>(n));
    }
    shutdown(conn.get(), SHUT_WR);  // the echo server sees EOF and closes
  });
  std::string got;
  char buf[65536];
  for (;;) {
    ssize_t n = recv(conn.get(), buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  writer.join();
  EXPECT_EQ(got.size(), sent.size());
  EXPECT_TRUE(got == sent);
}

// --- The HTTP reverse proxy (ANY …/ports/{port}/{path…}) ---

// A POST handler and python3 -m http.server's GET/HEAD in one: answers a POST with the body's
// length and byte sum, and the request headers it saw as X-Seen-* (to check forwarding).
constexpr char kWebServer[] = R"(import http.server, sys
class H(http.server.SimpleHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get('Content-Length', 0))
        data = b''
        while len(data) < n:
            d = self.rfile.read(n - len(data))
            if not d: break
            data += d
        body = ('len=%d sum=%d prefix=%s xff=%s auth=%s' % (len(data), sum(data),
                self.headers.get('X-Forwarded-Prefix'), self.headers.get('X-Forwarded-For'),
                self.headers.get('Authorization'))).encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(('127.0.0.1', 8000), H).serve_forever()
)";

// A WebSocket echo server (RFC 6455 by hand: the image has no websocket module).
constexpr char kWsEchoServer[] = R"(import socket, hashlib, base64, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 8002))
s.listen(8)
def handle(c):
    data = b''
    while b'\r\n\r\n' not in data:
        d = c.recv(4096)
        if not d: return
        data += d
    head, buf = data.split(b'\r\n\r\n', 1)
    key = [l.split(':', 1)[1].strip() for l in head.decode().split('\r\n')
           if l.lower().startswith('sec-websocket-key')][0]
    acc = base64.b64encode(hashlib.sha1((key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
                                        .encode()).digest()).decode()
    c.sendall(('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n'
               'Connection: Upgrade\r\nSec-WebSocket-Accept: ' + acc + '\r\n\r\n').encode())
    def need(n):
        nonlocal buf
        while len(buf) < n:
            d = c.recv(65536)
            if not d: raise EOFError
            buf += d
        r, buf = buf[:n], buf[n:]
        return r
    try:
        while True:
            b0, b1 = need(2)
            op, ln = b0 & 15, b1 & 127
            if ln == 126: ln = int.from_bytes(need(2), 'big')
            elif ln == 127: ln = int.from_bytes(need(8), 'big')
            mask = need(4) if b1 & 128 else b'\0\0\0\0'
            p = bytes(x ^ mask[i % 4] for i, x in enumerate(need(ln)))
            if op == 8:
                c.sendall(b'\x88\x00')
                break
            fin_op = b0 & 0x8F  # fragments echo as fragments
            if ln < 126: hdr = bytes([fin_op, ln])
            elif ln < 65536: hdr = bytes([fin_op, 126]) + ln.to_bytes(2, 'big')
            else: hdr = bytes([fin_op, 127]) + ln.to_bytes(8, 'big')
            c.sendall(hdr + p)
    except EOFError:
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
)";

// One raw HTTP exchange with the hutch server: sends `request` as is, reads to EOF (the request
// says `Connection: close`, or the server closes after the answer).
std::string RawHttp(const std::string& url, const std::string& request) {
  // url is "http://127.0.0.1:PORT"
  int port = std::stoi(url.substr(url.rfind(':') + 1));
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return "";
  timeval tv{60, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string_view left = request;
  while (!left.empty()) {
    ssize_t n = send(fd.get(), left.data(), left.size(), MSG_NOSIGNAL);
    if (n <= 0) break;
    left.remove_prefix(static_cast<size_t>(n));
  }
  std::string got;
  char buf[65536];
  for (;;) {
    ssize_t n = recv(fd.get(), buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

class ProxyTest : public PortsTest {
 protected:
  void StartProcess(const char* tag, const char* script, const char* cwd = nullptr) {
    json::object body;
    body["cmd"] = json::array{json::value("python3"), json::value("-c"), json::value(script)};
    body["tag"] = tag;
    if (cwd) body["cwd"] = cwd;
    auto p = Api().Call("POST", "/v1/sessions/" + id_ + "/processes", body);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
  }
  // Waits until something answers on `port` in the session.
  void WaitForPort(int port) { ASSERT_TRUE(OpenRelay(port)); }

  std::string Get(const std::string& method, const std::string& path, const std::string& token = "",
                  const std::string& headers = "", const std::string& body = "") {
    return RawHttp(server_->url(), method + " /v1/sessions/" + id_ + "/ports/" + path +
                                       " HTTP/1.1\r\nHost: h\r\nConnection: close\r\n" +
                                       "Authorization: Bearer " +
                                       (token.empty() ? server_->token() : token) + "\r\n" +
                                       headers + "\r\n" + body);
  }
};

std::string BodyOf(const std::string& response) {
  size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

TEST_F(ProxyTest, HttpServerGetHeadAndALargeStreamedDownload) {
  json::object exec;
  exec["command"] =
      "mkdir -p /tmp/www && cd /tmp/www && echo hello > index.txt && "
      "python3 -c \"open('big.bin','wb').write(bytes(i % 251 for i in range(24 << 20)))\"";
  auto made = Api().Exec(id_, exec);
  ASSERT_TRUE(made.ok() && made->exit_code == 0) << made.status().ToString();
  StartProcess("web", kWebServer, "/tmp/www");
  WaitForPort(8000);

  // The status line carries the client's HTTP version (the app, python's, says HTTP/1.0).
  std::string r = Get("GET", "8000/index.txt");
  EXPECT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK") << r;
  EXPECT_EQ(BodyOf(r), "hello\n");

  r = Get("HEAD", "8000/index.txt");
  EXPECT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK") << r;
  EXPECT_NE(r.find("Content-Length: 6"), std::string::npos) << r;
  EXPECT_EQ(BodyOf(r), "");

  // 24 MiB: far more than every buffer and window on the way, so it has to stream.
  r = Get("GET", "8000/big.bin");
  std::string body = BodyOf(r);
  ASSERT_EQ(body.size(), size_t{24} << 20) << r.substr(0, 300);
  bool same = true;
  for (size_t i = 0; i < body.size() && same; ++i)
    same = static_cast<unsigned char>(body[i]) == i % 251;
  EXPECT_TRUE(same);

  r = Get("GET", "8000/missing");
  EXPECT_EQ(r.substr(0, 12), "HTTP/1.1 404") << r;
}

TEST_F(ProxyTest, PostBodyReachesTheAppWithForwardedHeadersAndWithoutTheToken) {
  StartProcess("web", kWebServer, "/tmp");
  WaitForPort(8000);
  std::string data(3 << 20, '\0');
  uint64_t sum = 0;
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = static_cast<char>((i * 7) % 256);
    sum += static_cast<unsigned char>(data[i]);
  }
  std::string r = Get("POST", "8000/upload?x=1", "",
                      "Content-Length: " + std::to_string(data.size()) + "\r\n", data);
  EXPECT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK") << r.substr(0, 300);
  std::string body = BodyOf(r);
  EXPECT_NE(body.find(fmt::format("len={} sum={}", data.size(), sum)), std::string::npos) << body;
  EXPECT_NE(body.find("prefix=/v1/sessions/" + id_ + "/ports/8000"), std::string::npos) << body;
  EXPECT_NE(body.find("xff=127.0.0.1"), std::string::npos) << body;
  EXPECT_NE(body.find("auth=None"), std::string::npos) << body;
  // Expect: 100-continue is answered by hutch once the app is reachable, and not forwarded.
  r = Get("POST", "8000/upload", "", "Content-Length: 3\r\nExpect: 100-continue\r\n", "xyz");
  EXPECT_EQ(r.rfind("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK", 0), 0u) << r;
  EXPECT_NE(BodyOf(r.substr(r.find("HTTP/1.1 200"))).find("len=3 "), std::string::npos) << r;
}

TEST_F(ProxyTest, NothingListeningIs503AndAnotherUsersTokenIs404) {
  std::string r = Get("GET", "8009/");
  EXPECT_EQ(r.substr(0, 12), "HTTP/1.1 503") << r;
  auto err = json::parse(BodyOf(r));
  ASSERT_TRUE(err.is_object()) << r;
  EXPECT_EQ(err.at("error").at("code").as_string(), "unavailable");

  auto user = Api().Call("POST", "/v1/users", Body(R"({"name": "mallory"})"));
  ASSERT_TRUE(user.ok()) << user.status().ToString();
  std::string uid(user->at("id").as_string());
  auto tok = Api().Call("POST", "/v1/tokens?owner=" + uid, Body(R"({"name": "t"})"));
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  r = Get("GET", "8009/", std::string(tok->at("token").as_string()));
  EXPECT_EQ(r.substr(0, 12), "HTTP/1.1 404") << r;
  r = RawHttp(server_->url(),
              "GET /v1/sessions/" + id_ + "/ports/8009/ HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(r.substr(0, 12), "HTTP/1.1 401") << r;
}

TEST_F(ProxyTest, WebSocketEchoRoundTripsThroughTheProxy) {
  StartProcess("ws", kWsEchoServer);
  WaitForPort(8002);
  namespace beast = boost::beast;
  namespace websocket = beast::websocket;
  boost::asio::io_context io;
  websocket::stream<beast::tcp_stream> ws(io);
  int port = std::stoi(server_->url().substr(server_->url().rfind(':') + 1));
  boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"),
                                    static_cast<uint16_t>(port));
  beast::get_lowest_layer(ws).connect(ep);
  std::string token = server_->token();
  ws.set_option(websocket::stream_base::decorator([token](websocket::request_type& req) {
    req.set(beast::http::field::authorization, "Bearer " + token);
  }));
  beast::get_lowest_layer(ws).expires_after(std::chrono::seconds(30));
  ws.handshake("127.0.0.1", "/v1/sessions/" + id_ + "/ports/8002/echo");
  for (std::string msg : {std::string("hello"), std::string(200000, 'z')}) {
    ws.binary(true);
    ws.write(boost::asio::buffer(msg));
    beast::flat_buffer buf;
    ws.read(buf);
    std::string echoed = beast::buffers_to_string(buf.data());
    EXPECT_EQ(echoed.size(), msg.size());
    EXPECT_TRUE(echoed == msg);
  }
  ws.close(websocket::close_code::normal);
}

TEST_F(ProxyTest, SignedUrlReachesThePortWithoutATokenUntilItExpires) {
  json::object exec;
  exec["command"] = "mkdir -p /tmp/www && echo signed > /tmp/www/index.txt";
  ASSERT_TRUE(Api().Exec(id_, exec).ok());
  StartProcess("web", kWebServer, "/tmp/www");
  WaitForPort(8000);
  auto made =
      Api().Call("POST", "/v1/sessions/" + id_ + "/ports/8000/url", Body(R"({"ttl_seconds": 2})"));
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  std::string url(made->at("url").as_string());
  ASSERT_EQ(url.rfind("/v1/sessions/" + id_ + "/ports/8000/?", 0), 0u) << url;
  std::string query = url.substr(url.find('?'));
  auto fetch = [&](const std::string& target) {
    return RawHttp(server_->url(),
                   "GET " + target + " HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  };
  // No token, the signature only: the app answers, and never sees the signature.
  std::string r = fetch("/v1/sessions/" + id_ + "/ports/8000/index.txt" + query);
  EXPECT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK") << r;
  EXPECT_EQ(BodyOf(r), "signed\n");
  // Altered: another port, or a changed signature.
  r = fetch("/v1/sessions/" + id_ + "/ports/8001/index.txt" + query);
  EXPECT_EQ(r.substr(0, 12), "HTTP/1.1 401") << r;
  std::string forged = query;
  forged.back() = forged.back() == '0' ? '1' : '0';
  r = fetch("/v1/sessions/" + id_ + "/ports/8000/index.txt" + forged);
  EXPECT_EQ(r.substr(0, 12), "HTTP/1.1 401") << r;
  // Expired: refused with the error shape. (Expiry is wall-clock time; wait for it.)
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    r = fetch("/v1/sessions/" + id_ + "/ports/8000/index.txt" + query);
    if (r.substr(0, 12) == "HTTP/1.1 401") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  } while (std::chrono::steady_clock::now() < until);
  ASSERT_EQ(r.substr(0, 12), "HTTP/1.1 401") << r;
  auto err = json::parse(BodyOf(r));
  ASSERT_TRUE(err.is_object()) << r;
  EXPECT_EQ(err.at("error").at("code").as_string(), "unauthenticated");
  EXPECT_NE(BodyOf(r).find("expired"), std::string::npos) << r;
  // A bad ttl is refused.
  auto bad =
      Api().Call("POST", "/v1/sessions/" + id_ + "/ports/8000/url", Body(R"({"ttl_seconds": 0})"));
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
}

// What a process's fds point at, one per line (for failure messages).
std::string FdsOf(pid_t pid) {
  std::string out;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code lec;
    out += it->path().filename().string() + " -> " +
           std::filesystem::read_symlink(it->path(), lec).string() + "\n";
  }
  return out;
}

// Open sockets of a process: what the proxy and the relays open (client connections and agent
// connections). Other fds come and go with the server's own background work (the netns pool,
// sandbox housekeeping) and are not what this test is about.
int CountSocketsOf(pid_t pid) {
  int n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code lec;
    if (std::filesystem::read_symlink(it->path(), lec).string().starts_with("socket:")) ++n;
  }
  return n;
}

// Sends `bytes` and closes at once, without reading: a client that gives up.
void SendAndDrop(int port, const std::string& bytes, bool read_some = false) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return;
  (void)!send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
  if (read_some) {
    timeval tv{10, 0};
    setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    (void)!recv(fd.get(), buf, sizeof buf, 0);
  }
  // RST instead of FIN: the rudest way to leave.
  linger lg{1, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

TEST_F(ProxyTest, ClientsThatGiveUpLeakNoSocketsInTheServerOrTheAgent) {
  json::object exec;
  exec["command"] = "mkdir -p /tmp/www && head -c 64M /dev/zero > /tmp/www/big.bin";
  ASSERT_TRUE(Api().Exec(id_, exec).ok());
  StartProcess("web", kWebServer, "/tmp/www");
  StartProcess("echo", kEchoServer);
  WaitForPort(8000);
  WaitForPort(7001);
  int port = std::stoi(server_->url().substr(server_->url().rfind(':') + 1));
  std::string auth = "Authorization: Bearer " + server_->token() + "\r\n";
  std::string prefix = "/v1/sessions/" + id_ + "/ports/";
  auto agent_fds = [&] {
    json::object count;
    count["command"] = "ls /proc/1/fd | wc -l";
    auto r = Api().Exec(id_, count);
    return r.ok() ? std::stoi(r->stdout_data) : -1;
  };
  // Warm up whatever is opened once (pool threads, the database), then take the baseline.
  ASSERT_EQ(BodyOf(Get("GET", "8000/")).empty(), false);
  int server_before = CountSocketsOf(server_->pid());
  std::string server_fds_before = FdsOf(server_->pid());
  int agent_before = agent_fds();
  ASSERT_GT(agent_before, 0);

  for (int i = 0; i < 20; ++i) {
    // A body promised and not sent.
    SendAndDrop(port, "POST " + prefix + "8000/x HTTP/1.1\r\nHost: h\r\n" + auth +
                          "Content-Length: 10000000\r\n\r\n" + std::string(1000, 'b'));
    // A big download abandoned after its first bytes.
    SendAndDrop(port, "GET " + prefix + "8000/big.bin HTTP/1.1\r\nHost: h\r\n" + auth + "\r\n",
                true);
    // An upgrade to a raw TCP echo, then gone.
    SendAndDrop(port, "GET " + prefix + "7001/ HTTP/1.1\r\nHost: h\r\n" + auth +
                          "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\nhello");
    // Nonsense ports and a chunked body that never ends.
    SendAndDrop(port, "GET " + prefix + "99999/ HTTP/1.1\r\nHost: h\r\n" + auth + "\r\n", true);
    SendAndDrop(port, "GET " + prefix + "abc/ HTTP/1.1\r\nHost: h\r\n" + auth + "\r\n", true);
    SendAndDrop(port, "PUT " + prefix + "8000/y HTTP/1.1\r\nHost: h\r\n" + auth +
                          "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz");
    // The TCP relay WebSocket, opened and dropped.
    auto relay = ExecSocket::OpenPortTcp(server_->url(), server_->token(), id_, 7001);
    ASSERT_TRUE(relay.ok()) << relay.status().ToString();
  }
  // Everything the server and the agent opened for those is closed again (eventually: the
  // relays notice the drops asynchronously).
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int server_after = 0, agent_after = 0;
  do {
    server_after = CountSocketsOf(server_->pid());
    agent_after = agent_fds();
    if (server_after <= server_before && agent_after <= agent_before) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (std::chrono::steady_clock::now() < until);
  EXPECT_LE(server_after, server_before) << "before:\n"
                                         << server_fds_before << "after:\n"
                                         << FdsOf(server_->pid());
  EXPECT_LE(agent_after, agent_before);
  // And both still serve.
  EXPECT_EQ(BodyOf(Get("GET", "8000/big.bin")).size(), size_t{64} << 20);
}

// --- Keep-alive toward the client ---

// A raw HTTP server for framings python's http.server never uses: /chunked answers chunked
// and keeps its connection open for a minute (the proxy must not wait for its FIN), /eof
// answers HTTP/1.0 without a length and closes, /hints sends a 103 first, /bad is not HTTP,
// /silent never answers.
constexpr char kFramingServer[] = R"py(import socket, threading, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 8003))
s.listen(16)
def handle(c):
    data = b''
    while b'\r\n\r\n' not in data:
        d = c.recv(4096)
        if not d:
            c.close()
            return
        data += d
    path = data.split(b'\r\n')[0].split(b' ')[1]
    if path == b'/chunked':
        c.sendall(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-App: chunked\r\n'
                  b'Connection: close, X-Hop\r\nX-Hop: 1\r\n\r\n'
                  b'5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n')
        time.sleep(60)
    elif path == b'/eof':
        c.sendall(b'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n')
        for i in range(10):
            c.sendall(bytes([97 + i]) * 30000)
    elif path == b'/hints':
        c.sendall(b'HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n'
                  b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
    elif path == b'/bad':
        c.sendall(b'NOT HTTP AT ALL\r\n\r\n')
    elif path == b'/silent':
        time.sleep(600)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
)py";

// One client connection that sends requests and reads answers one at a time.
class KeepAliveClient {
 public:
  explicit KeepAliveClient(const std::string& url) : stream_(io_) {
    int port = std::stoi(url.substr(url.rfind(':') + 1));
    stream_.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                                   static_cast<uint16_t>(port)));
  }
  void Send(const std::string& request) {
    boost::asio::write(stream_.socket(), boost::asio::buffer(request));
  }
  // Reads the next answer (nullopt when the connection ended or broke first). `head`: the
  // request was a HEAD, so the answer has no body whatever its length says.
  std::optional<boost::beast::http::response<boost::beast::http::string_body>> Read(
      bool head = false, int timeout_seconds = 20) {
    boost::beast::http::response_parser<boost::beast::http::string_body> parser;
    parser.body_limit(boost::none);
    parser.skip(head);
    stream_.expires_after(std::chrono::seconds(timeout_seconds));
    boost::beast::error_code ec;
    boost::beast::http::read(stream_, buffer_, parser, ec);
    if (ec) return std::nullopt;
    return parser.release();
  }
  // Whether the server closed the connection (within `timeout_seconds`) without sending more.
  bool ClosedByServer(int timeout_seconds = 10) {
    if (buffer_.size() > 0) return false;
    char c;
    stream_.expires_after(std::chrono::seconds(timeout_seconds));
    boost::beast::error_code ec;
    size_t n = stream_.read_some(boost::asio::buffer(&c, 1), ec);
    return n == 0 && (ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset);
  }

 private:
  boost::asio::io_context io_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
};

TEST_F(ProxyTest, RequestsOnOneConnectionWithContentLengthReuseIt) {
  json::object exec;
  exec["command"] = "mkdir -p /tmp/www && echo one > /tmp/www/1.txt && echo two > /tmp/www/2.txt";
  ASSERT_TRUE(Api().Exec(id_, exec).ok());
  StartProcess("web", kWebServer, "/tmp/www");
  WaitForPort(8000);
  KeepAliveClient c(server_->url());
  std::string auth = "Authorization: Bearer " + server_->token() + "\r\n";
  std::string prefix = "/v1/sessions/" + id_ + "/ports/8000/";
  c.Send("GET " + prefix + "1.txt HTTP/1.1\r\nHost: h\r\n" + auth + "\r\n");
  auto a = c.Read();
  ASSERT_TRUE(a) << "first answer";
  EXPECT_EQ(a->result_int(), 200u);
  EXPECT_EQ(a->body(), "one\n");
  EXPECT_EQ(a->version(), 11u);
  EXPECT_EQ((*a)[boost::beast::http::field::content_length], "4");
  EXPECT_TRUE(a->keep_alive()) << *a;
  // The same socket: a POST with a body, then two pipelined GETs in one write.
  c.Send("POST " + prefix + "up HTTP/1.1\r\nHost: h\r\n" + auth + "Content-Length: 3\r\n\r\nabc");
  a = c.Read();
  ASSERT_TRUE(a) << "second answer: the connection was not reused";
  EXPECT_NE(a->body().find("len=3 sum=294"), std::string::npos) << a->body();
  c.Send("GET " + prefix + "2.txt HTTP/1.1\r\nHost: h\r\n" + auth + "\r\n" + "GET " + prefix +
         "1.txt HTTP/1.1\r\nHost: h\r\n" + auth + "\r\n");
  a = c.Read();
  ASSERT_TRUE(a) << "third answer";
  EXPECT_EQ(a->body(), "two\n");
  a = c.Read();
  ASSERT_TRUE(a) << "fourth answer";
  EXPECT_EQ(a->body(), "one\n");
  // An HTTP/1.0 client that asks for keep-alive gets it, and is told so.
  KeepAliveClient old(server_->url());
  old.Send("GET " + prefix + "2.txt HTTP/1.0\r\n" + auth + "Connection: keep-alive\r\n\r\n");
  a = old.Read();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->version(), 10u);
  EXPECT_EQ((*a)[boost::beast::http::field::connection], "keep-alive");
  old.Send("GET " + prefix + "1.txt HTTP/1.0\r\n" + auth + "\r\n");
  a = old.Read();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->body(), "one\n");
  EXPECT_TRUE(old.ClosedByServer());
}

TEST_F(ProxyTest, ChunkedAndCloseDelimitedAnswersAreRechunkedAndKeepTheConnection) {
  StartProcess("framing", kFramingServer);
  WaitForPort(8003);
  KeepAliveClient c(server_->url());
  std::string auth = "Authorization: Bearer " + server_->token() + "\r\n";
  std::string prefix = "/v1/sessions/" + id_ + "/ports/8003/";
  auto started = std::chrono::steady_clock::now();
  // The app keeps its connection open after a chunked answer: complete is complete.
  c.Send("GET " + prefix + "chunked HTTP/1.1\r\nHost: h\r\n" + auth + "\r\n");
  auto a = c.Read();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->result_int(), 200u);
  EXPECT_EQ(a->body(), "hello, world");
  EXPECT_TRUE(a->chunked()) << *a;
  EXPECT_EQ((*a)["X-App"], "chunked");
  EXPECT_EQ(a->count("X-Hop"), 0u) << "named in the app's Connection: hop-by-hop";
  EXPECT_TRUE(a->keep_alive());
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(20));
  // HTTP/1.0 from the app, delimited by its close: chunked to this HTTP/1.1 client.
  c.Send("GET " + prefix + "eof HTTP/1.1\r\nHost: h\r\n" + auth + "\r\n");
  a = c.Read();
  ASSERT_TRUE(a) << "the connection was not reused";
  EXPECT_TRUE(a->chunked()) << a->base();
  ASSERT_EQ(a->body().size(), 300000u);
  EXPECT_EQ(a->body().substr(0, 3), "aaa");
  EXPECT_EQ(a->body().substr(299997), "jjj");
  // Interim answers pass on; the final one follows on the same connection.
  c.Send("GET " + prefix + "hints HTTP/1.1\r\nHost: h\r\n" + auth + "\r\n");
  a = c.Read();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->result_int(), 103u);
  a = c.Read();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->result_int(), 200u);
  EXPECT_EQ(a->body(), "ok");
  // Not HTTP: 502 in the error shape, and the connection ends.
  c.Send("GET " + prefix + "bad HTTP/1.1\r\nHost: h\r\n" + auth + "\r\n");
  a = c.Read();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->result_int(), 502u);
  auto err = json::parse(a->body());
  ASSERT_TRUE(err.is_object()) << a->body();
  EXPECT_NE(std::string(err.at("error").at("message").as_string()).find("malformed"),
            std::string::npos)
      << a->body();
  EXPECT_TRUE(c.ClosedByServer());
  // An HTTP/1.0 client gets a close-delimited answer as it came, and the connection closes.
  KeepAliveClient old(server_->url());
  old.Send("GET " + prefix + "eof HTTP/1.0\r\n" + auth + "Connection: keep-alive\r\n\r\n");
  a = old.Read();
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->chunked());
  EXPECT_EQ(a->body().size(), 300000u);
  EXPECT_TRUE(old.ClosedByServer());
}

TEST_F(ProxyTest, HeadKeepsTheConnectionAndConnectionCloseEndsIt) {
  json::object exec;
  exec["command"] = "mkdir -p /tmp/www && echo hello > /tmp/www/index.txt";
  ASSERT_TRUE(Api().Exec(id_, exec).ok());
  StartProcess("web", kWebServer, "/tmp/www");
  WaitForPort(8000);
  std::string auth = "Authorization: Bearer " + server_->token() + "\r\n";
  std::string prefix = "/v1/sessions/" + id_ + "/ports/8000/";
  KeepAliveClient c(server_->url());
  c.Send("HEAD " + prefix + "index.txt HTTP/1.1\r\nHost: h\r\n" + auth + "\r\n");
  auto a = c.Read(/*head=*/true);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->result_int(), 200u);
  EXPECT_EQ((*a)[boost::beast::http::field::content_length], "6");
  EXPECT_TRUE(a->keep_alive());
  c.Send("GET " + prefix + "index.txt HTTP/1.1\r\nHost: h\r\n" + auth +
         "Connection: close\r\n\r\n");
  a = c.Read();
  ASSERT_TRUE(a) << "the connection was not reused after HEAD";
  EXPECT_EQ(a->body(), "hello\n");
  EXPECT_FALSE(a->keep_alive());
  EXPECT_EQ((*a)[boost::beast::http::field::connection], "close");
  EXPECT_TRUE(c.ClosedByServer());
}

class ProxyIdleTest : public ProxyTest {
 protected:
  void SetUp() override {
    setenv("HUTCH_PROXY_IDLE_SECONDS", "2", 1);
    ProxyTest::SetUp();
    unsetenv("HUTCH_PROXY_IDLE_SECONDS");
  }
};

TEST_F(ProxyIdleTest, AnExchangeWhereNothingMovesEndsAfterTheIdleTimeout) {
  StartProcess("framing", kFramingServer);
  WaitForPort(8003);
  std::string auth = "Authorization: Bearer " + server_->token() + "\r\n";
  std::string prefix = "/v1/sessions/" + id_ + "/ports/8003/";
  KeepAliveClient c(server_->url());
  auto started = std::chrono::steady_clock::now();
  c.Send("GET " + prefix + "silent HTTP/1.1\r\nHost: h\r\n" + auth + "\r\n");
  // Nothing came from the app: hutch says so (504 in the error shape) and closes.
  auto a = c.Read(false, 30);
  auto took = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(a);
  EXPECT_EQ(a->result_int(), 504u);
  EXPECT_TRUE(c.ClosedByServer());
  EXPECT_GE(took, std::chrono::milliseconds(1500));
  EXPECT_LT(took, std::chrono::seconds(10));
  // A request body that stops coming ends the same way.
  KeepAliveClient slow(server_->url());
  started = std::chrono::steady_clock::now();
  slow.Send("POST " + prefix + "silent HTTP/1.1\r\nHost: h\r\n" + auth +
            "Content-Length: 100\r\n\r\nonly a part");
  a = slow.Read(false, 30);
  took = std::chrono::steady_clock::now() - started;
  if (a) {
    EXPECT_EQ(a->result_int(), 504u);
  }
  EXPECT_TRUE(slow.ClosedByServer());
  EXPECT_LT(took, std::chrono::seconds(10));
}

TEST_F(ProxyIdleTest, AnUpgradedConnectionWhereNothingMovesEnds) {
  StartProcess("ws", kWsEchoServer);
  WaitForPort(8002);
  namespace beast = boost::beast;
  namespace websocket = beast::websocket;
  boost::asio::io_context io;
  websocket::stream<beast::tcp_stream> ws(io);
  int port = std::stoi(server_->url().substr(server_->url().rfind(':') + 1));
  beast::get_lowest_layer(ws).connect(boost::asio::ip::tcp::endpoint(
      boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)));
  std::string token = server_->token();
  ws.set_option(websocket::stream_base::decorator([token](websocket::request_type& req) {
    req.set(beast::http::field::authorization, "Bearer " + token);
  }));
  beast::get_lowest_layer(ws).expires_after(std::chrono::seconds(30));
  ws.handshake("127.0.0.1", "/v1/sessions/" + id_ + "/ports/8002/echo");
  // Traffic keeps it open past the limit …
  for (int i = 0; i < 3; ++i) {
    std::string msg = "ping";
    ws.write(boost::asio::buffer(msg));
    beast::flat_buffer buf;
    ws.read(buf);
    EXPECT_EQ(beast::buffers_to_string(buf.data()), msg);
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  }
  // … silence ends it.
  auto started = std::chrono::steady_clock::now();
  beast::flat_buffer buf;
  beast::error_code ec;
  ws.read(buf, ec);
  EXPECT_TRUE(ec) << "a message came";
  EXPECT_NE(ec, beast::error::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
}

class HostRoutingTest : public ProxyTest {
 protected:
  void SetUp() override {
    setenv("HUTCH_PROXY_BASE_DOMAIN", "apps.test", 1);
    ProxyTest::SetUp();
    unsetenv("HUTCH_PROXY_BASE_DOMAIN");
  }
};

TEST_F(HostRoutingTest, PortDashSessionHostReachesTheAppAtTheRoot) {
  StartProcess("web", kWebServer, "/tmp");
  WaitForPort(8000);
  std::string auth = "Authorization: Bearer " + server_->token() + "\r\n";
  std::string r =
      RawHttp(server_->url(), "POST /at/root?q=1 HTTP/1.1\r\nHost: 8000-" + id_ + ".apps.test\r\n" +
                                  auth + "Content-Length: 3\r\nConnection: close\r\n\r\nabc");
  EXPECT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK") << r;
  // The app lives at `/`: no prefix to strip, none announced.
  EXPECT_NE(BodyOf(r).find("len=3 sum=294 prefix=None"), std::string::npos) << r;
  // Every path is the app's, even those the API has under …/ports/{port}/: POST /url is not a
  // signed URL request here.
  r = RawHttp(server_->url(), "POST /url HTTP/1.1\r\nHost: 8000-" + id_ + ".apps.test\r\n" + auth +
                                  "Content-Length: 3\r\nConnection: close\r\n\r\nabc");
  EXPECT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK") << r;
  EXPECT_NE(BodyOf(r).find("len=3 sum=294 prefix=None"), std::string::npos) << r;
  // Other hosts are the API as always; the host route without a token is refused.
  r = RawHttp(server_->url(), "GET /v1/sessions/" + id_ + " HTTP/1.1\r\nHost: apps.test\r\n" +
                                  auth + "Connection: close\r\n\r\n");
  EXPECT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK") << r;
  r = RawHttp(server_->url(),
              "GET / HTTP/1.1\r\nHost: 8000-" + id_ + ".apps.test\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.substr(0, 12), "HTTP/1.1 401") << r;
}

// --- Who reaches a port: signed URL cookies, public ports (docs/api.md "Who reaches a port") ---

// Answers every GET with the path and the Cookie header it got.
constexpr char kHeaderEchoServer[] = R"py(import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ('path=%s cookie=%s' % (self.path, self.headers.get('Cookie'))).encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(('127.0.0.1', 8005), H).serve_forever()
)py";

// The value of the first `name` header of a raw answer ("" when there is none).
std::string HeaderOf(const std::string& response, const std::string& name) {
  std::string head = response.substr(0, response.find("\r\n\r\n"));
  std::string lower_head = head;
  std::string lower_name = "\r\n" + name + ":";
  for (char& c : lower_head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (char& c : lower_name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t at = lower_head.find(lower_name);
  if (at == std::string::npos) return "";
  size_t start = at + lower_name.size();
  size_t end = head.find("\r\n", start);
  std::string value = head.substr(start, end == std::string::npos ? end : end - start);
  while (!value.empty() && value.front() == ' ') value.erase(0, 1);
  return value;
}

class PortAccessTest : public ProxyTest {
 protected:
  // A request without a token.
  std::string Anonymous(const std::string& target, const std::string& headers = "") {
    return RawHttp(server_->url(), "GET " + target + " HTTP/1.1\r\nHost: h\r\n" + headers +
                                       "Connection: close\r\n\r\n");
  }
  std::string PortPath(int port) {
    return "/v1/sessions/" + id_ + "/ports/" + std::to_string(port);
  }
  // The hutch_port_access cookie ("name=value") a signed URL's answer sets, and its Set-Cookie.
  std::string SignedCookie(int ttl_seconds, std::string* set_cookie = nullptr) {
    json::object body;
    body["ttl_seconds"] = ttl_seconds;
    auto made = Api().Call("POST", PortPath(8005) + "/url", body);
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    if (!made.ok()) return "";
    std::string r = Anonymous(std::string(made->at("url").as_string()));
    EXPECT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK") << r;
    std::string cookie = HeaderOf(r, "Set-Cookie");
    if (set_cookie) *set_cookie = cookie;
    return cookie.substr(0, cookie.find(';'));
  }
  void ExpectUnauthenticated(const std::string& r) {
    EXPECT_EQ(r.substr(0, 12), "HTTP/1.1 401") << r;
    auto err = json::parse(BodyOf(r));
    ASSERT_TRUE(err.is_object()) << r;
    EXPECT_EQ(err.at("error").at("code").as_string(), "unauthenticated") << r;
  }
  void StartHeaderEcho() {
    StartProcess("echo-headers", kHeaderEchoServer);
    WaitForPort(8005);
  }
  // Another user's token.
  std::string MalloryToken() {
    auto user = Api().Call("POST", "/v1/users", Body(R"({"name": "mallory"})"));
    EXPECT_TRUE(user.ok()) << user.status().ToString();
    if (!user.ok()) return "";
    std::string uid(user->at("id").as_string());
    auto tok = Api().Call("POST", "/v1/tokens?owner=" + uid, Body(R"({"name": "t"})"));
    EXPECT_TRUE(tok.ok()) << tok.status().ToString();
    return tok.ok() ? std::string(tok->at("token").as_string()) : "";
  }
};

TEST_F(PortAccessTest, APortIsPrivateByDefaultAndAnUnknownSessionSoundsTheSame) {
  StartHeaderEcho();
  std::string mine = Anonymous(PortPath(8005) + "/");
  ExpectUnauthenticated(mine);
  std::string unknown = Anonymous("/v1/sessions/ses_aaaaaaaaaaaaaaaa/ports/8005/");
  ExpectUnauthenticated(unknown);
  // Nothing tells them apart: not the body, not the status.
  EXPECT_EQ(BodyOf(mine), BodyOf(unknown));
  EXPECT_NE(BodyOf(mine).find("public: true"), std::string::npos) << mine;
  // By name, as by id; and the listing says private.
  EXPECT_EQ(BodyOf(Anonymous("/v1/sessions/ports/ports/8005/")), BodyOf(mine));
  auto port = Api().Call("GET", PortPath(8005));
  ASSERT_TRUE(port.ok()) << port.status().ToString();
  EXPECT_EQ(port->at("public"), false);
}

TEST_F(PortAccessTest, APublicPortAnswersWithoutATokenUntilItIsPrivateAgain) {
  StartHeaderEcho();
  auto set = Api().Call("PATCH", PortPath(8005), Body(R"({"public": true})"));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->at("public"), true);
  EXPECT_EQ(set->at("port"), 8005);
  EXPECT_EQ(set->at("url").as_string(), PortPath(8005) + "/");

  std::string r = Anonymous(PortPath(8005) + "/open?x=1");
  EXPECT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK") << r;
  EXPECT_NE(BodyOf(r).find("path=/open?x=1"), std::string::npos) << r;
  // Another port of the same session stays private.
  ExpectUnauthenticated(Anonymous(PortPath(8006) + "/"));

  auto list = Api().Call("GET", "/v1/sessions/" + id_ + "/ports");
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->at("ports").as_array().size(), 1u);
  EXPECT_EQ(list->at("ports").as_array()[0].at("public"), true);

  set = Api().Call("PATCH", PortPath(8005), Body(R"({"public": false})"));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->at("public"), false);
  ExpectUnauthenticated(Anonymous(PortPath(8005) + "/open"));
  // The owner's token still reaches it.
  r = Get("GET", "8005/owner");
  EXPECT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK") << r;
}

TEST_F(PortAccessTest, PatchValidatesItsBodyAndPortAndHidesOtherUsersSessions) {
  auto bad = Api().Call("PATCH", PortPath(8005), Body(R"({"public": true, "x": 1})"));
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  bad = Api().Call("PATCH", PortPath(8005), Body(R"({"public": "yes"})"));
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  bad = Api().Call("PATCH", PortPath(8005), Body(R"({})"));
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  bad = Api().Call("PATCH", "/v1/sessions/" + id_ + "/ports/70000", Body(R"({"public": true})"));
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  bad = Api().Call("PATCH", "/v1/sessions/" + id_ + "/ports/x", Body(R"({"public": true})"));
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);

  std::string token = MalloryToken();
  ASSERT_FALSE(token.empty());
  auto theirs = Api(token).Call("PATCH", PortPath(8005), Body(R"({"public": true})"));
  EXPECT_EQ(theirs.status().code(), Code::kNotFound);
  EXPECT_EQ(Api(token).Call("GET", "/v1/sessions/" + id_ + "/ports").status().code(),
            Code::kNotFound);
  auto port = Api().Call("GET", PortPath(8005));
  ASSERT_TRUE(port.ok()) << port.status().ToString();
  EXPECT_EQ(port->at("public"), false);
}

TEST_F(PortAccessTest, ASignedUrlSetsACookieThatOpensThePortsOtherPathsOnly) {
  StartHeaderEcho();
  std::string set_cookie;
  std::string cookie = SignedCookie(600, &set_cookie);
  ASSERT_EQ(cookie.rfind("hutch_port_access=" + id_ + ".8005.", 0), 0u) << set_cookie;
  EXPECT_NE(set_cookie.find("; Path=" + PortPath(8005) + "/;"), std::string::npos) << set_cookie;
  EXPECT_NE(set_cookie.find("; HttpOnly"), std::string::npos) << set_cookie;
  EXPECT_NE(set_cookie.find("; SameSite=Lax"), std::string::npos) << set_cookie;
  EXPECT_NE(set_cookie.find("; Max-Age="), std::string::npos) << set_cookie;
  EXPECT_EQ(set_cookie.find("Secure"), std::string::npos) << set_cookie;

  // The page's assets: the cookie alone. The app sees its own cookie, never hutch's.
  std::string r = Anonymous(PortPath(8005) + "/static/app.js",
                            "Cookie: theme=dark; " + cookie + "; lang=en\r\n");
  EXPECT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK") << r;
  EXPECT_NE(BodyOf(r).find("path=/static/app.js cookie=theme=dark; lang=en"), std::string::npos)
      << r;
  EXPECT_EQ(BodyOf(r).find("hutch_port_access"), std::string::npos) << r;
  // Only the signed URL's answer sets the cookie.
  EXPECT_EQ(HeaderOf(r, "Set-Cookie"), "") << r;
  // Only hutch's cookie: the app gets no Cookie header at all.
  r = Anonymous(PortPath(8005) + "/x", "Cookie: " + cookie + "\r\n");
  EXPECT_NE(BodyOf(r).find("cookie=None"), std::string::npos) << r;

  // Not another port of the session, not another session.
  ExpectUnauthenticated(Anonymous(PortPath(8006) + "/", "Cookie: " + cookie + "\r\n"));
  ExpectUnauthenticated(
      Anonymous("/v1/sessions/ses_aaaaaaaaaaaaaaaa/ports/8005/", "Cookie: " + cookie + "\r\n"));
  // Altered: refused.
  std::string forged = cookie;
  forged.back() = forged.back() == '0' ? '1' : '0';
  ExpectUnauthenticated(Anonymous(PortPath(8005) + "/", "Cookie: " + forged + "\r\n"));
  // Among other ports' cookies, the right one still counts.
  r = Anonymous(PortPath(8005) + "/", "Cookie: " + forged + "; " + cookie + "\r\n");
  EXPECT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK") << r;
}

TEST_F(PortAccessTest, TheCookieEndsWithTheSignedUrl) {
  StartHeaderEcho();
  std::string set_cookie;
  std::string cookie = SignedCookie(2, &set_cookie);
  ASSERT_FALSE(cookie.empty());
  // Expiry is wall-clock time: wait for it.
  std::string r;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    r = Anonymous(PortPath(8005) + "/later", "Cookie: " + cookie + "\r\n");
    if (r.substr(0, 12) == "HTTP/1.1 401") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  } while (std::chrono::steady_clock::now() < until);
  ExpectUnauthenticated(r);
}

TEST_F(PortAccessTest, PublicLastsThroughStopAndStartAndEndsWithTheSession) {
  ASSERT_TRUE(Api().Call("PATCH", PortPath(8005), Body(R"({"public": true})")).ok());
  auto stopped = Api().Call("POST", "/v1/sessions/" + id_ + "/stop");
  ASSERT_TRUE(stopped.ok()) << stopped.status().ToString();
  auto started = Api().Call("POST", "/v1/sessions/" + id_ + "/start");
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  // The processes went with the stop; the setting did not.
  StartHeaderEcho();
  std::string r = Anonymous(PortPath(8005) + "/again");
  EXPECT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK") << r;

  ASSERT_TRUE(Api().DeleteSession(id_).ok());
  auto list = Api().Call("GET", "/v1/sessions/" + id_ + "/ports");
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_TRUE(list->at("ports").as_array().empty()) << json::serialize(*list);
  auto set = Api().Call("PATCH", PortPath(8005), Body(R"({"public": true})"));
  EXPECT_EQ(set.status().code(), Code::kConflict) << set.status().ToString();
  id_.clear();
}

TEST_F(HostRoutingTest, ASignedUrlsCookieOnTheAppsHostIsForTheWholeHost) {
  StartProcess("echo-headers", kHeaderEchoServer);
  WaitForPort(8005);
  auto made = Api().Call("POST", "/v1/sessions/" + id_ + "/ports/8005/url",
                         Body(R"({"ttl_seconds": 600})"));
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  std::string url(made->at("url").as_string());
  std::string host = "Host: 8005-" + id_ + ".apps.test\r\n";
  std::string r = RawHttp(server_->url(), "GET /" + url.substr(url.find('?')) + " HTTP/1.1\r\n" +
                                              host + "Connection: close\r\n\r\n");
  EXPECT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK") << r;
  std::string set_cookie = HeaderOf(r, "Set-Cookie");
  EXPECT_NE(set_cookie.find("; Path=/;"), std::string::npos) << set_cookie;
  EXPECT_EQ(set_cookie.find("Domain"), std::string::npos) << set_cookie;
  std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
  r = RawHttp(server_->url(), "GET /app.js HTTP/1.1\r\n" + host + "Cookie: " + cookie +
                                  "\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK") << r;
  EXPECT_NE(BodyOf(r).find("path=/app.js cookie=None"), std::string::npos) << r;
}

// Answers every GET with cookies of its own and one named like the console's.
constexpr char kCookieSettingServer[] = R"py(import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header('Set-Cookie', 'theme=dark; Path=/')
        self.send_header('Set-Cookie', 'hutch_console=planted; Path=/v1')
        self.send_header('Set-Cookie', 'hutch_port_access=planted; Path=/')
        self.send_header('Content-Security-Policy', "img-src 'self'")
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'ok')
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(('127.0.0.1', 8007), H).serve_forever()
)py";

// Every value of the `name` headers of a raw answer's head, lower-cased name match.
std::vector<std::string> HeadersOf(const std::string& response, const std::string& name) {
  std::vector<std::string> out;
  std::string head = response.substr(0, response.find("\r\n\r\n"));
  size_t at = head.find("\r\n");
  while (at != std::string::npos) {
    size_t end = head.find("\r\n", at + 2);
    std::string line = head.substr(at + 2, end == std::string::npos ? end : end - at - 2);
    size_t colon = line.find(':');
    std::string field = line.substr(0, colon);
    for (char& c : field) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (colon != std::string::npos && field == name) out.push_back(line.substr(colon + 2));
    at = end;
  }
  return out;
}

// Issue 20 item 3: under path routing an app shares the console's origin, so its answers carry
// a CSP sandbox (an opaque origin); on its own host it needs none. Either way an app cannot set
// hutch's own cookies.
TEST_F(HostRoutingTest, PathRoutedAnswersAreSandboxedAndAppsCannotSetHutchsCookies) {
  StartProcess("cookies", kCookieSettingServer);
  WaitForPort(8007);
  std::string path_routed = Get("GET", "8007/");
  EXPECT_EQ(path_routed.substr(0, 15), "HTTP/1.1 200 OK") << path_routed;
  std::vector<std::string> csp = HeadersOf(path_routed, "content-security-policy");
  // The app's own policy stays (both apply), and hutch's sandbox is added.
  EXPECT_EQ(csp, (std::vector<std::string>{"img-src 'self'",
                                           "sandbox allow-scripts allow-forms allow-popups "
                                           "allow-modals allow-downloads"}))
      << path_routed;
  EXPECT_EQ(HeadersOf(path_routed, "set-cookie"), std::vector<std::string>{"theme=dark; Path=/"})
      << path_routed;

  std::string host_routed =
      RawHttp(server_->url(), "GET / HTTP/1.1\r\nHost: 8007-" + id_ +
                                  ".apps.test\r\nAuthorization: Bearer " + server_->token() +
                                  "\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(host_routed.substr(0, 15), "HTTP/1.1 200 OK") << host_routed;
  EXPECT_EQ(HeadersOf(host_routed, "content-security-policy"),
            std::vector<std::string>{"img-src 'self'"})
      << host_routed;
  EXPECT_EQ(HeadersOf(host_routed, "set-cookie"), std::vector<std::string>{"theme=dark; Path=/"})
      << host_routed;
}

TEST(PortAccessTlsTest, TheCookieIsSecureOverTls) {
  if (!hutch::testing::IsRoot()) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
  if (system("command -v openssl >/dev/null") != 0)
    GTEST_SKIP() << "needs openssl (scripts/setup installs it)";
  hutch::testing::TempDir dir("hutch-tls");
  std::string cert, key;
  ASSERT_TRUE(hutch::testing::MakeSelfSignedCert(dir.path(), &cert, &key));
  auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY, "",
                                                     {"--tls-cert", cert, "--tls-key", key});
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  client::TlsOptions tls;
  tls.ca_cert_file = cert;
  auto owner = HttpClient::Create((*server)->url(), (*server)->token(), tls);
  ASSERT_TRUE(owner.ok()) << owner.status().ToString();
  ApiClient api(std::move(*owner));
  auto s = api.CreateSession(Body(R"({"name": "tls"})"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  json::object start;
  start["cmd"] =
      json::array{json::value("python3"), json::value("-c"), json::value(kHeaderEchoServer)};
  ASSERT_TRUE(api.Call("POST", "/v1/sessions/" + s->id + "/processes", start).ok());
  auto made = api.Call("POST", "/v1/sessions/" + s->id + "/ports/8005/url",
                       Body(R"({"ttl_seconds": 600})"));
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  auto anonymous = HttpClient::Create((*server)->url(), "", tls);
  ASSERT_TRUE(anonymous.ok());
  // The server in the session may still be starting (503 until it listens).
  Result<client::HttpResponse> r = Unavailable("not tried");
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  do {
    r = anonymous->Request("GET", std::string(made->at("url").as_string()));
    if (r.ok() && r->status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < until);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->status, 200) << r->body;
  std::string set_cookie = r->headers["set-cookie"];
  EXPECT_NE(set_cookie.find("; HttpOnly"), std::string::npos) << set_cookie;
  EXPECT_NE(set_cookie.find("; Secure"), std::string::npos) << set_cookie;
  (void)api.DeleteSession(s->id);
}

// GET …/ports shows what listens inside the session, also without settings or a service: the
// agent reads the sandbox's /proc/net/tcp and tcp6.
TEST_F(ProxyTest, PortsListWhatListensInsideTheSession) {
  auto before = Api().Call("GET", "/v1/sessions/" + id_ + "/ports/8000");
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_FALSE(before->at("listening").as_bool()) << json::serialize(*before);
  StartProcess("web", kWebServer, "/tmp");
  WaitForPort(8000);
  StartProcess("v6",
               "import socket, time\n"
               "s = socket.socket(socket.AF_INET6)\n"
               "s.bind(('::', 9006))\n"
               "s.listen(1)\n"
               "time.sleep(1000)\n");
  json::object p8000, p9006;
  for (int i = 0; i < 200 && p9006.empty(); ++i) {
    auto list = Api().Call("GET", "/v1/sessions/" + id_ + "/ports");
    ASSERT_TRUE(list.ok()) << list.status().ToString();
    for (const auto& v : list->at("ports").as_array()) {
      const json::object& o = v.as_object();
      if (o.at("port").as_int64() == 8000) p8000 = o;
      if (o.at("port").as_int64() == 9006) p9006 = o;
    }
    if (p9006.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(p8000.empty());
  ASSERT_FALSE(p9006.empty()) << "the IPv6 listener never showed";
  EXPECT_TRUE(p8000.at("listening").as_bool());
  EXPECT_EQ(json::serialize(p8000.at("addresses")), R"(["127.0.0.1"])");
  EXPECT_FALSE(p8000.at("public").as_bool());
  EXPECT_EQ(json::serialize(p9006.at("addresses")), R"(["::"])");
  // A stopped session's ports are not known to listen or not.
  auto stopped = Api().Call("POST", "/v1/sessions/" + id_ + "/stop");
  ASSERT_TRUE(stopped.ok()) << stopped.status().ToString();
  auto after = Api().Call("GET", "/v1/sessions/" + id_ + "/ports/8000");
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_TRUE(after->at("listening").is_null()) << json::serialize(*after);
}

}  // namespace
}  // namespace hutch
