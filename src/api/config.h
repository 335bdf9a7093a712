// The server's configuration: one typed struct with a default and a comment per field. Loaded
// from YAML (/etc/hutch/config.yaml or --config), then HUTCH_* environment variables, then
// command-line flags; checked at start with errors that name the field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <vector>
#include "common/status.h"
#include "controller/admission.h"
#include "controller/smtp.h"
#include "core/session.h"
#include "core/usage.h"
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

// attach: in YAML (docs/attach.md).
struct AttachConfig {
  // The Docker Engine's unix socket for docker targets that name none of their own.
  std::string docker_host = "/var/run/docker.sock";
  // Recordings of shells that ended longer ago than this many days are deleted; 0 keeps them.
  int64_t recording_retention_days = 0;
};

// terminals: in YAML (docs/server.md): the detachable terminals of …/terminals.
struct TerminalsConfig {
  // A terminal nobody was attached to for this long ends (its processes with it).
  int64_t detached_idle_seconds = 900;
  // The output a terminal keeps for the client that attaches next.
  int64_t scrollback_bytes = 256 * 1024;
  // At most this many terminals per session at once.
  int64_t max_per_session = 16;
};

struct ServerConfig {
  // Address and port to listen on; port 0 picks a free one (written to DATA_DIR/listen.addr).
  std::string listen = "127.0.0.1:7070";
  // Where sessions, images, the database and the admin token live.
  std::string data_dir = "/var/lib/hutch";
  // Which store holds hutch's records, as a URL whose scheme names the implementation
  // (store/registry.h): sqlite:///path/hutch.db, or postgres://user@host:5432/db?sslmode=….
  // Empty: SQLite at DATA_DIR/hutch.db.
  std::string store;
  // Connections the store may hold open at once (PostgreSQL; SQLite has one).
  int store_pool_size = 8;
  // debug | info | warn | error
  std::string log_level = "info";
  // The hutch-agent executable; empty: the one next to the hutch executable.
  std::string agent_path;
  // The driver that makes sandboxes, by its registered name (drivers/registry.h).
  std::string driver = "local";
  // Threads serving network I/O.
  int io_threads = 2;
  // Threads running handlers (store and sandbox work); a running exec holds one.
  int blocking_threads = 64;
  // Host-based routing for the port proxy: a request whose Host is {port}-{session}.<this>
  // goes to that port of that session at `/` (for apps that must live at the root). Empty: off.
  // Point a wildcard DNS record (*.<this>) at the server to use it.
  std::string proxy_base_domain;
  // A second listener, HOST:PORT, that serves GET /metrics (and /healthz, /readyz) without a
  // token, for a Prometheus on a trusted network. Empty: off; /metrics is then only on `listen`,
  // for admins and tokens with the `metrics` scope.
  std::string metrics_listen;
  // The URL participants' browsers reach this server at ("https://hutch.example.com"), for the
  // links the server hands out (workshop access links). Empty: links are paths ("/access/…").
  // Never derived from `listen`, which is often not what browsers reach.
  std::string public_url;
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
  // What all sandboxes together may hold (capacity.max_sessions, max_cpus, max_memory_mb);
  // creates past it wait in `pending`, in order. Unset: no limit.
  controller::Capacity capacity;
  // Whether a paused session's end clock stops (true) or keeps running.
  bool pause_stops_clock = true;
  // No session lives longer than this after creation, whatever extends it; 0: no cap.
  int64_t max_lifetime_seconds = 0;
  // How far a keepalive pushes the end of a session that has no ttl_seconds.
  int64_t keepalive_seconds = 3600;
  // Seconds before a session's end at which a session.expiring event is sent.
  std::vector<int64_t> expiry_warnings_seconds = {1800, 300};
  // A scheduled session starts provisioning this long before its start_at.
  int64_t prewarm_seconds = 0;
  // How long a soft-deleted session keeps its persistent volume (restore works until then).
  int64_t persist_retention_seconds = 7 * 24 * 3600;
  // How often the controller compares the store with the clock and the sandboxes.
  int64_t controller_tick_ms = 200;
  // How often sandboxes that no session owns are looked for and removed.
  int64_t orphan_sweep_seconds = 60;
  // Serve HTTPS with this PEM certificate chain and key (both or neither).
  std::string tls_cert;
  std::string tls_key;
  // Network mode nat (the `network:` mapping in YAML: subnet, dns, pool_size). Sandboxes get a
  // /30 each from nat_subnet, which must not overlap a network the host routes to.
  std::string nat_subnet = "10.89.0.0/16";
  // Resolvers for nat sandboxes; empty: the host's own non-loopback ones.
  std::vector<std::string> nat_dns;
  // Wired network namespaces kept ready so nat creates stay fast; 0: made on demand.
  int nat_pool_size = 8;
  WebhookConfig webhooks;
  // Email for workshop notices (`smtp:` in YAML: host, port, from, user, password, security:
  // none | starttls | tls, timeout_seconds). No host: notices are not emailed (they are still
  // streamed and sent to webhooks). HUTCH_SMTP_PASSWORD overrides the password.
  controller::SmtpOptions smtp;
  AttachConfig attach;
  TerminalsConfig terminals;
  // Usage metering (`metering:` in YAML, docs/usage.md): how often every session's sandbox is
  // read, and the length of the buckets its amounts are summed in (the resolution of since and
  // until in GET /v1/usage).
  int64_t metering_interval_seconds = 60;
  int64_t metering_bucket_seconds = 3600;
  // Activity (`activity:` in YAML, docs/workshops.md "Activity"): how often sessions with recent
  // activity have the lines written inside them collected (the others 30 times less often), and
  // how many days records are kept (0: for ever).
  int64_t activity_interval_ms = 1000;
  int64_t activity_retention_days = 30;
  // The abuse report (`abuse:` in YAML, docs/api.md "Abuse report"): a session shows as cpu_full
  // once its cpu quota ran out in this many seconds' worth of 100 ms periods.
  int64_t abuse_cpu_full_seconds = 600;
  // The rate card workshop costs are computed with (`rates:` in YAML: currency, cpu_hour,
  // memory_gib_hour, disk_gib_hour, network_gb, platform_participant_hour). All 0 by default.
  core::RateCard rates;
};

// Reads `path` into `config`. A missing file is an error only when `required`.
Status LoadConfigFile(const std::string& path, bool required, ServerConfig* config);
// Applies HUTCH_LISTEN, HUTCH_DATA_DIR, HUTCH_STORE, HUTCH_LOG_LEVEL, HUTCH_AGENT_PATH,
// HUTCH_DRIVER, HUTCH_TLS_CERT, HUTCH_TLS_KEY, HUTCH_PROXY_BASE_DOMAIN, HUTCH_METRICS_LISTEN.
void ApplyEnvironment(ServerConfig* config);
Status ValidateConfig(const ServerConfig& config);

}  // namespace hutch::api
