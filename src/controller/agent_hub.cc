#include "controller/agent_hub.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>

#include "agent/bridge_protocol.h"
#include "agent/message_client.h"
#include "common/log.h"
#include "controller/sandbox_agent.h"
#include "controller/session_service.h"

namespace hutch::controller {

namespace {

using core::AgentState;

constexpr int kPollMs = 100;
// How often the hub looks at the session's own state while it serves (paused, ended).
constexpr int64_t kStateCheckMs = 250;

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

core::Principal System() {
  core::Principal p;
  p.user_id = "system";
  p.admin = true;
  return p;
}

std::string Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

int64_t Int(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v && v->is_int64()) return v->as_int64();
  if (v && v->is_uint64()) return static_cast<int64_t>(v->as_uint64());
  return 0;
}

std::string ErrorLine(std::string_view message) {
  return json::serialize(json::object{{"type", "error"}, {"message", message}});
}

}  // namespace

namespace {

// The session's guardrails, as its agents carry them (agents.cc, Attach).
core::Guardrails GuardrailsOf(const core::SessionAgents& row) {
  core::Guardrails g;
  for (const core::SessionAgent& a : row.agents) {
    auto it = a.env.find(std::string(core::kGuardrailsEnv));
    if (it == a.env.end()) continue;
    auto parsed = core::GuardrailsFromText(it->second);
    if (!parsed.ok()) continue;
    if (auto both = core::Strictest(g, *parsed); both.ok()) g = *both;
  }
  return g;
}

}  // namespace

AgentHub::AgentHub(store::Store& store, SessionService& service, std::function<void()> notify,
                   core::SessionAgents row, std::string owner)
    : store_(store),
      service_(service),
      notify_(std::move(notify)),
      owner_(std::move(owner)),
      row_(std::move(row)),
      waiting_timeout_seconds_(row_.waiting_timeout_seconds),
      guardrails_(GuardrailsOf(row_)),
      state_(row_.state) {
  last_message_ms_ = SteadyMs();
  wake_fd_ = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  thread_ = std::thread([this] { Run(); });
}

AgentHub::~AgentHub() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void AgentHub::Wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
    kick_ = true;
  }
  cv_.notify_all();
  if (wake_fd_.get() >= 0) {
    uint64_t one = 1;
    (void)!write(wake_fd_.get(), &one, sizeof one);
  }
}

core::AgentState AgentHub::state() {
  std::lock_guard lock(mu_);
  return state_;
}

std::vector<AgentView> AgentHub::View() {
  std::lock_guard lock(mu_);
  std::vector<AgentView> out;
  for (const core::SessionAgent& a : row_.agents) {
    AgentView v;
    v.id = a.id;
    v.name = a.name;
    for (const auto& [id, c] : conns_) {
      if (c.agent != a.name) continue;
      ++v.instances;
      std::string st = c.error ? "error" : c.busy ? "busy" : "idle";
      if (v.status == "offline" || st == "error" || (st == "busy" && v.status == "idle"))
        v.status = st;
    }
    out.push_back(std::move(v));
  }
  return out;
}

void AgentHub::WaitFor(int ms) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stop_ || kick_; });
  kick_ = false;
}

void AgentHub::Run() {
  LoadMessages();
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    Result<core::Session> s = store_.GetSession("", row_.session_id);
    if (!s.ok() || core::IsFinal(s->state)) return;  // the session ended: nothing to deliver
    if (s->state != core::SessionState::kRunning) {
      WaitFor(kPollMs * 2);
      continue;
    }
    auto target = service_.Agent(System(), row_.session_id);
    if (!target.ok()) {
      WaitFor(kPollMs * 2);
      continue;
    }
    auto bridge = agent::MessageBridgeClient::Open(*target->transport);
    if (!bridge.ok()) {
      LOG_SESSION_WARN(row_.session_id, "message relay: {}", bridge.status().ToString());
      WaitFor(kPollMs * 5);
      continue;
    }
    if (!processes_started_) StartAgentProcesses();
    Serve(*bridge);
    std::lock_guard lock(mu_);
    conns_.clear();  // the agent replays the hello of every connection still open
  }
}

void AgentHub::StartAgentProcesses() {
  SandboxAgent sandbox(service_);
  for (const core::SessionAgent& a : row_.agents) {
    core::ServiceSpec spec;
    spec.name = "agent-" + a.name;
    spec.exec.argv = {"/bin/sh", "-c", a.command};
    spec.exec.env = a.env;
    spec.exec.env["HUTCH_AGENT_NAME"] = a.name;
    spec.exec.env["HUTCH_AGENT_SOCKET"] = agent::kMessageSocketPath;
    spec.exec.env["HUTCH_AGENT_CONFIG"] = a.config_json;
    spec.exec.env["HUTCH_SESSION_ID"] = row_.session_id;
    spec.restart = "always";
    auto started = sandbox.StartService(System(), row_.session_id, spec);
    // After a server restart the services run already: that is what was wanted.
    if (!started.ok() && started.status().code() != Code::kConflict)
      LOG_SESSION_WARN(row_.session_id, "start agent {}: {}", a.name, started.status().ToString());
  }
  processes_started_ = true;
}

