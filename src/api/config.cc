#include "api/config.h"

#include <unistd.h>

#include <cstdlib>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "common/log.h"

namespace hutch::api {

namespace {

template <typename T>
Status Read(const YAML::Node& node, const std::string& key, const std::string& path, T* out) {
  YAML::Node v = node[key];
  if (!v) return Status::Ok();
  try {
    *out = v.as<T>();
  } catch (const YAML::Exception&) {
    return InvalidArgument(
        fmt::format("{}: field '{}' (line {}) has the wrong type", path, key, v.Mark().line + 1));
  }
  return Status::Ok();
}

}  // namespace

Status LoadConfigFile(const std::string& path, bool required, ServerConfig* c) {
  if (access(path.c_str(), F_OK) != 0) {
    if (required) return NotFound(fmt::format("config file {} does not exist", path));
    return Status::Ok();
  }
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(fmt::format("{}: {}", path, e.what()));
  }
  if (root.IsNull()) return Status::Ok();
  if (!root.IsMap())
    return InvalidArgument(fmt::format("{}: the top level must be a mapping", path));
  static const char* kKnown[] = {"listen",         "data_dir",
                                 "log_level",      "agent_path",
                                 "io_threads",     "blocking_threads",
                                 "max_body_bytes", "max_exec_timeout_seconds",
                                 "defaults",       "quota",
                                 "rate_limit",     "audit_retention_days",
                                 "tls_cert",       "tls_key",
                                 "webhooks"};
  for (const auto& kv : root) {
    std::string key = kv.first.as<std::string>();
    bool known = false;
    for (const char* k : kKnown) known = known || key == k;
    if (!known)
      return InvalidArgument(
          fmt::format("{}: unknown field '{}' (line {})", path, key, kv.first.Mark().line + 1));
  }
  RETURN_IF_ERROR(Read(root, "listen", path, &c->listen));
  RETURN_IF_ERROR(Read(root, "data_dir", path, &c->data_dir));
  RETURN_IF_ERROR(Read(root, "log_level", path, &c->log_level));
  RETURN_IF_ERROR(Read(root, "agent_path", path, &c->agent_path));
  RETURN_IF_ERROR(Read(root, "io_threads", path, &c->io_threads));
  RETURN_IF_ERROR(Read(root, "blocking_threads", path, &c->blocking_threads));
  RETURN_IF_ERROR(Read(root, "max_body_bytes", path, &c->max_body_bytes));
  RETURN_IF_ERROR(Read(root, "max_exec_timeout_seconds", path, &c->max_exec_timeout_seconds));
  RETURN_IF_ERROR(Read(root, "audit_retention_days", path, &c->audit_retention_days));
  RETURN_IF_ERROR(Read(root, "tls_cert", path, &c->tls_cert));
  RETURN_IF_ERROR(Read(root, "tls_key", path, &c->tls_key));
  if (YAML::Node rl = root["rate_limit"]) {
    RETURN_IF_ERROR(Read(rl, "per_second", path, &c->rate_limit_per_second));
    RETURN_IF_ERROR(Read(rl, "burst", path, &c->rate_limit_burst));
  }
  if (YAML::Node w = root["webhooks"]) {
    if (!w.IsMap())
      return InvalidArgument(
          fmt::format("{}: field 'webhooks' (line {}) must be a mapping", path, w.Mark().line + 1));
    for (const auto& kv : w) {
      std::string key = kv.first.as<std::string>();
      if (key != "allow_private" && key != "workers" && key != "max_attempts")
        return InvalidArgument(fmt::format("{}: unknown field 'webhooks.{}' (line {})", path, key,
                                           kv.first.Mark().line + 1));
    }
    RETURN_IF_ERROR(Read(w, "allow_private", path, &c->webhooks.allow_private));
    RETURN_IF_ERROR(Read(w, "workers", path, &c->webhooks.workers));
    RETURN_IF_ERROR(Read(w, "max_attempts", path, &c->webhooks.max_attempts));
  }
  if (YAML::Node q = root["quota"]) {
    auto opt = [&](const char* key, auto* field) -> Status {
      if (!q[key]) return Status::Ok();
      typename std::remove_reference_t<decltype(*field)>::value_type v{};
      RETURN_IF_ERROR(Read(q, key, path, &v));
      *field = v;
      return Status::Ok();
    };
    RETURN_IF_ERROR(opt("max_sessions", &c->default_quota.max_sessions));
    RETURN_IF_ERROR(opt("max_cpus", &c->default_quota.max_cpus));
    RETURN_IF_ERROR(opt("max_memory_mb", &c->default_quota.max_memory_mb));
    RETURN_IF_ERROR(opt("max_disk_mb", &c->default_quota.max_disk_mb));
    RETURN_IF_ERROR(opt("max_ttl_seconds", &c->default_quota.max_ttl_seconds));
  }
  if (YAML::Node res = root["defaults"]["resources"]) {
    RETURN_IF_ERROR(Read(res, "cpus", path, &c->default_resources.cpus));
    RETURN_IF_ERROR(Read(res, "memory_mb", path, &c->default_resources.memory_mb));
    RETURN_IF_ERROR(Read(res, "pids", path, &c->default_resources.pids));
    RETURN_IF_ERROR(Read(res, "disk_mb", path, &c->default_resources.disk_mb));
  }
  return Status::Ok();
}

