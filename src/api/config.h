// The server's configuration: one typed struct with a default and a comment per field. Loaded
// from YAML (/etc/hutch/config.yaml or --config), then HUTCH_* environment variables, then
// command-line flags; checked at start with errors that name the field.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "core/session.h"
#include "store/store.h"

namespace hutch::api {

// webhooks: in YAML.
struct WebhookConfig {
  // Also deliver to loopback and private addresses (127/8, 10/8, 172.16/12, 192.168/16, ::1,
  // fc00::/7, …). Off by default: the server fetches a user's URL from inside its own network,
  // and would otherwise let any user reach internal services through it (SSRF). Link-local and
  // cloud metadata addresses are refused even when on.
  bool allow_private = false;
  // Deliveries under way at once; one webhook never holds more than one of them.
  int workers = 4;
  // Attempts per event and webhook, retried after 1 s, 2 s, 4 s, … .
  int max_attempts = 8;
};

struct ServerConfig {
  // Address and port to listen on; port 0 picks a free one (written to DATA_DIR/listen.addr).
  std::string listen = "127.0.0.1:7070";
  // Where sessions, images, the database and the admin token live.
  std::string data_dir = "/var/lib/hutch";
  // debug | info | warn | error
  std::string log_level = "info";
  // The hutch-agent executable; empty: the one next to the hutch executable.
  std::string agent_path;
  // Threads serving network I/O.
  int io_threads = 2;
  // Threads running handlers (store and sandbox work); a running exec holds one.
  int blocking_threads = 64;
  // Largest request body accepted, in bytes.
  int64_t max_body_bytes = 16 << 20;
  // Longest timeout_seconds an exec may ask for.
  int64_t max_exec_timeout_seconds = 24 * 3600;
  // Resources of a session that asks for none (defaults.resources in YAML).
  core::Resources default_resources;
  // Every user's quota unless their own overrides it (quota.max_sessions, …); unset: no limit.
  store::QuotaLimits default_quota;
  // Mutating calls a token may make per second, and the burst it may save up (rate_limit.*);
  // 0 turns limiting off.
  double rate_limit_per_second = 20;
  double rate_limit_burst = 100;
  // Audit records older than this many days are deleted; 0 keeps them forever.
  int64_t audit_retention_days = 90;
  // Serve HTTPS with this PEM certificate chain and key (both or neither).
  std::string tls_cert;
  std::string tls_key;
  WebhookConfig webhooks;
};

// Reads `path` into `config`. A missing file is an error only when `required`.
Status LoadConfigFile(const std::string& path, bool required, ServerConfig* config);
// Applies HUTCH_LISTEN, HUTCH_DATA_DIR, HUTCH_LOG_LEVEL, HUTCH_AGENT_PATH, HUTCH_TLS_CERT,
// HUTCH_TLS_KEY.
void ApplyEnvironment(ServerConfig* config);
Status ValidateConfig(const ServerConfig& config);

}  // namespace hutch::api
