// Images, tasks and commits (docs/api.md, "Images" and "Tasks").
#include "api/image_handlers.h"

#include <memory>

#include <fmt/format.h>

#include "api/one_page.h"
#include "core/scopes.h"

namespace hutch::api {

namespace {

// The largest upload an import takes.
constexpr uint64_t kMaxImportBytes = uint64_t{64} << 30;

RouteSpec Spec(std::string_view scope, std::string action, std::string object_type = "image",
               bool stream_body = false) {
  RouteSpec spec = RouteSpec::For(scope, std::move(action), std::move(object_type));
  spec.stream_request_body = stream_body;
  return spec;
}

json::value TaskValue(const store::Task& t) { return json::value(controller::TaskJson(t)); }

// POST /v1/images {name, build: {debootstrap: {suite, include, variant, mirror}}}
Result<std::pair<std::string, drivers::DebootstrapSpec>> ParseBuild(const json::object& body) {
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"name", "build"}));
  std::optional<std::string> name;
  RETURN_IF_ERROR(r.String("name", &name, 63));
  if (!name) return InvalidArgument("name is required");
  ASSIGN_OR_RETURN(const json::object* build, r.Object("build"));
  if (!build)
    return InvalidArgument(
        "build is required (build.debootstrap); to import an archive, POST it to "
        "/v1/images/{name}/import");
  FieldReader b(*build, "build");
  RETURN_IF_ERROR(b.RejectUnknown({"debootstrap"}));
  ASSIGN_OR_RETURN(const json::object* deb, b.Object("debootstrap"));
  if (!deb) return InvalidArgument("build.debootstrap is required");
  FieldReader d(*deb, "build.debootstrap");
  RETURN_IF_ERROR(d.RejectUnknown({"suite", "include", "variant", "mirror"}));
  drivers::DebootstrapSpec spec;
  std::optional<std::string> suite, variant, mirror;
  std::optional<std::vector<std::string>> include;
  RETURN_IF_ERROR(d.String("suite", &suite, 64));
  RETURN_IF_ERROR(d.String("variant", &variant, 64));
  RETURN_IF_ERROR(d.String("mirror", &mirror, 512));
  RETURN_IF_ERROR(d.StringList("include", &include, 512));
  if (!suite || suite->empty()) return InvalidArgument("build.debootstrap.suite is required");
  spec.suite = *suite;
  if (variant) spec.variant = *variant;
  if (mirror) spec.mirror = *mirror;
  if (include) spec.include = *include;
  return std::make_pair(*name, spec);
}

}  // namespace

void AddImageRoutes(Router& router, ImageRouteDeps deps) {
  using core::kScopeSessionsRead;
  using core::kScopeSessionsWrite;
  controller::ImageService& images = deps.images;
  controller::TaskRunner& tasks = deps.tasks;

  router.Add("GET", "/v1/images", Spec(kScopeSessionsRead, "images.list"),
             [&images](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(auto list, images.List(c.principal));
                 return OnePage("images", list,
                                [&](const auto& v) { return controller::ImageJson(v); });
               });
             });

  router.Add("POST", "/v1/images", Spec(kScopeSessionsWrite, "images.build"),
             [&images](const RouteContext& c) {
               return Respond(202, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
                 ASSIGN_OR_RETURN(auto parsed, ParseBuild(body));
                 ASSIGN_OR_RETURN(store::Task t,
                                  images.Build(c.principal, parsed.first, parsed.second));
                 c.audit.object_id = parsed.first;
                 return TaskValue(t);
               });
             });

  router.Add("GET", "/v1/images/{name}", Spec(kScopeSessionsRead, "images.get"),
             [&images](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(controller::ImageView v,
                                  images.Get(c.principal, std::string(c.Param("name"))));
                 return json::value(controller::ImageJson(v));
               });
             });

  router.Add("DELETE", "/v1/images/{name}", Spec(kScopeSessionsWrite, "images.delete"),
             [&images](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 std::string name(c.Param("name"));
                 RETURN_IF_ERROR(images.Delete(c.principal, name));
                 c.audit.object_id = name;
                 json::object o;
                 o["deleted"] = name;
                 return json::value(std::move(o));
               });
             });

  // The body is the archive (plain, gzip or zstd tar), handed to the driver as it comes, then
  // imported by a task.
  router.Add(
      "POST", "/v1/images/{name}/import",
      Spec(kScopeSessionsWrite, "images.import", "image", /*stream_body=*/true),
      [&images](const RouteContext& c) {
        return Respond(202, [&]() -> Result<json::value> {
          const ApiRequest& req = c.request;
          std::string name(c.Param("name"));
          std::string format = req.HasQuery("format") ? std::string(req.Query("format")) : "auto";
          if (format != "auto" && format != "rootfs" && format != "oci" &&
              format != "docker-archive")
            return InvalidArgument(
                fmt::format("format '{}' is not one of auto, rootfs, oci, docker-archive", format));
          // Name and format before reading gigabytes.
          if (auto existing = images.Get(c.principal, name); existing.ok()) {
            return Conflict(fmt::format("image {} exists already", name));
          } else if (existing.status().code() != Code::kNotFound) {
            return existing.status();  // a bad name, before gigabytes are read
          }
          // The driver's sink: dropped (and what it received with it) on any error.
          ASSIGN_OR_RETURN(std::unique_ptr<drivers::ImageUpload> upload, images.BeginUpload());
          BodySource* body = req.body_source.get();
          std::unique_ptr<char[]> buf(new char[1 << 20]);
          uint64_t total = 0;
          while (body) {
            ASSIGN_OR_RETURN(size_t n, body->Read(buf.get(), 1 << 20));
            if (n == 0) break;
            total += n;
            if (total > kMaxImportBytes)
              return PayloadTooLarge(
                  fmt::format("an image archive may be at most {} bytes", kMaxImportBytes));
            RETURN_IF_ERROR(upload->Write(std::string_view(buf.get(), n)));
          }
          if (total == 0) return InvalidArgument("the request has no body (the archive)");
          RETURN_IF_ERROR(upload->Finish());
          ASSIGN_OR_RETURN(store::Task t,
                           images.Import(c.principal, name, format, std::move(upload)));
          c.audit.object_id = name;
          return TaskValue(t);
        });
      });

  router.Add("GET", "/v1/tasks/{id}", Spec(kScopeSessionsRead, "tasks.get", "task"),
             [&tasks](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(store::Task t, tasks.Get(c.principal, c.Param("id")));
                 return TaskValue(t);
               });
             });

  router.Add("POST", "/v1/sessions/{id}/commit",
             Spec(kScopeSessionsWrite, "sessions.commit", "session"),
             [&images](const RouteContext& c) {
               return Respond(202, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
                 FieldReader r(body);
                 RETURN_IF_ERROR(r.RejectUnknown({"image"}));
                 std::optional<std::string> image;
                 RETURN_IF_ERROR(r.String("image", &image, 63));
                 if (!image) return InvalidArgument("image is required (the new image's name)");
                 ASSIGN_OR_RETURN(store::Task t, images.Commit(c.principal, c.Param("id"), *image));
                 c.audit.object_id = std::string(c.Param("id"));
                 return TaskValue(t);
               });
             });
}

}  // namespace hutch::api
