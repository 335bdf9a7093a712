// The agent transport over TCP + TLS (docs/architecture.md, "The transport contract"): the
// server dials the agent by address, checks its certificate against the server's agent CA and
// the session id, presents its own client certificate, and hands the caller the plain end of
// a socketpair that a relay thread (one per connection; tls.h) bridges to the TLS stream. The
// caller then speaks the agent protocol, Hello and secret included, as on any transport.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "agent/tls.h"
#include "agent/tls_ca.h"
#include "agent/transport.h"
#include "common/status.h"

namespace hutch::agent {

// What a server presents to agents: its client certificate (issued by `ca` at start) and the CA
// it verifies them with. One per server, shared by every transport.
class TlsDialer {
 public:
  static Result<std::shared_ptr<const TlsDialer>> New(const AgentCa& ca);
  // For tests: any certificate, key and CA (a wrong CA, a client the agent must refuse).
  static Result<std::shared_ptr<const TlsDialer>> FromPem(const std::string& cert_pem,
                                                          const std::string& key_pem,
                                                          const std::string& ca_pem);
  SSL_CTX* context() const { return ctx_.get(); }

 private:
  SslCtxPtr ctx_;
};

// An agent listening on `host`:`port` (IPv4 literal) whose certificate names `session_id`.
std::shared_ptr<const Transport> NewTlsTransport(std::string host, uint16_t port,
                                                 std::string session_id, std::string secret,
                                                 std::shared_ptr<const TlsDialer> dialer);

}  // namespace hutch::agent
