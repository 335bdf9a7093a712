#include "api/webhook_handlers.h"

#include <algorithm>
#include <memory>

#include <fmt/format.h>

#include "api/one_page.h"
#include "common/ids.h"
#include "controller/webhook_url.h"
#include "core/event.h"
#include "core/scopes.h"

namespace hutch::api {

namespace {

constexpr size_t kMinSecretLength = 16;
constexpr size_t kMaxSecretLength = 256;

// The secret is never part of it: the caller chose it and is the only one who needs it.
json::object WebhookJson(const store::Webhook& w) {
  json::object o;
  o["id"] = w.id;
  o["owner"] = w.owner;
  o["url"] = w.url;
  json::array events;
  for (const auto& e : w.events) events.emplace_back(e);
  o["events"] = std::move(events);
  o["all_sessions"] = w.all_sessions;
  o["active"] = w.active;
  o["created_at"] = FormatTime(w.created_at);
  return o;
}

json::object DeliveryJson(const store::WebhookDelivery& d) {
  json::object o;
  o["id"] = d.id;
  o["webhook_id"] = d.webhook_id;
  o["event_id"] = d.event_id;
  o["attempt"] = d.attempt;
  o["at"] = FormatTime(d.at);
  o["status"] = d.status;
  o["http_status"] = d.http_status ? json::value(*d.http_status) : json::value(nullptr);
  o["error"] = d.error.empty() ? json::value(nullptr) : json::value(d.error);
  o["next_attempt_at"] =
      d.next_attempt_at ? json::value(FormatTime(*d.next_attempt_at)) : json::value(nullptr);
  o["duration_ms"] = d.duration_ms ? json::value(*d.duration_ms) : json::value(nullptr);
  return o;
}

RouteSpec Spec(std::string_view scope, std::string action) {
  return RouteSpec::For(scope, std::move(action), "webhook");
}

Result<store::Webhook> ParseCreate(const RouteContext& c, bool allow_private) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"url", "events", "secret"}));
  std::optional<std::string> url, secret;
  std::optional<std::vector<std::string>> events;
  RETURN_IF_ERROR(r.String("url", &url, controller::kMaxWebhookUrlLength));
  RETURN_IF_ERROR(r.StringList("events", &events, 64));
  RETURN_IF_ERROR(r.String("secret", &secret, kMaxSecretLength));
  if (!url) return InvalidArgument("url is required");
  RETURN_IF_ERROR(controller::CheckWebhookUrl(*url, allow_private).status());
  if (!secret || secret->size() < kMinSecretLength)
    return InvalidArgument(fmt::format(
        "secret is required: at least {} characters, the key the deliveries are signed with",
        kMinSecretLength));
  store::Webhook w;
  w.events = events.value_or(std::vector<std::string>{"*"});
  if (w.events.empty())
    return InvalidArgument("events must name at least one event type, or \"*\" for every one");
  for (const auto& type : w.events) {
    if (type != "*" && !core::IsKnownEventType(type))
      return InvalidArgument(fmt::format(
          "events: '{}' is not an event type; the types are listed in docs/api.md, \"*\" is "
          "every one",
          type));
  }
  std::sort(w.events.begin(), w.events.end());
  w.events.erase(std::unique(w.events.begin(), w.events.end()), w.events.end());
  w.id = NewId("whk");
  w.owner = c.principal.user_id;
  w.url = *url;
  w.secret = *secret;
  // An admin's own webhook (not one made for a user with owner=) hears every session.
  w.all_sessions = c.principal.admin;
  w.created_at = Now();
  return w;
}

}  // namespace

void AddWebhookRoutes(Router& router, WebhookRouteDeps d) {
  auto deps = std::make_shared<WebhookRouteDeps>(d);
  using core::kScopeSessionsRead;
  using core::kScopeSessionsWrite;

  router.Add("POST", "/v1/webhooks", Spec(kScopeSessionsWrite, "webhooks.create"),
             [deps](const RouteContext& c) {
               return Respond(201, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(store::Webhook w, ParseCreate(c, deps->allow_private));
                 ASSIGN_OR_RETURN(w, deps->store.CreateWebhook(w));
                 c.audit.object_id = w.id;
                 c.audit.object_owner = w.owner;
                 return json::value(WebhookJson(w));
               });
             });

  router.Add(
      "GET", "/v1/webhooks", Spec(kScopeSessionsRead, "webhooks.list"),
      [deps](const RouteContext& c) {
        return Respond(200, [&]() -> Result<json::value> {
          ASSIGN_OR_RETURN(auto webhooks, deps->store.ListWebhooks(c.principal.OwnerFilter()));
          return OnePage("webhooks", webhooks, [&](const auto& w) { return WebhookJson(w); });
        });
      });

  router.Add("GET", "/v1/webhooks/{id}", Spec(kScopeSessionsRead, "webhooks.get"),
             [deps](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(store::Webhook w,
                                  deps->store.GetWebhook(c.principal.OwnerFilter(), c.Param("id")));
                 return json::value(WebhookJson(w));
               });
             });

  router.Add("DELETE", "/v1/webhooks/{id}", Spec(kScopeSessionsWrite, "webhooks.delete"),
             [deps](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(store::Webhook w,
                                  deps->store.GetWebhook(c.principal.OwnerFilter(), c.Param("id")));
                 c.audit.object_id = w.id;
                 c.audit.object_owner = w.owner;
                 RETURN_IF_ERROR(deps->store.DeleteWebhook(w.id));
                 return json::value(WebhookJson(w));
               });
             });

  router.Add("GET", "/v1/webhooks/{id}/deliveries", Spec(kScopeSessionsRead, "webhooks.deliveries"),
             [deps](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(store::Webhook w,
                                  deps->store.GetWebhook(c.principal.OwnerFilter(), c.Param("id")));
                 ASSIGN_OR_RETURN(int64_t limit, QueryInt(c.request, "limit", 100, 1, 1000));
                 ASSIGN_OR_RETURN(store::DeliveryPage page,
                                  deps->store.ListDeliveries(w.id, static_cast<int>(limit),
                                                             c.request.Query("page_token")));
                 json::array items;
                 for (const auto& dl : page.deliveries) items.emplace_back(DeliveryJson(dl));
                 json::object o;
                 o["deliveries"] = std::move(items);
                 o["next_page_token"] = page.next_page_token;
                 return json::value(std::move(o));
               });
             });
}

}  // namespace hutch::api
