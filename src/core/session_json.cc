#include "core/session_json.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "core/cidr.h"
#include "core/json_fields.h"

namespace hutch::core {

namespace {

// NAME, or OWNER/NAME (OWNER a user's id or name: docs/api.md, "Sharing templates").
bool IsValidTemplateRef(std::string_view ref) {
  size_t slash = ref.find('/');
  if (slash == std::string_view::npos) return IsValidName(ref);
  std::string_view owner = ref.substr(0, slash);
  return !owner.empty() && owner.size() <= 64 &&
         std::all_of(owner.begin(), owner.end(),
                     [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                              c == '-' || c == '.';
                     }) &&
         IsValidName(ref.substr(slash + 1));
}

constexpr int64_t kMaxSeconds = int64_t{10} * 365 * 24 * 3600;
constexpr size_t kMaxMetadataBytes = 16 * 1024;
// Per list: each entry is one firewall element, checked on every new connection.
constexpr size_t kMaxNetworkRules = 256;
constexpr size_t kMaxVolumes = 16;
constexpr size_t kMaxSetupCommands = 64;
constexpr size_t kMaxSetupCommandBytes = 64 * 1024;
constexpr size_t kMaxDependencies = 32;
// The agent supervises at most 64 services; a session's own leave room for POST …/services.
constexpr size_t kMaxSessionServices = 32;

Status ValidateEnv(const std::map<std::string, std::string>& env, const std::string& path) {
  for (const auto& [k, v] : env) {
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
      return InvalidArgument(fmt::format("{} has an invalid variable name '{}'", path, k));
    if (v.find('\0') != std::string::npos)
      return InvalidArgument(fmt::format("{}.{} contains a NUL byte", path, k));
  }
  return Status::Ok();
}

Status ValidateLabels(const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : labels) {
    if (k.empty() || k.size() > 63)
      return InvalidArgument(fmt::format("labels key '{}' must be 1 to 63 characters", k));
    for (char c : k) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-' || c == '/';
      if (!ok)
        return InvalidArgument(
            fmt::format("labels key '{}' may only contain letters, digits and . _ - /", k));
    }
    if (v.size() > 255)
      return InvalidArgument(fmt::format("labels.{} is longer than 255 characters", k));
  }
  return Status::Ok();
}

std::map<std::string, std::string> GetStringMap(const json::object& o, std::string_view key) {
  std::map<std::string, std::string> m;
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_object()) return m;
  for (const auto& kv : it->value().get_object())
    if (kv.value().is_string()) m.emplace(kv.key(), kv.value().get_string());
  return m;
}

