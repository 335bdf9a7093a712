#include "core/scenario.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/session.h"
#include "core/yaml_json.h"

namespace hutch::core {

namespace {

constexpr size_t kMaxDocumentBytes = 512 * 1024;
constexpr size_t kMaxSteps = 200;
constexpr size_t kMaxScenarios = 100;
constexpr size_t kMaxText = 64 * 1024;
constexpr size_t kMaxCommand = 8 * 1024;
constexpr size_t kMaxTitle = 200;
constexpr int64_t kMaxTimeout = 3600;

// Reads the fields of one mapping of a document, failing with the line of the field.
class Fields {
 public:
  Fields(const YamlDocument& doc, const json::object& o, std::string path)
      : doc_(doc), o_(o), path_(std::move(path)) {}

  std::string Path(std::string_view key) const {
    return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
  }
  Status Fail(std::string_view key, const std::string& message) const {
    return doc_.Fail(Path(key), message);
  }
  Status Only(std::initializer_list<std::string_view> keys) const {
    for (const auto& kv : o_) {
      if (std::find(keys.begin(), keys.end(), kv.key()) != keys.end()) continue;
      return Fail(kv.key(),
                  fmt::format("unknown field {} ({} has {})", Path(kv.key()),
                              path_.empty() ? "the document" : path_, fmt::join(keys, ", ")));
    }
    return Status::Ok();
  }
  Status String(std::string_view key, std::string* out, size_t max, bool required) const {
    const json::value* v = o_.if_contains(key);
    if (!v || v->is_null()) {
      if (required) return Fail(key, fmt::format("{} is required", Path(key)));
      return Status::Ok();
    }
    if (!v->is_string() || v->get_string().size() > max)
      return Fail(key, fmt::format("{} must be a string of at most {} characters", Path(key), max));
    *out = std::string(v->get_string());
    return Status::Ok();
  }
  Status Name(std::string_view key, std::string* out) const {
    RETURN_IF_ERROR(String(key, out, 63, true));
    if (!IsValidName(*out))
      return Fail(key, fmt::format("{} '{}' must be a DNS label: 1 to 63 lowercase letters, "
                                   "digits or '-', starting and ending with a letter or digit",
                                   Path(key), *out));
    return Status::Ok();
  }
  Status Bool(std::string_view key, bool* out) const {
    const json::value* v = o_.if_contains(key);
    if (!v || v->is_null()) return Status::Ok();
    if (!v->is_bool()) return Fail(key, fmt::format("{} must be true or false", Path(key)));
    *out = v->get_bool();
    return Status::Ok();
  }
  Status Int(std::string_view key, int64_t* out, int64_t lo, int64_t hi) const {
    const json::value* v = o_.if_contains(key);
    if (!v || v->is_null()) return Status::Ok();
    if (!v->is_int64() || v->get_int64() < lo || v->get_int64() > hi)
      return Fail(key, fmt::format("{} must be a whole number from {} to {}", Path(key), lo, hi));
    *out = v->get_int64();
    return Status::Ok();
  }
  Status Time(std::string_view key, TimePoint* out) const {
    std::string s;
    RETURN_IF_ERROR(String(key, &s, 64, false));
    if (s.empty()) return Status::Ok();
    auto t = ParseTime(s);
    if (!t) return Fail(key, fmt::format("{} must be an RFC 3339 time", Path(key)));
    *out = *t;
    return Status::Ok();
  }
  // The list at `key` (required, 1..max items).
  Result<const json::array*> List(std::string_view key, size_t max) const {
    const json::value* v = o_.if_contains(key);
    if (!v || !v->is_array() || v->get_array().empty() || v->get_array().size() > max)
      return Fail(key, fmt::format("{} must be a list of 1 to {} items", Path(key), max));
    return &v->get_array();
  }
  // The mapping at `key`; `required` fails without one.
  Result<const json::object*> Object(std::string_view key, bool required) const {
    static const json::object kEmpty;
    const json::value* v = o_.if_contains(key);
    if (!v || v->is_null()) {
      if (required) return Fail(key, fmt::format("{} is required", Path(key)));
      return &kEmpty;
    }
    if (!v->is_object()) return Fail(key, fmt::format("{} must be a mapping", Path(key)));
    return &v->get_object();
  }

