// /v1/workshops and /v1/me/workshop (docs/api.md, "Workshops").
#include "api/workshop_handlers.h"

#include <memory>

#include <fmt/format.h>

#include "api/auth.h"
#include "api/body_fields.h"
#include "common/ids.h"
#include "core/scopes.h"
#include "core/session_json.h"

namespace hutch::api {

namespace {

using controller::BulkOp;
using controller::ParticipantView;
using controller::WorkshopService;
using controller::WorkshopView;

RouteSpec Spec(std::string_view scope, std::string action) {
  return RouteSpec::For(scope, std::move(action), "workshop");
}

json::value WorkshopJson(const WorkshopView& v) {
  json::object o = core::ToJson(v.workshop);
  o["participants"] = json::object{{"count", v.participants}, {"max", v.workshop.max_participants}};
  o["environments"] = json::object{
      {"ready", v.ready}, {"creating", v.creating}, {"failed", v.failed}, {"ended", v.ended}};
  int64_t left =
      std::chrono::duration_cast<std::chrono::seconds>(v.workshop.end_at - Now()).count();
  o["seconds_remaining"] = core::IsFinal(v.workshop.state) ? 0 : std::max<int64_t>(0, left);
  return o;
}

json::object SessionSummary(const core::Session& s) {
  json::object o;
  o["id"] = s.id;
  o["name"] = s.name;
  o["state"] = core::ToString(s.state);
  o["error"] = s.error.empty() ? json::value(nullptr) : json::value(s.error);
  o["started_at"] = s.started_at ? json::value(FormatTime(*s.started_at)) : json::value(nullptr);
  return o;
}

json::value ParticipantJson(const ParticipantView& v) {
  json::object o = core::ToJson(v.participant);
  o["session"] = v.session ? json::value(SessionSummary(*v.session)) : json::value(nullptr);
  // Seen: the session was touched (terminal bytes, exec, keepalive, any API call on it).
  o["last_seen_at"] = v.session && v.session->last_activity_at
                          ? json::value(FormatTime(*v.session->last_activity_at))
                          : json::value(nullptr);
  return o;
}

json::value ParticipantsJson(const std::vector<core::Participant>& list) {
  json::array items;
  for (const auto& p : list) items.push_back(core::ToJson(p));
  return json::value(json::object{{"participants", std::move(items)}});
}

Result<controller::BulkRequest> ParseBulk(BulkOp op, const std::string& body_text) {
  controller::BulkRequest req;
  if (body_text.find_first_not_of(" \t\r\n") == std::string::npos) {
    if (op == BulkOp::kExtend) return InvalidArgument("seconds is required");
    if (op == BulkOp::kCheckpoint) return InvalidArgument("name is required");
    return req;
  }
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(body_text));
  FieldReader r(body);
  RETURN_IF_ERROR(
      r.RejectUnknown({"participants", "failed", "seconds", "name", "keep_environments"}));
  std::optional<std::vector<std::string>> participants;
  RETURN_IF_ERROR(r.StringList("participants", &participants, 1000));
  if (participants) req.participants = std::move(*participants);
  std::optional<bool> failed, keep;
  RETURN_IF_ERROR(r.Bool("failed", &failed));
  req.failed = failed.value_or(false);
  RETURN_IF_ERROR(r.Bool("keep_environments", &keep));
  req.keep_environments = keep.value_or(false);
  if (keep && op != BulkOp::kEnd) return InvalidArgument("keep_environments is for end only");
  std::optional<int64_t> seconds;
  RETURN_IF_ERROR(r.Int("seconds", &seconds, 1, 7 * 24 * 3600));
  if (op == BulkOp::kExtend && !seconds) return InvalidArgument("seconds is required");
  req.seconds = seconds.value_or(0);
  std::optional<std::string> name;
  RETURN_IF_ERROR(r.String("name", &name, 63));
  req.name = name.value_or("");
  if (op == BulkOp::kCheckpoint && req.name.empty()) return InvalidArgument("name is required");
  return req;
}

json::value BulkJson(const controller::BulkOutcome& out) {
  json::array results;
  int64_t failed = 0;
  for (const auto& r : out.results) {
    json::object o;
    o["participant"] = r.participant;
    o["session"] = r.session.empty() ? json::value(nullptr) : json::value(r.session);
    o["ok"] = r.status.ok();
    if (r.status.ok()) {
      o["error"] = nullptr;
    } else {
      ++failed;
      o["error"] =
          json::object{{"code", CodeName(r.status.code())}, {"message", r.status.message()}};
    }
    results.push_back(std::move(o));
  }
  json::object o;
  o["workshop"] = core::ToJson(out.workshop);
  o["failed"] = failed;
  o["results"] = std::move(results);
  return o;
}

// The client's address without its port: joins are limited per address.
std::string PeerAddress(const std::string& peer) {
  size_t colon = peer.rfind(':');
  return colon == std::string::npos ? peer : peer.substr(0, colon);
}

// 429 with Retry-After when `limiter` refuses the client; nullopt when it may go on.
std::optional<ApiResponse> Limited(RateLimiter& limiter, const ApiRequest& req) {
  std::optional<int> wait = limiter.Take(PeerAddress(req.peer));
  if (!wait) return std::nullopt;
  ApiResponse r = ApiResponse::Error(
      ResourceExhausted(fmt::format("too many joins from this address; retry in {} s", *wait)));
  r.headers.emplace_back("Retry-After", std::to_string(*wait));
  return r;
}

// The secret rides in the fragment, which browsers never send to a server: it stays out of
// access logs and proxies on the way to the console's /access page, which posts it in a body
// (POST /v1/access) — never in a path, which the audit trail records.
std::string AccessUrl(const std::string& public_url, const std::string& secret) {
  return public_url + "/access#" + secret;
}

// A participant's API token, valid until their workshop ends; shown once.
Result<std::string> MintParticipantToken(store::Store& store, const core::Participant& p,
                                         const core::Workshop& w, std::string_view how) {
  auto [token, t] =
      IssueToken(p.user_id, std::string(how), core::DefaultScopes("participant"), w.end_at);
  RETURN_IF_ERROR(store.CreateToken(t));
  return token;
}

json::value JoinedJson(const WorkshopService::Joined& j, const std::string& token,
                       const std::optional<std::string>& access_url) {
  json::object o;
  o["workshop"] = json::object{{"id", j.workshop.id},
                               {"name", j.workshop.name},
                               {"title", j.workshop.title},
                               {"state", core::ToString(j.workshop.state)},
                               {"start_at", FormatTime(j.workshop.start_at)},
                               {"end_at", FormatTime(j.workshop.end_at)}};
  ParticipantView v{j.participant, j.session};
  o["participant"] = ParticipantJson(v);
  o["session"] = j.session ? json::value(SessionSummary(*j.session)) : json::value(nullptr);
  o["token"] = token;
  o["token_expires_at"] = FormatTime(j.workshop.end_at);
  if (access_url) o["access_url"] = *access_url;
  return o;
}

// What the routes share: the deps and the limiter of the token-less routes.
struct Shared {
  explicit Shared(const WorkshopDeps& d)
      : deps(d), join_limiter(d.join_rate_per_second, d.join_burst) {}
  WorkshopDeps deps;
  RateLimiter join_limiter;
};

using WorkshopHandler = Result<json::value> (*)(Shared&, const RouteContext&);

// `handler` as a route's handler that answers its value with `ok_status`.
Handler On(const std::shared_ptr<Shared>& shared, int ok_status, WorkshopHandler handler) {
  return [shared, ok_status, handler](const RouteContext& c) {
    return Respond(ok_status, [&] { return handler(*shared, c); });
  };
}

// The same for a token-less route: refused first with 429 when the client is over its rate.
Handler OnLimited(const std::shared_ptr<Shared>& shared, WorkshopHandler handler) {
  return [shared, handler](const RouteContext& c) {
    if (auto limited = Limited(shared->join_limiter, c.request)) return *limited;
    return Respond(201, [&] { return handler(*shared, c); });
  };
}

// POST /v1/workshops: `scenario` or `course` (controller/scenarios.h) becomes the workshop's plan.
Result<json::value> CreateWorkshop(Shared& s, const RouteContext& c) {
  WorkshopService& workshops = s.deps.workshops;
  controller::ScenarioService* scenarios = s.deps.scenarios;
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
  std::optional<core::WorkshopPlan> plan;
  if (scenarios) {
    ASSIGN_OR_RETURN(plan, scenarios->TakePlan(c.principal, body));
  }
  ASSIGN_OR_RETURN(core::Workshop w, workshops.Create(c.principal, body));
  if (plan) RETURN_IF_ERROR(scenarios->SetPlan(w, *plan));
  c.audit.object_id = w.id;
  c.audit.object_owner = w.owner;
  ASSIGN_OR_RETURN(WorkshopView v, workshops.Get(c.principal, w.id));
  return WorkshopJson(v);
}

// GET /v1/workshops[?include_ended=true].
Result<json::value> ListWorkshops(Shared& s, const RouteContext& c) {
  ASSIGN_OR_RETURN(bool ended, QueryBool(c.request, "include_ended", false));
  ASSIGN_OR_RETURN(auto list, s.deps.workshops.List(c.principal, ended));
  json::array items;
  for (const auto& v : list) items.push_back(WorkshopJson(v));
  return json::value(json::object{{"workshops", std::move(items)}, {"next_page_token", ""}});
}

// GET /v1/workshops/{id}.
Result<json::value> GetWorkshop(Shared& s, const RouteContext& c) {
  ASSIGN_OR_RETURN(WorkshopView v, s.deps.workshops.Get(c.principal, c.Param("id")));
  return WorkshopJson(v);
}

// PATCH /v1/workshops/{id}.
Result<json::value> UpdateWorkshop(Shared& s, const RouteContext& c) {
  WorkshopService& workshops = s.deps.workshops;
  RETURN_IF_ERROR(workshops.CheckVisible(c.principal, c.Param("id")));
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
  ASSIGN_OR_RETURN(core::Workshop w, workshops.Update(c.principal, c.Param("id"), body));
  c.audit.object_owner = w.owner;
  ASSIGN_OR_RETURN(WorkshopView v, workshops.Get(c.principal, w.id));
  return WorkshopJson(v);
}

// DELETE /v1/workshops/{id}: a workshop that has not started is cancelled, a running one ended
// now (as its on_end says).
Result<json::value> DeleteWorkshop(Shared& s, const RouteContext& c) {
  WorkshopService& workshops = s.deps.workshops;
  ASSIGN_OR_RETURN(WorkshopView v, workshops.Get(c.principal, c.Param("id")));
  c.audit.object_owner = v.workshop.owner;
  const bool started = v.workshop.state == core::WorkshopState::kActive ||
                       v.workshop.state == core::WorkshopState::kEnding;
  ASSIGN_OR_RETURN(auto out, workshops.Bulk(c.principal, v.workshop.id,
                                            started ? BulkOp::kEnd : BulkOp::kCancel, {}));
  return BulkJson(out);
}

// POST …/participants/import: a CSV body.
Result<json::value> ImportParticipants(Shared& s, const RouteContext& c) {
  WorkshopService& workshops = s.deps.workshops;
  RETURN_IF_ERROR(workshops.CheckVisible(c.principal, c.Param("id")));
  ASSIGN_OR_RETURN(auto list,
                   workshops.ImportParticipants(c.principal, c.Param("id"), c.request.body));
  return ParticipantsJson(list);
}

// POST …/participants's body: {name, email} or {participants: [...]}.
Result<std::vector<core::ParticipantInput>> ParseParticipantInputs(const json::object& body) {
  std::vector<core::ParticipantInput> inputs;
  const json::value* many = body.if_contains("participants");
  if (!many) {
    ASSIGN_OR_RETURN(core::ParticipantInput in, core::ParseParticipantInput(body, ""));
    inputs.push_back(std::move(in));
    return inputs;
  }
  if (body.size() != 1)
    return InvalidArgument("give either {name, email} or {participants: [...]}, not both");
  if (!many->is_array()) return InvalidArgument("participants must be a list");
  const json::array& arr = many->as_array();
  if (arr.size() > 1000) return InvalidArgument("at most 1000 participants at once");
  for (size_t i = 0; i < arr.size(); ++i) {
    std::string prefix = fmt::format("participants[{}]", i);
    if (!arr[i].is_object()) return InvalidArgument(fmt::format("{} must be an object", prefix));
    ASSIGN_OR_RETURN(core::ParticipantInput in,
                     core::ParseParticipantInput(arr[i].as_object(), prefix));
    inputs.push_back(std::move(in));
  }
  return inputs;
}

// POST …/participants. Another instructor's workshop is not found before the body is judged.
Result<json::value> AddParticipants(Shared& s, const RouteContext& c) {
  WorkshopService& workshops = s.deps.workshops;
  RETURN_IF_ERROR(workshops.CheckVisible(c.principal, c.Param("id")));
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
  ASSIGN_OR_RETURN(std::vector<core::ParticipantInput> inputs, ParseParticipantInputs(body));
  ASSIGN_OR_RETURN(auto list, workshops.AddParticipants(c.principal, c.Param("id"), inputs));
  return ParticipantsJson(list);
}

// GET …/participants.
Result<json::value> ListParticipants(Shared& s, const RouteContext& c) {
  ASSIGN_OR_RETURN(auto list, s.deps.workshops.ListParticipants(c.principal, c.Param("id")));
  json::array items;
  for (const auto& v : list) items.push_back(ParticipantJson(v));
  return json::value(json::object{{"participants", std::move(items)}, {"next_page_token", ""}});
}

// DELETE …/participants/{participant}.
Result<json::value> RemoveParticipant(Shared& s, const RouteContext& c) {
  ASSIGN_OR_RETURN(core::Participant p, s.deps.workshops.RemoveParticipant(
                                            c.principal, c.Param("id"), c.Param("participant")));
  return json::value(json::object{{"removed", p.id}});
}

// POST …/{op}: `op` on the workshop's participants.
Result<json::value> RunBulk(WorkshopService& workshops, BulkOp op, const RouteContext& c) {
  RETURN_IF_ERROR(workshops.CheckVisible(c.principal, c.Param("id")));
  ASSIGN_OR_RETURN(controller::BulkRequest req, ParseBulk(op, c.request.body));
  ASSIGN_OR_RETURN(auto out, workshops.Bulk(c.principal, c.Param("id"), op, req));
  c.audit.object_owner = out.workshop.owner;
  return BulkJson(out);
}

// POST …/codes (an empty body is {}).
Result<json::value> CreateCode(Shared& s, const RouteContext& c) {
  WorkshopService& workshops = s.deps.workshops;
  RETURN_IF_ERROR(workshops.CheckVisible(c.principal, c.Param("id")));
  ASSIGN_OR_RETURN(json::object body,
                   ParseJsonObject(c.request.body.empty() ? "{}" : c.request.body));
  ASSIGN_OR_RETURN(core::JoinCode code, workshops.CreateCode(c.principal, c.Param("id"), body));
  return json::value(core::ToJson(code));
}

// GET …/codes.
Result<json::value> ListCodes(Shared& s, const RouteContext& c) {
  ASSIGN_OR_RETURN(auto list, s.deps.workshops.ListCodes(c.principal, c.Param("id")));
  json::array items;
  for (const auto& code : list) items.push_back(core::ToJson(code));
  return json::value(json::object{{"codes", std::move(items)}, {"next_page_token", ""}});
}

// DELETE …/codes/{code}.
Result<json::value> RevokeCode(Shared& s, const RouteContext& c) {
  RETURN_IF_ERROR(s.deps.workshops.RevokeCode(c.principal, c.Param("id"), c.Param("code")));
  return json::value(json::object{{"revoked", std::string(c.Param("code"))}});
}

// POST /v1/join {code, name, email}: no token, the code is the credential.
Result<json::value> Join(Shared& s, const RouteContext& c) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"code", "name", "email"}));
  ASSIGN_OR_RETURN(std::string code, NonEmptyString(r, "code", 64));
  json::object person = body;
  person.erase("code");
  ASSIGN_OR_RETURN(core::ParticipantInput in, core::ParseParticipantInput(person, ""));
  std::string secret = NewTokenValue();
  ASSIGN_OR_RETURN(auto joined, s.deps.workshops.Join(code, in, HashToken(secret)));
  c.audit.object_id = joined.workshop.id;
  c.audit.object_owner = joined.workshop.owner;
  ASSIGN_OR_RETURN(std::string token,
                   MintParticipantToken(s.deps.store, joined.participant, joined.workshop, "join"));
  return JoinedJson(joined, token, AccessUrl(s.deps.public_url, secret));
}

