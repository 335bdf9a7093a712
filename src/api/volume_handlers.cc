// /v1/volumes (docs/api.md, "Volumes").
#include "api/volume_handlers.h"

#include <fmt/format.h>

#include "api/one_page.h"
#include "core/scopes.h"

namespace hutch::api {

namespace {

using controller::SessionService;
using controller::VolumeInfo;

RouteSpec Spec(std::string_view scope, std::string action) {
  return RouteSpec::For(scope, std::move(action), "volume");
}

json::value VolumeJson(const VolumeInfo& info) {
  const store::Volume& v = info.volume;
  json::object o;
  o["id"] = v.id;
  o["name"] = v.name;
  o["owner"] = v.owner;
  o["size_mb"] = v.size_mb;
  o["created_at"] = FormatTime(v.created_at);
  if (info.usage) {
    o["used_bytes"] = info.usage->used_bytes;
    o["size_bytes"] = info.usage->size_bytes;
    o["allocated_bytes"] = info.usage->allocated_bytes;
  } else {
    o["used_bytes"] = nullptr;
    o["size_bytes"] = nullptr;
    o["allocated_bytes"] = nullptr;
  }
  json::array sessions;
  for (const auto& s : info.sessions) {
    json::object a;
    a["id"] = s.id;
    a["name"] = s.name;
    a["state"] = core::ToString(s.state);
    for (const auto& m : s.volumes) {
      if (m.volume_id != v.id) continue;
      a["path"] = m.path;
      a["read_only"] = m.read_only;
    }
    sessions.emplace_back(std::move(a));
  }
  o["sessions"] = std::move(sessions);
  return o;
}

}  // namespace

void AddVolumeRoutes(Router& router, SessionService& service) {
  using core::kScopeSessionsRead;
  using core::kScopeSessionsWrite;

  router.Add("POST", "/v1/volumes", Spec(kScopeSessionsWrite, "volumes.create"),
             [&service](const RouteContext& c) {
               return Respond(201, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
                 FieldReader r(body);
                 RETURN_IF_ERROR(r.RejectUnknown({"name", "size_mb"}));
                 std::optional<std::string> name;
                 RETURN_IF_ERROR(r.String("name", &name, 63));
                 if (!name) return InvalidArgument("name is required");
                 std::optional<int64_t> size_mb;
                 RETURN_IF_ERROR(r.Int("size_mb", &size_mb, 16, int64_t{1} << 30));
                 ASSIGN_OR_RETURN(VolumeInfo info,
                                  service.CreateVolume(c.principal, *name, size_mb.value_or(0)));
                 c.audit.object_id = info.volume.id;
                 c.audit.object_owner = info.volume.owner;
                 return VolumeJson(info);
               });
             });

  router.Add("GET", "/v1/volumes", Spec(kScopeSessionsRead, "volumes.list"),
             [&service](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(auto list, service.ListVolumes(c.principal));
                 return OnePage("volumes", list,
                                [&](const auto& info) { return VolumeJson(info); });
               });
             });

  router.Add("GET", "/v1/volumes/{id}", Spec(kScopeSessionsRead, "volumes.get"),
             [&service](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(VolumeInfo info, service.GetVolume(c.principal, c.Param("id")));
                 return VolumeJson(info);
               });
             });

  router.Add("DELETE", "/v1/volumes/{id}", Spec(kScopeSessionsWrite, "volumes.delete"),
             [&service](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(VolumeInfo info,
                                  service.DeleteVolume(c.principal, c.Param("id")));
                 c.audit.object_id = info.volume.id;
                 c.audit.object_owner = info.volume.owner;
                 json::object o;
                 o["deleted"] = info.volume.id;
                 return json::value(std::move(o));
               });
             });
}

}  // namespace hutch::api
