#include "api/e2b_common.h"

#include "common/hmac.h"
#include "common/json.h"

namespace hutch::api::e2b {

namespace {

constexpr std::string_view kSessionPrefix = "ses_";
constexpr std::string_view kBase32 = "abcdefghijklmnopqrstuvwxyz234567";

}  // namespace

std::string SandboxIdOf(std::string_view session_id) {
  if (session_id.starts_with(kSessionPrefix)) session_id.remove_prefix(kSessionPrefix.size());
  return std::string(session_id);
}

std::string SessionIdOf(std::string_view sandbox_id) {
  if (sandbox_id.empty() || sandbox_id.size() > 64) return "";
  for (char c : sandbox_id)
    if (kBase32.find(c) == std::string_view::npos) return "";
  return std::string(kSessionPrefix) + std::string(sandbox_id);
}

std::string EnvdAccessToken(std::string_view key, std::string_view session_id) {
  return HmacSha256Hex(key, "e2b-envd\n" + std::string(session_id));
}

Status CheckEnvdAccessToken(std::string_view key, std::string_view session_id,
                            std::string_view token) {
  if (token.empty())
    return Unauthenticated("missing X-Access-Token: the sandbox's envdAccessToken");
  if (key.empty() || !ConstantTimeEquals(token, EnvdAccessToken(key, session_id)))
    return Unauthenticated("the X-Access-Token is not this sandbox's envdAccessToken");
  return Status::Ok();
}

core::Principal EnvdPrincipal() {
  core::Principal who;
  who.admin = true;  // the token stands for the owner: find the session by id
  who.user_id = "e2b-envd";
  who.user_name = "e2b-envd";
  return who;
}

ApiResponse Error(int http_status, std::string message) {
  json::object o;
  o["code"] = http_status;
  o["message"] = std::move(message);
  return ApiResponse::Json(http_status, o);
}

ApiResponse Error(const Status& status) {
  return Error(HttpStatus(status.code()), status.message());
}

ApiResponse NoContent() {
  ApiResponse r;
  r.status = 204;
  return r;
}

}  // namespace hutch::api::e2b
