// …/ports: what listens in a session and its settings (public or not), signed URLs, the TCP
// WebSocket of port_ws.h and the HTTP reverse proxy of port_proxy.h.
#include <cctype>
#include <charconv>
#include <map>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "api/port_access.h"
#include "api/port_proxy.h"
#include "api/port_ws.h"
#include "api/stream_routes.h"
#include "common/time.h"
#include "controller/sandbox_agent.h"
#include "core/scopes.h"

namespace hutch::api {

namespace {

using controller::SandboxAgent;
using controller::SessionService;

Result<uint16_t> ParsePortParam(std::string_view text) {
  uint32_t port = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc() || ptr != text.data() + text.size() || port < 1 || port > 65535)
    return InvalidArgument(fmt::format("port must be a number 1..65535, not \"{}\"", text));
  return static_cast<uint16_t>(port);
}

// What a request without any credential hears, whether or not the session exists and whatever
// the port: an unauthenticated caller learns nothing about sessions.
constexpr const char* kPortNeedsAccess =
    "this port needs the owner's token, a signed URL (POST …/ports/{port}/url) or public: true";

// A request to the proxy without a token (the gate let it through): a signed URL, an access
// cookie or a public port lets it on, in that order. A valid signed URL also sets `set_cookie`
// (scoped to `cookie_path`), so a browser's next requests to the port need no signature. The
// session is named by its id here, never a name: names are unique per owner only.
Status CheckAnonymousPortAccess(const RouteContext& c, SessionService& service,
                                const std::string& key, std::string_view cookie_path,
                                std::string* set_cookie) {
  Result<uint16_t> port = ParsePortParam(c.Param("port"));
  std::string_view id = c.Param("id");
  int64_t now = ToUnixMillis(Now()) / 1000;
  Status signature = Unauthenticated(kPortNeedsAccess);
  if (c.request.HasQuery(kSigParam)) {
    if (!port.ok()) return Unauthenticated("the signed URL is malformed");
    std::string exp = c.request.Query(kExpParam);
    signature = CheckPortAccess(key, id, *port, exp, c.request.Query(kSigParam), now);
    if (signature.ok()) {
      int64_t expires = 0;  // CheckPortAccess parsed it already
      auto parsed = std::from_chars(exp.data(), exp.data() + exp.size(), expires);
      (void)parsed;
      *set_cookie = PortAccessSetCookie(key, id, *port, expires, now, cookie_path);
      return Status::Ok();
    }
  }
  if (!port.ok()) return signature;
  // A stale signature in a bookmarked URL: a newer cookie or a public port still opens it.
  std::string cookies = c.request.Header("cookie");
  if (HasAccessCookie(cookies) && CheckPortAccessCookie(key, cookies, id, *port, now).ok())
    return Status::Ok();
  if (service.PortIsPublic(id, *port)) return Status::Ok();
  return signature;
}

ApiResponse Unauthorized(const Status& st) {
  ApiResponse r = ApiResponse::Error(st);
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"hutch\"");
  return r;
}

// A port as GET/PATCH …/ports answer it.
json::object PortJson(const core::Session& s, int port, bool is_public,
                      std::optional<TimePoint> updated_at, std::string_view service_name,
                      const std::string& base_domain) {
  json::object o;
  o["session"] = s.id;
  o["port"] = port;
  o["public"] = is_public;
  o["url"] = fmt::format("/v1/sessions/{}/ports/{}/", s.id, port);
  o["host"] = base_domain.empty() ? json::value(nullptr)
                                  : json::value(fmt::format("{}-{}.{}", port, s.id, base_domain));
  o["service"] = service_name.empty() ? json::value(nullptr) : json::value(service_name);
  o["updated_at"] = updated_at ? json::value(FormatTime(*updated_at)) : json::value(nullptr);
  return o;
}

// What runs inside a session, for …/ports: the sockets listening, by port (nullopt when that
// is not known: the session does not run, or its agent predates the port list), and the name of
// the service on each port — those the agent supervises (started with the session or through
// POST …/services), else those the session's record declares.
struct Inside {
  std::optional<std::map<int, json::array>> listening;
  std::map<int, std::string> services;
};

