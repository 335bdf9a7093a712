#include "controller/scenarios.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/log.h"
#include "common/time.h"
#include "controller/activity_log.h"

namespace hutch::controller {

namespace {

using core::Progress;
using core::WorkshopPlan;

// What a check answers of its output, and what its event keeps: the end, where the verdict is.
constexpr size_t kOutputTail = 16 * 1024;
constexpr size_t kEventOutputTail = 1024;
constexpr int64_t kMaxCheckOutput = 256 * 1024;

std::string Tail(const std::string& s, size_t n) {
  return s.size() <= n ? s : s.substr(s.size() - n);
}

Status MayWrite(const core::Principal& who) {
  if (who.role == "participant" && !who.admin)
    return PermissionDenied("participants may not store scenarios or courses");
  return Status::Ok();
}

Result<json::object> StoredJson(const std::string& body) { return ParseJsonObject(body); }

// The command of a check or setup: its stderr goes with its stdout, in the order written, so
// the participant reads one stream as a terminal would show it.
core::ExecRequest ShellRequest(const std::string& command, int64_t timeout_seconds) {
  core::ExecRequest req;
  req.argv = {"/bin/sh", "-c", "exec 2>&1\n" + command};
  req.timeout_ms = timeout_seconds * 1000;
  req.max_output_bytes = kMaxCheckOutput;
  return req;
}

}  // namespace

std::string_view ToString(CoursewareKind k) {
  return k == CoursewareKind::kScenario ? "scenario" : "course";
}

ScenarioService::ScenarioService(store::Store& store, SessionService& sessions,
                                 WorkshopService& workshops, std::function<void()> notify)
    : store_(store), sessions_(sessions), workshops_(workshops), notify_(std::move(notify)) {}

// --- scenarios and courses ----------------------------------------------------------------------

Result<std::pair<json::object, bool>> ScenarioService::Apply(const core::Principal& who,
                                                             CoursewareKind kind,
                                                             std::string_view document) {
  RETURN_IF_ERROR(MayWrite(who));
  const std::string_view k = ToString(kind);
  const TimePoint now = Now();
  std::string name;
  json::object stored;
  if (kind == CoursewareKind::kScenario) {
    ASSIGN_OR_RETURN(core::Scenario s, core::ParseScenarioDocument(document));
    RETURN_IF_ERROR(sessions_.GetTemplate(who, s.template_name).status());
    s.owner = who.user_id;
    s.created_at = s.updated_at = now;
    if (auto old = store_.GetCourseware(k, who.user_id, s.name); old.ok())
      if (auto prev = core::ParseScenarioDocument(*old); prev.ok()) s.created_at = prev->created_at;
    name = s.name;
    stored = core::ToJson(s);
  } else {
    ASSIGN_OR_RETURN(core::Course c, core::ParseCourseDocument(document));
    for (const std::string& sc : c.scenarios)
      RETURN_IF_ERROR(store_.GetCourseware("scenario", who.user_id, sc).status());
    c.owner = who.user_id;
    c.created_at = c.updated_at = now;
    if (auto old = store_.GetCourseware(k, who.user_id, c.name); old.ok())
      if (auto prev = core::ParseCourseDocument(*old); prev.ok()) c.created_at = prev->created_at;
    name = c.name;
    stored = core::ToJson(c);
  }
  ASSIGN_OR_RETURN(bool inserted,
                   store_.PutCourseware(k, who.user_id, name, json::serialize(stored), now));
  return std::pair{std::move(stored), inserted};
}

Result<std::vector<json::object>> ScenarioService::List(const core::Principal& who,
                                                        CoursewareKind kind) {
  ASSIGN_OR_RETURN(auto bodies, store_.ListCourseware(ToString(kind), who.OwnerFilter()));
  std::vector<json::object> out;
  for (const std::string& b : bodies) {
    ASSIGN_OR_RETURN(json::object o, StoredJson(b));
    out.push_back(std::move(o));
  }
  return out;
}

Result<json::object> ScenarioService::Get(const core::Principal& who, CoursewareKind kind,
                                          std::string_view name) {
  ASSIGN_OR_RETURN(std::string body, store_.GetCourseware(ToString(kind), who.OwnerFilter(), name));
  return StoredJson(body);
}

Status ScenarioService::Delete(const core::Principal& who, CoursewareKind kind,
                               std::string_view name) {
  // The one Get would show (an admin's: anyone's), else not_found before any other answer.
  ASSIGN_OR_RETURN(std::string body, store_.GetCourseware(ToString(kind), who.OwnerFilter(), name));
  RETURN_IF_ERROR(MayWrite(who));
  std::string owner = who.user_id;
  ASSIGN_OR_RETURN(json::object o, StoredJson(body));
  if (const json::value* m = o.if_contains("metadata"); m && m->is_object())
    if (const json::value* ow = m->as_object().if_contains("owner"); ow && ow->is_string())
      owner = std::string(ow->get_string());
  return store_.DeleteCourseware(ToString(kind), owner, name);
}

// --- a workshop's plan --------------------------------------------------------------------------

Result<std::optional<WorkshopPlan>> ScenarioService::TakePlan(const core::Principal& who,
                                                              json::object& body) {
  const json::value* scenario = body.if_contains("scenario");
  const json::value* course = body.if_contains("course");
  if (!scenario && !course) return std::optional<WorkshopPlan>();
  if (scenario && course) return InvalidArgument("give scenario or course, not both");
  const json::value* named = scenario ? scenario : course;
  const char* field = scenario ? "scenario" : "course";
  if (!named->is_string() || !core::IsValidName(named->get_string()))
    return InvalidArgument(fmt::format("{} must be the name of one of your {}s", field, field));
  const std::string name(named->get_string());
  WorkshopPlan plan;
  plan.kind = field;
  plan.name = name;
  std::vector<std::string> names = {name};
  if (course) {
    ASSIGN_OR_RETURN(std::string text, store_.GetCourseware("course", who.user_id, name));
    ASSIGN_OR_RETURN(core::Course c, core::ParseCourseDocument(text));
    plan.title = c.title;
    plan.keep_environment = c.keep_environment;
    names = c.scenarios;
  }
  for (const std::string& n : names) {
    ASSIGN_OR_RETURN(std::string text, store_.GetCourseware("scenario", who.user_id, n));
    ASSIGN_OR_RETURN(core::Scenario s, core::ParseScenarioDocument(text));
    // Every template a fresh environment may be made from must be there now, not mid-class.
    RETURN_IF_ERROR(sessions_.GetTemplate(who, s.template_name).status());
    if (scenario) plan.title = s.title;
    plan.scenarios.push_back(std::move(s));
  }
  const std::string& first = plan.scenarios.front().template_name;
  if (const json::value* t = body.if_contains("template");
      t && !(t->is_string() && t->get_string() == first))
    return InvalidArgument(
        fmt::format("template must be left out or be '{}', the template of the {}'s first scenario",
                    first, field));
  body.erase(field);
  body["template"] = first;
  return std::optional<WorkshopPlan>(std::move(plan));
}

Status ScenarioService::SetPlan(const core::Workshop& w, const WorkshopPlan& plan) {
  return store_.PutWorkshopPlan(w.id, json::serialize(core::ToJson(plan)));
}

// --- a participant's way through it -----------------------------------------------------------

std::shared_ptr<std::mutex> ScenarioService::ParticipantLock(const std::string& participant_id) {
  std::lock_guard lock(mu_);
  auto& m = locks_[participant_id];
  if (!m) m = std::make_shared<std::mutex>();
  return m;
}

Result<ScenarioService::Mine> ScenarioService::LoadMine(const core::Principal& who) {
  Mine m;
  Result<core::Participant> p = store_.GetParticipantByUser(who.user_id);
  if (!p.ok() && p.status().code() == Code::kNotFound)
    return NotFound("you are not a participant of a workshop");
  RETURN_IF_ERROR(p.status());
  m.participant = std::move(*p);
  ASSIGN_OR_RETURN(m.workshop, store_.GetWorkshop("", m.participant.workshop_id));
  ASSIGN_OR_RETURN(std::string plan, store_.GetWorkshopPlan(m.workshop.id));
  ASSIGN_OR_RETURN(m.plan, core::ParseWorkshopPlan(plan));
  Result<std::pair<int64_t, std::string>> stored = store_.GetProgress(m.participant.id);
  if (stored.ok()) {
    ASSIGN_OR_RETURN(m.progress, core::ParseProgress(stored->second));
    m.progress.version = stored->first;
  } else if (stored.status().code() == Code::kNotFound) {
    m.progress = core::StartProgress(m.participant.id, m.workshop.id, Now());
    RETURN_IF_ERROR(Save(m));
  } else {
    return stored.status();
  }
  return m;
}

Status ScenarioService::Save(Mine& m) {
  RETURN_IF_ERROR(store_.PutProgress(m.participant.id, m.workshop.id,
                                     core::SerializeProgress(m.progress), m.progress.version,
                                     Now()));
  ++m.progress.version;
  return Status::Ok();
}

Result<core::Session> ScenarioService::RunningSession(const core::Principal& who, const Mine& m) {
  if (core::IsFinal(m.workshop.state))
    return Conflict(fmt::format("workshop {} has ended", m.workshop.name));
  if (m.participant.session_id.empty())
    return Conflict("your environment is not made yet; try again in a moment");
  ASSIGN_OR_RETURN(core::Session s, sessions_.Get(who, m.participant.session_id));
  if (s.state != core::SessionState::kRunning)
    return Conflict(fmt::format("your environment {} is {}; checks run in a running one", s.id,
                                core::ToString(s.state)));
  return s;
}

bool ScenarioService::RunSetupIfDue(const core::Principal& who, Mine& m) {
  if (m.progress.finished) return false;
  core::StepProgress& cur = core::CurrentStep(m.progress);
  if (cur.setup_done) return false;
  const core::ScenarioStep& step = core::PlanStep(m.plan, cur);
  if (step.setup.empty()) {
    cur.setup_done = true;
    return true;
  }
  Result<core::Session> s = RunningSession(who, m);
  if (!s.ok()) return false;  // runs once the environment is up
  Result<core::ExecResult> r =
      sessions_.Exec(who, s->id, ShellRequest(step.setup, step.timeout_seconds));
  cur.setup_done = true;
  cur.setup_exit_code = r.ok() ? r->exit_code : -1;
  if (!r.ok() || r->exit_code != 0)
    LOG_WARN("workshop {}: setup of step {} for participant {} in {} failed: {}", m.workshop.id,
             cur.step + 1, m.participant.id, s->id,
             r.ok() ? fmt::format("exit {}: {}", r->exit_code, Tail(r->stdout_data, 200))
                    : r.status().ToString());
  return true;
}

namespace {

// The participant's own view: their progress with the current step's text, their workshop and
// session.
json::object MineJson(const core::Workshop& w, const core::Participant& p, const WorkshopPlan& plan,
                      const Progress& progress) {
  json::object o = core::ProgressJson(progress, plan, Now(), /*with_text=*/true);
  o["workshop"] = json::object{{"id", w.id}, {"name", w.name}, {"title", w.title}};
  o["participant"] = p.id;
  o["session_id"] = p.session_id.empty() ? json::value(nullptr) : json::value(p.session_id);
  return o;
}

}  // namespace

Result<json::object> ScenarioService::MyProgress(const core::Principal& who) {
  Result<core::Participant> p = store_.GetParticipantByUser(who.user_id);
  if (!p.ok()) return NotFound("you are not a participant of a workshop");
  auto lock = ParticipantLock(p->id);
  std::lock_guard hold(*lock);
  ASSIGN_OR_RETURN(Mine m, LoadMine(who));
  if (RunSetupIfDue(who, m)) RETURN_IF_ERROR(Save(m));
  return MineJson(m.workshop, m.participant, m.plan, m.progress);
}

Result<json::object> ScenarioService::Check(const core::Principal& who) {
  Result<core::Participant> p = store_.GetParticipantByUser(who.user_id);
  if (!p.ok()) return NotFound("you are not a participant of a workshop");
  auto lock = ParticipantLock(p->id);
  std::lock_guard hold(*lock);
  ASSIGN_OR_RETURN(Mine m, LoadMine(who));
  if (m.progress.finished) return Conflict("you have finished every step of this workshop");
  bool changed = RunSetupIfDue(who, m);
  const core::StepProgress& cur = core::CurrentStep(m.progress);
  const core::ScenarioStep& step = core::PlanStep(m.plan, cur);
  json::object out;
  if (step.check.empty()) {
    if (changed) RETURN_IF_ERROR(Save(m));
    out["passed"] = true;
    out["output"] = "";
    out["exit_code"] = 0;
    out["timed_out"] = false;
    out["message"] = "this step has no check";
  } else {
    ASSIGN_OR_RETURN(core::Session s, RunningSession(who, m));
    ASSIGN_OR_RETURN(core::ExecResult r,
                     sessions_.Exec(who, s.id, ShellRequest(step.check, step.timeout_seconds)));
    const bool passed = r.exit_code == 0 && r.signal == 0 && !r.timed_out;
    const std::string output = Tail(r.stdout_data, kOutputTail);
    core::RecordCheck(m.progress, passed, Now());
    RETURN_IF_ERROR(Save(m));
    AppendCheckEvent(who, m, s, r, passed, output);
    out["passed"] = passed;
    out["output"] = output;
    out["exit_code"] = r.exit_code;
    out["timed_out"] = r.timed_out;
  }
  json::object view = core::ProgressJson(m.progress, m.plan, Now(), /*with_text=*/false);
  out["attempts"] = core::CurrentStep(m.progress).attempts;
  out["step"] = view["step"];
  out["scenario"] = view["scenario"];
  return out;
}

void ScenarioService::AppendCheckEvent(const core::Principal& who, const Mine& m,
                                       const core::Session& s, const core::ExecResult& r,
                                       bool passed, const std::string& output) {
  const core::StepProgress& cur = core::CurrentStep(m.progress);
  const core::Scenario& scenario = m.plan.scenarios.at(static_cast<size_t>(cur.scenario));
  core::Event e;
  e.at = Now();
  e.type = std::string(passed ? core::kEventCheckPassed : core::kEventCheckFailed);
  e.session_id = s.id;
  e.owner = m.workshop.owner;
  e.actor = who.Actor();
  e.data_json = json::serialize(json::object{{"workshop", m.workshop.id},
                                             {"participant", m.participant.id},
                                             {"participant_name", m.participant.name},
                                             {"scenario", scenario.name},
                                             {"scenario_index", cur.scenario},
                                             {"step", cur.step},
                                             {"step_title", core::PlanStep(m.plan, cur).title},
                                             {"attempt", cur.attempts},
                                             {"exit_code", r.exit_code},
                                             {"timed_out", r.timed_out},
                                             {"output", Tail(output, kEventOutputTail)}});
  // The check ran and its progress is stored: a lost event is logged, not the participant's
  // problem.
  if (Result<int64_t> id = store_.AppendEvent(e); !id.ok())
    LOG_WARN("workshop {}: event {} of participant {}: {}", m.workshop.id, e.type, m.participant.id,
             id.status().ToString());
  else if (notify_)
    notify_();
  // The participant's activity too: the check's command and how it ended, in their session.
  if (ActivityLog* log = sessions_.activity_log())
    log->Record(s, e.type, who.Actor(), core::PlanStep(m.plan, cur).check, r.exit_code,
                json::object{{"scenario", scenario.name},
                             {"step", cur.step},
                             {"attempt", cur.attempts},
                             {"timed_out", r.timed_out}});
}

Result<json::object> ScenarioService::Next(const core::Principal& who) {
  Result<core::Participant> p = store_.GetParticipantByUser(who.user_id);
  if (!p.ok()) return NotFound("you are not a participant of a workshop");
  auto lock = ParticipantLock(p->id);
  std::lock_guard hold(*lock);
  ASSIGN_OR_RETURN(Mine m, LoadMine(who));
  if (core::IsFinal(m.workshop.state))
    return Conflict(fmt::format("workshop {} has ended", m.workshop.name));
  ASSIGN_OR_RETURN(bool new_scenario, core::AdvanceProgress(m.progress, m.plan, Now()));
  if (new_scenario && !m.plan.keep_environment) {
    // The fresh environment first, the progress after: a failure leaves the participant on the
    // step they were on, free to try again.
    const core::Scenario& next =
        m.plan.scenarios.at(static_cast<size_t>(core::CurrentStep(m.progress).scenario));
    RETURN_IF_ERROR(
        workshops_.FreshEnvironment(m.workshop, m.participant, next.template_name, who.Actor()));
    ASSIGN_OR_RETURN(m.participant, store_.GetParticipant(m.workshop.id, m.participant.id));
  }
  RunSetupIfDue(who, m);
  RETURN_IF_ERROR(Save(m));
  LOG_INFO("workshop {}: participant {} at scenario {} step {}{}", m.workshop.id, m.participant.id,
           core::CurrentStep(m.progress).scenario + 1, core::CurrentStep(m.progress).step + 1,
           m.progress.finished ? " (finished)" : "");
  return MineJson(m.workshop, m.participant, m.plan, m.progress);
}

Result<json::object> ScenarioService::WorkshopProgress(const core::Principal& who,
                                                       std::string_view id_or_name) {
  ASSIGN_OR_RETURN(WorkshopView w, workshops_.Get(who, id_or_name));
  ASSIGN_OR_RETURN(std::vector<ParticipantView> people,
                   workshops_.ListParticipants(who, w.workshop.id));
  ASSIGN_OR_RETURN(std::string plan_text, store_.GetWorkshopPlan(w.workshop.id));
  ASSIGN_OR_RETURN(WorkshopPlan plan, core::ParseWorkshopPlan(plan_text));
  ASSIGN_OR_RETURN(auto stored, store_.ListProgress(w.workshop.id));
  std::map<std::string, Progress> by_participant;
  for (const auto& [version, body] : stored) {
    ASSIGN_OR_RETURN(Progress pr, core::ParseProgress(body));
    by_participant.emplace(pr.participant_id, std::move(pr));
  }
  const TimePoint now = Now();
  json::array items;
  for (const ParticipantView& v : people) {
    json::object o{
        {"id", v.participant.id}, {"name", v.participant.name}, {"email", v.participant.email}};
    o["session"] = v.session
                       ? json::value(json::object{{"id", v.session->id},
                                                  {"state", core::ToString(v.session->state)}})
                       : json::value(nullptr);
    auto it = by_participant.find(v.participant.id);
    o["progress"] = it == by_participant.end()
                        ? json::value(nullptr)
                        : json::value(core::ProgressJson(it->second, plan, now, false));
    items.push_back(std::move(o));
  }
  size_t total = 0;
  for (const core::Scenario& s : plan.scenarios) total += s.steps.size();
  json::array scenarios;
  for (const core::Scenario& s : plan.scenarios)
    scenarios.push_back(json::object{{"name", s.name},
                                     {"title", s.title},
                                     {"template", s.template_name},
                                     {"steps", static_cast<int64_t>(s.steps.size())}});
  return json::object{{"workshop", json::object{{"id", w.workshop.id}, {"name", w.workshop.name}}},
                      {"plan", json::object{{"kind", plan.kind},
                                            {"name", plan.name},
                                            {"title", plan.title},
                                            {"keep_environment", plan.keep_environment},
                                            {"total_steps", static_cast<int64_t>(total)},
                                            {"scenarios", std::move(scenarios)}}},
                      {"participants", std::move(items)}};
}

}  // namespace hutch::controller