// POST …/participants/{participant}/access-link: a new link, the old one no longer opens.
Result<json::value> IssueAccess(Shared& s, const RouteContext& c) {
  std::string secret = NewTokenValue();
  ASSIGN_OR_RETURN(core::Participant p,
                   s.deps.workshops.IssueAccess(c.principal, c.Param("id"), c.Param("participant"),
                                                HashToken(secret)));
  return json::value(
      json::object{{"participant", p.id}, {"access_url", AccessUrl(s.deps.public_url, secret)}});
}

// DELETE …/participants/{participant}/access-link.
Result<json::value> RevokeAccess(Shared& s, const RouteContext& c) {
  RETURN_IF_ERROR(
      s.deps.workshops.RevokeAccess(c.principal, c.Param("id"), c.Param("participant")));
  return json::value(json::object{{"revoked", std::string(c.Param("participant"))}});
}

// POST /v1/access {secret}: opening an access link, the secret is the credential; answers a
// participant token.
Result<json::value> OpenAccess(Shared& s, const RouteContext& c) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"secret"}));
  ASSIGN_OR_RETURN(std::string secret, NonEmptyString(r, "secret", 256));
  ASSIGN_OR_RETURN(auto opened, s.deps.workshops.OpenAccess(HashToken(secret)));
  c.audit.object_id = opened.workshop.id;
  c.audit.object_owner = opened.workshop.owner;
  ASSIGN_OR_RETURN(std::string token, MintParticipantToken(s.deps.store, opened.participant,
                                                           opened.workshop, "access-link"));
  return JoinedJson(opened, token, std::nullopt);
}

