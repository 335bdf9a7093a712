// Agents and messages (docs/agents.md): an agent is a program that runs inside a session as a
// supervised process and processes the messages sent to that session; agent_state is Raworc's
// state machine beside the session's own state. Values and the transition table; no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "common/time.h"

namespace hutch::core {

// A registered agent (/v1/agents).
struct AgentDef {
  std::string id;     // "agt_…"
  std::string name;   // DNS label, unique per owner
  std::string owner;  // user id
  std::string description;
  std::string command;                     // a shell command, run by /bin/sh -c in the session
  std::string config_json = "{}";          // free JSON object handed to the agent
  std::map<std::string, std::string> env;  // extra environment
  std::string guardrails_json = "{}";      // JSON object (docs/agents.md, "Guardrails")
  TimePoint created_at;
  TimePoint updated_at;
};

// Raworc's states (docs/agents.md, "States").
enum class AgentState { kInit, kReady, kIdle, kBusy, kError };

std::string_view AgentStateName(AgentState s);  // "INIT", "READY", …
std::optional<AgentState> ParseAgentState(std::string_view name);
// The transition table: INIT → READY | ERROR; READY → IDLE | BUSY | ERROR; IDLE → READY |
// ERROR; BUSY → READY | ERROR; ERROR → INIT | READY.
bool CanTransitionAgentState(AgentState from, AgentState to);

// One agent of a session: the definition as it was when the session was made (a later change
// of the agent does not reach running sessions).
struct SessionAgent {
  std::string id;
  std::string name;
  std::string command;
  std::string config_json = "{}";
  std::map<std::string, std::string> env;
};

// A session's agents and its agent_state (one row per session that has agents).
struct SessionAgents {
  std::string session_id;
  std::vector<SessionAgent> agents;
  int64_t waiting_timeout_seconds = 300;
  AgentState state = AgentState::kInit;
  std::string reason;  // why the last change happened
  TimePoint updated_at;
};

// Routing of a message (`to`): a named agent, the first free one (""), or every agent ("*").
inline constexpr std::string_view kToAll = "*";

// A message of a session: from a user to its agents, or an agent's reply.
struct Message {
  int64_t id = 0;  // assigned by the store, increasing across the server
  std::string session_id;
  std::string role;    // "user" or "agent"
  std::string sender;  // user id, or the agent's name
  std::string to;      // user messages: an agent's name, "" (first free) or "*" (all)
  std::string content;
  std::string metadata_json = "{}";
  int64_t reply_to = 0;  // an agent's reply: the message it answers (0: none)
  TimePoint created_at;
};

// An agent's acknowledgement of a message (at-least-once delivery: a message is delivered
// until acknowledged).
struct MessageAck {
  int64_t message_id = 0;
  std::string agent;
};

json::object ToJson(const AgentDef& a);
json::object ToJson(const Message& m);

// Agent ids/names, message lists, and the env as JSON text for the store.
std::string SessionAgentsToJson(const std::vector<SessionAgent>& agents);
std::vector<SessionAgent> SessionAgentsFromJson(std::string_view text);

}  // namespace hutch::core