// `volumes`: [{volume, path, read_only}]. Paths are checked here; whether the volumes exist and
// may be attached is the controller's to say.
Result<std::vector<VolumeMount>> ParseVolumeMounts(const json::value* v) {
  std::vector<VolumeMount> out;
  if (!v) return out;
  if (!v->is_array())
    return InvalidArgument("volumes must be an array of {volume, path, read_only}");
  const json::array& list = v->get_array();
  if (list.size() > kMaxVolumes)
    return InvalidArgument(fmt::format("volumes has more than {} entries", kMaxVolumes));
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string path = fmt::format("volumes[{}]", i);
    if (!list[i].is_object()) return InvalidArgument(path + " must be an object");
    FieldReader r(list[i].get_object(), path);
    RETURN_IF_ERROR(r.RejectUnknown({"volume", "path", "read_only"}));
    VolumeMount m;
    std::optional<std::string> volume, mount_path;
    std::optional<bool> read_only;
    RETURN_IF_ERROR(r.String("volume", &volume, 63));
    if (!volume) return InvalidArgument(r.Path("volume") + " is required");
    if (!IsValidName(*volume))
      return InvalidArgument(
          fmt::format("{} '{}' must be a volume's name (a DNS label)", r.Path("volume"), *volume));
    RETURN_IF_ERROR(r.String("path", &mount_path, 1024));
    if (!mount_path) return InvalidArgument(r.Path("path") + " is required");
    if (std::string why = CheckVolumePath(*mount_path); !why.empty())
      return InvalidArgument(fmt::format("{} '{}' {}", r.Path("path"), *mount_path, why));
    RETURN_IF_ERROR(r.Bool("read_only", &read_only));
    m.volume = std::move(*volume);
    m.path = std::move(*mount_path);
    m.read_only = read_only.value_or(false);
    // One mount may not hide another: no path equal to or below another's.
    for (size_t j = 0; j < out.size(); ++j) {
      const std::string& a = out[j].path;
      const std::string& b = m.path;
      bool nested = a == b || (b.starts_with(a) && b[a.size()] == '/') ||
                    (a.starts_with(b) && a[b.size()] == '/');
      if (nested)
        return InvalidArgument(
            fmt::format("{} '{}' overlaps volumes[{}].path '{}'", r.Path("path"), b, j, a));
      if (out[j].volume == m.volume)
        return InvalidArgument(fmt::format("{} '{}' is attached twice (also volumes[{}])",
                                           r.Path("volume"), m.volume, j));
    }
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

namespace {

// Kubernetes' (and Raworc's) spelling of resources: cpu as cores ("2", 0.5, "500m") and memory
// as a quantity ("4Gi", "512Mi", "1G", plain bytes). Fills cpus and memory_mb of `o`.
Status ParseKubernetesResources(const json::object& o, FieldReader& r, json::object* plain) {
  if (const json::value* v = o.if_contains("cpu")) {
    if (o.contains("cpus")) return InvalidArgument(r.Path("cpu") + ": give cpu or cpus, not both");
    double cores = 0;
    if (v->is_number()) {
      cores = v->to_number<double>();
    } else if (v->is_string()) {
      std::string t(v->as_string());
      bool milli = !t.empty() && t.back() == 'm';
      if (milli) t.pop_back();
      char* end = nullptr;
      cores = std::strtod(t.c_str(), &end);
      if (t.empty() || *end != '\0')
        return InvalidArgument(fmt::format("{} '{}' is not a CPU quantity (2, 0.5, 500m)",
                                           r.Path("cpu"), std::string(v->as_string())));
      if (milli) cores /= 1000;
    } else {
      return InvalidArgument(r.Path("cpu") + " must be a number or a quantity like 500m");
    }
    (*plain)["cpus"] = cores;
  }
  if (const json::value* v = o.if_contains("memory")) {
    if (o.contains("memory_mb"))
      return InvalidArgument(r.Path("memory") + ": give memory or memory_mb, not both");
    double bytes = 0;
    if (v->is_number()) {
      bytes = v->to_number<double>();
    } else if (v->is_string()) {
      static const std::pair<std::string_view, double> kUnits[] = {
          {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
          {"k", 1e3},     {"M", 1e6},        {"G", 1e9},           {"T", 1e12}};
      std::string t(v->as_string());
      double unit = 1;
      for (const auto& [suffix, factor] : kUnits) {
        if (t.size() > suffix.size() && std::string_view(t).ends_with(suffix)) {
          unit = factor;
          t.resize(t.size() - suffix.size());
          break;
        }
      }
      char* end = nullptr;
      bytes = std::strtod(t.c_str(), &end) * unit;
      if (t.empty() || *end != '\0')
        return InvalidArgument(fmt::format("{} '{}' is not a memory quantity (4Gi, 512Mi, 1G)",
                                           r.Path("memory"), std::string(v->as_string())));
    } else {
      return InvalidArgument(r.Path("memory") + " must be a quantity like 4Gi");
    }
    (*plain)["memory_mb"] = static_cast<int64_t>(bytes / 1048576.0);
  }
  return Status::Ok();
}

}  // namespace

Result<Resources> ParseResources(const json::object& given, const Resources& base,
                                 const ResourceCeiling& ceiling, const std::string& path) {
  json::object o = given;
  {
    FieldReader kr(given, path);
    RETURN_IF_ERROR(kr.RejectUnknown({"cpus", "memory_mb", "pids", "disk_mb", "cpu", "memory"}));
    RETURN_IF_ERROR(ParseKubernetesResources(given, kr, &o));
    o.erase("cpu");
    o.erase("memory");
  }
  FieldReader r(o, path);
  Resources out = base;
  if (const json::value* v = r.Raw("cpus")) {
    if (!v->is_number()) return InvalidArgument(fmt::format("{} must be a number", r.Path("cpus")));
    double cpus = v->to_number<double>();
    if (!std::isfinite(cpus) || cpus < 0.01 || cpus > ceiling.max_cpus)
      return InvalidArgument(fmt::format("{} must be between 0.01 and {} (this server's cores)",
                                         r.Path("cpus"), ceiling.max_cpus));
    out.cpus = cpus;
  }
  std::optional<int64_t> n;
  RETURN_IF_ERROR(r.Int("memory_mb", &n, 16, ceiling.max_memory_mb));
  if (n) out.memory_mb = *n;
  n.reset();
  RETURN_IF_ERROR(r.Int("pids", &n, 8, ceiling.max_pids));
  if (n) out.pids = *n;
  n.reset();
  RETURN_IF_ERROR(r.Int("disk_mb", &n, 16, ceiling.max_disk_mb));
  if (n) out.disk_mb = *n;
  return out;
}

Result<NetworkSpec> ParseNetworkSpec(const json::object& o) {
  FieldReader r(o, "network");
  RETURN_IF_ERROR(r.RejectUnknown({"mode", "allow_out", "deny_out"}));
  NetworkSpec spec;
  std::optional<std::string> mode;
  RETURN_IF_ERROR(r.String("mode", &mode, 16));
  if (mode) {
    if (*mode != "none" && *mode != "nat")
      return InvalidArgument(fmt::format("network.mode must be 'none' or 'nat', got '{}'", *mode));
    spec.mode = *mode;
  }
  // Stored in canonical form ("192.0.2.1" becomes "192.0.2.1/32"), so what the session shows is
  // exactly what the firewall does.
  auto read_list = [&](std::string_view key, std::vector<std::string>* out) -> Status {
    std::optional<std::vector<std::string>> list;
    RETURN_IF_ERROR(r.StringList(key, &list, kMaxNetworkRules));
    if (!list || list->empty()) return Status::Ok();
    if (spec.mode != "nat")
      return InvalidArgument(fmt::format("{} needs network.mode 'nat'", r.Path(key)));
    for (size_t i = 0; i < list->size(); ++i) {
      ASSIGN_OR_RETURN(Ipv4Cidr cidr,
                       ParseIpv4Cidr((*list)[i], fmt::format("{}[{}]", r.Path(key), i)));
      out->push_back(cidr.ToString());
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(read_list("allow_out", &spec.allow_out));
  RETURN_IF_ERROR(read_list("deny_out", &spec.deny_out));
  return spec;
}

Result<std::string> ParseTitle(FieldReader& r) {
  std::optional<std::string> title;
  // Bytes first (4 per character at most), then characters: a cheap bound before decoding.
  RETURN_IF_ERROR(r.String("title", &title, 4 * kMaxTitleChars));
  if (!title) return std::string();
  if (std::string why = CheckTitle(*title); !why.empty())
    return InvalidArgument(fmt::format("{} {}", r.Path("title"), why));
  return std::move(*title);
}

namespace {

// type, command, depends_on and run_image_cmd: a batch session needs a command, and only a
// batch session may have one or depend on others.
Status ParseRunFields(FieldReader& r, CreateSessionRequest* req) {
  std::optional<std::string> type;
  RETURN_IF_ERROR(r.String("type", &type, 16));
  if (type) {
    if (*type != kTypeInteractive && *type != kTypeBatch)
      return InvalidArgument(fmt::format("type must be 'interactive' or 'batch', got '{}'", *type));
    req->run.type = *type;
  }
  const bool batch = req->run.type == kTypeBatch;
  std::optional<std::string> command;
  RETURN_IF_ERROR(r.String("command", &command, kMaxSetupCommandBytes));
  if (command && !batch) return InvalidArgument("command is for sessions of type batch");
  if (batch && (!command || command->empty()))
    return InvalidArgument("a session of type batch needs a command (a shell command)");
  if (command && command->find('\0') != std::string::npos)
    return InvalidArgument("command contains a NUL byte");
  if (command) req->run.command = *command;
  std::optional<std::vector<std::string>> deps;
  RETURN_IF_ERROR(r.StringList("depends_on", &deps, kMaxDependencies));
  if (deps && !deps->empty() && !batch)
    return InvalidArgument("depends_on is for sessions of type batch");
  if (deps) {
    for (size_t i = 0; i < deps->size(); ++i) {
      const std::string& d = (*deps)[i];
      if (d.empty() || d.size() > 63)
        return InvalidArgument(fmt::format("depends_on[{}] must be a session's id or name", i));
      for (size_t j = 0; j < i; ++j)
        if ((*deps)[j] == d)
          return InvalidArgument(fmt::format("depends_on[{}] '{}' is listed twice", i, d));
    }
    req->depends_on = std::move(*deps);
  }
  std::optional<bool> run_image_cmd;
  RETURN_IF_ERROR(r.Bool("run_image_cmd", &run_image_cmd));
  if (run_image_cmd) req->run.run_image_cmd = *run_image_cmd;
  return Status::Ok();
}

}  // namespace

Result<CreateSessionRequest> ParseCreateSessionRequest(const json::object& body,
                                                       const Resources& defaults,
                                                       const ResourceCeiling& ceiling) {
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"name",
                                   "title",
                                   "template",
                                   "image",
                                   "resources",
                                   "env",
                                   "labels",
                                   "metadata",
                                   "network",
                                   "ttl_seconds",
                                   "idle_timeout_seconds",
                                   "on_idle",
                                   "start_at",
                                   "volumes",
                                   "setup",
                                   "services",
                                   "wait",
                                   "from_checkpoint",
                                   "persist",
                                   "type",
                                   "command",
                                   "depends_on",
                                   "run_image_cmd"}));
  CreateSessionRequest req;
  req.resources = defaults;

  RETURN_IF_ERROR(r.String("name", &req.name, 63));
  if (req.name && !IsValidName(*req.name))
    return InvalidArgument(fmt::format(
        "name '{}' must be a DNS label: 1 to 63 lowercase letters, digits or '-', starting and "
        "ending with a letter or digit",
        *req.name));

  ASSIGN_OR_RETURN(req.title, ParseTitle(r));

  RETURN_IF_ERROR(r.String("from_checkpoint", &req.from_checkpoint, 200));
  if (req.from_checkpoint) {
    size_t slash = req.from_checkpoint->find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == req.from_checkpoint->size() ||
        !IsValidName(req.from_checkpoint->substr(slash + 1)))
      return InvalidArgument(
          fmt::format("from_checkpoint '{}' must be '<session id or name>/<checkpoint name>'",
                      *req.from_checkpoint));
  }

  RETURN_IF_ERROR(r.String("template", &req.template_name, 128));
  if (req.template_name && !IsValidTemplateRef(*req.template_name))
    return InvalidArgument(fmt::format(
        "template '{}' must be a template's name (a DNS label), or OWNER/NAME for one shared "
        "with you",
        *req.template_name));

  std::optional<std::string> image;
  RETURN_IF_ERROR(r.String("image", &image, 253));
  if (image) {
    // Whether it exists is the server's to say (GET /v1/images); here only its form.
    const char first = image->empty() ? '\0' : (*image)[0];
    bool ok =
        image->size() <= 63 && ((first >= 'a' && first <= 'z') || (first >= '0' && first <= '9'));
    for (char c : *image)
      ok = ok &&
           ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_');
    if (!ok)
      return InvalidArgument(fmt::format(
          "image '{}' is not an image name (1 to 63 of [a-z0-9._-]); GET /v1/images lists them",
          *image));
    req.image = *image;
  }

  ASSIGN_OR_RETURN(const json::object* res, r.Object("resources"));
  if (res) {
    ASSIGN_OR_RETURN(req.resources, ParseResources(*res, defaults, ceiling, "resources"));
  }

  std::optional<std::map<std::string, std::string>> map;
  RETURN_IF_ERROR(r.StringMap("env", &map));
  if (map) {
    RETURN_IF_ERROR(ValidateEnv(*map, "env"));
    req.env = std::move(*map);
  }
  map.reset();
  RETURN_IF_ERROR(r.StringMap("labels", &map, 64));
  if (map) {
    RETURN_IF_ERROR(ValidateLabels(*map));
    req.labels = std::move(*map);
  }

  if (const json::value* meta = r.Raw("metadata")) {
    if (!meta->is_object()) return InvalidArgument("metadata must be an object");
    req.metadata_json = json::serialize(*meta);
    if (req.metadata_json.size() > kMaxMetadataBytes)
      return InvalidArgument(fmt::format("metadata is larger than {} bytes", kMaxMetadataBytes));
  }

  ASSIGN_OR_RETURN(const json::object* net, r.Object("network"));
  if (net) {
    ASSIGN_OR_RETURN(req.network, ParseNetworkSpec(*net));
  }

  RETURN_IF_ERROR(r.Int("ttl_seconds", &req.ttl_seconds, 1, kMaxSeconds));
  RETURN_IF_ERROR(r.Int("idle_timeout_seconds", &req.idle_timeout_seconds, 1, kMaxSeconds));
  std::optional<std::string> on_idle;
  RETURN_IF_ERROR(r.String("on_idle", &on_idle, 16));
  if (on_idle) {
    if (*on_idle != "pause" && *on_idle != "stop" && *on_idle != "terminate")
      return InvalidArgument(
          fmt::format("on_idle must be 'pause', 'stop' or 'terminate', got '{}'", *on_idle));
    req.on_idle = *on_idle;
  }

  std::optional<std::string> start_at;
  RETURN_IF_ERROR(r.String("start_at", &start_at, 64));
  if (start_at) {
    req.start_at = ParseTime(*start_at);
    if (!req.start_at)
      return InvalidArgument(fmt::format(
          "start_at '{}' is not an RFC 3339 time such as 2026-11-22T09:00:00Z", *start_at));
  }
  ASSIGN_OR_RETURN(req.volumes, ParseVolumeMounts(r.Raw("volumes")));
  if (const json::value* v = r.Raw("volumes"); v && !v->is_null()) req.volumes_given = true;
  std::optional<std::vector<std::string>> setup;
  RETURN_IF_ERROR(r.StringList("setup", &setup, kMaxSetupCommands));
  if (setup) {
    for (size_t i = 0; i < setup->size(); ++i) {
      const std::string& cmd = (*setup)[i];
      if (cmd.empty() || cmd.size() > kMaxSetupCommandBytes)
        return InvalidArgument(fmt::format("setup[{}] must be a shell command of 1 to {} bytes", i,
                                           kMaxSetupCommandBytes));
      if (cmd.find('\0') != std::string::npos)
        return InvalidArgument(fmt::format("setup[{}] contains a NUL byte", i));
    }
    req.setup = std::move(*setup);
  }
  if (const json::value* services = r.Raw("services"); services && !services->is_null()) {
    if (!services->is_array() || services->get_array().size() > kMaxSessionServices)
      return InvalidArgument(
          fmt::format("services must be a list of at most {} services", kMaxSessionServices));
    const json::array& list = services->get_array();
    for (size_t i = 0; i < list.size(); ++i) {
      std::string at = fmt::format("services[{}]", i);
      if (!list[i].is_object()) return InvalidArgument(at + " must be an object");
      ASSIGN_OR_RETURN(ServiceSpec spec, ParseServiceSpec(list[i].get_object(), at, true));
      for (const auto& before : req.services) {
        if (before.name == spec.name)
          return InvalidArgument(
              fmt::format("{}.name '{}' is taken by an earlier service", at, spec.name));
      }
      req.services.push_back(std::move(spec));
    }
  }

  RETURN_IF_ERROR(ParseRunFields(r, &req));

  std::optional<bool> wait;
  RETURN_IF_ERROR(r.Bool("wait", &wait));
  if (wait) req.wait = *wait;
  std::optional<bool> persist;
  RETURN_IF_ERROR(r.Bool("persist", &persist));
  if (persist) req.persist = *persist;
  if (req.persist) {
    for (const VolumeMount& m : req.volumes)
      if (m.path == kPersistPath)
        return InvalidArgument(fmt::format(
            "volumes: {} is where persist: true mounts the session's persistent volume", m.path));
  }
  return req;
}