Inside LookInside(SessionService& service, const RouteContext& c, const core::Session& s) {
  Inside in;
  for (const core::ServiceSpec& spec : s.services)
    if (spec.port != 0) in.services[spec.port] = spec.name;
  if (s.state != core::SessionState::kRunning) return in;
  auto ports = SandboxAgent(service).ListPortsInside(c.principal, s.id);
  if (!ports.ok()) return in;
  in.listening.emplace();
  for (const core::ListeningPort& p : ports->listening)
    (*in.listening)[p.port].emplace_back(p.address);
  for (const core::ServiceInfo& svc : ports->services)
    if (svc.spec.port != 0) in.services[svc.spec.port] = svc.spec.name;
  return in;
}

// Adds `listening` (true, false, or null when not known) and the addresses bound.
void AddListening(json::object& o, int port, const Inside& in) {
  if (!in.listening) {
    o["listening"] = nullptr;
    o["addresses"] = json::array();
    return;
  }
  auto it = in.listening->find(port);
  o["listening"] = it != in.listening->end();
  o["addresses"] = it != in.listening->end() ? it->second : json::array();
}

std::string_view ServiceOnPort(const Inside& in, int port) {
  auto it = in.services.find(port);
  return it == in.services.end() ? std::string_view() : std::string_view(it->second);
}

bool IsWebSocketUpgrade(const RouteContext& c) {
  std::string upgrade = c.request.Header("upgrade");
  for (char& ch : upgrade) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return upgrade.find("websocket") != std::string::npos;
}

// The session's agent, the session named in the audit record.
Result<SessionService::AgentTarget> AuditedAgent(SessionService& service, const RouteContext& c,
                                                 const core::Principal& who) {
  core::Session touched;
  auto target = service.Agent(who, c.Param("id"), &touched);
  Touched(c, touched);
  return target;
}

// GET …/ports/{port}/tcp: the upgrade to port_ws.h's WebSocket.
ApiResponse PortWebSocket(SessionService& service, const RouteContext& c) {
  // Ownership first: another user learns nothing, not even that a port is bad.
  auto target = AuditedAgent(service, c, c.principal);
  if (!target.ok()) return ApiResponse::Error(target.status());
  auto port = ParsePortParam(c.Param("port"));
  if (!port.ok()) return ApiResponse::Error(port.status());
  if (!IsWebSocketUpgrade(c))
    return ApiResponse::Error(
        InvalidArgument("this endpoint speaks WebSocket: send a GET with Upgrade: websocket"));
  ApiResponse r;
  r.status = 101;
  r.websocket = NewPortWebSocket(service, target->session, target->transport, *port);
  return r;
}

// POST …/ports/{port}/url: {ttl_seconds?} → a URL signed with `key`.
Result<json::value> SignPortUrl(SessionService& service, const std::string& key,
                                const RouteContext& c) {
  ASSIGN_OR_RETURN(SessionService::AgentTarget target, AuditedAgent(service, c, c.principal));
  ASSIGN_OR_RETURN(uint16_t port, ParsePortParam(c.Param("port")));
  json::object body;
  if (!c.request.body.empty()) {
    ASSIGN_OR_RETURN(body, ParseJsonObject(c.request.body));
  }
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"ttl_seconds"}));
  std::optional<int64_t> ttl;
  RETURN_IF_ERROR(r.Int("ttl_seconds", &ttl, 1, 7 * 24 * 3600));
  if (key.empty()) return Unavailable("this server signs no port URLs");
  int64_t expires = ToUnixMillis(Now()) / 1000 + ttl.value_or(3600);
  const std::string& sid = target.session.id;
  json::object out;
  out["url"] = fmt::format("/v1/sessions/{}/ports/{}/?{}={}&{}={}", sid, port, kExpParam, expires,
                           kSigParam, SignPortAccess(key, sid, port, expires));
  out["expires_at"] = FormatTime(FromUnixMillis(expires * 1000));
  out["session"] = sid;
  out["port"] = port;
  return json::value(std::move(out));
}