 private:
  const YamlDocument& doc_;
  const json::object& o_;
  std::string path_;
};

// kind, apiVersion and metadata, into the name, owner, title, description and times a Scenario
// and a Course share (owner and times appear in the stored form only, and are replaced by the
// server on apply).
template <class Document>
Status ReadHeader(const YamlDocument& doc, std::string_view kind, Document* out) {
  if (!doc.is_map())
    return InvalidArgument(
        fmt::format("line 1: a {0} is a document with kind: {0}, metadata and spec", kind));
  Fields top(doc, doc.root(), "");
  RETURN_IF_ERROR(top.Only({"kind", "apiVersion", "metadata", "spec"}));
  std::string k, api;
  RETURN_IF_ERROR(top.String("kind", &k, 64, true));
  if (k != kind) return top.Fail("kind", fmt::format("kind must be {}", kind));
  RETURN_IF_ERROR(top.String("apiVersion", &api, 64, false));
  if (!api.empty() && api != "hutch/v1")
    return top.Fail("apiVersion", "apiVersion must be hutch/v1 (or left out)");
  ASSIGN_OR_RETURN(const json::object* meta, top.Object("metadata", true));
  Fields m(doc, *meta, "metadata");
  RETURN_IF_ERROR(m.Only({"name", "title", "description", "owner", "created_at", "updated_at"}));
  RETURN_IF_ERROR(m.Name("name", &out->name));
  RETURN_IF_ERROR(m.String("title", &out->title, kMaxTitle, false));
  RETURN_IF_ERROR(m.String("description", &out->description, 1024, false));
  RETURN_IF_ERROR(m.String("owner", &out->owner, 64, false));
  RETURN_IF_ERROR(m.Time("created_at", &out->created_at));
  RETURN_IF_ERROR(m.Time("updated_at", &out->updated_at));
  return Status::Ok();
}

// The document's spec, a mapping it must have, with no field but `keys`.
Result<const json::object*> ReadSpec(const YamlDocument& doc,
                                     std::initializer_list<std::string_view> keys) {
  Fields top(doc, doc.root(), "");
  ASSIGN_OR_RETURN(const json::object* spec, top.Object("spec", true));
  RETURN_IF_ERROR(Fields(doc, *spec, "spec").Only(keys));
  return spec;
}

Result<ScenarioStep> ReadStep(const YamlDocument& doc, const json::value& v,
                              const std::string& path) {
  if (!v.is_object()) return doc.Fail(path, fmt::format("{} must be a mapping", path));
  Fields f(doc, v.get_object(), path);
  RETURN_IF_ERROR(f.Only({"title", "text", "check", "setup", "timeout_seconds"}));
  ScenarioStep s;
  RETURN_IF_ERROR(f.String("title", &s.title, kMaxTitle, true));
  RETURN_IF_ERROR(f.String("text", &s.text, kMaxText, false));
  RETURN_IF_ERROR(f.String("check", &s.check, kMaxCommand, false));
  RETURN_IF_ERROR(f.String("setup", &s.setup, kMaxCommand, false));
  RETURN_IF_ERROR(f.Int("timeout_seconds", &s.timeout_seconds, 1, kMaxTimeout));
  return s;
}

Result<Scenario> ReadScenario(const YamlDocument& doc) {
  Scenario s;
  RETURN_IF_ERROR(ReadHeader(doc, "Scenario", &s));
  ASSIGN_OR_RETURN(const json::object* spec, ReadSpec(doc, {"template", "steps"}));
  Fields f(doc, *spec, "spec");
  RETURN_IF_ERROR(f.Name("template", &s.template_name));
  ASSIGN_OR_RETURN(const json::array* steps, f.List("steps", kMaxSteps));
  for (size_t i = 0; i < steps->size(); ++i) {
    ASSIGN_OR_RETURN(ScenarioStep step,
                     ReadStep(doc, (*steps)[i], fmt::format("spec.steps[{}]", i)));
    s.steps.push_back(std::move(step));
  }
  return s;
}

Result<Course> ReadCourse(const YamlDocument& doc) {
  Course c;
  RETURN_IF_ERROR(ReadHeader(doc, "Course", &c));
  ASSIGN_OR_RETURN(const json::object* spec, ReadSpec(doc, {"keep_environment", "scenarios"}));
  Fields f(doc, *spec, "spec");
  RETURN_IF_ERROR(f.Bool("keep_environment", &c.keep_environment));
  ASSIGN_OR_RETURN(const json::array* list, f.List("scenarios", kMaxScenarios));
  for (size_t i = 0; i < list->size(); ++i) {
    std::string path = fmt::format("spec.scenarios[{}]", i);
    const json::value& v = (*list)[i];
    if (!v.is_string() || !IsValidName(v.get_string()))
      return doc.Fail(path, fmt::format("{} must be the name of a scenario", path));
    c.scenarios.emplace_back(v.get_string());
  }
  return c;
}

json::object Metadata(const std::string& name, const std::string& owner, const std::string& title,
                      const std::string& description, TimePoint created, TimePoint updated) {
  return json::object{{"name", name},
                      {"owner", owner},
                      {"title", title},
                      {"description", description},
                      {"created_at", FormatTime(created)},
                      {"updated_at", FormatTime(updated)}};
}

std::optional<TimePoint> OptTime(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || !v->is_string()) return std::nullopt;
  return ParseTime(v->get_string());
}

json::value TimeOrNull(const std::optional<TimePoint>& t) {
  return t ? json::value(FormatTime(*t)) : json::value(nullptr);
}

int64_t Seconds(TimePoint from, TimePoint to) {
  return std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::seconds>(to - from).count());
}

}  // namespace