Result<ExecRequest> ParseExecRequest(const json::object& body, int64_t max_timeout_seconds) {
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown(
      {"cmd", "command", "env", "cwd", "stdin", "timeout_seconds", "tag", "max_output_bytes"}));
  ExecRequest req;
  std::optional<std::vector<std::string>> cmd;
  std::optional<std::string> command;
  RETURN_IF_ERROR(r.StringList("cmd", &cmd, 4096));
  RETURN_IF_ERROR(r.String("command", &command, 1 << 20));
  if (cmd && command)
    return InvalidArgument("give either cmd (an argv array) or command, not both");
  if (cmd) {
    if (cmd->empty()) return InvalidArgument("cmd must not be empty");
    if (cmd->front().empty()) return InvalidArgument("cmd[0] must not be empty");
    for (size_t i = 0; i < cmd->size(); ++i)
      if ((*cmd)[i].find('\0') != std::string::npos)
        return InvalidArgument(fmt::format("cmd[{}] contains a NUL byte", i));
    req.argv = std::move(*cmd);
  } else if (command) {
    if (command->empty()) return InvalidArgument("command must not be empty");
    if (command->find('\0') != std::string::npos)
      return InvalidArgument("command contains a NUL byte");
    req.argv = {"/bin/sh", "-c", *command};
  } else {
    return InvalidArgument("cmd (an argv array) or command (a shell string) is required");
  }
  std::optional<std::map<std::string, std::string>> env;
  RETURN_IF_ERROR(r.StringMap("env", &env));
  if (env) {
    RETURN_IF_ERROR(ValidateEnv(*env, "env"));
    req.env = std::move(*env);
  }
  std::optional<std::string> cwd;
  RETURN_IF_ERROR(r.String("cwd", &cwd, 4096));
  if (cwd) {
    if (cwd->empty() || cwd->front() != '/' || cwd->find('\0') != std::string::npos)
      return InvalidArgument("cwd must be an absolute path");
    req.cwd = *cwd;
  }
  std::optional<std::string> stdin_data;
  RETURN_IF_ERROR(r.String("stdin", &stdin_data, 8 << 20));
  if (stdin_data) req.stdin_data = std::move(*stdin_data);
  std::optional<int64_t> timeout;
  RETURN_IF_ERROR(r.Int("timeout_seconds", &timeout, 0, max_timeout_seconds));
  if (timeout) req.timeout_ms = *timeout * 1000;
  std::optional<std::string> tag;
  RETURN_IF_ERROR(r.String("tag", &tag, 128));
  std::optional<int64_t> max_output;
  RETURN_IF_ERROR(r.Int("max_output_bytes", &max_output, 0, 16 << 20));
  if (max_output) req.max_output_bytes = *max_output;
  return req;
}