// The session's port settings; `s` is the session, named in the audit record.
Result<std::vector<store::PortSetting>> PortSettings(SessionService& service, const RouteContext& c,
                                                     core::Session* s) {
  auto settings = service.ListPorts(c.principal, c.Param("id"), s);
  Touched(c, *s);
  return settings;
}

// GET …/ports: the ports with settings, the ports of the session's services, and whatever
// listens inside, so a user finds the port of an app they started by hand.
Result<json::value> ListPorts(SessionService& service, const std::string& base,
                              const RouteContext& c) {
  core::Session s;
  ASSIGN_OR_RETURN(std::vector<store::PortSetting> settings, PortSettings(service, c, &s));
  Inside in = LookInside(service, c, s);
  std::map<int, json::object> ports;
  for (const store::PortSetting& p : settings)
    ports[p.port] = PortJson(s, p.port, p.is_public, p.updated_at, ServiceOnPort(in, p.port), base);
  for (const auto& [port, name] : in.services) {
    if (!ports.contains(port)) ports[port] = PortJson(s, port, false, std::nullopt, name, base);
  }
  if (in.listening) {
    for (const auto& [port, addresses] : *in.listening) {
      if (!ports.contains(port)) ports[port] = PortJson(s, port, false, std::nullopt, "", base);
    }
  }
  json::array items;
  for (auto& [port, o] : ports) {
    AddListening(o, port, in);
    items.emplace_back(std::move(o));
  }
  json::object out;
  out["ports"] = std::move(items);
  return json::value(std::move(out));
}

// PATCH …/ports/{port}: {public}, for the session `s` already resolved.
Result<json::value> UpdatePort(SessionService& service, const std::string& base,
                               const RouteContext& c, const core::Session& s, uint16_t port) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"public"}));
  std::optional<bool> is_public;
  RETURN_IF_ERROR(r.Bool("public", &is_public));
  if (!is_public) return InvalidArgument("public is required (true or false)");
  ASSIGN_OR_RETURN(store::PortSetting set,
                   service.SetPortPublic(c.principal, s.id, port, *is_public));
  Inside in = LookInside(service, c, s);
  json::object o = PortJson(s, port, set.is_public, set.updated_at, ServiceOnPort(in, port), base);
  AddListening(o, port, in);
  return json::value(std::move(o));
}

// GET and PATCH …/ports/{port}.
Result<json::value> PortSetting(SessionService& service, const std::string& base,
                                const RouteContext& c) {
  // Ownership first: another user learns nothing, not even that a port is bad.
  core::Session s;
  ASSIGN_OR_RETURN(std::vector<store::PortSetting> settings, PortSettings(service, c, &s));
  ASSIGN_OR_RETURN(uint16_t port, ParsePortParam(c.Param("port")));
  if (c.request.method == "PATCH") return UpdatePort(service, base, c, s, port);
  Inside in = LookInside(service, c, s);
  json::object o = PortJson(s, port, false, std::nullopt, ServiceOnPort(in, port), base);
  for (const store::PortSetting& p : settings) {
    if (p.port == port)
      o = PortJson(s, port, p.is_public, p.updated_at, ServiceOnPort(in, port), base);
  }
  AddListening(o, port, in);
  return json::value(std::move(o));
}

// The proxy's caller: the token's principal, or (no token) one that stands for the owner once
// a signed URL, an access cookie or a public port lets the request on.
Result<core::Principal> ProxyCaller(SessionService& service, const std::string& key,
                                    const RouteContext& c, const std::string& prefix,
                                    std::string* set_cookie) {
  core::Principal who = c.principal;
  if (!who.user_id.empty()) return who;
  // No token (the gate let it through): a signed URL, an access cookie or a public port.
  // A host-routed request's cookie is the host's alone (no Domain), for every path.
  RETURN_IF_ERROR(CheckAnonymousPortAccess(c, service, key, prefix + "/", set_cookie));
  who.admin = true;  // the access stands for the owner: find the session by id
  who.user_id = "port-access";
  return who;
}

