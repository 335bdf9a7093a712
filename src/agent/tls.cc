#include "agent/tls.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "agent/frame_io.h"
#include "agent/openssl_ptrs.h"

namespace hutch::agent {

namespace {

// One TLS record's worth of plaintext per direction: a relay holds 32 KiB while it runs.
constexpr size_t kRelayBuffer = 16 * 1024;

std::string LastSslError(const char* what) {
  unsigned long e = ERR_get_error();
  std::string out = what;
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += ": ";
    out += buf;
  }
  ERR_clear_error();
  return out;
}

BioPtr MemBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

bool SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

}  // namespace

SslCtxPtr NewMutualTlsContext(bool server, const std::string& cert_pem, const std::string& key_pem,
                              const std::string& ca_pem, std::string* error) {
  SslCtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!ctx) {
    *error = LastSslError("SSL_CTX_new");
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  // A session lives as long as its connection: no tickets, no cache (nothing kept per agent).
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  if (server) SSL_CTX_set_num_tickets(ctx.get(), 0);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  auto cert_bio = MemBio(cert_pem);
  X509Ptr cert(cert_bio ? PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr) : nullptr);
  auto key_bio = MemBio(key_pem);
  PkeyPtr key(key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr)
                      : nullptr);
  if (!cert || !key) {
    *error = LastSslError("read the TLS certificate and key");
    return nullptr;
  }
  if (SSL_CTX_use_certificate(ctx.get(), cert.get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 ||
      SSL_CTX_check_private_key(ctx.get()) != 1) {
    *error = LastSslError("use the TLS certificate and key");
    return nullptr;
  }
  // The trust store holds the one CA and nothing else (not the system's roots).
  X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
  auto ca_bio = MemBio(ca_pem);
  int cas = 0;
  while (ca_bio) {
    X509Ptr ca(PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr));
    if (!ca) break;
    if (X509_STORE_add_cert(store, ca.get()) != 1) {
      *error = LastSslError("add the CA");
      return nullptr;
    }
    ++cas;
  }
  ERR_clear_error();  // the loop ends on "no start line"
  if (cas == 0) {
    *error = "no CA certificate to verify the peer with";
    return nullptr;
  }
  // The peer's certificate must be for the other role: an agent's (serverAuth) cannot dial
  // another agent, and a client certificate cannot pose as an agent.
  SSL_CTX_set_purpose(ctx.get(), server ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_SSL_SERVER);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return ctx;
}

SslPtr TlsHandshake(SSL_CTX* ctx, int fd, bool server, const std::string& expected_name,
                    int64_t deadline_ms, std::string* error) {
  if (!SetNonBlocking(fd)) {
    *error = "fcntl O_NONBLOCK: " + std::string(strerror(errno));
    return nullptr;
  }
  SslPtr ssl(SSL_new(ctx));
  if (!ssl || SSL_set_fd(ssl.get(), fd) != 1) {
    *error = LastSslError("SSL_new");
    return nullptr;
  }
  if (!server) {
    SSL_set_hostflags(ssl.get(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl.get(), expected_name.c_str()) != 1) {
      *error = LastSslError("SSL_set1_host");
      return nullptr;
    }
  }
  for (;;) {
    int r = server ? SSL_accept(ssl.get()) : SSL_connect(ssl.get());
    if (r == 1) return ssl;
    int e = SSL_get_error(ssl.get(), r);
    short events = 0;
    if (e == SSL_ERROR_WANT_READ) {
      events = POLLIN;
    } else if (e == SSL_ERROR_WANT_WRITE) {
      events = POLLOUT;
    } else {
      long verify = SSL_get_verify_result(ssl.get());
      if (verify != X509_V_OK) {
        *error = std::string("TLS handshake: certificate verify failed: ") +
                 X509_verify_cert_error_string(verify);
        ERR_clear_error();
      } else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        *error = "TLS handshake: the peer closed the connection";
      } else {
        *error = LastSslError("TLS handshake");
      }
      return nullptr;
    }
    int64_t left = deadline_ms - MonotonicMs();
    if (left <= 0) {
      *error = "TLS handshake timed out";
      return nullptr;
    }
    pollfd p{fd, events, 0};
    if (poll(&p, 1, static_cast<int>(left)) < 0 && errno != EINTR) {
      *error = "poll: " + std::string(strerror(errno));
      return nullptr;
    }
  }
}

