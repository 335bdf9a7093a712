// What the E2B-compatible API (/e2b, docs/e2b.md) shares between its control plane and its
// in-sandbox (envd) part: how E2B sandbox ids map to sessions, the per-sandbox envd access
// token, and E2B's error shape.
#pragma once

#include <string>
#include <string_view>

#include "api/http_types.h"
#include "common/status.h"
#include "core/principal.h"

namespace hutch::api::e2b {

// The envd version hutch answers with. The SDKs gate features on it: 0.5.7 means no default
// user, stdin close, octet-stream uploads; below 0.6.2 no file metadata (which hutch lacks).
inline constexpr std::string_view kEnvdVersion = "0.5.7";
// The port E2B's SDKs reach envd on, in host-routed URLs ({port}-{id}.{domain}).
inline constexpr int kEnvdPort = 49983;

// A sandbox id is the session id without its "ses_" prefix: 16 characters of lower-case
// base32, so it is DNS-safe in {port}-{id}.{domain}. Both directions; SessionIdOf answers ""
// for a string that is no sandbox id.
std::string SandboxIdOf(std::string_view session_id);
std::string SessionIdOf(std::string_view sandbox_id);

// The envd access token of a session: HMAC-SHA256(server key, "e2b-envd\n" + session id), so
// the server keeps no state for it and every sandbox has its own.
std::string EnvdAccessToken(std::string_view key, std::string_view session_id);
// Ok when `token` is the access token of the session; unauthenticated otherwise.
Status CheckEnvdAccessToken(std::string_view key, std::string_view session_id,
                            std::string_view token);
// The principal an envd request acts as once its access token checked: the session's owner,
// whoever that is (the token names one session).
core::Principal EnvdPrincipal();

// E2B's error answer: {"code": <http status>, "message": "…"} with that HTTP status.
ApiResponse Error(const Status& status);
ApiResponse Error(int http_status, std::string message);
// 204 without a body (kill, timeout, pause, refreshes).
ApiResponse NoContent();

}  // namespace hutch::api::e2b
