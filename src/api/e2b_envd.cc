#include "api/e2b_envd.h"

#include <fmt/format.h>

#include "api/e2b_common.h"
#include "api/e2b_watchers.h"

namespace hutch::api::e2b {

std::string EnvdPath(std::string_view path) {
  if (path.starts_with('/')) return std::string(path);
  if (path.empty() || path == "." || path == "~") return "/root";
  if (path.starts_with("~/")) path.remove_prefix(2);
  return "/root/" + std::string(path);
}

Result<EnvdCall> ResolveEnvd(const EnvdDeps& deps, const RouteContext& c) {
  std::string sandbox(c.Param("sandboxID"));
  if (sandbox.empty()) sandbox = c.request.Header("e2b-sandbox-id");
  if (sandbox.empty()) return InvalidArgument("the E2b-Sandbox-Id header names no sandbox");
  std::string session_id = SessionIdOf(sandbox);
  if (session_id.empty()) return NotFound(fmt::format("sandbox {} not found", sandbox));
  RETURN_IF_ERROR(CheckEnvdAccessToken(deps.key, session_id, c.request.Header("x-access-token")));
  c.audit.object_id = session_id;
  return EnvdCall{EnvdPrincipal(), session_id};
}

}  // namespace hutch::api::e2b

namespace hutch::api {

namespace {

using e2b::EnvdCall;
using e2b::EnvdDeps;

RouteSpec EnvdSpec(std::string action) {
  RouteSpec spec = RouteSpec::Public();  // X-Access-Token is checked by the handler
  spec.action = std::move(action);
  spec.object_type = "session";
  return spec;
}

// Runs `serve` once the request's sandbox and token checked; a refusal in the Connect shape
// (`rpc`) or E2B's HTTP one.
template <typename F>
Handler Envd(std::shared_ptr<EnvdDeps> deps, bool rpc, F serve) {
  return [deps, rpc, serve](const RouteContext& c) {
    Result<EnvdCall> call = e2b::ResolveEnvd(*deps, c);
    if (!call.ok())
      return rpc ? e2b::UnaryError(e2b::ToRpcError(call.status())) : e2b::Error(call.status());
    return serve(*deps, *call, c);
  };
}

void AddEnvdRoutes(Router& router, const std::string& prefix, std::shared_ptr<EnvdDeps> deps) {
  router.Add("POST", prefix + "/process.Process/{method}", EnvdSpec("e2b.envd.process"),
             Envd(deps, true, [](EnvdDeps& d, const EnvdCall& call, const RouteContext& c) {
               return e2b::ServeProcessRpc(d, call, c.Param("method"), c.request);
             }));
  router.Add("POST", prefix + "/filesystem.Filesystem/{method}", EnvdSpec("e2b.envd.filesystem"),
             Envd(deps, true, [](EnvdDeps& d, const EnvdCall& call, const RouteContext& c) {
               return e2b::ServeFilesystemRpc(d, call, c.Param("method"), c.request);
             }));
  router.Add("GET", prefix + "/files", EnvdSpec("e2b.envd.files.read"),
             Envd(deps, false, [](EnvdDeps& d, const EnvdCall& call, const RouteContext& c) {
               return e2b::ServeFileDownload(d, call, c.request);
             }));
  router.Add("POST", prefix + "/files", EnvdSpec("e2b.envd.files.write"),
             Envd(deps, false, [](EnvdDeps& d, const EnvdCall& call, const RouteContext& c) {
               return e2b::ServeFileUpload(d, call, c.request);
             }));
  // 204 while the sandbox runs; 502 (what E2B's proxy answers for a sandbox that is gone) else.
  router.Add("GET", prefix + "/health", EnvdSpec("e2b.envd.health"),
             Envd(deps, false, [](EnvdDeps& d, const EnvdCall& call, const RouteContext&) {
               auto s = d.service.Get(call.who, call.session_id);
               if (!s.ok() || s->state != core::SessionState::kRunning)
                 return e2b::Error(502, fmt::format("sandbox {} is not running",
                                                    e2b::SandboxIdOf(call.session_id)));
               return e2b::NoContent();
             }));
}

}  // namespace

std::function<void()> AddE2bEnvdRoutes(Router& router, controller::SessionService& service,
                                       std::string key) {
  auto deps = std::make_shared<EnvdDeps>(EnvdDeps{service, std::move(key),
                                                  std::make_shared<controller::LiveProcessTable>(),
                                                  std::make_shared<e2b::WatcherTable>()});
  AddEnvdRoutes(router, "/e2b/envd", deps);
  // Host routing: 49983-{sandbox id}.<proxy_base_domain>/… arrives as /e2b/envd/{id}/… (the
  // SDKs' default when no E2B_SANDBOX_URL is set, over HTTPS).
  AddEnvdRoutes(router, "/e2b/envd/{sandboxID}", deps);
  return [deps] {
    deps->processes->Clear();
    deps->watchers->Clear();
  };
}

}  // namespace hutch::api
