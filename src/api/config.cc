#include "api/config.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "common/log.h"
#include "core/cidr.h"
#include "store/registry.h"

namespace hutch::api {

namespace {

// One mapping of the YAML file. It remembers which keys were read, so every other key can be
// reported as unknown: the reads below are the one list of what the file may hold.
class Section {
 public:
  Section(YAML::Node node, std::string file, std::string prefix)
      : node_(std::move(node)), file_(std::move(file)), prefix_(std::move(prefix)) {}

  template <typename T>
  Status Read(const std::string& key, T* out) {
    read_.insert(key);
    YAML::Node v = node_[key];
    if (!v) return Status::Ok();
    try {
      *out = v.as<T>();
    } catch (const YAML::Exception&) {
      return InvalidArgument(fmt::format("{}: field '{}' (line {}) has the wrong type", file_,
                                         Name(key), v.Mark().line + 1));
    }
    return Status::Ok();
  }
  template <typename T>
  Status Read(const std::string& key, std::optional<T>* out) {
    if (!node_[key]) {
      read_.insert(key);
      return Status::Ok();
    }
    T v{};
    RETURN_IF_ERROR(Read(key, &v));
    *out = v;
    return Status::Ok();
  }
  // The nested mapping `key` (empty when absent).
  Result<Section> Child(const std::string& key) {
    read_.insert(key);
    YAML::Node v = node_[key];
    if (v && !v.IsNull() && !v.IsMap())
      return InvalidArgument(fmt::format("{}: field '{}' (line {}) must be a mapping", file_,
                                         Name(key), v.Mark().line + 1));
    return Section(v && v.IsMap() ? v : YAML::Node(YAML::NodeType::Map), file_, Name(key));
  }
  Status CheckUnknown() const {
    for (const auto& kv : node_) {
      std::string key = kv.first.as<std::string>();
      if (!read_.count(key))
        return InvalidArgument(fmt::format("{}: unknown field '{}' (line {})", file_, Name(key),
                                           kv.first.Mark().line + 1));
    }
    return Status::Ok();
  }