// GET /v1/me/workshop: the participant's own workshop and place in it.
Result<json::value> MyWorkshop(Shared& s, const RouteContext& c) {
  ASSIGN_OR_RETURN(auto mine, s.deps.workshops.Mine(c.principal));
  const core::Workshop& w = mine.first;
  json::object o;
  o["workshop"] = json::object{
      {"id", w.id},
      {"name", w.name},
      {"title", w.title},
      {"state", core::ToString(w.state)},
      {"start_at", FormatTime(w.start_at)},
      {"end_at", FormatTime(w.end_at)},
  };
  int64_t left = std::chrono::duration_cast<std::chrono::seconds>(w.end_at - Now()).count();
  o["seconds_remaining"] = core::IsFinal(w.state) ? 0 : std::max<int64_t>(0, left);
  o["participant"] = ParticipantJson(mine.second);
  return json::value(std::move(o));
}

// A token-less route's spec: audited as a workshop's.
RouteSpec PublicSpec(std::string action) {
  RouteSpec spec = RouteSpec::Public();
  spec.action = std::move(action);
  spec.object_type = "workshop";
  return spec;
}

void AddParticipantRoutes(Router& router, const std::shared_ptr<Shared>& shared) {
  using core::kScopeSessionsRead;
  using core::kScopeSessionsWrite;
  router.Add("POST", "/v1/workshops/{id}/participants/import",
             Spec(kScopeSessionsWrite, "workshops.participants.import"),
             On(shared, 201, ImportParticipants));
  router.Add("POST", "/v1/workshops/{id}/participants",
             Spec(kScopeSessionsWrite, "workshops.participants.add"),
             On(shared, 201, AddParticipants));
  router.Add("GET", "/v1/workshops/{id}/participants",
             Spec(kScopeSessionsRead, "workshops.participants.list"),
             On(shared, 200, ListParticipants));
  router.Add("DELETE", "/v1/workshops/{id}/participants/{participant}",
             Spec(kScopeSessionsWrite, "workshops.participants.remove"),
             On(shared, 200, RemoveParticipant));
}