Result<Scenario> ParseScenarioDocument(std::string_view text) {
  ASSIGN_OR_RETURN(YamlDocument doc, YamlDocument::Parse(text, kMaxDocumentBytes, "the scenario"));
  return ReadScenario(doc);
}

Result<Course> ParseCourseDocument(std::string_view text) {
  ASSIGN_OR_RETURN(YamlDocument doc, YamlDocument::Parse(text, kMaxDocumentBytes, "the course"));
  return ReadCourse(doc);
}

json::object ToJson(const Scenario& s) {
  json::array steps;
  for (const ScenarioStep& st : s.steps) {
    json::object o{{"title", st.title}, {"text", st.text}};
    if (!st.check.empty()) o["check"] = st.check;
    if (!st.setup.empty()) o["setup"] = st.setup;
    o["timeout_seconds"] = st.timeout_seconds;
    steps.push_back(std::move(o));
  }
  return json::object{
      {"kind", "Scenario"},
      {"apiVersion", "hutch/v1"},
      {"metadata", Metadata(s.name, s.owner, s.title, s.description, s.created_at, s.updated_at)},
      {"spec", json::object{{"template", s.template_name}, {"steps", std::move(steps)}}}};
}

json::object ToJson(const Course& c) {
  json::array names;
  for (const auto& n : c.scenarios) names.emplace_back(n);
  return json::object{
      {"kind", "Course"},
      {"apiVersion", "hutch/v1"},
      {"metadata", Metadata(c.name, c.owner, c.title, c.description, c.created_at, c.updated_at)},
      {"spec",
       json::object{{"keep_environment", c.keep_environment}, {"scenarios", std::move(names)}}}};
}

json::object ToJson(const WorkshopPlan& p) {
  json::array scenarios;
  for (const Scenario& s : p.scenarios) scenarios.push_back(ToJson(s));
  return json::object{{"kind", p.kind},
                      {"name", p.name},
                      {"title", p.title},
                      {"keep_environment", p.keep_environment},
                      {"scenarios", std::move(scenarios)}};
}

Result<WorkshopPlan> ParseWorkshopPlan(std::string_view stored) {
  ASSIGN_OR_RETURN(json::object o, ParseJsonObject(stored));
  WorkshopPlan p;
  auto str = [&](std::string_view k) {
    const json::value* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
  };
  p.kind = str("kind");
  p.name = str("name");
  p.title = str("title");
  if (const json::value* k = o.if_contains("keep_environment"); k && k->is_bool())
    p.keep_environment = k->get_bool();
  const json::value* list = o.if_contains("scenarios");
  if (!list || !list->is_array() || list->get_array().empty())
    return Internal("a workshop's stored plan has no scenarios");
  for (const json::value& v : list->get_array()) {
    ASSIGN_OR_RETURN(Scenario s, ParseScenarioDocument(json::serialize(v)));
    p.scenarios.push_back(std::move(s));
  }
  return p;
}

Progress StartProgress(std::string participant_id, std::string workshop_id, TimePoint now) {
  Progress p;
  p.participant_id = std::move(participant_id);
  p.workshop_id = std::move(workshop_id);
  StepProgress first;
  first.started_at = now;
  p.steps.push_back(first);
  return p;
}

std::string SerializeProgress(const Progress& p) {
  json::array steps;
  for (const StepProgress& s : p.steps)
    steps.push_back(json::object{{"scenario", s.scenario},
                                 {"step", s.step},
                                 {"started_at", FormatTime(s.started_at)},
                                 {"completed_at", TimeOrNull(s.completed_at)},
                                 {"attempts", s.attempts},
                                 {"passed_at", TimeOrNull(s.passed_at)},
                                 {"setup_done", s.setup_done},
                                 {"setup_exit_code", s.setup_exit_code}});
  return json::serialize(json::object{{"participant", p.participant_id},
                                      {"workshop", p.workshop_id},
                                      {"finished", p.finished},
                                      {"finished_at", TimeOrNull(p.finished_at)},
                                      {"steps", std::move(steps)}});
}