json::object ToJson(const Resources& r) {
  json::object o;
  o["cpus"] = r.cpus;
  o["memory_mb"] = r.memory_mb;
  o["pids"] = r.pids;
  o["disk_mb"] = r.disk_mb;
  return o;
}

json::object ToJson(const Session& s) {
  json::object o;
  o["id"] = s.id;
  o["name"] = s.name;
  o["title"] = s.title;
  o["owner"] = s.owner;
  o["state"] = ToString(s.state);
  o["activity"] = s.activity;
  o["reason"] = ToString(s.reason);
  o["image"] = s.image;
  if (s.template_name.empty())
    o["template"] = nullptr;
  else
    o["template"] = s.template_name;
  o["resources"] = ToJson(s.resources);
  json::object net;
  net["mode"] = s.network.mode;
  json::array allow, deny;
  for (const auto& c : s.network.allow_out) allow.emplace_back(c);
  for (const auto& c : s.network.deny_out) deny.emplace_back(c);
  net["allow_out"] = std::move(allow);
  net["deny_out"] = std::move(deny);
  o["network"] = std::move(net);
  o["env"] = ToJsonObject(s.env);
  o["labels"] = ToJsonObject(s.labels);
  boost::system::error_code ec;
  json::value meta = json::parse(s.metadata_json, ec);
  o["metadata"] = ec ? json::value(json::object()) : std::move(meta);
  o["created_at"] = FormatTime(s.created_at);
  SetTime(o, "start_at", s.start_at);
  SetTime(o, "started_at", s.started_at);
  SetTime(o, "expires_at", s.expires_at);
  if (s.ttl_seconds)
    o["ttl_seconds"] = *s.ttl_seconds;
  else
    o["ttl_seconds"] = nullptr;
  if (s.idle_timeout_seconds)
    o["idle_timeout_seconds"] = *s.idle_timeout_seconds;
  else
    o["idle_timeout_seconds"] = nullptr;
  o["on_idle"] = s.on_idle;
  SetTime(o, "last_activity_at", s.last_activity_at);
  SetTime(o, "paused_at", s.paused_at);
  SetTime(o, "ended_at", s.ended_at);
  SetTime(o, "deleted_at", s.deleted_at);
  o["parent_id"] = s.parent_id.empty() ? json::value(nullptr) : json::value(s.parent_id);
  o["workshop_id"] = s.workshop_id.empty() ? json::value(nullptr) : json::value(s.workshop_id);
  o["node"] = s.node;
  o["error"] = s.error.empty() ? json::value(nullptr) : json::value(s.error);
  o["queue_position"] = s.queue_position > 0 ? json::value(s.queue_position) : json::value(nullptr);
  o["volumes"] = ToJson(s.volumes);
  json::array setup;
  for (const auto& cmd : s.setup) setup.emplace_back(cmd);
  o["setup"] = std::move(setup);
  o["services"] = ServiceSpecsJson(s.services);
  o["type"] = s.run.type;
  o["command"] = s.run.command.empty() ? json::value(nullptr) : json::value(s.run.command);
  o["run_image_cmd"] = s.run.run_image_cmd;
  json::array deps;
  for (const auto& d : s.depends_on) deps.emplace_back(d);
  o["depends_on"] = std::move(deps);
  o["result"] = s.run.result.empty() ? json::value(nullptr) : json::value(s.run.result);
  o["exit_code"] = s.run.exit_code ? json::value(*s.run.exit_code) : json::value(nullptr);
  o["output_tail"] = s.run.result.empty() ? json::value(nullptr) : json::value(s.run.output_tail);
  return o;
}

