#include "controller/agents.h"

#include <fmt/format.h>

#include "common/ids.h"
#include "common/log.h"
#include "controller/session_service.h"

namespace hutch::controller {

namespace {

constexpr size_t kMaxContentBytes = 1 << 20;

Status CheckSpec(const AgentSpec& spec) {
  if (spec.name && !core::IsValidName(*spec.name))
    return InvalidArgument(fmt::format(
        "name '{}' must be a DNS label: 1 to 63 lowercase letters, digits or '-'", *spec.name));
  if (spec.command && spec.command->empty()) return InvalidArgument("command must not be empty");
  return Status::Ok();
}

void Apply(const AgentSpec& spec, core::AgentDef* a) {
  if (spec.name) a->name = *spec.name;
  if (spec.description) a->description = *spec.description;
  if (spec.command) a->command = *spec.command;
  if (spec.config_json) a->config_json = *spec.config_json;
  if (spec.env) a->env = *spec.env;
  if (spec.guardrails_json) a->guardrails_json = *spec.guardrails_json;
}

}  // namespace

AgentService::AgentService(store::Store& store, SessionService& sessions,
                           std::function<void()> notify)
    : store_(store), sessions_(sessions), notify_(std::move(notify)) {}

AgentService::~AgentService() {
  std::map<std::string, std::unique_ptr<AgentHub>> hubs;
  {
    std::lock_guard lock(mu_);
    hubs.swap(hubs_);
  }
  hubs.clear();  // joins each hub's thread, outside the lock
}

Result<core::AgentDef> AgentService::Create(const core::Principal& who, const AgentSpec& spec) {
  if (!spec.name || !spec.command) return InvalidArgument("an agent needs a name and a command");
  RETURN_IF_ERROR(CheckSpec(spec));
  core::AgentDef a;
  a.id = NewId("agt");
  a.owner = who.user_id;
  a.created_at = a.updated_at = Now();
  Apply(spec, &a);
  RETURN_IF_ERROR(store_.CreateAgent(a));
  return a;
}

Result<core::AgentDef> AgentService::Get(const core::Principal& who, std::string_view id_or_name) {
  return store_.GetAgent(who.OwnerFilter(), id_or_name);
}

Result<std::vector<core::AgentDef>> AgentService::List(const core::Principal& who) {
  return store_.ListAgents(who.OwnerFilter());
}

Result<core::AgentDef> AgentService::Update(const core::Principal& who, std::string_view id_or_name,
                                            const AgentSpec& spec) {
  RETURN_IF_ERROR(CheckSpec(spec));
  ASSIGN_OR_RETURN(core::AgentDef a, store_.GetAgent(who.OwnerFilter(), id_or_name));
  Apply(spec, &a);
  a.updated_at = Now();
  RETURN_IF_ERROR(store_.UpdateAgent(a));
  return a;
}

Status AgentService::Delete(const core::Principal& who, std::string_view id_or_name) {
  ASSIGN_OR_RETURN(core::AgentDef a, store_.GetAgent(who.OwnerFilter(), id_or_name));
  return store_.DeleteAgent(a.id);
}

Result<std::vector<core::SessionAgent>> AgentService::Resolve(const core::Principal& who,
                                                              const SessionAgentsRequest& req) {
  std::vector<core::SessionAgent> out;
  for (const std::string& id : req.agent_ids) {
    ASSIGN_OR_RETURN(core::AgentDef a, store_.GetAgent(who.OwnerFilter(), id));
    for (const core::SessionAgent& seen : out)
      if (seen.id == a.id)
        return InvalidArgument(fmt::format("agent_ids names agent '{}' twice", a.name));
    core::SessionAgent copy{a.id, a.name, a.command, a.config_json, a.env};
    copy.env.erase(std::string(core::kGuardrailsEnv));  // hutch's to set
    if (a.guardrails_json != "{}" && !a.guardrails_json.empty())
      copy.env[std::string(core::kGuardrailsEnv)] = a.guardrails_json;
    // A template's per-agent config goes over the agent's own, key by key.
    auto given = req.configs.find(id);
    if (given != req.configs.end()) {
      ASSIGN_OR_RETURN(json::object base, ParseJsonObject(copy.config_json));
      ASSIGN_OR_RETURN(json::object over, ParseJsonObject(given->second));
      for (const auto& kv : over) base[kv.key()] = kv.value();
      copy.config_json = json::serialize(base);
    }
    out.push_back(std::move(copy));
  }
  return out;
}

Status AgentService::Attach(const core::Principal& who, const core::Session& s,
                            std::vector<core::SessionAgent> agents,
                            const SessionAgentsRequest& req) {
  ASSIGN_OR_RETURN(core::Guardrails g, EffectiveGuardrails(agents, req));
  for (core::SessionAgent& a : agents) {
    a.env.erase(std::string(core::kGuardrailsEnv));
    if (!g.empty()) a.env[std::string(core::kGuardrailsEnv)] = json::serialize(core::ToJson(g));
  }
  core::SessionAgents row;
  row.session_id = s.id;
  row.agents = std::move(agents);
  row.waiting_timeout_seconds = req.waiting_timeout_seconds;
  row.state = core::AgentState::kInit;
  row.reason = "created";
  row.updated_at = Now();
  RETURN_IF_ERROR(store_.PutSessionAgents(row));
  if (req.starting_prompt && !req.starting_prompt->empty()) {
    // The starting prompt is the first message, to the first free agent.
    core::Message m;
    m.session_id = s.id;
    m.role = "user";
    m.sender = who.user_id;
    m.content = *req.starting_prompt;
    m.metadata_json = R"({"starting_prompt":true})";
    m.created_at = Now();
    RETURN_IF_ERROR(store_.AppendMessage(m, std::nullopt).status());
  }
  HubFor(s);
  return Status::Ok();
}

Status AgentService::AttachCopy(const core::Principal& who, const core::Session& s,
                                const std::string& from_session, const SessionAgentsCopy& copy) {
  Result<core::SessionAgents> parent = store_.GetSessionAgents(from_session);
  if (!parent.ok() && parent.status().code() != Code::kNotFound) return parent.status();
  SessionAgentsRequest req;
  std::vector<core::SessionAgent> agents;
  if (copy.agent_ids) {
    req.agent_ids = *copy.agent_ids;
    ASSIGN_OR_RETURN(agents, Resolve(who, req));
  } else if (parent.ok()) {
    agents = parent->agents;
  }
  if (agents.empty()) {
    if (copy.starting_prompt || copy.waiting_timeout_seconds)
      return InvalidArgument(
          fmt::format("session {} has no agents: give agent_ids for starting_prompt or "
                      "waiting_timeout_seconds",
                      from_session));
    return Status::Ok();
  }
  req.starting_prompt = copy.starting_prompt;
  req.waiting_timeout_seconds = copy.waiting_timeout_seconds.value_or(
      parent.ok() ? parent->waiting_timeout_seconds : req.waiting_timeout_seconds);
  // The copies first: the hub that Attach starts finds them acknowledged.
  if (copy.copy_messages) RETURN_IF_ERROR(CopyMessages(from_session, s.id, agents));
  return Attach(who, s, std::move(agents), req);
}

Status AgentService::CopyMessages(const std::string& from, const std::string& to,
                                  const std::vector<core::SessionAgent>& agents) {
  std::map<int64_t, int64_t> ids;  // the parent's id → the copy's
  for (int64_t after = 0;;) {
    ASSIGN_OR_RETURN(std::vector<core::Message> page, store_.ListMessages(from, after, 500));
    if (page.empty()) break;
    after = page.back().id;
    for (core::Message m : page) {
      const int64_t old_id = m.id;
      m.id = 0;
      m.session_id = to;
      if (m.reply_to) {
        auto it = ids.find(m.reply_to);
        m.reply_to = it == ids.end() ? 0 : it->second;
      }
      ASSIGN_OR_RETURN(int64_t id, store_.AppendMessage(m, std::nullopt));
      ids[old_id] = id;
      if (m.role != "user") continue;
      for (const core::SessionAgent& a : agents)
        RETURN_IF_ERROR(store_.AckMessage(to, core::MessageAck{id, a.name}, Now()));
    }
  }
  return Status::Ok();
}

Status AgentService::SetWaitingTimeout(const core::Session& s, int64_t seconds) {
  ASSIGN_OR_RETURN(core::SessionAgents row, store_.GetSessionAgents(s.id));
  row.waiting_timeout_seconds = seconds;
  // The row is written whole: its agent_state is the hub's (which moves it), not what was read.
  // TODO(issue 22): a store call that writes the timeout alone would close the window left.
  std::lock_guard lock(mu_);
  auto it = hubs_.find(s.id);
  if (it != hubs_.end()) row.state = it->second->state();
  RETURN_IF_ERROR(store_.PutSessionAgents(row));
  if (it != hubs_.end()) it->second->SetWaitingTimeout(seconds);
  return Status::Ok();
}

Result<core::Guardrails> AgentService::EffectiveGuardrails(
    const std::vector<core::SessionAgent>& agents, const SessionAgentsRequest& req) {
  core::Guardrails g;
  if (!req.guardrails_json.empty()) {
    ASSIGN_OR_RETURN(g, core::GuardrailsFromText(req.guardrails_json));
  }
  for (const core::SessionAgent& a : agents) {
    auto it = a.env.find(std::string(core::kGuardrailsEnv));
    if (it == a.env.end()) continue;
    ASSIGN_OR_RETURN(core::Guardrails own, core::GuardrailsFromText(it->second));
    ASSIGN_OR_RETURN(g, core::Strictest(g, own));
  }
  return g;
}

Status AgentService::CheckMessageGuardrails(const core::SessionAgents& row, size_t content_bytes) {
  core::Guardrails g;
  for (const core::SessionAgent& a : row.agents) {
    auto it = a.env.find(std::string(core::kGuardrailsEnv));
    if (it == a.env.end()) continue;
    ASSIGN_OR_RETURN(g, core::GuardrailsFromText(it->second));
    break;  // every agent of the session carries the same (Attach)
  }
  if (g.max_message_bytes && static_cast<int64_t>(content_bytes) > *g.max_message_bytes)
    return PayloadTooLarge(fmt::format(
        "guardrail max_message_bytes: content is {} bytes; this session takes at most {}",
        content_bytes, *g.max_message_bytes));
  if (!g.max_messages_per_minute) return Status::Ok();
  std::lock_guard lock(mu_);
  std::deque<TimePoint>& recent = recent_[row.session_id];
  const TimePoint now = Now();
  while (!recent.empty() && now - recent.front() >= std::chrono::minutes(1)) recent.pop_front();
  if (static_cast<int64_t>(recent.size()) >= *g.max_messages_per_minute)
    return ResourceExhausted(fmt::format(
        "guardrail max_messages_per_minute: this session takes {} messages a minute; retry in "
        "{} s",
        *g.max_messages_per_minute,
        std::chrono::duration_cast<std::chrono::seconds>(recent.front() + std::chrono::minutes(1) -
                                                         now)
                .count() +
            1));
  recent.push_back(now);
  return Status::Ok();
}

AgentHub* AgentService::HubFor(const core::Session& s) {
  std::lock_guard lock(mu_);
  auto it = hubs_.find(s.id);
  if (it != hubs_.end()) return it->second.get();
  auto row = store_.GetSessionAgents(s.id);
  if (!row.ok()) return nullptr;
  auto hub = std::make_unique<AgentHub>(store_, sessions_, notify_, *row, s.owner);
  AgentHub* out = hub.get();
  hubs_.emplace(s.id, std::move(hub));
  return out;
}

std::optional<SessionAgentsView> AgentService::ViewOf(const core::Session& s) {
  auto row = store_.GetSessionAgents(s.id);
  if (!row.ok()) return std::nullopt;
  SessionAgentsView v;
  v.state = row->state;
  v.reason = row->reason;
  v.waiting_timeout_seconds = row->waiting_timeout_seconds;
  AgentHub* hub = core::IsLive(s.state) ? HubFor(s) : nullptr;
  if (hub) {
    v.agents = hub->View();
  } else {
    for (const core::SessionAgent& a : row->agents) v.agents.push_back(AgentView{a.id, a.name});
  }
  return v;
}

Result<core::Message> AgentService::Post(const core::Principal& who, std::string_view id_or_name,
                                         std::string content, std::string metadata_json,
                                         std::string to) {
  ASSIGN_OR_RETURN(core::Session s, sessions_.Get(who, id_or_name));
  ASSIGN_OR_RETURN(core::SessionAgents row, store_.GetSessionAgents(s.id));
  if (!core::IsLive(s.state))
    return Conflict(fmt::format("session {} is {}; messages go to live sessions", s.id,
                                core::ToString(s.state)));
  if (content.size() > kMaxContentBytes)
    return PayloadTooLarge(fmt::format("content is {} bytes; at most {} are allowed",
                                       content.size(), kMaxContentBytes));
  RETURN_IF_ERROR(CheckMessageGuardrails(row, content.size()));
  if (!to.empty() && to != core::kToAll) {
    bool known = false;
    for (const core::SessionAgent& a : row.agents) known = known || a.name == to;
    if (!known) return InvalidArgument(fmt::format("to: session {} has no agent '{}'", s.id, to));
  }
  core::Message m;
  m.session_id = s.id;
  m.role = "user";
  m.sender = who.user_id;
  m.to = std::move(to);
  m.content = std::move(content);
  m.metadata_json = std::move(metadata_json);
  m.created_at = Now();
  ASSIGN_OR_RETURN(m.id, store_.AppendMessage(m, std::nullopt));
  core::Event e;
  e.at = m.created_at;
  e.type = "session.message";
  e.session_id = s.id;
  e.owner = s.owner;
  e.actor = who.Actor();
  e.data_json = json::serialize(json::object{{"id", m.id}, {"role", "user"}, {"sender", m.sender}});
  (void)store_.AppendEvent(e);
  // A session that IDLE froze wakes for the message (docs/agents.md, "Idle").
  if (s.state == core::SessionState::kPaused && row.state == core::AgentState::kIdle) {
    auto resumed = sessions_.ResumeForMessage(s.id, who.Actor());
    if (!resumed.ok())
      LOG_SESSION_WARN(s.id, "resume for a message: {}", resumed.status().ToString());
  }
  if (AgentHub* hub = HubFor(s)) hub->Wake();
  notify_();
  return m;
}

Result<std::vector<core::Message>> AgentService::Messages(const core::Principal& who,
                                                          std::string_view id_or_name,
                                                          int64_t after, int limit,
                                                          core::Session* touched) {
  ASSIGN_OR_RETURN(core::Session s, sessions_.Get(who, id_or_name));
  if (touched) *touched = s;
  return store_.ListMessages(s.id, after, limit);
}

void AgentService::Start() {
  auto rows = store_.ListSessionAgents();
  if (!rows.ok()) {
    LOG_WARN("sessions with agents: {}", rows.status().ToString());
    return;
  }
  for (const core::SessionAgents& row : *rows) {
    auto s = store_.GetSession("", row.session_id);
    if (s.ok() && core::IsLive(s->state)) HubFor(*s);
  }
}

}  // namespace hutch::controller
