// A small HTTP/1.1 server on 127.0.0.1 and a port the kernel picks, for testing the client
// against real sockets: it answers what a handler says and can close, drop or stall connections
// on request, over plain TCP or TLS. Plain POSIX sockets, OpenSSL's C API for TLS, and one thread
// per connection; test code only. Its answers are fakes: a test says what hutch would answer.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

struct ssl_ctx_st;

namespace hutch::cli::testing {

struct ServedRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  int connection = 0;       // 1 for the first connection accepted, 2 for the next …
  std::string server_name;  // TLS only: the name the client sent as SNI ("" when none)
};

// What the server needs to speak TLS: its certificate (chain) and private key, PEM.
struct LoopbackTls {
  std::string cert_pem;
  std::string key_pem;
};

struct CannedResponse {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool close_after = false;  // close the connection after answering (without saying so)
  bool drop = false;         // close the connection without answering
  bool stall = false;        // never answer; the connection stays open until the server stops
};

class LoopbackServer {
 public:
  using Handler = std::function<CannedResponse(const ServedRequest&)>;

  explicit LoopbackServer(Handler handler);
  // Speaks HTTPS: every connection starts with a TLS handshake with `tls`'s certificate. A client
  // that rejects the certificate ends that connection; handshakes_failed() counts those.
  LoopbackServer(Handler handler, const LoopbackTls& tls);
  ~LoopbackServer();
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:<port>", or https:// with TLS.
  std::string url() const;

  int connections_accepted() const;
  int handshakes_failed() const;
  std::vector<ServedRequest> requests() const;
  // Blocks until the server has closed `n` connections on its side (close_after or drop).
  void WaitForClosedConnections(int n);

  // A loopback port on which nothing listens (bound, then released).
  static int UnusedPort();

 private:
  struct Connection;
  void Start();
  void AcceptLoop();
  void Serve(int fd, int connection);
  // Reads one request; false when the peer closed or the server is stopping.
  bool ReadRequest(Connection& conn, std::string& buffer, ServedRequest* request);

  Handler handler_;
  ssl_ctx_st* tls_ = nullptr;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  int port_ = 0;
  std::thread acceptor_;

  mutable std::mutex mu_;
  std::condition_variable closed_cv_;
  std::vector<std::thread> workers_;
  std::vector<ServedRequest> requests_;
  int accepted_ = 0;
  int closed_ = 0;
  int handshakes_failed_ = 0;
};

}  // namespace hutch::cli::testing
