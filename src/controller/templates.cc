// Session templates (docs/server.md, "Templates"): stored per user, applied at create.
#include <fmt/format.h>

#include "common/log.h"
#include "controller/session_service.h"
#include "core/template.h"

namespace hutch::controller {

using core::Session;

Result<core::CreateSessionRequest> SessionService::ParseCreateRequest(const core::Principal& who,
                                                                      const json::object& body) {
  const json::value* name = body.if_contains("template");
  if (!name || name->is_null())
    return core::ParseCreateSessionRequest(body, options_.default_resources, options_.ceiling);
  if (!name->is_string()) return InvalidArgument("template must be a string");
  std::string template_name(name->get_string());
  if (!core::IsValidName(template_name))
    return InvalidArgument(
        fmt::format("template '{}' must be a template's name (a DNS label)", template_name));
  // The session's owner's template: an admin acting for a user uses the user's.
  ASSIGN_OR_RETURN(core::SessionTemplate t, store_.GetTemplate(who.user_id, template_name));
  ASSIGN_OR_RETURN(json::object spec, ParseJsonObject(t.spec_json));
  json::object merged = core::MergeTemplate(spec, body);
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
  return store_.ListTemplates(who.OwnerFilter());
}

Result<core::SessionTemplate> SessionService::GetTemplate(const core::Principal& who,
                                                          std::string_view name) {
  return store_.GetTemplate(who.user_id, name);
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

}  // namespace hutch::controller