Result<Progress> ParseProgress(std::string_view stored) {
  ASSIGN_OR_RETURN(json::object o, ParseJsonObject(stored));
  Progress p;
  if (const json::value* v = o.if_contains("participant"); v && v->is_string())
    p.participant_id = std::string(v->get_string());
  if (const json::value* v = o.if_contains("workshop"); v && v->is_string())
    p.workshop_id = std::string(v->get_string());
  if (const json::value* v = o.if_contains("finished"); v && v->is_bool())
    p.finished = v->get_bool();
  p.finished_at = OptTime(o, "finished_at");
  const json::value* steps = o.if_contains("steps");
  if (!steps || !steps->is_array() || steps->get_array().empty())
    return Internal(fmt::format("stored progress of {} has no steps", p.participant_id));
  for (const json::value& v : steps->get_array()) {
    if (!v.is_object()) return Internal("stored progress has a step that is no object");
    const json::object& s = v.get_object();
    auto num = [&](std::string_view k) {
      const json::value* x = s.if_contains(k);
      return x && x->is_int64() ? x->get_int64() : int64_t{0};
    };
    StepProgress st;
    st.scenario = static_cast<int>(num("scenario"));
    st.step = static_cast<int>(num("step"));
    st.started_at = OptTime(s, "started_at").value_or(TimePoint{});
    st.completed_at = OptTime(s, "completed_at");
    st.attempts = num("attempts");
    st.passed_at = OptTime(s, "passed_at");
    const json::value* done = s.if_contains("setup_done");
    st.setup_done = done && done->is_bool() && done->get_bool();
    st.setup_exit_code = static_cast<int>(num("setup_exit_code"));
    p.steps.push_back(st);
  }
  return p;
}

const ScenarioStep& PlanStep(const WorkshopPlan& plan, const StepProgress& s) {
  return plan.scenarios.at(static_cast<size_t>(s.scenario)).steps.at(static_cast<size_t>(s.step));
}

void RecordCheck(Progress& p, bool passed, TimePoint now) {
  StepProgress& s = CurrentStep(p);
  ++s.attempts;
  if (passed && !s.passed_at) s.passed_at = now;
}

Result<bool> AdvanceProgress(Progress& p, const WorkshopPlan& plan, TimePoint now) {
  if (p.finished) return Conflict("you have finished every step of this workshop");
  StepProgress& cur = CurrentStep(p);
  const ScenarioStep& step = PlanStep(plan, cur);
  if (!step.check.empty() && !cur.passed_at)
    return Conflict(
        fmt::format("the check of step {} ('{}') has not passed yet: run the check "
                    "first",
                    cur.step + 1, step.title));
  cur.completed_at = now;
  StepProgress next;
  next.scenario = cur.scenario;
  next.step = cur.step + 1;
  next.started_at = now;
  const Scenario& scenario = plan.scenarios.at(static_cast<size_t>(cur.scenario));
  if (static_cast<size_t>(next.step) < scenario.steps.size()) {
    p.steps.push_back(next);
    return false;
  }
  next.scenario = cur.scenario + 1;
  next.step = 0;
  if (static_cast<size_t>(next.scenario) >= plan.scenarios.size()) {
    p.finished = true;
    p.finished_at = now;
    return false;
  }
  p.steps.push_back(next);
  return true;
}

json::object ProgressJson(const Progress& p, const WorkshopPlan& plan, TimePoint now,
                          bool with_text) {
  json::array steps;
  int64_t passed = 0;
  for (const StepProgress& s : p.steps) {
    const ScenarioStep& ps = PlanStep(plan, s);
    if (s.passed_at) ++passed;
    steps.push_back(json::object{{"scenario", s.scenario},
                                 {"step", s.step},
                                 {"title", ps.title},
                                 {"has_check", !ps.check.empty()},
                                 {"started_at", FormatTime(s.started_at)},
                                 {"completed_at", TimeOrNull(s.completed_at)},
                                 {"attempts", s.attempts},
                                 {"passed", s.passed_at.has_value()},
                                 {"passed_at", TimeOrNull(s.passed_at)},
                                 {"seconds", Seconds(s.started_at, s.completed_at.value_or(now))}});
  }
  const StepProgress& cur = CurrentStep(p);
  const Scenario& scenario = plan.scenarios.at(static_cast<size_t>(cur.scenario));
  json::object step = steps.back().as_object();
  step["index"] = cur.step;
  step["count"] = static_cast<int64_t>(scenario.steps.size());
  if (with_text) step["text"] = PlanStep(plan, cur).text;
  size_t total = 0;
  for (const Scenario& s : plan.scenarios) total += s.steps.size();
  return json::object{
      {"plan", json::object{{"kind", plan.kind},
                            {"name", plan.name},
                            {"title", plan.title},
                            {"keep_environment", plan.keep_environment},
                            {"scenarios", static_cast<int64_t>(plan.scenarios.size())}}},
      {"finished", p.finished},
      {"finished_at", TimeOrNull(p.finished_at)},
      {"scenario",
       json::object{{"index", cur.scenario}, {"name", scenario.name}, {"title", scenario.title}}},
      {"step", std::move(step)},
      {"checks_passed", passed},
      {"total_steps", static_cast<int64_t>(total)},
      {"steps", std::move(steps)}};
}

}  // namespace hutch::core