json::object RunSpecJson(const RunSpec& run) {
  json::object o;
  o["type"] = run.type;
  if (!run.command.empty()) o["command"] = run.command;
  if (run.run_image_cmd) o["run_image_cmd"] = true;
  if (!run.result.empty()) o["result"] = run.result;
  if (run.exit_code) o["exit_code"] = *run.exit_code;
  if (!run.output_tail.empty()) o["output_tail"] = run.output_tail;
  return o;
}

RunSpec RunSpecFromJson(const json::value& v) {
  RunSpec run;
  if (!v.is_object()) return run;
  const json::object& o = v.get_object();
  if (std::string type = GetString(o, "type"); !type.empty()) run.type = type;
  run.command = GetString(o, "command");
  if (auto it = GetBool(o, "run_image_cmd")) run.run_image_cmd = *it;
  run.result = GetString(o, "result");
  run.exit_code = GetInt(o, "exit_code");
  run.output_tail = GetString(o, "output_tail");
  return run;
}

json::array ToJson(const std::vector<VolumeMount>& volumes) {
  json::array list;
  for (const auto& m : volumes) {
    json::object v;
    v["volume"] = m.volume;
    v["volume_id"] = m.volume_id;
    v["path"] = m.path;
    v["read_only"] = m.read_only;
    list.emplace_back(std::move(v));
  }
  return list;
}

