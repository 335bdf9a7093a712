// TLS for agents reached over a network (docs/architecture.md, "The transport contract"): the
// contexts of both ends and the relay that turns a TLS stream into a plain socket.
//
// Both ends keep speaking the agent protocol on plain sockets: the agent's connection code and
// the server's callers never see TLS. This kernel may have no kTLS, so each end runs a relay
// (one thread per connection) between the TLS stream and one end of a socketpair whose other
// end is the plain socket. Shared by the static agent and the server, so it uses OpenSSL and
// the standard library only.
//
// Mutual TLS 1.3 with one CA per server: the agent's certificate (extended key usage
// serverAuth, the session id as its DNS name) and the server's client certificate
// (clientAuth) are both issued by it; each end checks the other's chain against it, and the
// key usage, so an agent's certificate cannot be used to connect to another agent.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <openssl/ssl.h>

namespace hutch::agent {

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;

// A TLS 1.3 context that presents `cert_pem`/`key_pem` and requires the peer to present a
// certificate chaining to `ca_pem`: the agent's (`server`: it accepts) or the server's
// dialling side. nullptr and *error when the PEM does not parse or the key does not match.
SslCtxPtr NewMutualTlsContext(bool server, const std::string& cert_pem, const std::string& key_pem,
                              const std::string& ca_pem, std::string* error);

// The handshake on the connected socket `fd` (made non-blocking), until `deadline_ms`
// (MonotonicMs). For a client, `expected_name` is the DNS name the peer's certificate must
// carry. nullptr and *error (naming what failed: "certificate verify failed", a timeout) else.
SslPtr TlsHandshake(SSL_CTX* ctx, int fd, bool server, const std::string& expected_name,
                    int64_t deadline_ms, std::string* error);

// Moves bytes both ways between `ssl` (on `net_fd`) and the plain socket `plain_fd` until
// both directions have ended (EOF on the plain side becomes a TLS close_notify and the other
// way round, as a half-close) or either side fails. Both fds are made non-blocking; the caller
// closes them afterwards.
void RelayTls(SSL* ssl, int net_fd, int plain_fd);

}  // namespace hutch::agent
