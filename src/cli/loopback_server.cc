#include "cli/loopback_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <stdexcept>

#include <fmt/format.h>

namespace hutch::cli::testing {

namespace {

std::string Lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string_view Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 409:
      return "Conflict";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

SSL_CTX* MakeServerContext(const LoopbackTls& tls) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) throw std::runtime_error("loopback server: SSL_CTX_new failed");
  std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(
      BIO_new_mem_buf(tls.cert_pem.data(), static_cast<int>(tls.cert_pem.size())), BIO_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(
      BIO_new_mem_buf(tls.key_pem.data(), static_cast<int>(tls.key_pem.size())), BIO_free);
  X509* cert = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr);
  bool ok = cert != nullptr && key != nullptr && SSL_CTX_use_certificate(ctx, cert) == 1 &&
            SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
  X509_free(cert);
  EVP_PKEY_free(key);
  if (!ok) {
    SSL_CTX_free(ctx);
    throw std::runtime_error("loopback server: cannot use the TLS certificate and key");
  }
  return ctx;
}

}  // namespace

// One accepted connection, plain or TLS.
struct LoopbackServer::Connection {
  int fd = -1;
  SSL* ssl = nullptr;

  // Whether a read would find data without waiting for the socket (TLS buffers whole records).
  bool Buffered() const { return ssl != nullptr && SSL_pending(ssl) > 0; }

  ssize_t Read(char* buf, size_t n) {
    if (ssl == nullptr) return ::recv(fd, buf, n, 0);
    int r = SSL_read(ssl, buf, static_cast<int>(n));
    return r > 0 ? r : -1;
  }

  bool WriteAll(std::string_view data) {
    while (!data.empty()) {
      ssize_t n;
      if (ssl != nullptr) {
        int r = SSL_write(ssl, data.data(), static_cast<int>(data.size()));
        n = r > 0 ? r : -1;
      } else {
        n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
      }
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
};

LoopbackServer::LoopbackServer(Handler handler) : handler_(std::move(handler)) { Start(); }

LoopbackServer::LoopbackServer(Handler handler, const LoopbackTls& tls)
    : handler_(std::move(handler)), tls_(MakeServerContext(tls)) {
  // SSL_write writes with write(2), which raises SIGPIPE when the client has gone; the plain
  // path avoids that with MSG_NOSIGNAL. A test binary has no use for SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  Start();
}

void LoopbackServer::Start() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = Loopback(0);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 16) != 0 || ::pipe2(stop_pipe_, O_CLOEXEC) != 0)
    throw std::runtime_error("loopback server: cannot listen");
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

LoopbackServer::~LoopbackServer() {
  // Closing the pipe's write end makes its read end readable for every waiting thread at once.
  ::close(stop_pipe_[1]);
  acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mu_);
    workers.swap(workers_);
  }
  for (auto& t : workers) t.join();
  ::close(stop_pipe_[0]);
  ::close(listen_fd_);
  if (tls_ != nullptr) SSL_CTX_free(tls_);
}

std::string LoopbackServer::url() const {
  return fmt::format("{}://127.0.0.1:{}", tls_ != nullptr ? "https" : "http", port_);
}

int LoopbackServer::connections_accepted() const {
  std::lock_guard lock(mu_);
  return accepted_;
}

int LoopbackServer::handshakes_failed() const {
  std::lock_guard lock(mu_);
  return handshakes_failed_;
}

std::vector<ServedRequest> LoopbackServer::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

void LoopbackServer::WaitForClosedConnections(int n) {
  std::unique_lock lock(mu_);
  closed_cv_.wait(lock, [&] { return closed_ >= n; });
}

int LoopbackServer::UnusedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = Loopback(0);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

void LoopbackServer::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard lock(mu_);
    int connection = ++accepted_;
    workers_.emplace_back([this, fd, connection] { Serve(fd, connection); });
  }
}