void AddBulkRoutes(Router& router, WorkshopService& workshops) {
  for (BulkOp op : {BulkOp::kExtend, BulkOp::kCheckpoint, BulkOp::kReset, BulkOp::kPause,
                    BulkOp::kResume, BulkOp::kEnd, BulkOp::kCancel}) {
    std::string name(controller::ToString(op));
    router.Add("POST", "/v1/workshops/{id}/" + name,
               Spec(core::kScopeSessionsWrite, "workshops." + name),
               [&workshops, op](const RouteContext& c) {
                 return Respond(200, [&] { return RunBulk(workshops, op, c); });
               });
  }
}

// Join codes, access links and the token-less routes that spend them.
void AddJoinRoutes(Router& router, const std::shared_ptr<Shared>& shared) {
  using core::kScopeSessionsRead;
  using core::kScopeSessionsWrite;
  router.Add("POST", "/v1/workshops/{id}/codes",
             Spec(kScopeSessionsWrite, "workshops.codes.create"), On(shared, 201, CreateCode));
  router.Add("GET", "/v1/workshops/{id}/codes", Spec(kScopeSessionsRead, "workshops.codes.list"),
             On(shared, 200, ListCodes));
  router.Add("DELETE", "/v1/workshops/{id}/codes/{code}",
             Spec(kScopeSessionsWrite, "workshops.codes.revoke"), On(shared, 200, RevokeCode));
  router.Add("POST", "/v1/join", PublicSpec("workshops.join"), OnLimited(shared, Join));
  router.Add("POST", "/v1/workshops/{id}/participants/{participant}/access-link",
             Spec(kScopeSessionsWrite, "workshops.access.issue"), On(shared, 201, IssueAccess));
  router.Add("DELETE", "/v1/workshops/{id}/participants/{participant}/access-link",
             Spec(kScopeSessionsWrite, "workshops.access.revoke"), On(shared, 200, RevokeAccess));
  router.Add("POST", "/v1/access", PublicSpec("workshops.access.open"),
             OnLimited(shared, OpenAccess));
}

}  // namespace