void AgentHub::LoadMessages() {
  if (loaded_after_ == 0) {
    auto acks = store_.ListAcks(row_.session_id);
    if (acks.ok())
      for (const core::MessageAck& a : *acks) acks_.insert({a.message_id, a.agent});
  }
  for (;;) {
    auto page = store_.ListMessages(row_.session_id, loaded_after_, 500);
    if (!page.ok()) {
      LOG_SESSION_WARN(row_.session_id, "read messages: {}", page.status().ToString());
      return;
    }
    for (core::Message& m : *page) {
      loaded_after_ = m.id;
      if (m.role == "user" && !Satisfied(m)) pending_.push_back(std::move(m));
    }
    if (page->size() < 500) return;
  }
}

bool AgentHub::Satisfied(const core::Message& m) const {
  if (m.to.empty()) {
    auto it = acks_.lower_bound({m.id, ""});
    return it != acks_.end() && it->first == m.id;
  }
  if (m.to == core::kToAll) {
    for (const core::SessionAgent& a : row_.agents)
      if (!acks_.count({m.id, a.name})) return false;
    return true;
  }
  return acks_.count({m.id, m.to}) > 0;
}

void AgentHub::Serve(agent::MessageBridgeClient& bridge) {
  int64_t next_state_check = 0;
  for (;;) {
    bool woken;
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
      woken = woken_;
      woken_ = false;
    }
    if (woken) {
      LoadMessages();
      last_message_ms_ = SteadyMs();
      if (state() == AgentState::kIdle) MoveTo(AgentState::kReady, "message");
    }
    if (SteadyMs() >= next_state_check) {
      next_state_check = SteadyMs() + kStateCheckMs;
      Result<core::Session> s = store_.GetSession("", row_.session_id);
      if (!s.ok() || s->state != core::SessionState::kRunning) return;
    }
    Dispatch(bridge);
    auto event = bridge.Next(kPollMs, wake_fd_.get());
    if (wake_fd_.get() >= 0) {
      uint64_t drained;
      (void)!read(wake_fd_.get(), &drained, sizeof drained);
    }
    if (!event.ok()) return;
    CheckRunTime();
    if (event->has_value()) {
      const auto& e = **event;
      if (e.kind == agent::MessageBridgeClient::Event::Kind::kLine) {
        Handle(bridge, e.conn, e.line);
      } else {
        Closed(e.conn);
      }
      // Take what else has come before delivering: a reply and the status after it.
      continue;
    }
    CheckIdle();
  }
}

void AgentHub::Dispatch(agent::MessageBridgeClient& bridge) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (Satisfied(*it)) {
      it = pending_.erase(it);
      continue;
    }
    const core::Message& m = *it;
    std::vector<uint32_t> targets;
    {
      std::lock_guard lock(mu_);
      bool in_flight = false;
      std::set<std::string> holding;  // agents that hold this message already
      for (const auto& [id, c] : conns_)
        if (c.inflight == m.id) {
          in_flight = true;
          holding.insert(c.agent);
        }
      for (auto& [id, c] : conns_) {
        if (c.agent.empty() || c.inflight != 0) continue;
        if (m.to.empty()) {
          if (in_flight || c.busy || !targets.empty()) continue;
        } else if (m.to == core::kToAll) {
          if (acks_.count({m.id, c.agent}) || holding.count(c.agent)) continue;
          holding.insert(c.agent);
        } else if (c.agent != m.to || in_flight || !targets.empty()) {
          continue;
        }
        targets.push_back(id);
        c.inflight = m.id;
        c.inflight_since_ms = SteadyMs();
      }
    }
    if (!targets.empty()) {
      json::object o{{"type", "message"}, {"id", m.id}, {"content", m.content},
                     {"from", m.sender},  {"to", m.to}, {"created_at", FormatTime(m.created_at)}};
      boost::system::error_code ec;
      json::value meta = json::parse(m.metadata_json, ec);
      o["metadata"] = ec ? json::value(json::object()) : meta;
      std::string line = json::serialize(o);
      for (uint32_t conn : targets) (void)bridge.SendLine(conn, line);
    }
    ++it;
  }
}