bool LoopbackServer::ReadRequest(Connection& conn, std::string& buffer, ServedRequest* request) {
  auto fill = [&]() {
    if (!conn.Buffered()) {
      pollfd fds[2] = {{conn.fd, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      while (::poll(fds, 2, -1) < 0)
        if (errno != EINTR) return false;
      if (fds[1].revents != 0) return false;
    }
    char chunk[16384];
    ssize_t n = conn.Read(chunk, sizeof chunk);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
    return true;
  };
  size_t header_end;
  while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos)
    if (!fill()) return false;
  std::string head = buffer.substr(0, header_end);
  buffer.erase(0, header_end + 4);

  size_t line_end = head.find("\r\n");
  std::string request_line = head.substr(0, line_end);
  size_t sp1 = request_line.find(' ');
  size_t sp2 = request_line.rfind(' ');
  request->method = request_line.substr(0, sp1);
  request->target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string::npos) end = head.size();
    std::string line = head.substr(pos, end - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      size_t value = line.find_first_not_of(' ', colon + 1);
      request->headers[Lower(line.substr(0, colon))] =
          value == std::string::npos ? "" : line.substr(value);
    }
    pos = end + 2;
  }
  size_t length = 0;
  if (auto it = request->headers.find("content-length"); it != request->headers.end())
    length = std::strtoul(it->second.c_str(), nullptr, 10);
  while (buffer.size() < length)
    if (!fill()) return false;
  request->body = buffer.substr(0, length);
  buffer.erase(0, length);
  return true;
}

void LoopbackServer::Serve(int fd, int connection) {
  Connection conn;
  conn.fd = fd;
  std::string server_name;
  if (tls_ != nullptr) {
    // A client that stops halfway through the handshake must not keep this thread (and the
    // destructor) waiting forever.
    timeval timeout{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    conn.ssl = SSL_new(tls_);
    if (conn.ssl == nullptr || SSL_set_fd(conn.ssl, fd) != 1 || SSL_accept(conn.ssl) != 1) {
      ERR_clear_error();
      SSL_free(conn.ssl);
      ::close(fd);
      std::lock_guard lock(mu_);
      ++handshakes_failed_;
      return;
    }
    if (const char* sni = SSL_get_servername(conn.ssl, TLSEXT_NAMETYPE_host_name))
      server_name = sni;
  }
  std::string buffer;
  bool closed_by_us = false;
  while (true) {
    ServedRequest request;
    request.connection = connection;
    request.server_name = server_name;
    if (!ReadRequest(conn, buffer, &request)) break;
    {
      std::lock_guard lock(mu_);
      requests_.push_back(request);
    }
    CannedResponse response = handler_(request);
    if (response.stall) {
      pollfd stop = {stop_pipe_[0], POLLIN, 0};
      while (::poll(&stop, 1, -1) < 0 && errno == EINTR) {
      }
      break;
    }
    if (response.drop) {
      closed_by_us = true;
      break;
    }
    std::string out = fmt::format("HTTP/1.1 {} {}\r\nContent-Length: {}\r\n", response.status,
                                  Reason(response.status), response.body.size());
    bool has_type = false;
    for (const auto& [name, value] : response.headers) {
      out += fmt::format("{}: {}\r\n", name, value);
      has_type = has_type || Lower(name) == "content-type";
    }
    if (!has_type) out += "Content-Type: application/json\r\n";
    out += "\r\n" + response.body;
    if (!conn.WriteAll(out)) break;
    if (response.close_after) {
      closed_by_us = true;
      break;
    }
  }
  if (conn.ssl != nullptr) {
    if (closed_by_us) SSL_shutdown(conn.ssl);  // close_notify, as a well-behaved server sends
    SSL_free(conn.ssl);
    ERR_clear_error();
  }
  ::close(fd);
  if (closed_by_us) {
    std::lock_guard lock(mu_);
    ++closed_;
    closed_cv_.notify_all();
  }
}

}  // namespace hutch::cli::testing
