// Agents and messages (docs/agents.md): the agent registry (/v1/agents), sessions made with
// agents, their messages, and one AgentHub per live session with agents that delivers them.
// Every method blocks (store reads): call it off the network threads.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "controller/agent_hub.h"
#include "core/agent.h"
#include "core/guardrails.h"
#include "core/principal.h"
#include "core/session.h"
#include "store/store.h"

namespace hutch::controller {

class SessionService;

// The fields of POST /v1/agents (all set) or PATCH (those present).
struct AgentSpec {
  std::optional<std::string> name;
  std::optional<std::string> description;
  std::optional<std::string> command;
  std::optional<std::string> config_json;
  std::optional<std::map<std::string, std::string>> env;
  std::optional<std::string> guardrails_json;
};

// What POST /v1/sessions adds for a session with agents.
struct SessionAgentsRequest {
  std::vector<std::string> agent_ids;  // ids or names of the caller's agents
  std::optional<std::string> starting_prompt;
  int64_t waiting_timeout_seconds = 300;
  // The request's guardrails (JSON object; "" none) and, from a template's spec.agents, a config
  // per agent (by the name or id agent_ids gives) merged over the agent's own.
  std::string guardrails_json;
  std::map<std::string, std::string> configs;
};

// The agents of a session made from another (remix, restore): those of the request where given,
// else the other's; its messages copied (every one acknowledged: nothing is delivered again).
struct SessionAgentsCopy {
  std::optional<std::vector<std::string>> agent_ids;
  std::optional<std::string> starting_prompt;
  std::optional<int64_t> waiting_timeout_seconds;
  bool copy_messages = false;
};

// A session's agents as its JSON shows them.
struct SessionAgentsView {
  core::AgentState state = core::AgentState::kInit;
  std::string reason;
  int64_t waiting_timeout_seconds = 0;
  std::vector<AgentView> agents;
};

class AgentService {
 public:
  // `notify` wakes event and message followers after a commit (EventBus::Notify).
  AgentService(store::Store& store, SessionService& sessions, std::function<void()> notify);
  ~AgentService();

  Result<core::AgentDef> Create(const core::Principal& who, const AgentSpec& spec);
  Result<core::AgentDef> Get(const core::Principal& who, std::string_view id_or_name);
  Result<std::vector<core::AgentDef>> List(const core::Principal& who);
  Result<core::AgentDef> Update(const core::Principal& who, std::string_view id_or_name,
                                const AgentSpec& spec);
  Status Delete(const core::Principal& who, std::string_view id_or_name);

  // Resolves the agents a new session asks for (not_found naming the first that is not the
  // caller's), before the session is made.
  Result<std::vector<core::SessionAgent>> Resolve(const core::Principal& who,
                                                  const SessionAgentsRequest& req);
  // Records the new session's agents, stores the starting prompt as its first message and
  // starts its hub.
  Status Attach(const core::Principal& who, const core::Session& s,
                std::vector<core::SessionAgent> agents, const SessionAgentsRequest& req);
  // As Attach, for session `s` made from `from_session` (remix, restore).
  Status AttachCopy(const core::Principal& who, const core::Session& s,
                    const std::string& from_session, const SessionAgentsCopy& copy);
  // PUT /v1/sessions/{id}'s waiting_timeout_seconds: failed_precondition-free; not_found when the
  // session has no agents.
  Status SetWaitingTimeout(const core::Session& s, int64_t seconds);
  // The guardrails a session with these agents gets: the strictest of the request's and every
  // agent's (invalid_argument when two ask for different networks).
  Result<core::Guardrails> EffectiveGuardrails(const std::vector<core::SessionAgent>& agents,
                                               const SessionAgentsRequest& req);
  // nullopt when the session has no agents.
  std::optional<SessionAgentsView> ViewOf(const core::Session& s);

  // POST …/messages: stored, then delivered (a session paused because it was IDLE is resumed
  // first). `to`: an agent's name, "" for the first free one, "*" for all.
  Result<core::Message> Post(const core::Principal& who, std::string_view id_or_name,
                             std::string content, std::string metadata_json, std::string to);
  Result<std::vector<core::Message>> Messages(const core::Principal& who,
                                              std::string_view id_or_name, int64_t after, int limit,
                                              core::Session* touched = nullptr);

  // At server start: a hub for every live session with agents.
  void Start();

 private:
  AgentHub* HubFor(const core::Session& s);
  // Copies `from`'s messages to `to` (ids mapped for reply_to), each acknowledged by `agents`.
  // max_message_bytes (413) and max_messages_per_minute (429) of the session's guardrails; a
  // message that passes is counted.
  Status CheckMessageGuardrails(const core::SessionAgents& row, size_t content_bytes);
  Status CopyMessages(const std::string& from, const std::string& to,
                      const std::vector<core::SessionAgent>& agents);

  store::Store& store_;
  SessionService& sessions_;
  std::function<void()> notify_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<AgentHub>> hubs_;  // GUARDED_BY(mu_)
  // When each session's recent messages came (max_messages_per_minute); in memory: a restarted
  // server starts the minute afresh.
  std::map<std::string, std::deque<TimePoint>> recent_;  // GUARDED_BY(mu_)
};

}  // namespace hutch::controller
