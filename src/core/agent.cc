#include "core/agent.h"

#include <array>
#include <utility>

namespace hutch::core {

namespace {

constexpr std::array<std::pair<AgentState, std::string_view>, 5> kNames = {{
    {AgentState::kInit, "INIT"},
    {AgentState::kReady, "READY"},
    {AgentState::kIdle, "IDLE"},
    {AgentState::kBusy, "BUSY"},
    {AgentState::kError, "ERROR"},
}};

// Raworc's table, as its documentation lists it.
constexpr std::array<std::pair<AgentState, AgentState>, 11> kAllowed = {{
    {AgentState::kInit, AgentState::kReady},
    {AgentState::kInit, AgentState::kError},
    {AgentState::kReady, AgentState::kIdle},
    {AgentState::kReady, AgentState::kBusy},
    {AgentState::kReady, AgentState::kError},
    {AgentState::kIdle, AgentState::kReady},
    {AgentState::kIdle, AgentState::kError},
    {AgentState::kBusy, AgentState::kReady},
    {AgentState::kBusy, AgentState::kError},
    {AgentState::kError, AgentState::kInit},
    {AgentState::kError, AgentState::kReady},
}};

json::value ParseOrEmpty(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return json::object();
  return v;
}

}  // namespace

std::string_view AgentStateName(AgentState s) {
  for (const auto& [state, name] : kNames)
    if (state == s) return name;
  return "ERROR";
}

std::optional<AgentState> ParseAgentState(std::string_view name) {
  for (const auto& [state, n] : kNames)
    if (n == name) return state;
  return std::nullopt;
}

bool CanTransitionAgentState(AgentState from, AgentState to) {
  for (const auto& [f, t] : kAllowed)
    if (f == from && t == to) return true;
  return false;
}

json::object ToJson(const AgentDef& a) {
  json::object o;
  o["id"] = a.id;
  o["name"] = a.name;
  o["owner"] = a.owner;
  o["description"] = a.description;
  o["command"] = a.command;
  o["config"] = ParseOrEmpty(a.config_json);
  o["env"] = ToJsonObject(a.env);
  o["guardrails"] = ParseOrEmpty(a.guardrails_json);
  o["created_at"] = FormatTime(a.created_at);
  o["updated_at"] = FormatTime(a.updated_at);
  return o;
}

json::object ToJson(const Message& m) {
  json::object o;
  o["id"] = m.id;
  o["session_id"] = m.session_id;
  o["role"] = m.role;
  o["sender"] = m.sender;
  if (m.role == "user") o["to"] = m.to.empty() ? json::value(nullptr) : json::value(m.to);
  o["content"] = m.content;
  o["metadata"] = ParseOrEmpty(m.metadata_json);
  if (m.reply_to != 0) o["reply_to"] = m.reply_to;
  o["created_at"] = FormatTime(m.created_at);
  return o;
}

std::string SessionAgentsToJson(const std::vector<SessionAgent>& agents) {
  json::array a;
  for (const SessionAgent& s : agents) {
    json::object o;
    o["id"] = s.id;
    o["name"] = s.name;
    o["command"] = s.command;
    o["config"] = ParseOrEmpty(s.config_json);
    o["env"] = ToJsonObject(s.env);
    a.emplace_back(std::move(o));
  }
  return json::serialize(a);
}

std::vector<SessionAgent> SessionAgentsFromJson(std::string_view text) {
  std::vector<SessionAgent> out;
  json::value v = ParseOrEmpty(text);
  if (!v.is_array()) return out;
  for (const json::value& e : v.as_array()) {
    if (!e.is_object()) continue;
    const json::object& o = e.as_object();
    SessionAgent s;
    auto str = [&](std::string_view k) -> std::string {
      const json::value* f = o.if_contains(k);
      return f && f->is_string() ? std::string(f->as_string()) : std::string();
    };
    s.id = str("id");
    s.name = str("name");
    s.command = str("command");
    if (const json::value* c = o.if_contains("config")) s.config_json = json::serialize(*c);
    if (const json::value* env = o.if_contains("env"); env && env->is_object())
      for (const auto& kv : env->as_object())
        if (kv.value().is_string()) s.env[kv.key()] = std::string(kv.value().as_string());
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace hutch::core