std::vector<VolumeMount> VolumeMountsFromJson(const json::value& v) {
  std::vector<VolumeMount> out;
  if (!v.is_array()) return out;
  for (const auto& item : v.get_array()) {
    if (!item.is_object()) continue;
    const json::object& o = item.get_object();
    VolumeMount m;
    m.volume = GetString(o, "volume");
    m.volume_id = GetString(o, "volume_id");
    m.path = GetString(o, "path");
    if (auto ro = GetBool(o, "read_only")) m.read_only = *ro;
    out.push_back(std::move(m));
  }
  return out;
}

json::object ToJson(const HistoryEntry& e) {
  json::object o;
  o["from"] = e.from ? json::value(ToString(*e.from)) : json::value(nullptr);
  o["to"] = ToString(e.to);
  o["reason"] = ToString(e.reason);
  o["actor"] = e.actor;
  o["at"] = FormatTime(e.at);
  if (!e.message.empty()) o["message"] = e.message;
  return o;
}

json::object ToJson(const ExecResult& r) {
  json::object o;
  o["exit_code"] = r.exit_code;
  o["signal"] = r.signal;
  o["stdout"] = r.stdout_data;
  o["stderr"] = r.stderr_data;
  o["timed_out"] = r.timed_out;
  o["truncated"] = r.truncated;
  o["duration_ms"] = r.duration_ms;
  return o;
}

