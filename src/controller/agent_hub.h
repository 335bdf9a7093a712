// One session's message hub (docs/agents.md): a thread that holds the message relay to the
// session's agent (agent/message_client.h), starts the session's agent processes as services,
// delivers the session's messages to them (at-least-once: what is not acknowledged is delivered
// again, after a crash of an agent or of the server), stores their replies, and drives
// agent_state from what they report. Internal to AgentService (agents.h).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "core/agent.h"
#include "core/guardrails.h"
#include "store/store.h"

namespace hutch::agent {
class MessageBridgeClient;
}  // namespace hutch::agent

namespace hutch::controller {

class SessionService;

// What the session JSON shows of one agent.
struct AgentView {
  std::string id;
  std::string name;
  std::string status = "offline";  // offline | idle | busy | error (what it reported last)
  int instances = 0;               // connections to the message socket with its name
};

class AgentHub {
 public:
  // `notify` wakes event and message followers after a commit.
  AgentHub(store::Store& store, SessionService& service, std::function<void()> notify,
           core::SessionAgents row, std::string owner);
  ~AgentHub();
  AgentHub(const AgentHub&) = delete;
  AgentHub& operator=(const AgentHub&) = delete;

  // A message was stored for the session: deliver it (and wake an IDLE session's state).
  void Wake();
  std::vector<AgentView> View();
  core::AgentState state();
  // PUT /v1/sessions/{id}: idleness is measured against this from now on.
  void SetWaitingTimeout(int64_t seconds) { waiting_timeout_seconds_ = seconds; }

 private:
  struct Conn {
    std::string agent;  // from its hello; empty before
    bool busy = false;
    bool error = false;
    bool reported = false;          // said busy or idle since its hello: it is up
    int64_t inflight = 0;           // the message delivered and not acknowledged yet
    int64_t inflight_since_ms = 0;  // steady clock: when it was delivered
  };

  void Run();
  void Serve(agent::MessageBridgeClient& bridge);
  void StartAgentProcesses();
  void LoadMessages();
  void Dispatch(agent::MessageBridgeClient& bridge);
  void Handle(agent::MessageBridgeClient& bridge, uint32_t conn, const std::string& line);
  void Closed(uint32_t conn);
  void Acked(int64_t message_id, const std::string& agent);
  bool Satisfied(const core::Message& m) const;
  // Moves agent_state to `to` by the table, through READY where there is no direct move.
  void MoveTo(core::AgentState to, const std::string& reason);
  void Commit(core::AgentState to, const std::string& reason);
  // From the reports: READY or BUSY once every agent has said hello and reported a status, else
  // unchanged.
  void Derive(const std::string& reason);
  void CheckIdle();
  // max_run_seconds_per_message: fails a message an agent held past it (docs/agents.md).
  void CheckRunTime();
  bool AllConnected() const;
  void WaitFor(int ms);

  store::Store& store_;
  SessionService& service_;
  std::function<void()> notify_;
  const std::string owner_;
  const core::SessionAgents row_;
  std::atomic<int64_t> waiting_timeout_seconds_;
  const core::Guardrails guardrails_;  // the session's (its agents carry them)

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;               // GUARDED_BY(mu_)
  bool woken_ = false;              // GUARDED_BY(mu_): a message came; Serve loads it
  bool kick_ = false;               // GUARDED_BY(mu_): ends a WaitFor early (a message came)
  core::AgentState state_;          // GUARDED_BY(mu_) for readers; written by the hub thread
  std::map<uint32_t, Conn> conns_;  // GUARDED_BY(mu_)

  // The hub thread's alone.
  bool processes_started_ = false;
  int64_t loaded_after_ = 0;
  std::vector<core::Message> pending_;  // user messages not acknowledged as their routing asks
  std::set<std::pair<int64_t, std::string>> acks_;
  int64_t last_message_ms_ = 0;  // steady clock: when the last message or reply came
  // Wake() makes it readable, so a hub waiting on its relay delivers a new message at once
  // instead of at the end of its poll.
  UniqueFd wake_fd_;
  std::thread thread_;
};

}  // namespace hutch::controller
