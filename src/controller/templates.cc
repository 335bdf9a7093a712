// Session templates (docs/server.md, "Templates"): stored per user, applied at create.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <thread>

#include "agent/client.h"
#include "common/log.h"
#include "common/time.h"
#include "controller/session_service.h"
#include "core/template.h"

namespace hutch::controller {

using core::Session;

namespace {

// The workshop whose participant the caller is ("" for everyone else): its grants apply.
std::string WorkshopOf(store::Store& store, const core::Principal& who) {
  if (who.role != "participant") return "";
  auto p = store.GetParticipantByUser(who.user_id);
  return p.ok() ? p->workshop_id : "";
}

bool MayUse(const core::Principal& who, std::string_view workshop, const core::SessionTemplate& t) {
  return who.admin || core::TemplateSharedWith(t, who.user_id, who.role, workshop);
}

// Another user's template shared with the caller, by name: the only one, or an error listing
// the OWNER/NAME references that tell them apart.
Result<core::SessionTemplate> SharedByName(store::Store& store, const core::Principal& who,
                                           std::string_view name, const Status& not_found) {
  ASSIGN_OR_RETURN(auto shared, store.ListSharedTemplates());
  const std::string workshop = WorkshopOf(store, who);
  std::vector<core::SessionTemplate> found;
  for (auto& t : shared)
    if (t.name == name && MayUse(who, workshop, t)) found.push_back(std::move(t));
  if (found.empty()) return not_found;
  if (found.size() == 1) return std::move(found.front());
  std::vector<std::string> refs;
  for (const auto& t : found) refs.push_back(t.owner + "/" + t.name);
  return InvalidArgument(
      fmt::format("{} templates named '{}' are shared with you: name one as "
                  "OWNER/NAME ({})",
                  found.size(), name, fmt::join(refs, ", ")));
}

// A template reference (docs/server.md, "Sharing templates"): NAME is the caller's own, else
// the one of that name shared with them; OWNER/NAME (OWNER a user id or name) is that user's,
// if it is shared with the caller. A template the caller may not use is not_found, like one
// that does not exist.
Result<core::SessionTemplate> ResolveTemplate(store::Store& store, const core::Principal& who,
                                              std::string_view ref) {
  size_t slash = ref.find('/');
  std::string_view name = slash == std::string_view::npos ? ref : ref.substr(slash + 1);
  if (!core::IsValidName(name))
    return InvalidArgument(
        fmt::format("template '{}' must be a template's name (a DNS label), or OWNER/NAME", ref));
  Status not_found = NotFound(fmt::format("template '{}' not found", ref));
  if (slash == std::string_view::npos) {
    auto own = store.GetTemplate(who.user_id, name);
    if (own.ok() || own.status().code() != Code::kNotFound) return own;
    return SharedByName(store, who, name, not_found);
  }
  auto owner = store.GetUser(ref.substr(0, slash));
  if (!owner.ok()) return owner.status().code() == Code::kNotFound ? not_found : owner.status();
  auto t = store.GetTemplate(owner->id, name);
  if (!t.ok()) return t.status().code() == Code::kNotFound ? not_found : t.status();
  if (!MayUse(who, WorkshopOf(store, who), *t)) return not_found;
  return t;
}

}  // namespace

Result<core::CreateSessionRequest> SessionService::ParseCreateRequest(const core::Principal& who,
                                                                      const json::object& body) {
  const json::value* name = body.if_contains("template");
  if (!name || name->is_null())
    return core::ParseCreateSessionRequest(body, options_.default_resources, options_.ceiling);
  if (!name->is_string()) return InvalidArgument("template must be a string");
  std::string template_name(name->get_string());
  // The session's owner's template, or one shared with them: an admin acting for a user uses
  // what the user may.
  ASSIGN_OR_RETURN(core::SessionTemplate t, ResolveTemplate(store_, who, template_name));
  ASSIGN_OR_RETURN(json::object spec, ParseJsonObject(t.spec_json));
  json::object merged = core::MergeTemplate(spec, body);
  // Raworc's spec.agents and spec.guardrails went to the session's agents (api/agent_handlers).
  merged.erase("agents");
  merged.erase("guardrails");
  auto req = core::ParseCreateSessionRequest(merged, options_.default_resources, options_.ceiling);
  if (!req.ok())
    return InvalidArgument(
        fmt::format("template {} with this request: {}", template_name, req.status().message()));
  return req;
}

Result<std::pair<core::SessionTemplate, bool>> SessionService::ApplyTemplate(
    const core::Principal& who, std::string_view document, std::string_view name) {
  ASSIGN_OR_RETURN(
      core::SessionTemplate t,
      core::ParseTemplateDocument(document, options_.default_resources, options_.ceiling));
  if (!name.empty() && t.name != name)
    return InvalidArgument(fmt::format(
        "metadata.name '{}' is not the template named in the path ('{}')", t.name, name));
  t.owner = who.user_id;
  t.created_at = Now();
  t.updated_at = t.created_at;
  ASSIGN_OR_RETURN(bool inserted, store_.PutTemplate(t));
  // Read back: a replaced template keeps its created_at.
  ASSIGN_OR_RETURN(core::SessionTemplate stored, store_.GetTemplate(t.owner, t.name));
  return std::pair{std::move(stored), inserted};
}

Result<std::vector<core::SessionTemplate>> SessionService::ListTemplates(
    const core::Principal& who) {
  ASSIGN_OR_RETURN(auto list, store_.ListTemplates(who.OwnerFilter()));
  if (who.OwnerFilter().empty()) return list;  // an admin's list has every template already
  // Then the ones others share with the caller.
  ASSIGN_OR_RETURN(auto shared, store_.ListSharedTemplates());
  const std::string workshop = WorkshopOf(store_, who);
  for (auto& t : shared)
    if (t.owner != who.user_id && MayUse(who, workshop, t)) list.push_back(std::move(t));
  return list;
}

Result<core::SessionTemplate> SessionService::GetTemplate(const core::Principal& who,
                                                          std::string_view name) {
  return ResolveTemplate(store_, who, name);
}

Status SessionService::DeleteTemplate(const core::Principal& who, std::string_view name) {
  // Sessions made from it keep what they were made with; only the name stays on them.
  return store_.DeleteTemplate(who.user_id, name);
}

// --- setup -----------------------------------------------------------------------------------

namespace {

// How long one setup command may run.
constexpr int64_t kSetupTimeoutMs = 600 * 1000;
// How much of a failed command's output its error shows.
constexpr size_t kSetupTailBytes = 2000;

std::string Tail(const core::ExecResult& r) {
  std::string out = r.stdout_data;
  if (!r.stderr_data.empty()) {
    if (!out.empty() && out.back() != '\n') out += '\n';
    out += r.stderr_data;
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  if (out.size() > kSetupTailBytes) out = "…" + out.substr(out.size() - kSetupTailBytes);
  return out;
}

}  // namespace

Status SessionService::RunSetup(const Session& s) {
  for (size_t i = 0; i < s.setup.size(); ++i) {
    const std::string& cmd = s.setup[i];
    core::ExecRequest req;
    req.argv = {"/bin/sh", "-c", cmd};
    req.timeout_ms = kSetupTimeoutMs;
    req.max_output_bytes = 64 * 1024;
    int64_t t0 = MonotonicMillis();
    Result<core::ExecResult> r = driver_.Exec(s.id, s.driver_state, req);
    if (!r.ok()) return r.status().WithContext(fmt::format("setup[{}] `{}` of {}", i, cmd, s.id));
    LOG_SESSION_DEBUG(s.id, "setup[{}] exited {} in {} ms", i, r->exit_code,
                      MonotonicMillis() - t0);
    if (r->exit_code == 0 && !r->timed_out) continue;
    std::string how = r->timed_out ? fmt::format("timed out after {} s", kSetupTimeoutMs / 1000)
                      : r->signal  ? fmt::format("was killed by signal {}", r->signal)
                                   : fmt::format("exited with {}", r->exit_code);
    std::string tail = Tail(*r);
    return InvalidArgument(
        fmt::format("setup[{}] `{}` {}{}{}", i, cmd, how, tail.empty() ? "" : ": ", tail));
  }
  return Status::Ok();
}

// --- services --------------------------------------------------------------------------------

namespace {

// How often the start looks at its services while it waits for them.
constexpr int64_t kServicePollMs = 100;
// A service without a health check is ready once its instance has run this long.
constexpr int64_t kUncheckedReadyMs = 1000;

// The last output of the service's current (or last) instance, for an error message.
std::string ServiceOutputTail(const agent::Transport& transport, const std::string& name) {
  agent::ProcessAttachRequest req;
  req.selector = name;
  req.follow = false;
  auto stream = agent::AgentStream::Attach(transport, req);
  if (!stream.ok()) return "";
  core::ExecResult out;
  for (int i = 0; i < 10000; ++i) {
    auto event = stream->Next(1000);
    if (!event.ok() || !event->has_value()) break;
    const agent::AgentStream::Event& e = **event;
    if (e.kind == agent::AgentStream::Event::Kind::kExit) break;
    std::string& to =
        e.kind == agent::AgentStream::Event::Kind::kStdout ? out.stdout_data : out.stderr_data;
    to += e.data;
    if (to.size() > 2 * kSetupTailBytes) to.erase(0, to.size() - kSetupTailBytes);
  }
  return Tail(out);
}

std::string DescribeService(const agent::ServiceInfo& info) {
  std::string how = fmt::format("state {}", info.state);
  if (info.health != "none") how += fmt::format(", health {}", info.health);
  if (!info.health_message.empty()) how += fmt::format(" ({})", info.health_message);
  if (info.restarts > 0) how += fmt::format(", {} restarts", info.restarts);
  if (info.last_signal > 0)
    how += fmt::format(", last killed by signal {}", info.last_signal);
  else if (info.last_exit_code >= 0)
    how += fmt::format(", last exited with {}", info.last_exit_code);
  return how;
}

}  // namespace

Status SessionService::StartServices(const Session& s) {
  ASSIGN_OR_RETURN(std::shared_ptr<const agent::Transport> transport,
                   driver_.ConnectAgent(s.id, s.driver_state));
  ASSIGN_OR_RETURN(agent::AgentClient client, agent::AgentClient::Connect(*transport));
  const int64_t t0 = MonotonicMillis();
  for (const core::ServiceSpec& spec : s.services) {
    auto started =
        client.CallServices(agent::MessageType::kServiceStart, agent::EncodeServiceSpec(spec));
    if (!started.ok())
      return started.status().WithContext(fmt::format("start service {} of {}", spec.name, s.id));
  }
  // Ready: running, and healthy when it has a check. A service that ended is not coming back
  // by itself (failed: its policy gave up; exited: it ended 0 with no restart).
  std::vector<bool> ready(s.services.size(), false);
  for (;;) {
    ASSIGN_OR_RETURN(std::vector<agent::ServiceInfo> list,
                     client.CallServices(agent::MessageType::kServiceList, {}));
    const int64_t waited = MonotonicMillis() - t0;
    bool all = true;
    for (size_t i = 0; i < s.services.size(); ++i) {
      if (ready[i]) continue;
      const core::ServiceSpec& spec = s.services[i];
      auto it = std::find_if(list.begin(), list.end(), [&](const agent::ServiceInfo& info) {
        return info.spec.name == spec.name;
      });
      if (it == list.end())
        return Internal(fmt::format("service {} is gone from the agent", spec.name));
      // Without a check, having run a moment stands for health: a command that fails at once
      // (a typo, a missing module) is caught here rather than after the session is running.
      bool healthy = spec.health.kind.empty()
                         ? it->started_unix_ms > 0 &&
                               ToUnixMillis(Now()) - it->started_unix_ms >= kUncheckedReadyMs
                         : it->health == "healthy";
      if (it->state == "running" && healthy) {
        ready[i] = true;
        LOG_SESSION_DEBUG(s.id, "service {} ready in {} ms", spec.name, waited);
        continue;
      }
      std::string failure;
      if (it->state == "failed" || it->state == "exited") {
        failure = fmt::format(
            "service {} ended before the session was ready ({}){}", spec.name, DescribeService(*it),
            it->state == "exited" ? "; a service runs for the session's life: one-shot "
                                    "commands belong in setup"
                                  : "");
      } else if (waited >= static_cast<int64_t>(spec.ready_timeout_ms)) {
        failure = fmt::format("service {} was not {} within its ready_timeout_seconds of {} ({})",
                              spec.name, spec.health.kind.empty() ? "running" : "healthy",
                              spec.ready_timeout_ms / 1000.0, DescribeService(*it));
      }
      if (!failure.empty()) {
        std::string tail = ServiceOutputTail(*transport, spec.name);
        return InvalidArgument(
            fmt::format("{}{}{}", failure, tail.empty() ? "" : "; its output: ", tail));
      }
      all = false;
    }
    if (all) return Status::Ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(kServicePollMs));
  }
}

}  // namespace hutch::controller
