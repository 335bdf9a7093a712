// The server's configuration: one typed struct with a default and a comment per field. Loaded
// from YAML (/etc/hutch/config.yaml or --config), then HUTCH_* environment variables, then
// command-line flags; checked at start with errors that name the field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "core/session.h"

namespace hutch::api {

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
  // Network mode nat (the `network:` mapping in YAML: subnet, dns, pool_size). Sandboxes get a
  // /30 each from nat_subnet, which must not overlap a network the host routes to.
  std::string nat_subnet = "10.89.0.0/16";
  // Resolvers for nat sandboxes; empty: the host's own non-loopback ones.
  std::vector<std::string> nat_dns;
  // Wired network namespaces kept ready so nat creates stay fast; 0: made on demand.
  int nat_pool_size = 8;
};

// Reads `path` into `config`. A missing file is an error only when `required`.
Status LoadConfigFile(const std::string& path, bool required, ServerConfig* config);
// Applies HUTCH_LISTEN, HUTCH_DATA_DIR, HUTCH_LOG_LEVEL, HUTCH_AGENT_PATH.
void ApplyEnvironment(ServerConfig* config);
Status ValidateConfig(const ServerConfig& config);

}  // namespace hutch::api
