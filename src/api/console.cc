#include "api/console.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "api/port_access.h"
#include "api/web_assets.h"
#include "common/hmac.h"
#include "common/ids.h"
#include "common/time.h"

namespace hutch::api {

// Scripts, styles, images and connections (fetch, EventSource, WebSocket) from this origin only;
// no plugins, no <base>, no framing. Styles allow 'unsafe-inline' because xterm.js sizes and
// colours its rows through <style> elements it creates; an injected style cannot run script.
const std::string_view kConsoleCsp =
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

namespace {

// A browser holds a console cookie at most this long; signing in again makes a new one.
constexpr std::chrono::hours kConsoleTokenLifetime{12};

void AddPageHeaders(ApiResponse& r) {
  r.headers.emplace_back("Content-Security-Policy", std::string(kConsoleCsp));
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Cache-Control", "no-cache");
}

// Whether an Accept-Encoding header takes gzip: an item "gzip", "gzip;q=0.8" or "*", and not
// "gzip;q=0" (a weight of zero refuses it).
bool AcceptsGzip(std::string_view accept_encoding) {
  auto trim = [](std::string_view v) {
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    return v;
  };
  while (!accept_encoding.empty()) {
    size_t comma = accept_encoding.find(',');
    std::string_view item = trim(accept_encoding.substr(0, comma));
    accept_encoding =
        comma == std::string_view::npos ? std::string_view() : accept_encoding.substr(comma + 1);
    size_t semi = item.find(';');
    std::string_view coding = trim(item.substr(0, semi));
    if (coding != "gzip" && coding != "*") continue;
    std::string_view weight =
        semi == std::string_view::npos ? std::string_view() : trim(item.substr(semi + 1));
    return !(weight.starts_with("q=0") &&
             weight.find_first_of("123456789") == std::string_view::npos);
  }
  return false;
}

ApiResponse ServeAsset(std::string_view path, const ApiRequest& req) {
  for (const WebAsset& a : WebAssets()) {
    if (a.path != path) continue;
    ApiResponse r;
    r.content_type = std::string(a.content_type);
    if (AcceptsGzip(req.Header("accept-encoding"))) {
      r.body = std::string(a.gzip_body);
      r.headers.emplace_back("Content-Encoding", "gzip");
    } else {
      r.body = std::string(a.body);
    }
    r.headers.emplace_back("Vary", "Accept-Encoding");
    AddPageHeaders(r);
    return r;
  }
  ApiResponse r = ApiResponse::Error(NotFound(fmt::format("the console has no file {}", path)));
  AddPageHeaders(r);
  return r;
}

std::string CookieHeader(std::string_view value, int64_t max_age, bool secure) {
  return fmt::format("{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}", kConsoleCookie,
                     value, max_age, secure ? "; Secure" : "");
}

// Sign-in and sign-out are public routes (no cookie yet, or one being dropped): they check the
// origin themselves. A custom header cannot be sent cross-origin without a CORS preflight,
// which this server never grants, so requiring one keeps other sites from signing a browser in
// to an account of theirs (login CSRF).
Status CheckSameOrigin(const ApiRequest& req) {
  std::string origin = req.Header("origin");
  if (!origin.empty()) {
    size_t sep = origin.find("://");
    std::string_view host =
        sep == std::string::npos ? std::string_view() : std::string_view(origin).substr(sep + 3);
    if (host != req.Header("host"))
      return PermissionDenied(fmt::format("sign-in from another origin ({}) is refused", origin));
  }
  if (req.Header(kCsrfHeader).empty())
    return PermissionDenied("the console's sign-in needs the X-Hutch-CSRF header");
  return Status::Ok();
}

json::object UserJson(const core::Principal& p) {
  json::object u;
  u["id"] = p.user_id;
  u["name"] = p.user_name;
  u["role"] = p.role;
  u["admin"] = p.admin;
  json::array scopes;
  for (const auto& s : p.scopes) scopes.emplace_back(s);
  u["scopes"] = std::move(scopes);
  return u;
}

}  // namespace

void AddConsoleRoutes(Router& router, ConsoleDeps d) {
  auto deps = std::make_shared<ConsoleDeps>(d);

  router.Add("GET", "/", RouteSpec::Public(),
             [](const RouteContext& c) { return ServeAsset("/", c.request); });
  // The participants' ways in (a join code, an access link <public_url>/access#<secret>): the
  // same page; the console reads its path and the fragment, which no server ever sees.
  for (const char* path : {"/join", "/access"}) {
    router.Add("GET", path, RouteSpec::Public(),
               [](const RouteContext& c) { return ServeAsset("/", c.request); });
  }
  router.Add("GET", "/assets/{file...}", RouteSpec::Public(), [](const RouteContext& c) {
    return ServeAsset(fmt::format("/assets/{}", c.Param("file")), c.request);
  });

  RouteSpec signin = RouteSpec::Public();
  signin.action = "console.signin";
  signin.object_type = "token";
  router.Add("POST", "/v1/console/signin", signin, [deps](const RouteContext& c) {
    std::string cookie;
    ApiResponse r = Respond(200, [&]() -> Result<json::value> {
      RETURN_IF_ERROR(CheckSameOrigin(c.request));
      ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
      FieldReader fields(body);
      RETURN_IF_ERROR(fields.RejectUnknown({"token"}));
      std::optional<std::string> token;
      RETURN_IF_ERROR(fields.String("token", &token, 512));
      if (!token || token->empty()) return InvalidArgument("token is required");
      ASSIGN_OR_RETURN(core::Principal p, deps->auth.Authenticate("Bearer " + *token));
      ASSIGN_OR_RETURN(store::TokenRecord given, deps->store.GetTokenByHash(HashToken(*token)));
      // The browser gets a token of its own: signing out revokes it without touching the one
      // the user typed, and it never outlives that one.
      TimePoint now = Now();
      TimePoint expires = now + kConsoleTokenLifetime;
      if (given.expires_at) expires = std::min(expires, *given.expires_at);
      auto [value, rec] = IssueToken(p.user_id, std::string(kConsoleTokenName), p.scopes, expires);
      RETURN_IF_ERROR(deps->store.CreateToken(rec));
      c.audit.object_id = rec.id;
      c.audit.object_owner = p.user_id;
      int64_t max_age = std::chrono::duration_cast<std::chrono::seconds>(expires - now).count();
      cookie = CookieHeader(value, std::max<int64_t>(0, max_age), deps->tls);
      json::object o;
      o["user"] = UserJson(p);
      o["csrf"] = ConsoleCsrfToken(value);
      o["expires_at"] = FormatTime(expires);
      return json::value(std::move(o));
    });
    if (!cookie.empty()) r.headers.emplace_back("Set-Cookie", cookie);
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
  });

  RouteSpec signout = RouteSpec::Public();
  signout.action = "console.signout";
  signout.object_type = "token";
  router.Add("POST", "/v1/console/signout", signout, [deps](const RouteContext& c) {
    ApiResponse r = Respond(200, [&]() -> Result<json::value> {
      std::string token = CookieValue(c.request.Header("cookie"), kConsoleCookie);
      if (!token.empty()) {
        RETURN_IF_ERROR(CheckSameOrigin(c.request));
        if (!ConstantTimeEquals(c.request.Header(kCsrfHeader), ConsoleCsrfToken(token)))
          return PermissionDenied("sign-out needs the X-Hutch-CSRF header of the session");
        Result<store::TokenRecord> rec = deps->store.GetTokenByHash(HashToken(token));
        // Only the console's own token: a cookie holding any other token is just dropped.
        if (rec.ok() && rec->name == kConsoleTokenName && !rec->revoked) {
          RETURN_IF_ERROR(deps->store.RevokeToken(rec->id));
          deps->auth.InvalidateCache();
          c.audit.object_id = rec->id;
          c.audit.object_owner = rec->user_id;
        }
      }
      json::object o;
      o["signed_out"] = true;
      return json::value(std::move(o));
    });
    r.headers.emplace_back("Set-Cookie", CookieHeader("", 0, deps->tls));
    return r;
  });

  router.Add("GET", "/v1/console/session", RouteSpec::AnyToken(), [](const RouteContext& c) {
    json::object o;
    o["user"] = UserJson(c.principal);
    std::string cookie = c.request.Header("authorization").empty()
                             ? CookieValue(c.request.Header("cookie"), kConsoleCookie)
                             : std::string();
    if (cookie.empty())
      o["csrf"] = nullptr;
    else
      o["csrf"] = ConsoleCsrfToken(cookie);
    ApiResponse r = ApiResponse::Json(200, o);
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
  });
}

}  // namespace hutch::api
