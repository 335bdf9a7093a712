#include "api/config.h"

#include <unistd.h>

#include <cstdlib>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "common/log.h"
#include "core/cidr.h"

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
  static const char* kKnown[] = {
      "listen",     "data_dir",         "log_level",      "agent_path",
      "io_threads", "blocking_threads", "max_body_bytes", "max_exec_timeout_seconds",
      "defaults",   "network"};
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
  if (YAML::Node net = root["network"]) {
    if (!net.IsMap()) return InvalidArgument(fmt::format("{}: network must be a mapping", path));
    for (const auto& kv : net) {
      std::string key = kv.first.as<std::string>();
      if (key != "subnet" && key != "dns" && key != "pool_size")
        return InvalidArgument(fmt::format("{}: unknown field 'network.{}' (line {})", path, key,
                                           kv.first.Mark().line + 1));
    }
    RETURN_IF_ERROR(Read(net, "subnet", path, &c->nat_subnet));
    RETURN_IF_ERROR(Read(net, "dns", path, &c->nat_dns));
    RETURN_IF_ERROR(Read(net, "pool_size", path, &c->nat_pool_size));
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
  if (auto subnet = core::ParseIpv4Cidr(c.nat_subnet, "network.subnet"); !subnet.ok())
    return subnet.status();
  for (size_t i = 0; i < c.nat_dns.size(); ++i) {
    if (auto a = core::ParseIpv4Address(c.nat_dns[i], fmt::format("network.dns[{}]", i)); !a.ok())
      return a.status();
  }
  if (c.nat_pool_size < 0 || c.nat_pool_size > 1024)
    return InvalidArgument("network.pool_size must be between 0 and 1024");
  const auto& r = c.default_resources;
  if (r.cpus < 0.01 || r.memory_mb < 16 || r.pids < 8 || r.disk_mb < 16)
    return InvalidArgument(
        "defaults.resources: cpus must be ≥ 0.01, memory_mb ≥ 16, pids ≥ 8, disk_mb ≥ 16");
  return Status::Ok();
}

}  // namespace hutch::api
