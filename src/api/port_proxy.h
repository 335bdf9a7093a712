// ANY /v1/sessions/{id}/ports/{port}/{path…}: an HTTP reverse proxy to 127.0.0.1:{port} inside
// the session, relayed by the agent's TcpConnect stream (works with network mode `none`, needs no
// host port). Beast-free: handler files include this; connection_takeover.h has the rest.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "api/http_types.h"
#include "controller/session_service.h"

namespace hutch::api {

struct ProxyTarget {
  core::Session session;
  std::shared_ptr<const agent::Transport> transport;  // to the session's agent
  uint16_t port = 0;
  // What the app sees as the request target: "/" + the rest of the path, and the query.
  std::string target;
  // The public prefix the app lives under ("/v1/sessions/ses_x/ports/8888"): X-Forwarded-Prefix.
  std::string prefix;
  // A Set-Cookie value for the final answer head (the access cookie a signed URL hands out,
  // port_access.h); empty: none. The proxy adds `; Secure` on a TLS connection.
  std::string set_cookie;
};

// One request per connection toward the app: the request goes out with `Connection: close`
// (or the client's Upgrade), its body streamed as it arrives (re-chunked when the client sent
// it chunked). The answer is parsed as it streams back: hutch writes the head (the client's
// HTTP version, the app's fields without hop-by-hop ones, its own framing: the app's
// Content-Length kept, otherwise re-chunked for HTTP/1.1 clients or delimited by closing for
// HTTP/1.0 ones) and the body pieces as they come, and the client's connection carries the next
// request when both sides allow keep-alive and the exchange completed. A `101 Switching
// Protocols` answer to an upgrade turns the connection into a raw two-way relay (WebSocket
// through the proxy) that ends with it. A relay in which nothing moved for 10 minutes (1 hour
// when upgraded; HUTCH_PROXY_IDLE_SECONDS overrides both) ends.
// Headers: hop-by-hop ones, Authorization (the hutch token) and the hutch_port_access cookie are
// dropped (the app's own cookies stay); X-Forwarded-For,
// -Host, -Proto and -Prefix are set. Nothing listens on the port: 503 in the API's error shape;
// an answer that is not HTTP: 502.
std::shared_ptr<ConnectionTakeover> NewPortProxy(controller::SessionService& service,
                                                 ProxyTarget target);

}  // namespace hutch::api
