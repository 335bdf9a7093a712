#include "api/auth.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "api/port_access.h"
#include "common/hmac.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/unique_fd.h"
#include "core/scopes.h"

#include <fmt/format.h>

namespace hutch::api {

std::string HashToken(std::string_view token) { return Sha256Hex(token); }

std::string NewTokenValue() { return "hutch_" + Base32(RandomBytes(32)); }

IssuedToken IssueToken(std::string user_id, std::string name, std::vector<std::string> scopes,
                       std::optional<TimePoint> expires_at) {
  IssuedToken t;
  t.value = NewTokenValue();
  t.record.id = NewId("tok");
  t.record.user_id = std::move(user_id);
  t.record.name = std::move(name);
  t.record.hash = HashToken(t.value);
  t.record.scopes = std::move(scopes);
  t.record.created_at = Now();
  t.record.expires_at = expires_at;
  return t;
}

std::string ConsoleCsrfToken(std::string_view token) {
  return HashToken("hutch console csrf\n" + std::string(token));
}

namespace {

// The host[:port] of an Origin ("https://h:1" → "h:1"); "" when it has no scheme.
std::string_view OriginHost(std::string_view origin) {
  size_t sep = origin.find("://");
  return sep == std::string_view::npos ? std::string_view() : origin.substr(sep + 3);
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

Result<core::Principal> Authenticator::AuthenticateRequest(const ApiRequest& request,
                                                           bool mutating) {
  std::string authorization = request.Header("authorization");
  // E2B's SDKs send their API key as X-API-Key; under /e2b that is a hutch token (docs/e2b.md).
  if (authorization.empty() && request.path.starts_with("/e2b/")) {
    std::string key = request.Header("x-api-key");
    if (!key.empty()) return Authenticate("Bearer " + key);
  }
  std::string token;
  if (authorization.empty()) token = CookieValue(request.Header("cookie"), kConsoleCookie);
  if (token.empty()) return Authenticate(authorization);
  // Browsers send Origin on every cross-origin request, WebSocket upgrades and POSTs included:
  // a page elsewhere that gets the browser to send the cookie is refused here (cross-site
  // WebSocket hijacking), before anything runs.
  std::string origin = request.Header("origin");
  if (!origin.empty() && !EqualsIgnoringCase(OriginHost(origin), request.Header("host")))
    return PermissionDenied(fmt::format(
        "the console's cookie was sent from another origin ({}); use a bearer token", origin));
  if (mutating && !ConstantTimeEquals(request.Header(kCsrfHeader), ConsoleCsrfToken(token)))
    return PermissionDenied(
        "a change made with the console's cookie needs the X-Hutch-CSRF header that GET "
        "/v1/console/session gives");
  return Authenticate("Bearer " + token);
}

Result<core::Principal> Authenticator::Authenticate(std::string_view authorization) {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.empty())
    return Unauthenticated("missing Authorization header; send 'Authorization: Bearer <token>'");
  if (authorization.size() <= kBearer.size() ||
      !std::equal(kBearer.begin(), kBearer.end(), authorization.begin(),
                  [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
    return Unauthenticated("the Authorization header must be 'Bearer <token>'");
  std::string_view token = authorization.substr(kBearer.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\r')) token.remove_suffix(1);
  if (token.empty() || token.size() > 512) return Unauthenticated("the bearer token is malformed");

  std::string hash = HashToken(token);
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(hash);
    if (it != cache_.end() && now - it->second.checked_at < kCacheTtl &&
        (!it->second.expires_at || *it->second.expires_at > Now()))
      return it->second.principal;
  }
  Result<store::TokenRecord> rec = store_.GetTokenByHash(hash);
  if (!rec.ok()) {
    if (rec.status().code() == Code::kNotFound) return Unauthenticated("the token is not valid");
    return rec.status();
  }
  if (rec->revoked) return Unauthenticated("the token was revoked");
  if (rec->expires_at && *rec->expires_at <= Now()) return Unauthenticated("the token expired");
  Result<store::User> user = store_.GetUser(rec->user_id);
  if (!user.ok()) {
    if (user.status().code() == Code::kNotFound)
      return Unauthenticated("the token's user no longer exists");
    return user.status();
  }
  if (user->disabled) return Unauthenticated(fmt::format("user {} is disabled", user->name));
  core::Principal p;
  p.user_id = rec->user_id;
  p.user_name = user->name;
  p.role = user->role;
  p.token_id = rec->id;
  p.scopes = rec->scopes;
  p.admin = p.role == "admin" && p.HasScope(core::kScopeAdmin);
  // last_used_at is advisory; refresh it at most once per cache period.
  Status touched = store_.TouchToken(rec->id, Now());
  if (!touched.ok()) LOG_WARN("record token use: {}", touched.ToString());
  std::lock_guard lock(mu_);
  if (cache_.size() > 10000) cache_.clear();
  cache_[hash] = Cached{p, now, rec->expires_at};
  return p;
}

void Authenticator::InvalidateCache() {
  std::lock_guard lock(mu_);
  cache_.clear();
}

Status Authenticator::BootstrapAdminToken(const std::string& token_path, bool* created) {
  *created = false;
  if (access(token_path.c_str(), F_OK) == 0) return Status::Ok();
  Result<store::User> admin = store_.GetUser("admin");
  if (!admin.ok()) {
    if (admin.status().code() != Code::kNotFound) return admin.status();
    store::User u;
    u.id = NewId("usr");
    u.name = "admin";
    u.role = "admin";
    u.created_at = Now();
    RETURN_IF_ERROR(store_.CreateUser(u));
    admin = u;
  }
  auto [token, rec] = IssueToken(admin->id, "admin (bootstrap)", core::DefaultScopes("admin"));
  // Write the file first and exclusively: if two servers race on one data dir only one wins, and
  // a token is never stored without the file that tells the admin what it is.
  UniqueFd fd(open(token_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return ErrnoError("create " + token_path, errno);
  std::string line = token + "\n";
  if (write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
      fsync(fd.get()) != 0) {
    Status st = ErrnoError("write " + token_path, errno);
    unlink(token_path.c_str());
    return st;
  }
  Status st = store_.CreateToken(rec);
  if (!st.ok()) {
    unlink(token_path.c_str());
    return st;
  }
  *created = true;
  return Status::Ok();
}

}  // namespace hutch::api