Result<Session> SessionFromJson(const json::object& o) {
  Session s;
  s.id = GetString(o, "id");
  if (s.id.empty()) return InvalidArgument("session JSON has no id");
  s.name = GetString(o, "name");
  s.title = GetString(o, "title");
  s.owner = GetString(o, "owner");
  auto state = ParseSessionState(GetString(o, "state"));
  if (!state) return InvalidArgument("session JSON has an unknown state");
  s.state = *state;
  s.activity = GetString(o, "activity");
  if (auto reason = ParseReason(GetString(o, "reason"))) s.reason = *reason;
  s.image = GetString(o, "image");
  s.template_name = GetString(o, "template");
  if (auto it = o.find("volumes"); it != o.end()) s.volumes = VolumeMountsFromJson(it->value());
  if (auto it = o.find("setup"); it != o.end() && it->value().is_array())
    for (const auto& v : it->value().get_array())
      if (v.is_string()) s.setup.emplace_back(v.get_string());
  if (auto it = o.find("services"); it != o.end()) {
    ASSIGN_OR_RETURN(s.services, ServiceSpecsFromJson(it->value(), "session JSON services"));
  }
  s.run = RunSpecFromJson(json::value(o));
  if (auto it = o.find("depends_on"); it != o.end() && it->value().is_array())
    for (const auto& v : it->value().get_array())
      if (v.is_string()) s.depends_on.emplace_back(v.get_string());
  if (auto it = o.find("resources"); it != o.end() && it->value().is_object()) {
    const auto& r = it->value().get_object();
    if (auto c = r.find("cpus"); c != r.end() && c->value().is_number())
      s.resources.cpus = c->value().to_number<double>();
    s.resources.memory_mb = GetInt(r, "memory_mb").value_or(0);
    s.resources.pids = GetInt(r, "pids").value_or(0);
    s.resources.disk_mb = GetInt(r, "disk_mb").value_or(0);
  }
  if (auto it = o.find("network"); it != o.end() && it->value().is_object()) {
    const json::object& net = it->value().get_object();
    s.network.mode = GetString(net, "mode");
    for (auto [key, list] : {std::pair{"allow_out", &s.network.allow_out},
                             std::pair{"deny_out", &s.network.deny_out}}) {
      if (auto l = net.find(key); l != net.end() && l->value().is_array())
        for (const auto& v : l->value().get_array())
          if (v.is_string()) list->emplace_back(v.get_string());
    }
  }
  s.env = GetStringMap(o, "env");
  s.labels = GetStringMap(o, "labels");
  if (auto it = o.find("metadata"); it != o.end()) s.metadata_json = json::serialize(it->value());
  s.created_at = GetTime(o, "created_at").value_or(TimePoint{});
  s.start_at = GetTime(o, "start_at");
  s.started_at = GetTime(o, "started_at");
  s.expires_at = GetTime(o, "expires_at");
  s.ttl_seconds = GetInt(o, "ttl_seconds");
  s.idle_timeout_seconds = GetInt(o, "idle_timeout_seconds");
  s.on_idle = GetString(o, "on_idle");
  s.last_activity_at = GetTime(o, "last_activity_at");
  s.paused_at = GetTime(o, "paused_at");
  s.ended_at = GetTime(o, "ended_at");
  s.deleted_at = GetTime(o, "deleted_at");
  s.parent_id = GetString(o, "parent_id");
  s.workshop_id = GetString(o, "workshop_id");
  s.node = GetString(o, "node");
  s.error = GetString(o, "error");
  s.queue_position = static_cast<int>(GetInt(o, "queue_position").value_or(0));
  return s;
}

Result<ExecResult> ExecResultFromJson(const json::object& o) {
  ExecResult r;
  auto code = GetInt(o, "exit_code");
  if (!code) return InvalidArgument("exec result has no exit_code");
  r.exit_code = static_cast<int>(*code);
  r.signal = static_cast<int>(GetInt(o, "signal").value_or(0));
  r.stdout_data = GetString(o, "stdout");
  r.stderr_data = GetString(o, "stderr");
  if (auto it = GetBool(o, "timed_out")) r.timed_out = *it;
  if (auto it = GetBool(o, "truncated")) r.truncated = *it;
  r.duration_ms = GetInt(o, "duration_ms").value_or(0);
  return r;
}

}  // namespace hutch::core