 private:
  std::string Name(const std::string& key) const {
    return prefix_.empty() ? key : prefix_ + "." + key;
  }
  YAML::Node node_;
  std::string file_;
  std::string prefix_;
  std::set<std::string> read_;
};

}  // namespace

Status LoadConfigFile(const std::string& path, bool required, ServerConfig* c) {
  if (access(path.c_str(), F_OK) != 0) {
    if (required) return NotFound(fmt::format("config file {} does not exist", path));
    return Status::Ok();
  }
  YAML::Node root_node;
  try {
    root_node = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(fmt::format("{}: {}", path, e.what()));
  }
  if (root_node.IsNull()) return Status::Ok();
  if (!root_node.IsMap())
    return InvalidArgument(fmt::format("{}: the top level must be a mapping", path));
  Section root(root_node, path, "");
  RETURN_IF_ERROR(root.Read("listen", &c->listen));
  RETURN_IF_ERROR(root.Read("data_dir", &c->data_dir));
  RETURN_IF_ERROR(root.Read("store", &c->store));
  RETURN_IF_ERROR(root.Read("store_pool_size", &c->store_pool_size));
  RETURN_IF_ERROR(root.Read("log_level", &c->log_level));
  RETURN_IF_ERROR(root.Read("agent_path", &c->agent_path));
  RETURN_IF_ERROR(root.Read("driver", &c->driver));
  RETURN_IF_ERROR(root.Read("io_threads", &c->io_threads));
  RETURN_IF_ERROR(root.Read("blocking_threads", &c->blocking_threads));
  RETURN_IF_ERROR(root.Read("max_body_bytes", &c->max_body_bytes));
  RETURN_IF_ERROR(root.Read("proxy_base_domain", &c->proxy_base_domain));
  RETURN_IF_ERROR(root.Read("metrics_listen", &c->metrics_listen));
  RETURN_IF_ERROR(root.Read("public_url", &c->public_url));
  RETURN_IF_ERROR(root.Read("max_exec_timeout_seconds", &c->max_exec_timeout_seconds));
  RETURN_IF_ERROR(root.Read("audit_retention_days", &c->audit_retention_days));
  RETURN_IF_ERROR(root.Read("tls_cert", &c->tls_cert));
  RETURN_IF_ERROR(root.Read("tls_key", &c->tls_key));
  RETURN_IF_ERROR(root.Read("pause_stops_clock", &c->pause_stops_clock));
  RETURN_IF_ERROR(root.Read("max_lifetime_seconds", &c->max_lifetime_seconds));
  RETURN_IF_ERROR(root.Read("keepalive_seconds", &c->keepalive_seconds));
  RETURN_IF_ERROR(root.Read("expiry_warnings_seconds", &c->expiry_warnings_seconds));
  RETURN_IF_ERROR(root.Read("prewarm_seconds", &c->prewarm_seconds));
  RETURN_IF_ERROR(root.Read("persist_retention_seconds", &c->persist_retention_seconds));
  RETURN_IF_ERROR(root.Read("controller_tick_ms", &c->controller_tick_ms));
  RETURN_IF_ERROR(root.Read("orphan_sweep_seconds", &c->orphan_sweep_seconds));

  ASSIGN_OR_RETURN(Section capacity, root.Child("capacity"));
  RETURN_IF_ERROR(capacity.Read("max_sessions", &c->capacity.max_sessions));
  RETURN_IF_ERROR(capacity.Read("max_cpus", &c->capacity.max_cpus));
  RETURN_IF_ERROR(capacity.Read("max_memory_mb", &c->capacity.max_memory_mb));
  RETURN_IF_ERROR(capacity.CheckUnknown());

  ASSIGN_OR_RETURN(Section rate_limit, root.Child("rate_limit"));
  RETURN_IF_ERROR(rate_limit.Read("per_second", &c->rate_limit_per_second));
  RETURN_IF_ERROR(rate_limit.Read("burst", &c->rate_limit_burst));
  RETURN_IF_ERROR(rate_limit.CheckUnknown());

  ASSIGN_OR_RETURN(Section quota, root.Child("quota"));
  RETURN_IF_ERROR(quota.Read("max_sessions", &c->default_quota.max_sessions));
  RETURN_IF_ERROR(quota.Read("max_cpus", &c->default_quota.max_cpus));
  RETURN_IF_ERROR(quota.Read("max_memory_mb", &c->default_quota.max_memory_mb));
  RETURN_IF_ERROR(quota.Read("max_disk_mb", &c->default_quota.max_disk_mb));
  RETURN_IF_ERROR(quota.Read("max_ttl_seconds", &c->default_quota.max_ttl_seconds));
  RETURN_IF_ERROR(quota.CheckUnknown());

  ASSIGN_OR_RETURN(Section network, root.Child("network"));
  RETURN_IF_ERROR(network.Read("subnet", &c->nat_subnet));
  RETURN_IF_ERROR(network.Read("dns", &c->nat_dns));
  RETURN_IF_ERROR(network.Read("pool_size", &c->nat_pool_size));
  RETURN_IF_ERROR(network.CheckUnknown());

  ASSIGN_OR_RETURN(Section webhooks, root.Child("webhooks"));
  RETURN_IF_ERROR(webhooks.Read("allow_private", &c->webhooks.allow_private));
  RETURN_IF_ERROR(webhooks.Read("workers", &c->webhooks.workers));
  RETURN_IF_ERROR(webhooks.Read("max_attempts", &c->webhooks.max_attempts));
  RETURN_IF_ERROR(webhooks.CheckUnknown());

  ASSIGN_OR_RETURN(Section attach, root.Child("attach"));
  RETURN_IF_ERROR(attach.Read("docker_host", &c->attach.docker_host));
  RETURN_IF_ERROR(attach.Read("recording_retention_days", &c->attach.recording_retention_days));
  RETURN_IF_ERROR(attach.CheckUnknown());

  ASSIGN_OR_RETURN(Section terminals, root.Child("terminals"));
  RETURN_IF_ERROR(terminals.Read("detached_idle_seconds", &c->terminals.detached_idle_seconds));
  RETURN_IF_ERROR(terminals.Read("scrollback_bytes", &c->terminals.scrollback_bytes));
  RETURN_IF_ERROR(terminals.Read("max_per_session", &c->terminals.max_per_session));
  RETURN_IF_ERROR(terminals.CheckUnknown());

  ASSIGN_OR_RETURN(Section smtp, root.Child("smtp"));
  RETURN_IF_ERROR(smtp.Read("host", &c->smtp.host));
  RETURN_IF_ERROR(smtp.Read("port", &c->smtp.port));
  RETURN_IF_ERROR(smtp.Read("from", &c->smtp.from));
  RETURN_IF_ERROR(smtp.Read("user", &c->smtp.user));
  RETURN_IF_ERROR(smtp.Read("password", &c->smtp.password));
  RETURN_IF_ERROR(smtp.Read("security", &c->smtp.security));
  int64_t smtp_timeout = c->smtp.timeout.count() / 1000;
  RETURN_IF_ERROR(smtp.Read("timeout_seconds", &smtp_timeout));
  c->smtp.timeout = std::chrono::seconds(smtp_timeout);
  RETURN_IF_ERROR(smtp.CheckUnknown());

  ASSIGN_OR_RETURN(Section metering, root.Child("metering"));
  RETURN_IF_ERROR(metering.Read("interval_seconds", &c->metering_interval_seconds));
  RETURN_IF_ERROR(metering.Read("bucket_seconds", &c->metering_bucket_seconds));
  RETURN_IF_ERROR(metering.CheckUnknown());

  ASSIGN_OR_RETURN(Section activity, root.Child("activity"));
  RETURN_IF_ERROR(activity.Read("interval_ms", &c->activity_interval_ms));
  RETURN_IF_ERROR(activity.Read("retention_days", &c->activity_retention_days));
  RETURN_IF_ERROR(activity.CheckUnknown());

  ASSIGN_OR_RETURN(Section abuse, root.Child("abuse"));
  RETURN_IF_ERROR(abuse.Read("cpu_full_seconds", &c->abuse_cpu_full_seconds));
  RETURN_IF_ERROR(abuse.CheckUnknown());

  ASSIGN_OR_RETURN(Section rates, root.Child("rates"));
  RETURN_IF_ERROR(rates.Read("currency", &c->rates.currency));
  RETURN_IF_ERROR(rates.Read("cpu_hour", &c->rates.cpu_hour));
  RETURN_IF_ERROR(rates.Read("memory_gib_hour", &c->rates.memory_gib_hour));
  RETURN_IF_ERROR(rates.Read("disk_gib_hour", &c->rates.disk_gib_hour));
  RETURN_IF_ERROR(rates.Read("network_gb", &c->rates.network_gb));
  RETURN_IF_ERROR(rates.Read("platform_participant_hour", &c->rates.platform_participant_hour));
  RETURN_IF_ERROR(rates.CheckUnknown());

  ASSIGN_OR_RETURN(Section defaults, root.Child("defaults"));
  ASSIGN_OR_RETURN(Section resources, defaults.Child("resources"));
  RETURN_IF_ERROR(resources.Read("cpus", &c->default_resources.cpus));
  RETURN_IF_ERROR(resources.Read("memory_mb", &c->default_resources.memory_mb));
  RETURN_IF_ERROR(resources.Read("pids", &c->default_resources.pids));
  RETURN_IF_ERROR(resources.Read("disk_mb", &c->default_resources.disk_mb));
  RETURN_IF_ERROR(resources.CheckUnknown());
  RETURN_IF_ERROR(defaults.CheckUnknown());
  return root.CheckUnknown();
}

void ApplyEnvironment(ServerConfig* c) {
  if (const char* v = std::getenv("HUTCH_LISTEN"); v && *v) c->listen = v;
  if (const char* v = std::getenv("HUTCH_DATA_DIR"); v && *v) c->data_dir = v;
  if (const char* v = std::getenv("HUTCH_STORE"); v && *v) c->store = v;
  if (const char* v = std::getenv("HUTCH_LOG_LEVEL"); v && *v) c->log_level = v;
  if (const char* v = std::getenv("HUTCH_AGENT_PATH"); v && *v) c->agent_path = v;
  if (const char* v = std::getenv("HUTCH_DRIVER"); v && *v) c->driver = v;
  if (const char* v = std::getenv("HUTCH_TLS_CERT"); v && *v) c->tls_cert = v;
  if (const char* v = std::getenv("HUTCH_TLS_KEY"); v && *v) c->tls_key = v;
  if (const char* v = std::getenv("HUTCH_PROXY_BASE_DOMAIN"); v && *v) c->proxy_base_domain = v;
  if (const char* v = std::getenv("HUTCH_METRICS_LISTEN"); v && *v) c->metrics_listen = v;
  if (const char* v = std::getenv("HUTCH_SMTP_PASSWORD"); v && *v) c->smtp.password = v;
  if (const char* v = std::getenv("HUTCH_PUBLIC_URL"); v && *v) c->public_url = v;
}

Status ValidateConfig(const ServerConfig& c) {
  log::Level level;
  if (!log::ParseLevel(c.log_level, &level))
    return InvalidArgument(
        fmt::format("log_level '{}' must be one of debug, info, warn, error, off", c.log_level));
  if (c.data_dir.empty() || c.data_dir.front() != '/')
    return InvalidArgument(fmt::format("data_dir '{}' must be an absolute path", c.data_dir));
  if (!c.store.empty()) {
    std::vector<std::string> known = store::RegisteredStores();
    std::string scheme = store::StoreScheme(c.store);
    if (std::find(known.begin(), known.end(), scheme) == known.end())
      return InvalidArgument(fmt::format("store '{}': unknown kind '{}'; known: {}",
                                         store::RedactStoreUrl(c.store), scheme,
                                         fmt::join(known, ", ")));
  }
  if (c.store_pool_size < 1 || c.store_pool_size > 1024)
    return InvalidArgument("store_pool_size must be between 1 and 1024");
  if (c.driver.empty()) return InvalidArgument("driver must name a driver (local)");
  if (c.io_threads < 1 || c.io_threads > 64)
    return InvalidArgument("io_threads must be between 1 and 64");
  if (c.blocking_threads < 2 || c.blocking_threads > 4096)
    return InvalidArgument("blocking_threads must be between 2 and 4096");
  if (c.max_body_bytes < 1024) return InvalidArgument("max_body_bytes must be at least 1024");
  if (!c.public_url.empty() &&
      ((!c.public_url.starts_with("http://") && !c.public_url.starts_with("https://")) ||
       c.public_url.ends_with("/")))
    return InvalidArgument(fmt::format(
        "public_url '{}' must be an http:// or https:// URL without a trailing /", c.public_url));
  if (c.max_exec_timeout_seconds < 1)
    return InvalidArgument("max_exec_timeout_seconds must be at least 1");
  if (c.tls_cert.empty() != c.tls_key.empty())
    return InvalidArgument("tls_cert and tls_key go together: give both or neither");
  if (c.rate_limit_per_second < 0 || c.rate_limit_burst < 1)
    return InvalidArgument("rate_limit.per_second must be ≥ 0 and rate_limit.burst ≥ 1");
  if (c.audit_retention_days < 0) return InvalidArgument("audit_retention_days must be ≥ 0");
  if (c.max_lifetime_seconds < 0 || c.keepalive_seconds < 1 || c.prewarm_seconds < 0)
    return InvalidArgument(
        "max_lifetime_seconds and prewarm_seconds must be ≥ 0, keepalive_seconds ≥ 1");
  if (c.controller_tick_ms < 10 || c.controller_tick_ms > 60000)
    return InvalidArgument("controller_tick_ms must be between 10 and 60000");
  if (c.orphan_sweep_seconds < 1) return InvalidArgument("orphan_sweep_seconds must be ≥ 1");
  if (c.persist_retention_seconds < 0)
    return InvalidArgument("persist_retention_seconds must be ≥ 0");
  if (auto subnet = core::ParseIpv4Cidr(c.nat_subnet, "network.subnet"); !subnet.ok())
    return subnet.status();
  for (size_t i = 0; i < c.nat_dns.size(); ++i) {
    if (auto a = core::ParseIpv4Address(c.nat_dns[i], fmt::format("network.dns[{}]", i)); !a.ok())
      return a.status();
  }
  if (c.nat_pool_size < 0 || c.nat_pool_size > 1024)
    return InvalidArgument("network.pool_size must be between 0 and 1024");
  if (!c.smtp.host.empty()) {
    if (c.smtp.from.find('@') == std::string::npos)
      return InvalidArgument("smtp.from must be the email address notices are sent from");
    if (c.smtp.port < 1 || c.smtp.port > 65535)
      return InvalidArgument("smtp.port must be between 1 and 65535");
    if (c.smtp.security != "none" && c.smtp.security != "starttls" && c.smtp.security != "tls")
      return InvalidArgument(
          fmt::format("smtp.security must be none, starttls or tls, not '{}'", c.smtp.security));
    if (c.smtp.timeout < std::chrono::seconds(1) || c.smtp.timeout > std::chrono::seconds(300))
      return InvalidArgument("smtp.timeout_seconds must be between 1 and 300");
  }
  if (c.abuse_cpu_full_seconds < 1 || c.abuse_cpu_full_seconds > 7 * 86400)
    return InvalidArgument("abuse.cpu_full_seconds must be between 1 and 604800");
  if (c.metering_interval_seconds < 1 || c.metering_interval_seconds > 3600)
    return InvalidArgument("metering.interval_seconds must be between 1 and 3600");
  if (c.activity_interval_ms < 100 || c.activity_interval_ms > 60000)
    return InvalidArgument("activity.interval_ms must be between 100 and 60000");
  if (c.activity_retention_days < 0 || c.activity_retention_days > 3650)
    return InvalidArgument("activity.retention_days must be between 0 and 3650");
  if (c.metering_bucket_seconds < 60 || c.metering_bucket_seconds > 86400 ||
      c.metering_bucket_seconds % 60 != 0)
    return InvalidArgument(
        "metering.bucket_seconds must be a whole number of minutes between 60 and 86400");
  for (double rate : {c.rates.cpu_hour, c.rates.memory_gib_hour, c.rates.disk_gib_hour,
                      c.rates.network_gb, c.rates.platform_participant_hour})
    if (!(rate >= 0)) return InvalidArgument("rates.* must be 0 or more");
  if (c.webhooks.workers < 1 || c.webhooks.workers > 256)
    return InvalidArgument("webhooks.workers must be between 1 and 256");
  if (c.webhooks.max_attempts < 1 || c.webhooks.max_attempts > 30)
    return InvalidArgument("webhooks.max_attempts must be between 1 and 30");
  if (!c.attach.docker_host.starts_with("/") && !c.attach.docker_host.starts_with("unix:///"))
    return InvalidArgument("attach.docker_host must be a unix socket's path (or unix:///path)");
  if (c.attach.recording_retention_days < 0)
    return InvalidArgument("attach.recording_retention_days must be ≥ 0");
  if (c.terminals.detached_idle_seconds < 1)
    return InvalidArgument("terminals.detached_idle_seconds must be ≥ 1");
  if (c.terminals.scrollback_bytes < 1024 || c.terminals.scrollback_bytes > (64 << 20))
    return InvalidArgument("terminals.scrollback_bytes must be between 1024 and 67108864");
  if (c.terminals.max_per_session < 1 || c.terminals.max_per_session > 1024)
    return InvalidArgument("terminals.max_per_session must be between 1 and 1024");
  const auto& r = c.default_resources;
  if (r.cpus < 0.01 || r.memory_mb < 16 || r.pids < 8 || r.disk_mb < 16)
    return InvalidArgument(
        "defaults.resources: cpus must be ≥ 0.01, memory_mb ≥ 16, pids ≥ 8, disk_mb ≥ 16");
  return Status::Ok();
}

}  // namespace hutch::api