void AgentHub::Handle(agent::MessageBridgeClient& bridge, uint32_t conn, const std::string& line) {
  boost::system::error_code ec;
  json::value v = json::parse(line, ec);
  if (ec || !v.is_object()) {
    (void)bridge.SendLine(conn, ErrorLine("not a JSON object"));
    return;
  }
  const json::object& o = v.as_object();
  const std::string type = Str(o, "type");
  std::string agent;
  {
    std::lock_guard lock(mu_);
    agent = conns_[conn].agent;
  }
  if (type == "hello") {
    std::string name = Str(o, "agent");
    bool known = false;
    for (const core::SessionAgent& a : row_.agents) known = known || a.name == name;
    if (!known) {
      (void)bridge.SendLine(conn, ErrorLine(fmt::format("no agent '{}' in this session", name)));
      (void)bridge.CloseLocal(conn);
      std::lock_guard lock(mu_);
      conns_.erase(conn);
      return;
    }
    {
      std::lock_guard lock(mu_);
      conns_[conn].agent = name;
    }
    // An agent that comes back after an error starts over: INIT until every agent is there.
    if (state() == AgentState::kError) MoveTo(AgentState::kInit, "agent_started: " + name);
    Derive("agents_ready");
    return;
  }
  if (agent.empty()) {
    (void)bridge.SendLine(conn, ErrorLine("say hello first"));
    return;
  }
  if (type == "status") {
    std::string status = Str(o, "status");
    {
      std::lock_guard lock(mu_);
      conns_[conn].busy = status == "busy";
      conns_[conn].error = false;
      conns_[conn].reported = true;
    }
    Derive(status == "busy" ? "agent_busy: " + agent : "agent_idle: " + agent);
  } else if (type == "ack") {
    Acked(Int(o, "id"), agent);
  } else if (type == "reply") {
    core::Message reply;
    reply.session_id = row_.session_id;
    reply.role = "agent";
    reply.sender = agent;
    // The redaction guardrail: what an agent says is filtered before anyone can read it.
    reply.content = core::Redact(Str(o, "content"), guardrails_);
    if (const json::value* meta = o.if_contains("metadata"); meta && meta->is_object()) {
      json::value copy = *meta;
      core::RedactJson(copy, guardrails_);
      reply.metadata_json = json::serialize(copy);
    }
    reply.reply_to = Int(o, "reply_to");
    reply.created_at = Now();
    std::optional<core::MessageAck> ack;
    if (reply.reply_to != 0) ack = core::MessageAck{reply.reply_to, agent};
    auto id = store_.AppendMessage(reply, ack);
    if (!id.ok()) {
      LOG_SESSION_WARN(row_.session_id, "store reply: {}", id.status().ToString());
      return;
    }
    loaded_after_ = std::max(loaded_after_, *id);
    core::Event e;
    e.at = reply.created_at;
    e.type = "session.message";
    e.session_id = row_.session_id;
    e.owner = owner_;
    e.actor = agent;
    e.data_json = json::serialize(json::object{{"id", *id}, {"role", "agent"}, {"sender", agent}});
    (void)store_.AppendEvent(e);
    last_message_ms_ = SteadyMs();
    if (reply.reply_to != 0) {
      acks_.insert({reply.reply_to, agent});  // stored with the reply: no second write
      Acked(reply.reply_to, agent);
    }
    notify_();
  } else if (type == "error") {
    {
      std::lock_guard lock(mu_);
      conns_[conn].error = true;
    }
    MoveTo(AgentState::kError, fmt::format("agent_error: {}: {}", agent, Str(o, "message")));
  } else {
    (void)bridge.SendLine(conn, ErrorLine(fmt::format("unknown type '{}'", type)));
  }
}

void AgentHub::Acked(int64_t message_id, const std::string& agent) {
  if (message_id == 0) return;
  if (acks_.insert({message_id, agent}).second) {
    Status st = store_.AckMessage(row_.session_id, core::MessageAck{message_id, agent}, Now());
    if (!st.ok()) LOG_SESSION_WARN(row_.session_id, "store ack: {}", st.ToString());
  }
  std::lock_guard lock(mu_);
  for (auto& [id, c] : conns_)
    if (c.agent == agent && c.inflight == message_id) c.inflight = 0;
}

void AgentHub::Closed(uint32_t conn) {
  std::string agent;
  {
    std::lock_guard lock(mu_);
    auto it = conns_.find(conn);
    if (it == conns_.end()) return;
    agent = it->second.agent;
    conns_.erase(it);  // what it held in flight is delivered again
  }
  if (!agent.empty()) MoveTo(AgentState::kError, "agent_exited: " + agent);
}