namespace {

// One direction's bytes on their way, and whether its source has ended.
struct Pipe {
  char buf[kRelayBuffer];
  size_t len = 0, off = 0;
  bool eof = false;
  bool Empty() const { return off == len; }
};

}  // namespace

void RelayTls(SSL* ssl, int net_fd, int plain_fd) {
  if (!SetNonBlocking(net_fd) || !SetNonBlocking(plain_fd)) return;
  auto down = std::make_unique<Pipe>();  // TLS → plain
  auto up = std::make_unique<Pipe>();    // plain → TLS
  bool plain_shut = false, close_sent = false;
  for (;;) {
    bool progress = false;
    short net_events = 0, plain_events = 0;
    // Classifies a failed SSL call: true when it only has to wait.
    auto wait_for = [&](int r) {
      int e = SSL_get_error(ssl, r);
      if (e == SSL_ERROR_WANT_READ) net_events |= POLLIN;
      if (e == SSL_ERROR_WANT_WRITE) net_events |= POLLOUT;
      return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
    };

    if (!down->eof && down->Empty()) {
      int n = SSL_read(ssl, down->buf, sizeof down->buf);
      if (n > 0) {
        down->len = static_cast<size_t>(n);
        down->off = 0;
        progress = true;
      } else if (SSL_get_error(ssl, n) == SSL_ERROR_ZERO_RETURN) {
        down->eof = true;
        progress = true;
      } else if (!wait_for(n)) {
        break;  // reset, or not TLS
      }
    }
    if (!down->Empty()) {
      ssize_t n = send(plain_fd, down->buf + down->off, down->len - down->off, MSG_NOSIGNAL);
      if (n > 0) {
        down->off += static_cast<size_t>(n);
        progress = true;
      } else if (errno == EAGAIN) {
        plain_events |= POLLOUT;
      } else if (errno != EINTR) {
        break;  // the plain side is gone
      }
    }
    if (down->eof && down->Empty() && !plain_shut) {
      shutdown(plain_fd, SHUT_WR);
      plain_shut = true;
    }

    if (!up->eof && up->Empty()) {
      ssize_t n = recv(plain_fd, up->buf, sizeof up->buf, 0);
      if (n > 0) {
        up->len = static_cast<size_t>(n);
        up->off = 0;
        progress = true;
      } else if (n == 0) {
        up->eof = true;
        progress = true;
      } else if (errno == EAGAIN) {
        plain_events |= POLLIN;
      } else if (errno != EINTR) {
        break;
      }
    }
    if (!up->Empty()) {
      int n = SSL_write(ssl, up->buf + up->off, static_cast<int>(up->len - up->off));
      if (n > 0) {
        up->off += static_cast<size_t>(n);
        progress = true;
      } else if (!wait_for(n)) {
        break;
      }
    }
    if (up->eof && up->Empty() && !close_sent) {
      int r = SSL_shutdown(ssl);
      if (r >= 0) {
        close_sent = true;
        progress = true;
      } else if (!wait_for(r)) {
        break;
      }
    }

    if (plain_shut && close_sent) break;
    if (progress) continue;
    // A side nothing waits on is left out: its hang-up would wake the poll forever.
    pollfd p[2] = {{net_events ? net_fd : -1, net_events, 0},
                   {plain_events ? plain_fd : -1, plain_events, 0}};
    if (poll(p, 2, -1) < 0 && errno != EINTR) break;
  }
  ERR_clear_error();
}

}  // namespace hutch::agent
