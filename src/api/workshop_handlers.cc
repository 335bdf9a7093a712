// /v1/workshops and /v1/me/workshop (docs/api.md, "Workshops").
#include "api/workshop_handlers.h"

#include <fmt/format.h>

#include "api/auth.h"
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

}  // namespace

void AddWorkshopRoutes(Router& router, const WorkshopDeps& deps) {
  WorkshopService& workshops = deps.workshops;
  store::Store& store = deps.store;
  const std::string public_url = deps.public_url;
  auto join_limiter = std::make_shared<RateLimiter>(deps.join_rate_per_second, deps.join_burst);
  using core::kScopeSessionsRead;
  using core::kScopeSessionsWrite;

  controller::ScenarioService* scenarios = deps.scenarios;
  router.Add("POST", "/v1/workshops", Spec(kScopeSessionsWrite, "workshops.create"),
             [&workshops, scenarios](const RouteContext& c) {
               return Respond(201, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
                 // `scenario` or `course` (controller/scenarios.h) becomes the workshop's plan.
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
               });
             });

  router.Add("GET", "/v1/workshops", Spec(kScopeSessionsRead, "workshops.list"),
             [&workshops](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(bool ended, QueryBool(c.request, "include_ended", false));
                 ASSIGN_OR_RETURN(auto list, workshops.List(c.principal, ended));
                 json::array items;
                 for (const auto& v : list) items.push_back(WorkshopJson(v));
                 return json::value(
                     json::object{{"workshops", std::move(items)}, {"next_page_token", ""}});
               });
             });

  router.Add("GET", "/v1/workshops/{id}", Spec(kScopeSessionsRead, "workshops.get"),
             [&workshops](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(WorkshopView v, workshops.Get(c.principal, c.Param("id")));
                 return WorkshopJson(v);
               });
             });

  router.Add("PATCH", "/v1/workshops/{id}", Spec(kScopeSessionsWrite, "workshops.update"),
             [&workshops](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 RETURN_IF_ERROR(workshops.CheckVisible(c.principal, c.Param("id")));
                 ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
                 ASSIGN_OR_RETURN(core::Workshop w,
                                  workshops.Update(c.principal, c.Param("id"), body));
                 c.audit.object_owner = w.owner;
                 ASSIGN_OR_RETURN(WorkshopView v, workshops.Get(c.principal, w.id));
                 return WorkshopJson(v);
               });
             });

  // DELETE: a workshop that has not started is cancelled, a running one ended now (as its
  // on_end says).
  router.Add("DELETE", "/v1/workshops/{id}", Spec(kScopeSessionsWrite, "workshops.delete"),
             [&workshops](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(WorkshopView v, workshops.Get(c.principal, c.Param("id")));
                 c.audit.object_owner = v.workshop.owner;
                 const bool started = v.workshop.state == core::WorkshopState::kActive ||
                                      v.workshop.state == core::WorkshopState::kEnding;
                 ASSIGN_OR_RETURN(auto out,
                                  workshops.Bulk(c.principal, v.workshop.id,
                                                 started ? BulkOp::kEnd : BulkOp::kCancel, {}));
                 return BulkJson(out);
               });
             });

  router.Add("POST", "/v1/workshops/{id}/participants/import",
             Spec(kScopeSessionsWrite, "workshops.participants.import"),
             [&workshops](const RouteContext& c) {
               return Respond(201, [&]() -> Result<json::value> {
                 RETURN_IF_ERROR(workshops.CheckVisible(c.principal, c.Param("id")));
                 ASSIGN_OR_RETURN(auto list, workshops.ImportParticipants(
                                                 c.principal, c.Param("id"), c.request.body));
                 return ParticipantsJson(list);
               });
             });

  router.Add(
      "POST", "/v1/workshops/{id}/participants",
      Spec(kScopeSessionsWrite, "workshops.participants.add"), [&workshops](const RouteContext& c) {
        return Respond(201, [&]() -> Result<json::value> {
          // Another instructor's workshop is not found before the body is judged.
          RETURN_IF_ERROR(workshops.CheckVisible(c.principal, c.Param("id")));
          ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
          std::vector<core::ParticipantInput> inputs;
          if (const json::value* many = body.if_contains("participants")) {
            if (body.size() != 1)
              return InvalidArgument(
                  "give either {name, email} or {participants: [...]}, not both");
            if (!many->is_array()) return InvalidArgument("participants must be a list");
            const json::array& arr = many->as_array();
            if (arr.size() > 1000) return InvalidArgument("at most 1000 participants at once");
            for (size_t i = 0; i < arr.size(); ++i) {
              std::string prefix = fmt::format("participants[{}]", i);
              if (!arr[i].is_object())
                return InvalidArgument(fmt::format("{} must be an object", prefix));
              ASSIGN_OR_RETURN(core::ParticipantInput in,
                               core::ParseParticipantInput(arr[i].as_object(), prefix));
              inputs.push_back(std::move(in));
            }
          } else {
            ASSIGN_OR_RETURN(core::ParticipantInput in, core::ParseParticipantInput(body, ""));
            inputs.push_back(std::move(in));
          }
          ASSIGN_OR_RETURN(auto list,
                           workshops.AddParticipants(c.principal, c.Param("id"), inputs));
          return ParticipantsJson(list);
        });
      });

  router.Add(
      "GET", "/v1/workshops/{id}/participants",
      Spec(kScopeSessionsRead, "workshops.participants.list"), [&workshops](const RouteContext& c) {
        return Respond(200, [&]() -> Result<json::value> {
          ASSIGN_OR_RETURN(auto list, workshops.ListParticipants(c.principal, c.Param("id")));
          json::array items;
          for (const auto& v : list) items.push_back(ParticipantJson(v));
          return json::value(
              json::object{{"participants", std::move(items)}, {"next_page_token", ""}});
        });
      });

  router.Add("DELETE", "/v1/workshops/{id}/participants/{participant}",
             Spec(kScopeSessionsWrite, "workshops.participants.remove"),
             [&workshops](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(core::Participant p,
                                  workshops.RemoveParticipant(c.principal, c.Param("id"),
                                                              c.Param("participant")));
                 return json::value(json::object{{"removed", p.id}});
               });
             });

  for (BulkOp op : {BulkOp::kExtend, BulkOp::kCheckpoint, BulkOp::kReset, BulkOp::kPause,
                    BulkOp::kResume, BulkOp::kEnd, BulkOp::kCancel}) {
    std::string name(controller::ToString(op));
    router.Add("POST", "/v1/workshops/{id}/" + name, Spec(kScopeSessionsWrite, "workshops." + name),
               [&workshops, op](const RouteContext& c) {
                 return Respond(200, [&]() -> Result<json::value> {
                   RETURN_IF_ERROR(workshops.CheckVisible(c.principal, c.Param("id")));
                   ASSIGN_OR_RETURN(controller::BulkRequest req, ParseBulk(op, c.request.body));
                   ASSIGN_OR_RETURN(auto out, workshops.Bulk(c.principal, c.Param("id"), op, req));
                   c.audit.object_owner = out.workshop.owner;
                   return BulkJson(out);
                 });
               });
  }

  router.Add("POST", "/v1/workshops/{id}/codes",
             Spec(kScopeSessionsWrite, "workshops.codes.create"),
             [&workshops](const RouteContext& c) {
               return Respond(201, [&]() -> Result<json::value> {
                 RETURN_IF_ERROR(workshops.CheckVisible(c.principal, c.Param("id")));
                 ASSIGN_OR_RETURN(json::object body,
                                  ParseJsonObject(c.request.body.empty() ? "{}" : c.request.body));
                 ASSIGN_OR_RETURN(core::JoinCode code,
                                  workshops.CreateCode(c.principal, c.Param("id"), body));
                 return json::value(core::ToJson(code));
               });
             });
  router.Add(
      "GET", "/v1/workshops/{id}/codes", Spec(kScopeSessionsRead, "workshops.codes.list"),
      [&workshops](const RouteContext& c) {
        return Respond(200, [&]() -> Result<json::value> {
          ASSIGN_OR_RETURN(auto list, workshops.ListCodes(c.principal, c.Param("id")));
          json::array items;
          for (const auto& code : list) items.push_back(core::ToJson(code));
          return json::value(json::object{{"codes", std::move(items)}, {"next_page_token", ""}});
        });
      });
  router.Add("DELETE", "/v1/workshops/{id}/codes/{code}",
             Spec(kScopeSessionsWrite, "workshops.codes.revoke"),
             [&workshops](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 RETURN_IF_ERROR(workshops.RevokeCode(c.principal, c.Param("id"), c.Param("code")));
                 return json::value(json::object{{"revoked", std::string(c.Param("code"))}});
               });
             });

  // No token: the code is the credential. Rate limited per client address.
  RouteSpec join = RouteSpec::Public();
  join.action = "workshops.join";
  join.object_type = "workshop";
  router.Add("POST", "/v1/join", join,
             [&workshops, &store, public_url, join_limiter](const RouteContext& c) {
               if (auto limited = Limited(*join_limiter, c.request)) return *limited;
               return Respond(201, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
                 FieldReader r(body);
                 RETURN_IF_ERROR(r.RejectUnknown({"code", "name", "email"}));
                 std::optional<std::string> code;
                 RETURN_IF_ERROR(r.String("code", &code, 64));
                 if (!code || code->empty()) return InvalidArgument("code is required");
                 json::object person = body;
                 person.erase("code");
                 ASSIGN_OR_RETURN(core::ParticipantInput in,
                                  core::ParseParticipantInput(person, ""));
                 std::string secret = NewTokenValue();
                 ASSIGN_OR_RETURN(auto joined, workshops.Join(*code, in, HashToken(secret)));
                 c.audit.object_id = joined.workshop.id;
                 c.audit.object_owner = joined.workshop.owner;
                 ASSIGN_OR_RETURN(std::string token, MintParticipantToken(store, joined.participant,
                                                                          joined.workshop, "join"));
                 return JoinedJson(joined, token, AccessUrl(public_url, secret));
               });
             });

  router.Add("POST", "/v1/workshops/{id}/participants/{participant}/access-link",
             Spec(kScopeSessionsWrite, "workshops.access.issue"),
             [&workshops, public_url](const RouteContext& c) {
               return Respond(201, [&]() -> Result<json::value> {
                 std::string secret = NewTokenValue();
                 ASSIGN_OR_RETURN(core::Participant p,
                                  workshops.IssueAccess(c.principal, c.Param("id"),
                                                        c.Param("participant"), HashToken(secret)));
                 return json::value(json::object{{"participant", p.id},
                                                 {"access_url", AccessUrl(public_url, secret)}});
               });
             });
  router.Add("DELETE", "/v1/workshops/{id}/participants/{participant}/access-link",
             Spec(kScopeSessionsWrite, "workshops.access.revoke"),
             [&workshops](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 RETURN_IF_ERROR(
                     workshops.RevokeAccess(c.principal, c.Param("id"), c.Param("participant")));
                 return json::value(json::object{{"revoked", std::string(c.Param("participant"))}});
               });
             });

  // Opening an access link: the secret is the credential; answers a participant token.
  RouteSpec access = RouteSpec::Public();
  access.action = "workshops.access.open";
  access.object_type = "workshop";
  router.Add(
      "POST", "/v1/access", access, [&workshops, &store, join_limiter](const RouteContext& c) {
        if (auto limited = Limited(*join_limiter, c.request)) return *limited;
        return Respond(201, [&]() -> Result<json::value> {
          ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
          FieldReader r(body);
          RETURN_IF_ERROR(r.RejectUnknown({"secret"}));
          std::optional<std::string> secret;
          RETURN_IF_ERROR(r.String("secret", &secret, 256));
          if (!secret || secret->empty()) return InvalidArgument("secret is required");
          ASSIGN_OR_RETURN(auto opened, workshops.OpenAccess(HashToken(*secret)));
          c.audit.object_id = opened.workshop.id;
          c.audit.object_owner = opened.workshop.owner;
          ASSIGN_OR_RETURN(std::string token, MintParticipantToken(store, opened.participant,
                                                                   opened.workshop, "access-link"));
          return JoinedJson(opened, token, std::nullopt);
        });
      });

  router.Add("GET", "/v1/me/workshop", Spec(kScopeSessionsRead, "workshops.mine"),
             [&workshops](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(auto mine, workshops.Mine(c.principal));
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
                 int64_t left =
                     std::chrono::duration_cast<std::chrono::seconds>(w.end_at - Now()).count();
                 o["seconds_remaining"] = core::IsFinal(w.state) ? 0 : std::max<int64_t>(0, left);
                 o["participant"] = ParticipantJson(mine.second);
                 return json::value(std::move(o));
               });
             });
  AddWorkshopWatchRoutes(router, workshops);
}

}  // namespace hutch::api
