#include "api/gc_handlers.h"

#include "core/scopes.h"

namespace hutch::api {

namespace {

json::value ItemJson(const controller::GcItem& item) {
  json::object o;
  o["kind"] = item.what.kind;
  o["path"] = item.what.path;
  if (!item.what.session_id.empty()) o["session_id"] = item.what.session_id;
  if (!item.what.volume_id.empty()) o["volume_id"] = item.what.volume_id;
  if (!item.what.detail.empty()) o["detail"] = item.what.detail;
  o["reason"] = item.reason;
  o["removed"] = item.removed;
  if (!item.error.empty()) o["error"] = item.error;
  return o;
}

}  // namespace

void AddGcRoutes(Router& router, controller::GarbageCollector& gc) {
  RouteSpec spec;
  spec.scope = std::string(core::kScopeAdmin);
  spec.action = "admin.gc";
  spec.admin_only = true;
  router.Add("POST", "/v1/admin/gc", spec, [&gc](const RouteContext& c) {
    return Respond(200, [&]() -> Result<json::value> {
      json::object body;
      if (!c.request.body.empty()) {
        ASSIGN_OR_RETURN(body, ParseJsonObject(c.request.body));
      }
      FieldReader r(body);
      RETURN_IF_ERROR(r.RejectUnknown({"dry_run", "min_age_seconds"}));
      std::optional<bool> dry_run;
      RETURN_IF_ERROR(r.Bool("dry_run", &dry_run));
      std::optional<int64_t> min_age;
      RETURN_IF_ERROR(r.Int("min_age_seconds", &min_age, 0, int64_t{365} * 24 * 3600));
      ASSIGN_OR_RETURN(controller::GcReport report,
                       gc.Run(dry_run.value_or(true), min_age ? std::chrono::seconds(*min_age)
                                                              : controller::kGcDefaultMinAge));
      json::array items;
      for (const auto& item : report.items) items.push_back(ItemJson(item));
      json::object o;
      o["dry_run"] = report.dry_run;
      o["items"] = std::move(items);
      return json::value(std::move(o));
    });
  });
}

}  // namespace hutch::api
