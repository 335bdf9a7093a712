#include "drivers/local/driver_state.h"

#include <fmt/format.h>

#include "common/json.h"

namespace hutch::drivers::local {

std::string EncodeState(const LocalSandboxState& s) {
  json::object o;
  o["version"] = s.version;
  o["agent_pid"] = s.agent_pid;
  o["agent_start_time"] = s.agent_start_time;
  o["socket_path"] = s.socket_path;
  o["session_dir"] = s.session_dir;
  o["cgroup_version"] = s.cgroup_version;
  json::array cgroups;
  for (const auto& c : s.cgroups) cgroups.emplace_back(c);
  o["cgroups"] = std::move(cgroups);
  if (s.cgroup_leaves) o["cgroup_leaves"] = true;
  if (!s.veth.empty()) {
    o["veth"] = s.veth;
    o["address"] = s.address;
    o["nat_rules"] = s.nat_rules;
  }
  if (s.id_slot >= 0) o["id_slot"] = s.id_slot;
  if (!s.secret.empty()) o["secret"] = s.secret;
  if (s.agent_port > 0) o["agent_port"] = s.agent_port;
  return json::serialize(o);
}

Result<LocalSandboxState> DecodeState(std::string_view text) {
  ASSIGN_OR_RETURN(json::object o, ParseJsonObject(text));
  FieldReader r(o, "driver_state");
  LocalSandboxState s;
  std::optional<int64_t> version, pid, start, slot, agent_port;
  std::optional<std::string> socket, dir, cgv, veth, address, secret;
  std::optional<std::vector<std::string>> cgroups;
  RETURN_IF_ERROR(r.Int("version", &version, 1, 1000));
  RETURN_IF_ERROR(r.Int("agent_pid", &pid, 0, INT32_MAX));
  RETURN_IF_ERROR(r.Int("agent_start_time", &start, 0, INT64_MAX));
  RETURN_IF_ERROR(r.String("socket_path", &socket));
  RETURN_IF_ERROR(r.String("session_dir", &dir));
  RETURN_IF_ERROR(r.String("cgroup_version", &cgv));
  RETURN_IF_ERROR(r.StringList("cgroups", &cgroups, 64));
  RETURN_IF_ERROR(r.String("veth", &veth, 15));
  RETURN_IF_ERROR(r.String("address", &address, 15));
  std::optional<bool> nat_rules, leaves;
  RETURN_IF_ERROR(r.Bool("nat_rules", &nat_rules));
  RETURN_IF_ERROR(r.Bool("cgroup_leaves", &leaves));
  RETURN_IF_ERROR(r.Int("id_slot", &slot, 0, INT32_MAX));
  RETURN_IF_ERROR(r.String("secret", &secret, 128));
  RETURN_IF_ERROR(r.Int("agent_port", &agent_port, 1, 65535));
  if (version && *version != 1) {
    return InvalidArgument(fmt::format("driver_state.version {} is not known", *version));
  }
  s.agent_pid = static_cast<pid_t>(pid.value_or(0));
  s.agent_start_time = static_cast<uint64_t>(start.value_or(0));
  s.socket_path = socket.value_or("");
  s.session_dir = dir.value_or("");
  s.cgroup_version = cgv.value_or("");
  s.cgroups = cgroups.value_or(std::vector<std::string>{});
  s.veth = veth.value_or("");
  s.address = address.value_or("");
  s.nat_rules = nat_rules.value_or(false);
  s.cgroup_leaves = leaves.value_or(false);
  s.id_slot = slot.value_or(-1);
  s.secret = secret.value_or("");
  s.agent_port = static_cast<int>(agent_port.value_or(0));
  return s;
}

}  // namespace hutch::drivers::local