bool AgentHub::AllConnected() const {
  for (const core::SessionAgent& a : row_.agents) {
    bool found = false;
    for (const auto& [id, c] : conns_) found = found || (c.agent == a.name && c.reported);
    if (!found) return false;
  }
  return true;
}

void AgentHub::Derive(const std::string& reason) {
  bool all, busy = false, error = false;
  {
    std::lock_guard lock(mu_);
    all = AllConnected();
    for (const auto& [id, c] : conns_) {
      busy = busy || c.busy;
      error = error || c.error;
    }
  }
  if (!all || error) return;
  AgentState now = state();
  if (busy) {
    MoveTo(AgentState::kBusy, reason);
  } else if (now != AgentState::kIdle) {
    MoveTo(AgentState::kReady, reason);
  }
}

void AgentHub::CheckIdle() {
  if (state() != AgentState::kReady || !pending_.empty()) return;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, c] : conns_)
      if (c.busy || c.inflight != 0) return;
  }
  if (SteadyMs() - last_message_ms_ < waiting_timeout_seconds_.load() * 1000) return;
  MoveTo(AgentState::kIdle, "waiting_timeout");
  // IDLE freezes the session (docs/agents.md): a message resumes it.
  auto paused = service_.PauseForIdle(row_.session_id);
  if (!paused.ok())
    LOG_SESSION_WARN(row_.session_id, "pause when idle: {}", paused.status().ToString());
}

void AgentHub::CheckRunTime() {
  if (!guardrails_.max_run_seconds_per_message) return;
  const int64_t limit_ms = *guardrails_.max_run_seconds_per_message * 1000;
  std::vector<std::pair<std::string, int64_t>> overdue;  // (agent, message)
  {
    std::lock_guard lock(mu_);
    for (auto& [id, c] : conns_) {
      if (c.inflight == 0 || SteadyMs() - c.inflight_since_ms < limit_ms) continue;
      overdue.emplace_back(c.agent, c.inflight);
      c.inflight = 0;
      c.error = true;  // until the agent reports a status again
    }
  }
  for (const auto& [agent, message] : overdue) {
    // The rule (docs/agents.md, "Guardrails"): the message is failed, not delivered again — an
    // agent that hangs on it would hang the next one too. hutch answers it (role system) and
    // the answer acknowledges it for the agent that held it.
    core::Message failed;
    failed.session_id = row_.session_id;
    failed.role = "system";
    failed.sender = "hutch";
    failed.reply_to = message;
    failed.content = fmt::format(
        "guardrail max_run_seconds_per_message: agent {} held message {} for more than {} s; "
        "the message is failed",
        agent, message, *guardrails_.max_run_seconds_per_message);
    failed.metadata_json = json::serialize(json::object{
        {"guardrail", "max_run_seconds_per_message"}, {"agent", agent}, {"failed", message}});
    failed.created_at = Now();
    auto id = store_.AppendMessage(failed, core::MessageAck{message, agent});
    if (!id.ok()) {
      LOG_SESSION_WARN(row_.session_id, "store failed message: {}", id.status().ToString());
    } else {
      loaded_after_ = std::max(loaded_after_, *id);
      acks_.insert({message, agent});
    }
    LOG_SESSION_WARN(row_.session_id, "{}", failed.content);
    MoveTo(AgentState::kError,
           fmt::format("guardrail: max_run_seconds_per_message: {} held message {} past {} s",
                       agent, message, *guardrails_.max_run_seconds_per_message));
    notify_();
  }
}

void AgentHub::MoveTo(AgentState to, const std::string& reason) {
  AgentState from = state();
  if (from == to) return;
  if (core::CanTransitionAgentState(from, to)) {
    Commit(to, reason);
  } else if (core::CanTransitionAgentState(from, AgentState::kReady) &&
             core::CanTransitionAgentState(AgentState::kReady, to)) {
    Commit(AgentState::kReady, reason);
    Commit(to, reason);
  }
}

void AgentHub::Commit(AgentState to, const std::string& reason) {
  AgentState from = state();
  core::Event e;
  e.at = Now();
  e.type = "session.agent_state";
  e.session_id = row_.session_id;
  e.owner = owner_;
  e.actor = "system";
  e.data_json = json::serialize(json::object{
      {"from", core::AgentStateName(from)}, {"to", core::AgentStateName(to)}, {"reason", reason}});
  Status st = store_.SetAgentState(row_.session_id, from, to, reason, e.at, e);
  if (!st.ok()) {
    LOG_SESSION_WARN(row_.session_id, "agent_state: {}", st.ToString());
    return;
  }
  {
    std::lock_guard lock(mu_);
    state_ = to;
  }
  notify_();
}

}  // namespace hutch::controller
