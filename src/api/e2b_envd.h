// The in-sandbox part of the E2B API (envd) under /e2b/envd (E2B_SANDBOX_URL={server}/e2b/envd):
// the Connect-RPC services process.Process (api/e2b_process.cc) and filesystem.Filesystem
// (api/e2b_filesystem.cc), and envd's HTTP /files and /health (api/e2b_files.cc). The sandbox
// is named by the E2b-Sandbox-Id header; the request proves itself with X-Access-Token, the
// sandbox's envdAccessToken from create or connect. Everything reaches the sandbox through the
// controller's facade (SandboxAgent, SandboxFiles), like the rest of api/.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "api/e2b_connect.h"
#include "api/router.h"
#include "controller/live_processes.h"
#include "controller/session_service.h"
#include "core/principal.h"

namespace hutch::api::e2b {

class WatcherTable;

// A request to envd whose token checked: the session it acts on and as whom.
struct EnvdCall {
  core::Principal who;
  std::string session_id;
};

struct EnvdDeps {
  controller::SessionService& service;
  std::string key;  // signs the envd access tokens
  // The processes process.Process started, reachable by pid or tag after their stream ends.
  std::shared_ptr<controller::LiveProcessTable> processes;
  std::shared_ptr<WatcherTable> watchers;
};

// The sandbox of an envd request (E2b-Sandbox-Id, or the {sandboxID} of a host-routed path)
// once its X-Access-Token checked.
Result<EnvdCall> ResolveEnvd(const EnvdDeps& deps, const RouteContext& c);

// A path as envd takes it: absolute, or relative to the user's home (/root in hutch's
// sandboxes).
std::string EnvdPath(std::string_view path);

// One Connect method of a service: unary or server-streaming.
ApiResponse ServeProcessRpc(EnvdDeps& deps, const EnvdCall& call, std::string_view method,
                            const ApiRequest& request);
ApiResponse ServeFilesystemRpc(EnvdDeps& deps, const EnvdCall& call, std::string_view method,
                               const ApiRequest& request);
// GET and POST /files.
ApiResponse ServeFileDownload(EnvdDeps& deps, const EnvdCall& call, const ApiRequest& request);
ApiResponse ServeFileUpload(EnvdDeps& deps, const EnvdCall& call, const ApiRequest& request);

}  // namespace hutch::api::e2b

namespace hutch::api {

// Returns what the server calls after it stopped serving and before `service` goes: it stops
// reading the processes envd started and drops its watchers, which report to `service`.
std::function<void()> AddE2bEnvdRoutes(Router& router, controller::SessionService& service,
                                       std::string key);

}  // namespace hutch::api
