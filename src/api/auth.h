// Bearer-token authentication: the one check every /v1 request passes. Tokens are random
// 256-bit values shown once; only their SHA-256 is stored. Users and scoped tokens (a later
// issue) slot in behind Authenticate() without changing its callers.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "api/http_types.h"
#include "common/status.h"
#include "core/principal.h"
#include "store/store.h"

namespace hutch::api {

// The console's sign-in (console.cc): POST /v1/console/signin exchanges a token for a cookie
// holding a new token of the same user and scopes, minted for the browser (12 h at most):
// hutch_console=<token>; Path=/; HttpOnly; SameSite=Strict (+ Secure under TLS). Script never
// sees it. A request that authenticates by that cookie (no Authorization header) must come from
// the console's own origin (an Origin header, when sent, names the Host) and, when it changes
// something, carry X-Hutch-CSRF: the value ConsoleCsrfToken() gives for the cookie's token,
// which the console reads from GET /v1/console/session. Another site can make a browser send
// the cookie (SameSite stops most of that) but can neither read that value nor set the header.
inline constexpr std::string_view kConsoleCookie = "hutch_console";
inline constexpr std::string_view kCsrfHeader = "x-hutch-csrf";
inline constexpr std::string_view kConsoleTokenName = "console sign-in";
// The CSRF value that goes with a console token: derived from it, so the server keeps no state.
std::string ConsoleCsrfToken(std::string_view token);

// Hex SHA-256 of a token, as stored.
std::string HashToken(std::string_view token);
// "hutch_" + 52 base32 characters (256 random bits).
std::string NewTokenValue();

// A new token of `user_id`: its value, shown once, and the record to store (its hash, the
// scopes, made now, ending at `expires_at` if given).
struct IssuedToken {
  std::string value;
  store::TokenRecord record;
};
IssuedToken IssueToken(std::string user_id, std::string name, std::vector<std::string> scopes,
                       std::optional<TimePoint> expires_at = std::nullopt);

class Authenticator {
 public:
  explicit Authenticator(store::Store& store) : store_(store) {}

  // `authorization` is the raw header value. unauthenticated (401) when missing, malformed,
  // unknown, revoked or expired — with a message that says which, never echoing the token.
  Result<core::Principal> Authenticate(std::string_view authorization);
  // A request's credential: its Authorization header, or without one the console's cookie,
  // with the cookie's origin and CSRF checks (above; `mutating`: the request changes something).
  // unauthenticated (401) for a bad credential, permission_denied (403) for a failed check.
  Result<core::Principal> AuthenticateRequest(const ApiRequest& request, bool mutating);

  // On first start: creates the user "admin" (role admin) and a token for it with every scope,
  // stores the token's hash and writes the token to `token_path` (mode 0600, created
  // exclusively). Later starts find the file and do nothing. Sets *created when a new token was
  // written.
  Status BootstrapAdminToken(const std::string& token_path, bool* created);

  // Forgets cached lookups, so a revoked token or a disabled user stops working at once.
  void InvalidateCache();

 private:
  struct Cached {
    core::Principal principal;
    std::chrono::steady_clock::time_point checked_at;
    std::optional<TimePoint> expires_at;
  };
  store::Store& store_;
  std::mutex mu_;
  // Successful lookups are cached briefly so a hot GET does not hit the database each time; a
  // revoked token stops working within kCacheTtl.
  static constexpr std::chrono::seconds kCacheTtl{5};
  std::unordered_map<std::string, Cached> cache_;  // GUARDED_BY(mu_), keyed by hash
};

}  // namespace hutch::api