void AddWorkshopRoutes(Router& router, const WorkshopDeps& deps) {
  using core::kScopeSessionsRead;
  using core::kScopeSessionsWrite;
  auto shared = std::make_shared<Shared>(deps);
  router.Add("POST", "/v1/workshops", Spec(kScopeSessionsWrite, "workshops.create"),
             On(shared, 201, CreateWorkshop));
  router.Add("GET", "/v1/workshops", Spec(kScopeSessionsRead, "workshops.list"),
             On(shared, 200, ListWorkshops));
  router.Add("GET", "/v1/workshops/{id}", Spec(kScopeSessionsRead, "workshops.get"),
             On(shared, 200, GetWorkshop));
  router.Add("PATCH", "/v1/workshops/{id}", Spec(kScopeSessionsWrite, "workshops.update"),
             On(shared, 200, UpdateWorkshop));
  router.Add("DELETE", "/v1/workshops/{id}", Spec(kScopeSessionsWrite, "workshops.delete"),
             On(shared, 200, DeleteWorkshop));
  AddParticipantRoutes(router, shared);
  AddBulkRoutes(router, deps.workshops);
  AddJoinRoutes(router, shared);
  router.Add("GET", "/v1/me/workshop", Spec(kScopeSessionsRead, "workshops.mine"),
             On(shared, 200, MyWorkshop));
  AddWorkshopWatchRoutes(router, deps.workshops);
}

}  // namespace hutch::api