void ApplyEnvironment(ServerConfig* c) {
  if (const char* v = std::getenv("HUTCH_LISTEN"); v && *v) c->listen = v;
  if (const char* v = std::getenv("HUTCH_DATA_DIR"); v && *v) c->data_dir = v;
  if (const char* v = std::getenv("HUTCH_LOG_LEVEL"); v && *v) c->log_level = v;
  if (const char* v = std::getenv("HUTCH_AGENT_PATH"); v && *v) c->agent_path = v;
  if (const char* v = std::getenv("HUTCH_TLS_CERT"); v && *v) c->tls_cert = v;
  if (const char* v = std::getenv("HUTCH_TLS_KEY"); v && *v) c->tls_key = v;
}

Status ValidateConfig(const ServerConfig& c) {
  log::Level level;
  if (!log::ParseLevel(c.log_level, &level))
    return InvalidArgument(
        fmt::format("log_level '{}' must be one of debug, info, warn, error, off", c.log_level));
  if (c.data_dir.empty() || c.data_dir.front() != '/')
    return InvalidArgument(fmt::format("data_dir '{}' must be an absolute path", c.data_dir));
  if (c.io_threads < 1 || c.io_threads > 64)
    return InvalidArgument("io_threads must be between 1 and 64");
  if (c.blocking_threads < 2 || c.blocking_threads > 4096)
    return InvalidArgument("blocking_threads must be between 2 and 4096");
  if (c.max_body_bytes < 1024) return InvalidArgument("max_body_bytes must be at least 1024");
  if (c.max_exec_timeout_seconds < 1)
    return InvalidArgument("max_exec_timeout_seconds must be at least 1");
  if (c.tls_cert.empty() != c.tls_key.empty())
    return InvalidArgument("tls_cert and tls_key go together: give both or neither");
  if (c.rate_limit_per_second < 0 || c.rate_limit_burst < 1)
    return InvalidArgument("rate_limit.per_second must be ≥ 0 and rate_limit.burst ≥ 1");
  if (c.audit_retention_days < 0) return InvalidArgument("audit_retention_days must be ≥ 0");
  if (c.webhooks.workers < 1 || c.webhooks.workers > 256)
    return InvalidArgument("webhooks.workers must be between 1 and 256");
  if (c.webhooks.max_attempts < 1 || c.webhooks.max_attempts > 30)
    return InvalidArgument("webhooks.max_attempts must be between 1 and 30");
  const auto& r = c.default_resources;
  if (r.cpus < 0.01 || r.memory_mb < 16 || r.pids < 8 || r.disk_mb < 16)
    return InvalidArgument(
        "defaults.resources: cpus must be ≥ 0.01, memory_mb ≥ 16, pids ≥ 8, disk_mb ≥ 16");
  return Status::Ok();
}

}  // namespace hutch::api
