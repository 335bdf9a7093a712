// The HTTP/1.1 server: Boost.Beast with C++20 coroutines on a few network threads; every
// handler runs on a separate blocking pool, because handlers touch the store and the sandbox.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "api/gate.h"
#include "api/router.h"
#include "common/status.h"

namespace hutch::api {

struct ServerOptions {
  std::string listen = "127.0.0.1:7070";  // host:port; port 0 picks a free one
  int io_threads = 2;
  int blocking_threads = 64;
  size_t max_body_bytes = 16 << 20;
  // Both set: serve HTTPS (TLS 1.2 and later) with this PEM certificate chain and key.
  std::string tls_cert;
  std::string tls_key;
  // Config::proxy_base_domain: Hosts {port}-{session}.<this> are routed to the port proxy.
  std::string proxy_base_domain;
};

// The proxy prefix ("/v1/sessions/{session}/ports/{port}") for a Host of the form
// {port}-{session}.<base_domain> (any :port after it ignored, case-insensitive); empty when the
// Host is not one.
std::string HostRoutePrefix(std::string_view host, std::string_view base_domain);

class Server {
 public:
  Server(ServerOptions options, Gate& gate);
  ~Server();

  // Binds and starts serving; returns the bound address ("127.0.0.1:41234"). Fails with a
  // message naming the file when the TLS certificate or key cannot be loaded.
  Result<std::string> Start();
  // Runs `work` on the blocking pool.
  void PostBlocking(std::function<void()> work);
  // Blocks until SIGINT or SIGTERM, or until Stop() is called.
  void WaitForShutdownSignal();
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Routes that don't belong to a resource: /healthz, /v1/version.
void AddSystemRoutes(Router& router);

}  // namespace hutch::api