// …/ports/{port}/{path...}: the connection handed to port_proxy.h.
ApiResponse ProxyPort(SessionService& service, const std::string& key, const RouteContext& c) {
  // The prefix as the client spelled it (a name or an id), and the rest of the raw target:
  // everything after the sixth '/' of "/v1/sessions/{id}/ports/{port}/…", query included.
  std::string_view raw = c.request.target;
  size_t pos = 0;
  for (int i = 0; i < 5 && pos != std::string_view::npos; ++i) pos = raw.find('/', pos + 1);
  if (pos == std::string_view::npos) return ApiResponse::Error(NotFound("no such path"));
  bool host_routed = !c.request.Header(kHostRoutedHeader).empty();
  std::string prefix = host_routed ? std::string() : std::string(raw.substr(0, pos));
  std::string set_cookie;
  auto who = ProxyCaller(service, key, c, prefix, &set_cookie);
  if (!who.ok()) return Unauthorized(who.status());
  auto target = AuditedAgent(service, c, *who);
  if (!target.ok()) {
    // Without a token, a session that is not there sounds like a private port.
    if (c.principal.user_id.empty() && target.status().code() == Code::kNotFound)
      return Unauthorized(Unauthenticated(kPortNeedsAccess));
    return ApiResponse::Error(target.status());
  }
  auto port = ParsePortParam(c.Param("port"));
  if (!port.ok()) return ApiResponse::Error(port.status());
  ProxyTarget t;
  t.session = target->session;
  t.transport = target->transport;
  t.port = *port;
  t.prefix = std::move(prefix);
  t.target = StripAccessParams(raw.substr(pos));
  t.set_cookie = std::move(set_cookie);
  ApiResponse r;
  r.takeover = NewPortProxy(service, std::move(t));
  return r;
}

void AddPortSettingRoutes(Router& router, SessionService& service, const std::string& base) {
  using core::kScopeExec;
  auto list = [&service, base](const RouteContext& c) {
    return Respond(200, [&] { return ListPorts(service, base, c); });
  };
  router.Add("GET", "/v1/sessions/{id}/ports",
             SessionSpec(core::kScopeSessionsRead, "sessions.ports.list"), list);
  auto setting = [&service, base](const RouteContext& c) {
    return Respond(200, [&] { return PortSetting(service, base, c); });
  };
  // No trailing slash: the proxy's pattern needs one after the port, so these stay apart.
  router.Add("GET", "/v1/sessions/{id}/ports/{port}",
             SessionSpec(core::kScopeSessionsRead, "sessions.ports.get"), setting);
  router.Add("PATCH", "/v1/sessions/{id}/ports/{port}",
             SessionSpec(kScopeExec, "sessions.ports.update"), setting);
}

}  // namespace

void AddPortRoutes(Router& router, const StreamDeps& deps) {
  using core::kScopeExec;
  SessionService& service = deps.service;
  router.Add("GET", "/v1/sessions/{id}/ports/{port}/tcp",
             SessionSpec(kScopeExec, "sessions.ports.tcp", /*audit_reads=*/true),
             OnService(service, PortWebSocket));
  router.Add("POST", "/v1/sessions/{id}/ports/{port}/url",
             SessionSpec(kScopeExec, "sessions.ports.url"),
             [&service, key = deps.port_url_key](const RouteContext& c) {
               return Respond(201, [&] { return SignPortUrl(service, key, c); });
             });
  AddPortSettingRoutes(router, service, deps.proxy_base_domain);
  // The HTTP reverse proxy: after …/ports/{port}/tcp, which is registered first and so keeps
  // GET …/tcp for itself.
  auto proxy = [&service, key = deps.port_url_key](const RouteContext& c) {
    return ProxyPort(service, key, c);
  };
  for (const char* method : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
    RouteSpec spec = SessionSpec(kScopeExec, "sessions.ports.proxy");
    spec.takes_connection = true;
    spec.signed_access = true;
    router.Add(method, "/v1/sessions/{id}/ports/{port}/{path...}", spec, proxy);
  }
}

}  // namespace hutch::api
