#include "api/e2b_control.h"

#include <algorithm>
#include <cctype>
#include <chrono>

#include <fmt/format.h>

#include "api/checkpoint_handlers.h"
#include "api/e2b_common.h"
#include "common/time.h"
#include "core/scopes.h"
#include "core/session_json.h"
#include "core/stats.h"

namespace hutch::api {

namespace {

using controller::SessionService;
using core::Session;
using core::SessionState;

// E2B's API gives a sandbox without `timeout` 15 s; its SDKs document 300 s as the default they
// ask for. hutch uses the SDKs' figure, since those are the programs that call it.
constexpr int64_t kDefaultTimeoutSeconds = 300;
constexpr int64_t kMaxTimeoutSeconds = int64_t{30} * 24 * 3600;
// The template E2B's SDKs ask for when a program names none: hutch's default image.
constexpr std::string_view kDefaultTemplate = "base";

RouteSpec Spec(std::string_view scope, std::string action) {
  return RouteSpec::For(scope, std::move(action), "session");
}

// E2B lists sandboxes as running or paused; a session on its way up counts as running.
std::string_view E2bState(SessionState s) {
  return s == SessionState::kPaused ? "paused" : "running";
}

bool IsListed(SessionState s) {
  return s == SessionState::kRunning || s == SessionState::kPaused ||
         s == SessionState::kProvisioning || s == SessionState::kPending;
}

std::string TemplateOf(const Session& s) {
  return s.template_name.empty() ? s.image : s.template_name;
}

json::object MetadataOf(const Session& s) {
  auto parsed = ParseJsonObject(s.metadata_json);
  json::object out;
  if (!parsed.ok()) return out;
  // E2B metadata is a string map: other values are shown as their JSON text.
  for (const auto& kv : *parsed)
    out[kv.key()] = kv.value().is_string() ? kv.value() : json::value(json::serialize(kv.value()));
  return out;
}

// What create and connect answer: enough for the SDK to reach envd.
json::object SandboxJson(const Session& s, const std::string& key) {
  json::object o;
  o["templateID"] = TemplateOf(s);
  o["sandboxID"] = e2b::SandboxIdOf(s.id);
  o["clientID"] = "hutch";
  o["alias"] = s.name;
  o["envdVersion"] = std::string(e2b::kEnvdVersion);
  o["envdAccessToken"] = e2b::EnvdAccessToken(key, s.id);
  o["domain"] = nullptr;
  return o;
}

// GET /sandboxes/{id} and the lists.
json::object DetailJson(const Session& s, const std::string& key, bool with_token) {
  json::object o = SandboxJson(s, key);
  if (!with_token) o.erase("envdAccessToken");
  TimePoint started = s.started_at.value_or(s.created_at);
  o["startedAt"] = FormatTime(started);
  o["endAt"] = s.expires_at ? FormatTime(*s.expires_at) : FormatTime(started);
  o["cpuCount"] = std::max<int64_t>(1, static_cast<int64_t>(s.resources.cpus + 0.999));
  o["memoryMB"] = s.resources.memory_mb;
  o["diskSizeMB"] = s.resources.disk_mb;
  o["metadata"] = MetadataOf(s);
  o["state"] = std::string(E2bState(s.state));
  return o;
}

// The session an E2B path's {sandboxID} names; not_found for what is no sandbox id.
Result<Session> FindSandbox(SessionService& service, const RouteContext& c) {
  std::string id = e2b::SessionIdOf(c.Param("sandboxID"));
  if (id.empty()) return NotFound(fmt::format("sandbox {} not found", c.Param("sandboxID")));
  Result<Session> s = service.Get(c.principal, id);
  if (!s.ok()) {
    if (s.status().code() == Code::kNotFound)
      return NotFound(fmt::format("sandbox {} not found", c.Param("sandboxID")));
    return s.status();
  }
  if (!IsListed(s->state))
    return NotFound(fmt::format("sandbox {} not found: it is {}", c.Param("sandboxID"),
                                core::ToString(s->state)));
  c.audit.object_id = s->id;
  c.audit.object_owner = s->owner;
  return s;
}

// POST /sandboxes and /v2/sandboxes: {templateID, timeout, metadata, envVars, autoPause, …}
// as a hutch create request.
Result<json::object> CreateBody(SessionService& service, const RouteContext& c,
                                const json::object& in) {
  FieldReader r(in);
  std::optional<std::string> tmpl;
  RETURN_IF_ERROR(r.String("templateID", &tmpl, 255));
  std::optional<int64_t> timeout;
  RETURN_IF_ERROR(r.Int("timeout", &timeout, 0, kMaxTimeoutSeconds));
  std::optional<std::map<std::string, std::string>> metadata, env;
  RETURN_IF_ERROR(r.StringMap("metadata", &metadata, 256));
  RETURN_IF_ERROR(r.StringMap("envVars", &env, 1024));
  std::optional<bool> auto_pause;
  RETURN_IF_ERROR(r.Bool("autoPause", &auto_pause));
  std::optional<bool> internet;
  RETURN_IF_ERROR(r.Bool("allow_internet_access", &internet));

  json::object body;
  if (tmpl && !tmpl->empty() && *tmpl != kDefaultTemplate) {
    // A hutch template of that name, else an image of that name.
    if (service.GetTemplate(c.principal, *tmpl).ok())
      body["template"] = *tmpl;
    else
      body["image"] = *tmpl;
  }
  if (metadata) body["metadata"] = ToJsonObject(*metadata);
  if (env) body["env"] = ToJsonObject(*env);
  int64_t seconds = timeout.value_or(kDefaultTimeoutSeconds);
  if (seconds == 0) seconds = kDefaultTimeoutSeconds;
  if (auto_pause.value_or(false)) {
    // hutch pauses on an idle clock, not at an absolute end: the closest it has.
    body["idle_timeout_seconds"] = seconds;
    body["on_idle"] = "pause";
  } else {
    body["ttl_seconds"] = seconds;
  }
  // E2B sandboxes reach the internet unless told otherwise; hutch's nat is the equivalent.
  if (internet.value_or(true)) body["network"] = json::object{{"mode", "nat"}};
  return body;
}

// %XX escapes (and '+' for a space, with `plus`) decoded; a malformed escape stays as it is.
std::string UrlDecode(std::string_view in, bool plus) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    char ch = in[i];
    if (ch == '+' && plus) {
      out += ' ';
    } else if (ch == '%' && i + 2 < in.size() &&
               std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += ch;
    }
  }
  return out;
}