namespace hutch::core {

namespace {

// A duration in seconds (an integer or a fraction) as milliseconds, within [min_ms, max_ms].
Status Seconds(const FieldReader& r, std::string_view key, uint32_t* out_ms, int64_t min_ms,
               int64_t max_ms) {
  const json::value* v = r.Raw(key);
  if (!v || v->is_null()) return Status::Ok();
  if (!v->is_number()) return InvalidArgument(r.Path(key) + " must be a number of seconds");
  double ms = v->to_number<double>() * 1000.0;
  if (!(ms >= static_cast<double>(min_ms) && ms <= static_cast<double>(max_ms)))
    return InvalidArgument(fmt::format("{} must be between {} and {} seconds", r.Path(key),
                                       static_cast<double>(min_ms) / 1000.0,
                                       static_cast<double>(max_ms) / 1000.0));
  *out_ms = static_cast<uint32_t>(ms);
  return Status::Ok();
}

}  // namespace

Result<ServiceSpec> ParseServiceSpec(const json::object& body, const std::string& prefix,
                                     bool in_session) {
  FieldReader r(body, prefix);
  if (in_session) {
    RETURN_IF_ERROR(r.RejectUnknown({"name", "cmd", "command", "env", "cwd", "port", "restart",
                                     "health", "ready_timeout_seconds"}));
  } else {
    RETURN_IF_ERROR(
        r.RejectUnknown({"name", "cmd", "command", "env", "cwd", "port", "restart", "health"}));
  }
  ServiceSpec spec;
  RETURN_IF_ERROR(Seconds(r, "ready_timeout_seconds", &spec.ready_timeout_ms, 1000, 3600 * 1000));
  std::optional<std::string> name;
  RETURN_IF_ERROR(r.String("name", &name, 63));
  if (!name) return InvalidArgument(r.Path("name") + " is required");
  spec.name = *name;
  json::object exec_fields;
  for (std::string_view key : {"cmd", "command", "env", "cwd"}) {
    if (auto it = body.find(key); it != body.end()) exec_fields[key] = it->value();
  }
  auto exec = ParseExecRequest(exec_fields, 0);
  if (!exec.ok()) {
    return InvalidArgument(prefix.empty() ? exec.status().message()
                                          : prefix + ": " + exec.status().message());
  }
  spec.exec = std::move(*exec);
  std::optional<int64_t> port;
  RETURN_IF_ERROR(r.Int("port", &port, 1, 65535));
  if (port) spec.port = static_cast<uint16_t>(*port);
  std::optional<std::string> restart;
  RETURN_IF_ERROR(r.String("restart", &restart, 32));
  if (restart) spec.restart = *restart;
  ASSIGN_OR_RETURN(const json::object* health, r.Object("health"));
  if (health) {
    FieldReader h(*health, r.Path("health"));
    RETURN_IF_ERROR(
        h.RejectUnknown({"http_path", "tcp", "interval_seconds", "timeout_seconds", "retries"}));
    std::optional<std::string> path;
    RETURN_IF_ERROR(h.String("http_path", &path, 1024));
    std::optional<bool> tcp;
    RETURN_IF_ERROR(h.Bool("tcp", &tcp));
    if (path && tcp.value_or(false))
      return InvalidArgument(r.Path("health") + ": give http_path or tcp, not both");
    if (!path && !tcp.value_or(false))
      return InvalidArgument(r.Path("health") + " needs http_path (\"/ready\") or tcp: true");
    spec.health.kind = path ? "http" : "tcp";
    if (path) spec.health.http_path = *path;
    RETURN_IF_ERROR(Seconds(h, "interval_seconds", &spec.health.interval_ms, 100, 3600 * 1000));
    RETURN_IF_ERROR(Seconds(h, "timeout_seconds", &spec.health.timeout_ms, 100, 60 * 1000));
    std::optional<int64_t> retries;
    RETURN_IF_ERROR(h.Int("retries", &retries, 1, 100));
    if (retries) spec.health.retries = static_cast<uint32_t>(*retries);
  }
  std::string bad = ServiceSpecError(spec);
  if (!bad.empty()) return InvalidArgument(prefix.empty() ? bad : prefix + ": " + bad);
  return spec;
}

json::object ServiceSpecJson(const ServiceSpec& spec) {
  json::object o;
  o["name"] = spec.name;
  json::array cmd;
  for (const auto& a : spec.exec.argv) cmd.emplace_back(a);
  o["cmd"] = std::move(cmd);
  if (!spec.exec.env.empty()) {
    json::object env;
    for (const auto& [k, v] : spec.exec.env) env[k] = v;
    o["env"] = std::move(env);
  }
  if (!spec.exec.cwd.empty()) o["cwd"] = spec.exec.cwd;
  if (spec.port) o["port"] = spec.port;
  o["restart"] = spec.restart;
  if (!spec.health.kind.empty()) {
    json::object h;
    if (spec.health.kind == "http")
      h["http_path"] = spec.health.http_path;
    else
      h["tcp"] = true;
    h["interval_seconds"] = spec.health.interval_ms / 1000.0;
    h["timeout_seconds"] = spec.health.timeout_ms / 1000.0;
    h["retries"] = spec.health.retries;
    o["health"] = std::move(h);
  }
  o["ready_timeout_seconds"] = spec.ready_timeout_ms / 1000.0;
  return o;
}

json::array ServiceSpecsJson(const std::vector<ServiceSpec>& specs) {
  json::array list;
  for (const auto& spec : specs) list.emplace_back(ServiceSpecJson(spec));
  return list;
}

Result<std::vector<ServiceSpec>> ServiceSpecsFromJson(const json::value& v, std::string_view what) {
  std::vector<ServiceSpec> out;
  if (v.is_null()) return out;
  if (!v.is_array()) return InvalidArgument(fmt::format("{} is not a list", what));
  const json::array& list = v.get_array();
  for (size_t i = 0; i < list.size(); ++i) {
    std::string at = fmt::format("{}[{}]", what, i);
    if (!list[i].is_object()) return InvalidArgument(at + " is not an object");
    ASSIGN_OR_RETURN(ServiceSpec spec, ParseServiceSpec(list[i].get_object(), at, true));
    out.push_back(std::move(spec));
  }
  return out;
}

}  // namespace hutch::core