// ?metadata=k1%3Dv1%26k2%3Dv2: the SDKs put the pairs, form-encoded, into one query value, each
// key and value percent-encoded once more.
Result<std::vector<std::pair<std::string, std::string>>> MetadataFilter(const ApiRequest& req) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string q = req.Query("metadata");
  size_t pos = 0;
  while (pos < q.size()) {
    size_t amp = q.find('&', pos);
    std::string pair = q.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    pos = amp == std::string::npos ? q.size() : amp + 1;
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    if (eq == std::string::npos || eq == 0)
      return InvalidArgument(fmt::format("metadata filter '{}' must be key=value", pair));
    out.emplace_back(UrlDecode(UrlDecode(pair.substr(0, eq), true), false),
                     UrlDecode(UrlDecode(pair.substr(eq + 1), true), false));
  }
  return out;
}

bool MatchesMetadata(const Session& s, const std::vector<std::pair<std::string, std::string>>& f) {
  if (f.empty()) return true;
  json::object m = MetadataOf(s);
  for (const auto& [k, v] : f) {
    auto it = m.find(k);
    if (it == m.end() || !it->value().is_string() || it->value().as_string() != v) return false;
  }
  return true;
}

// The E2B states a list asks for (?state=running,paused); both when absent.
std::vector<std::string> WantedStates(const ApiRequest& req) {
  std::vector<std::string> out;
  for (const std::string& value :
       req.query.count("state") ? req.query.at("state") : std::vector<std::string>{}) {
    size_t pos = 0;
    while (pos <= value.size()) {
      size_t comma = value.find(',', pos);
      std::string s =
          value.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      if (!s.empty()) out.push_back(s);
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
  }
  if (out.empty()) out = {"running", "paused"};
  return out;
}

struct ListPage {
  json::array sandboxes;
  std::string next_token;
};

Result<ListPage> ListSandboxes(SessionService& service, const RouteContext& c, bool v2,
                               const std::string& key) {
  ASSIGN_OR_RETURN(auto metadata, MetadataFilter(c.request));
  std::vector<std::string> states =
      v2 ? WantedStates(c.request) : std::vector<std::string>{"running"};
  store::SessionFilter f;
  f.live_only = true;
  if (states.size() == 1 && states[0] == "paused") f.state = SessionState::kPaused;
  std::string tmpl = c.request.Query("template");
  if (v2) {
    ASSIGN_OR_RETURN(int64_t limit, QueryInt(c.request, "limit", 100, 1, 1000));
    f.limit = static_cast<int>(limit);
    f.page_token = c.request.Query("nextToken");
  } else {
    f.limit = 1000;
  }
  ListPage page;
  // Pages of the store are filtered here (state, metadata, template), so a page may hold fewer
  // than `limit`; the token still moves on.
  do {
    ASSIGN_OR_RETURN(store::SessionPage p, service.List(c.principal, f));
    for (const Session& s : p.sessions) {
      if (!IsListed(s.state)) continue;
      if (std::find(states.begin(), states.end(), E2bState(s.state)) == states.end()) continue;
      if (!MatchesMetadata(s, metadata)) continue;
      if (!tmpl.empty() && TemplateOf(s) != tmpl) continue;
      page.sandboxes.emplace_back(DetailJson(s, key, false));
    }
    page.next_token = p.next_page_token;
    f.page_token = p.next_page_token;
  } while (!v2 && !f.page_token.empty());
  return page;
}

ApiResponse Answer(int status, const Result<json::value>& r) {
  if (!r.ok()) return e2b::Error(r.status());
  return ApiResponse::Json(status, *r);
}

std::optional<int64_t> TimeoutField(const std::string& body, Status* st) {
  if (body.empty()) return std::nullopt;
  auto o = ParseJsonObject(body);
  if (!o.ok()) {
    *st = o.status();
    return std::nullopt;
  }
  std::optional<int64_t> t;
  *st = FieldReader(*o).Int("timeout", &t, 0, kMaxTimeoutSeconds);
  if (!t) *st = st->ok() ? Status::Ok() : *st;
  return t;
}

// POST /v2/sandboxes/{id}/connect and /sandboxes/{id}/resume: a paused sandbox resumes (201),
// a running one answers as it is (200); `timeout` sets its end from now.
ApiResponse Connect(SessionService& service, const RouteContext& c, const std::string& key,
                    bool resume_only) {
  Result<Session> s = FindSandbox(service, c);
  if (!s.ok()) return e2b::Error(s.status());
  Status st;
  std::optional<int64_t> timeout = TimeoutField(c.request.body, &st);
  if (!st.ok()) return e2b::Error(st);
  int status = 200;
  if (s->state == SessionState::kPaused) {
    s = service.Resume(c.principal, s->id);
    if (!s.ok()) return e2b::Error(s.status());
    status = 201;
  } else if (resume_only) {
    return e2b::Error(409, fmt::format("sandbox {} is already running", c.Param("sandboxID")));
  }
  if (timeout && *timeout > 0) {
    s = service.SetTimeout(c.principal, s->id, *timeout);
    if (!s.ok()) return e2b::Error(s.status());
  }
  return ApiResponse::Json(status, SandboxJson(*s, key));
}

void AddCreateAndList(Router& router, SessionService& service, const std::string& key) {
  auto create = [&service, key](const RouteContext& c) {
    return Answer(201, [&]() -> Result<json::value> {
      ASSIGN_OR_RETURN(json::object in,
                       ParseJsonObject(c.request.body.empty() ? "{}" : c.request.body));
      ASSIGN_OR_RETURN(json::object body, CreateBody(service, c, in));
      ASSIGN_OR_RETURN(core::CreateSessionRequest req,
                       service.ParseCreateRequest(c.principal, body));
      ASSIGN_OR_RETURN(Session s, service.Create(c.principal, req));
      c.audit.object_id = s.id;
      c.audit.object_owner = s.owner;
      if (s.state != SessionState::kRunning)
        return Unavailable(fmt::format("sandbox {} did not start: it is {} ({})", s.id,
                                       core::ToString(s.state), s.error));
      return json::value(SandboxJson(s, key));
    }());
  };
  for (const char* path : {"/e2b/sandboxes", "/e2b/v2/sandboxes"})
    router.Add("POST", path, Spec(core::kScopeSessionsWrite, "e2b.sandboxes.create"), create);

  for (bool v2 : {false, true}) {
    router.Add("GET", v2 ? "/e2b/v2/sandboxes" : "/e2b/sandboxes",
               Spec(core::kScopeSessionsRead, "e2b.sandboxes.list"),
               [&service, key, v2](const RouteContext& c) {
                 Result<ListPage> page = ListSandboxes(service, c, v2, key);
                 if (!page.ok()) return e2b::Error(page.status());
                 ApiResponse r = ApiResponse::Json(200, page->sandboxes);
                 if (v2 && !page->next_token.empty())
                   r.headers.emplace_back("X-Next-Token", page->next_token);
                 return r;
               });
  }
}

void AddLifecycle(Router& router, SessionService& service, const std::string& key) {
  router.Add("GET", "/e2b/sandboxes/{sandboxID}",
             Spec(core::kScopeSessionsRead, "e2b.sandboxes.get"),
             [&service, key](const RouteContext& c) {
               Result<Session> s = FindSandbox(service, c);
               if (!s.ok()) return e2b::Error(s.status());
               return ApiResponse::Json(200, DetailJson(*s, key, true));
             });
  // One sample, now: E2B keeps a history of them, hutch measures when asked. cpuUsedPct is the
  // average since the sandbox started (hutch's stats count CPU seconds, not a rate).
  router.Add(
      "GET", "/e2b/sandboxes/{sandboxID}/metrics",
      Spec(core::kScopeSessionsRead, "e2b.sandboxes.metrics"), [&service](const RouteContext& c) {
        Result<Session> s = FindSandbox(service, c);
        if (!s.ok()) return e2b::Error(s.status());
        Result<core::SandboxStats> st = service.Stats(c.principal, s->id);
        if (!st.ok()) return e2b::Error(st.status());
        TimePoint started = s->started_at.value_or(s->created_at);
        double up = std::chrono::duration<double>(st->at - started).count();
        double cpus = std::max(0.01, s->resources.cpus);
        json::object m;
        m["timestamp"] = FormatTime(st->at);
        m["cpuUsedPct"] = up > 0 ? std::min(100.0, 100.0 * st->cpu_seconds / up / cpus) : 0.0;
        m["cpuCount"] = std::max<int64_t>(1, static_cast<int64_t>(s->resources.cpus + 0.999));
        m["memUsed"] = st->memory_bytes;
        m["memTotal"] = st->memory_limit_bytes;
        m["diskUsed"] = st->disk_bytes;
        m["diskTotal"] = st->disk_limit_bytes;
        return ApiResponse::Json(200, json::array{m});
      });
  router.Add("DELETE", "/e2b/sandboxes/{sandboxID}",
             Spec(core::kScopeSessionsWrite, "e2b.sandboxes.kill"),
             [&service](const RouteContext& c) {
               Result<Session> s = FindSandbox(service, c);
               if (!s.ok()) return e2b::Error(s.status());
               Result<Session> d = service.Delete(c.principal, s->id, false);
               if (!d.ok()) return e2b::Error(d.status());
               return e2b::NoContent();
             });
  // POST …/timeout {timeout} (end = now + timeout) and …/refreshes {duration} (the same).
  for (auto [path, field] : {std::pair{"/e2b/sandboxes/{sandboxID}/timeout", "timeout"},
                             std::pair{"/e2b/sandboxes/{sandboxID}/refreshes", "duration"}}) {
    router.Add(
        "POST", path, Spec(core::kScopeSessionsWrite, "e2b.sandboxes.timeout"),
        [&service, field](const RouteContext& c) {
          Result<Session> s = FindSandbox(service, c);
          if (!s.ok()) return e2b::Error(s.status());
          auto body = ParseJsonObject(c.request.body.empty() ? "{}" : c.request.body);
          if (!body.ok()) return e2b::Error(body.status());
          std::optional<int64_t> seconds;
          if (Status st = FieldReader(*body).Int(field, &seconds, 0, kMaxTimeoutSeconds); !st.ok())
            return e2b::Error(st);
          Result<Session> t =
              service.SetTimeout(c.principal, s->id, seconds.value_or(kDefaultTimeoutSeconds));
          if (!t.ok()) return e2b::Error(t.status());
          return e2b::NoContent();
        });
  }
  router.Add(
      "POST", "/e2b/sandboxes/{sandboxID}/pause",
      Spec(core::kScopeSessionsWrite, "e2b.sandboxes.pause"), [&service](const RouteContext& c) {
        Result<Session> s = FindSandbox(service, c);
        if (!s.ok()) return e2b::Error(s.status());
        if (s->state == SessionState::kPaused)
          return e2b::Error(409, fmt::format("sandbox {} is already paused", c.Param("sandboxID")));
        Result<Session> p = service.Pause(c.principal, s->id);
        if (!p.ok()) return e2b::Error(p.status());
        return e2b::NoContent();
      });
  // POST …/fork {timeout, count}: hutch's fork (the children start from a copy of the
  // sandbox's files; its processes and memory are not carried over). One result per child.
  router.Add("POST", "/e2b/sandboxes/{sandboxID}/fork",
             Spec(core::kScopeSessionsWrite, "e2b.sandboxes.fork"),
             [&service, key](const RouteContext& c) {
               return Answer(201, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(Session source, FindSandbox(service, c));
                 ASSIGN_OR_RETURN(json::object in,
                                  ParseJsonObject(c.request.body.empty() ? "{}" : c.request.body));
                 FieldReader r(in);
                 std::optional<int64_t> count, timeout;
                 RETURN_IF_ERROR(r.Int("count", &count, 1, 100));
                 RETURN_IF_ERROR(r.Int("timeout", &timeout, 0, kMaxTimeoutSeconds));
                 json::object body;
                 body["count"] = count.value_or(1);
                 ASSIGN_OR_RETURN(controller::ForkRequest req,
                                  ParseFork(body, source, service.options().ceiling));
                 if (timeout && *timeout > 0) req.base.ttl_seconds = *timeout;
                 ASSIGN_OR_RETURN(std::vector<Session> children,
                                  service.Fork(c.principal, source.id, req));
                 json::array out;
                 for (const Session& child : children)
                   out.emplace_back(json::object{{"sandbox", SandboxJson(child, key)}});
                 return json::value(std::move(out));
               }());
             });
  router.Add("POST", "/e2b/v2/sandboxes/{sandboxID}/connect",
             Spec(core::kScopeSessionsWrite, "e2b.sandboxes.connect"),
             [&service, key](const RouteContext& c) { return Connect(service, c, key, false); });
  router.Add("POST", "/e2b/sandboxes/{sandboxID}/resume",
             Spec(core::kScopeSessionsWrite, "e2b.sandboxes.resume"),
             [&service, key](const RouteContext& c) { return Connect(service, c, key, true); });
}

}  // namespace

void AddE2bControlRoutes(Router& router, SessionService& service, std::string envd_key) {
  AddCreateAndList(router, service, envd_key);
  AddLifecycle(router, service, envd_key);
}

}  // namespace hutch::api
