#include "api/stream_handlers.h"

#include <signal.h>

#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "api/exec_ws.h"
#include "api/port_access.h"
#include "api/port_proxy.h"
#include "api/port_ws.h"
#include "common/log.h"
#include "common/time.h"
#include "controller/sandbox_agent.h"
#include "core/scopes.h"
#include "core/session_json.h"

namespace hutch::api {

namespace {

using controller::OutputStream;
using controller::SandboxAgent;
using controller::SessionService;
using SteadyClock = std::chrono::steady_clock;

// How often a blocked stream looks whether it was cancelled.
constexpr int64_t kCancelPollMs = 200;

RouteSpec Spec(std::string_view scope, std::string action, bool audit_reads = false) {
  return RouteSpec::For(scope, std::move(action), "session", audit_reads);
}

void Touched(const RouteContext& c, const core::Session& s) {
  if (s.id.empty()) return;
  c.audit.object_id = s.id;
  c.audit.object_owner = s.owner;
}

bool AcceptsEventStream(const ApiRequest& r) {
  return r.Header("accept").find("text/event-stream") != std::string::npos;
}

// Counts the open blocking streams; a slot is released when its stream is destroyed.
class StreamSlots {
 public:
  static std::shared_ptr<std::atomic<int>> Counter() {
    static auto counter = std::make_shared<std::atomic<int>>(0);
    return counter;
  }
  static std::atomic<int>& Max() {
    static std::atomic<int> max{16};
    return max;
  }
  // resource_exhausted when Max() streams are open.
  static Result<std::shared_ptr<void>> Take() {
    int max = Max().load();
    auto counter = Counter();
    if (counter->fetch_add(1) >= max) {
      counter->fetch_sub(1);
      return ResourceExhausted(fmt::format(
          "{} streams are open on this server, the most it serves at once; use the WebSocket "
          "endpoint (GET …/exec/ws) for many concurrent streams",
          max));
    }
    return std::shared_ptr<void>(nullptr, [counter](void*) { counter->fetch_sub(1); });
  }
};

std::string SseEvent(std::string_view event, const json::value& data) {
  return fmt::format("event: {}\ndata: {}\n\n", event, json::serialize(data));
}

json::object ExitJson(const core::ExitInfo& e) {
  json::object o;
  if (e.exited) {
    o["exit_code"] = e.exit_code;
    o["signal"] = e.signal;
  } else {
    o["exit_code"] = nullptr;
    o["signal"] = nullptr;
  }
  o["running"] = !e.exited;
  o["timed_out"] = e.timed_out;
  o["duration_ms"] = e.duration_ms;
  o["dropped_bytes"] = e.dropped_bytes;
  return o;
}

json::object ProcessJson(const core::ProcessInfo& p) {
  json::object o;
  o["pid"] = p.pid;
  o["tag"] = p.tag;
  json::array cmd;
  for (const auto& a : p.argv) cmd.emplace_back(a);
  o["cmd"] = std::move(cmd);
  o["state"] = p.running ? "running" : "exited";
  if (p.running) {
    o["exit_code"] = nullptr;
    o["signal"] = nullptr;
  } else {
    o["exit_code"] = p.exit_code;
    o["signal"] = p.signal;
  }
  o["timed_out"] = p.timed_out;
  o["started_at"] = FormatTime(FromUnixMillis(p.started_unix_ms));
  if (p.ended_unix_ms > 0) {
    o["ended_at"] = FormatTime(FromUnixMillis(p.ended_unix_ms));
  } else {
    o["ended_at"] = nullptr;
  }
  o["output_bytes"] = p.output_bytes;
  o["dropped_bytes"] = p.dropped_bytes;
  return o;
}

// An agent stream as an HTTP body: SSE events, or (raw) the output bytes as they are.
class AgentBodyStream final : public BodyStream {
 public:
  AgentBodyStream(OutputStream stream, bool sse, std::shared_ptr<void> slot)
      : stream_(std::move(stream)), sse_(sse), slot_(std::move(slot)) {}

  std::optional<std::string> Next() override {
    if (done_) return std::nullopt;
    auto silence_end = SteadyClock::now() + kMaxStreamSilence;
    while (!cancelled_.load()) {
      auto event = stream_.Next(kCancelPollMs);
      if (!event.ok()) {
        done_ = true;
        LOG_SESSION_WARN(stream_.session().id, "stream: {}", event.status().ToString());
        if (!sse_) return std::nullopt;
        json::object err;
        err["code"] = std::string(CodeName(event.status().code()));
        err["message"] = event.status().message();
        return SseEvent("error", json::object{{"error", std::move(err)}});
      }
      if (!event->has_value()) {
        if (SteadyClock::now() >= silence_end) return std::string(sse_ ? ": ping\n\n" : "");
        continue;
      }
      OutputStream::Event& e = **event;
      switch (e.kind) {
        case OutputStream::Event::Kind::kStdout:
        case OutputStream::Event::Kind::kStderr:
          if (!sse_) return std::move(e.data);
          return SseEvent(e.kind == OutputStream::Event::Kind::kStdout ? "stdout" : "stderr",
                          json::object{{"data", std::move(e.data)}});
        case OutputStream::Event::Kind::kExit:
          done_ = true;
          if (!sse_) return std::nullopt;
          return SseEvent("exit", ExitJson(e.exit));
      }
    }
    return std::nullopt;
  }

  void Cancel() override { cancelled_ = true; }

 private:
  OutputStream stream_;
  bool sse_;
  std::shared_ptr<void> slot_;
  std::atomic<bool> cancelled_{false};
  bool done_ = false;
};

ApiResponse StreamedResponse(std::shared_ptr<BodyStream> body, bool sse) {
  ApiResponse r;
  r.status = 200;
  r.content_type = sse ? "text/event-stream" : "application/octet-stream";
  r.headers.emplace_back("X-Accel-Buffering", "no");
  r.stream = std::move(body);
  return r;
}

// The session's log, with follow: polls for growth (through the agent while the session runs,
// SessionService::ReadLog); ends when the session is no longer live.
class LogBodyStream final : public BodyStream {
 public:
  LogBodyStream(SessionService& service, core::Principal who, std::string session_id,
                core::LogChunk first, bool follow, std::shared_ptr<void> slot)
      : service_(service),
        who_(std::move(who)),
        session_id_(std::move(session_id)),
        pending_(std::move(first.data)),
        follow_(follow),
        slot_(std::move(slot)) {}

  std::optional<std::string> Next() override {
    if (!pending_.empty()) {
      offset_ += pending_.size();
      return std::exchange(pending_, std::string());
    }
    auto silence_end = SteadyClock::now() + kMaxStreamSilence;
    auto next_check = SteadyClock::now();
    while (!cancelled_.load()) {
      auto chunk = service_.ReadLog(who_, session_id_, offset_, kChunkBytes);
      if (!chunk.ok()) return std::nullopt;  // purged, or the sandbox's files were removed
      if (!chunk->data.empty()) {
        offset_ += chunk->data.size();
        return std::move(chunk->data);
      }
      if (!follow_) return std::nullopt;
      if (SteadyClock::now() >= next_check) {
        // Ends with the session: a stopped or terminated session's agent writes no more.
        auto s = service_.Get(who_, session_id_);
        if (!s.ok() ||
            (s->state != core::SessionState::kRunning && s->state != core::SessionState::kPaused &&
             s->state != core::SessionState::kProvisioning))
          return std::nullopt;
        next_check = SteadyClock::now() + std::chrono::seconds(1);
      }
      if (SteadyClock::now() >= silence_end) return std::string();
      std::this_thread::sleep_for(std::chrono::milliseconds(kCancelPollMs));
    }
    return std::nullopt;
  }
  void Cancel() override { cancelled_ = true; }

  static constexpr uint32_t kChunkBytes = 64 * 1024;

 private:
  SessionService& service_;
  core::Principal who_;
  std::string session_id_;
  std::string pending_;
  bool follow_;
  std::shared_ptr<void> slot_;
  uint64_t offset_ = 0;
  std::atomic<bool> cancelled_{false};
};

struct Snippet {
  core::ExecRequest exec;
  std::string language;
};

// POST …/run: {language, code, timeout_seconds, env?, cwd?, stdin?}.
Result<Snippet> ParseRun(const json::object& body, int64_t max_timeout_seconds) {
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"language", "code", "timeout_seconds", "env", "cwd", "stdin"}));
  std::optional<std::string> language, code;
  RETURN_IF_ERROR(r.String("language", &language, 16));
  RETURN_IF_ERROR(r.String("code", &code, 1 << 20));
  if (!language) return InvalidArgument("language is required: python, bash, sh or node");
  if (*language != "python" && *language != "bash" && *language != "sh" && *language != "node")
    return InvalidArgument(
        fmt::format("language '{}' is not one of python, bash, sh, node", *language));
  if (!code) return InvalidArgument("code is required");
  if (code->find('\0') != std::string::npos) return InvalidArgument("code contains a NUL byte");
  // The rest is exec's: reuse its parser for env, cwd, stdin and timeout_seconds.
  json::object exec_body;
  for (const char* key : {"timeout_seconds", "env", "cwd", "stdin"}) {
    if (auto it = body.find(key); it != body.end()) exec_body[key] = it->value();
  }
  exec_body["cmd"] = json::array{"true"};
  ASSIGN_OR_RETURN(core::ExecRequest exec, core::ParseExecRequest(exec_body, max_timeout_seconds));
  Snippet s;
  s.language = *language;
  s.exec = std::move(exec);
  s.exec.argv = {*code};  // the interpreter goes in front once it is known
  return s;
}

// Finds the snippet's interpreter in the image: invalid_argument naming what was looked for.
Result<std::vector<std::string>> InterpreterArgv(SessionService& service, const RouteContext& c,
                                                 const std::string& language,
                                                 const std::map<std::string, std::string>& env) {
  std::vector<std::string> names;
  std::string flag = "-c";
  if (language == "python") names = {"python3", "python"};
  if (language == "bash") names = {"bash"};
  if (language == "sh") names = {"sh"};
  if (language == "node") {
    names = {"node", "nodejs"};
    flag = "-e";
  }
  std::string script = "for c in";
  for (const auto& n : names) script += " " + n;
  script += "; do command -v \"$c\" && exit 0; done; exit 1";
  core::ExecRequest probe;
  probe.argv = {"/bin/sh", "-c", script};
  probe.timeout_ms = 10000;
  probe.env = env;  // the snippet's PATH is where it is looked for
  ASSIGN_OR_RETURN(core::ExecResult r, service.Exec(c.principal, c.Param("id"), probe));
  std::string path = r.stdout_data;
  while (!path.empty() && (path.back() == '\n' || path.back() == '\r')) path.pop_back();
  if (r.exit_code != 0 || path.empty() || path.find('\n') != std::string::npos) {
    std::string looked;
    for (const auto& n : names) looked += (looked.empty() ? "" : ", ") + n;
    return InvalidArgument(fmt::format(
        "the session's image has no {} interpreter (looked for {} on its PATH)", language, looked));
  }
  return std::vector<std::string>{path, flag};
}

// POST …/processes: exec's fields plus `tag`.
Result<core::ProcessStartRequest> ParseProcessStart(const json::object& body,
                                                    int64_t max_timeout_seconds) {
  ASSIGN_OR_RETURN(core::ExecRequest exec, core::ParseExecRequest(body, max_timeout_seconds));
  core::ProcessStartRequest req;
  req.exec = std::move(exec);
  if (auto it = body.find("tag"); it != body.end() && !it->value().is_null()) {
    if (!it->value().is_string()) return InvalidArgument("tag must be a string");
    req.tag = std::string(it->value().as_string());
    if (!core::IsValidTag(req.tag))
      return InvalidArgument(
          fmt::format("tag '{}' must be 1 to 128 of [A-Za-z0-9._-] and not all digits", req.tag));
  }
  return req;
}

Result<std::string> ProcessSelector(const RouteContext& c) {
  std::string sel(c.Param("process"));
  if (sel.empty() || sel.size() > core::kMaxTagLen)
    return InvalidArgument("the process must be a pid or a tag");
  // '~': an earlier instance of a service ("web~2"), which gave its tag to its successor.
  for (char ch : sel) {
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-' || ch == '~';
    if (!ok) return InvalidArgument(fmt::format("'{}' is not a pid or a tag", sel));
  }
  return sel;
}

// Resolves the session first, so that another user's session is 404 (and a stopped one 409)
// whatever the body says, as everywhere.
Status CheckSession(SessionService& service, const RouteContext& c) {
  core::Session touched;
  auto target = service.Agent(c.principal, c.Param("id"), &touched);
  Touched(c, touched);
  return target.ok() ? Status::Ok() : target.status();
}

}  // namespace

Result<int> ParseSignal(const json::value& v) {
  if (v.is_int64() || v.is_uint64()) {
    int64_t n = v.is_int64() ? v.as_int64() : static_cast<int64_t>(v.as_uint64());
    if (n < 1 || n > 64) return InvalidArgument(fmt::format("signal {} is not 1..64", n));
    return static_cast<int>(n);
  }
  if (!v.is_string()) return InvalidArgument("signal must be a name (TERM, INT, KILL…) or number");
  std::string name(v.as_string());
  for (char& ch : name) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  static const std::pair<const char*, int> kSignals[] = {
      {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"KILL", SIGKILL},
      {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM},   {"CONT", SIGCONT},
      {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"WINCH", SIGWINCH}, {"ALRM", SIGALRM},
      {"PIPE", SIGPIPE}};
  for (const auto& [n, sig] : kSignals) {
    if (name == n) return sig;
  }
  return InvalidArgument(fmt::format("signal '{}' is not known (TERM, INT, KILL, HUP, …)",
                                     std::string(v.as_string())));
}

Result<bool> WantsStream(const ApiRequest& request) {
  ASSIGN_OR_RETURN(bool stream, QueryBool(request, "stream", false));
  return stream || AcceptsEventStream(request);
}

namespace {

// Starts `exec` as a streaming command and answers its SSE stream.
ApiResponse StartStream(const RouteContext& c, StreamDeps deps, core::ExecRequest exec) {
  auto slot = StreamSlots::Take();
  if (!slot.ok()) return ApiResponse::Error(slot.status());
  core::StreamExecRequest req;
  req.exec = std::move(exec);
  core::Session touched;
  auto stream =
      SandboxAgent(deps.service).OpenExecStream(c.principal, c.Param("id"), req, &touched);
  Touched(c, touched);
  if (!stream.ok()) return ApiResponse::Error(stream.status());
  auto body = std::make_shared<AgentBodyStream>(std::move(*stream), true, std::move(*slot));
  return StreamedResponse(std::move(body), true);
}

}  // namespace

namespace {

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

}  // namespace

ApiResponse StreamExec(const RouteContext& c, SessionService& service) {
  StreamDeps deps{service};
  if (Status st = CheckSession(service, c); !st.ok()) return ApiResponse::Error(st);
  auto body = ParseJsonObject(c.request.body);
  if (!body.ok()) return ApiResponse::Error(body.status());
  auto exec = core::ParseExecRequest(*body, deps.service.options().max_exec_timeout_seconds);
  if (!exec.ok()) return ApiResponse::Error(exec.status());
  return StartStream(c, deps, std::move(*exec));
}

void AddStreamRoutes(Router& router, StreamDeps deps) {
  StreamSlots::Max() = std::max(1, deps.max_blocking_streams);
  using core::kScopeExec;
  using core::kScopeSessionsRead;
  SessionService& service = deps.service;

  router.Add("GET", "/v1/sessions/{id}/exec/ws",
             Spec(kScopeExec, "sessions.exec.ws", /*audit_reads=*/true),
             [&service](const RouteContext& c) {
               core::Session touched;
               auto target = service.Agent(c.principal, c.Param("id"), &touched);
               Touched(c, touched);
               if (!target.ok()) return ApiResponse::Error(target.status());
               if (c.request.Header("upgrade").find("websocket") == std::string::npos &&
                   c.request.Header("upgrade").find("WebSocket") == std::string::npos)
                 return ApiResponse::Error(InvalidArgument(
                     "this endpoint speaks WebSocket: send a GET with Upgrade: websocket"));
               ApiResponse r;
               r.status = 101;
               r.websocket = NewExecWebSocket(service, target->session, target->transport);
               return r;
             });

  router.Add("GET", "/v1/sessions/{id}/ports/{port}/tcp",
             Spec(kScopeExec, "sessions.ports.tcp", /*audit_reads=*/true),
             [&service](const RouteContext& c) {
               // Ownership first: another user learns nothing, not even that a port is bad.
               core::Session touched;
               auto target = service.Agent(c.principal, c.Param("id"), &touched);
               Touched(c, touched);
               if (!target.ok()) return ApiResponse::Error(target.status());
               auto port = ParsePortParam(c.Param("port"));
               if (!port.ok()) return ApiResponse::Error(port.status());
               if (!IsWebSocketUpgrade(c))
                 return ApiResponse::Error(InvalidArgument(
                     "this endpoint speaks WebSocket: send a GET with Upgrade: websocket"));
               ApiResponse r;
               r.status = 101;
               r.websocket = NewPortWebSocket(service, target->session, target->transport, *port);
               return r;
             });

  // The HTTP reverse proxy: after …/ports/{port}/tcp, which is registered first and so keeps
  // GET …/tcp for itself.
  router.Add("POST", "/v1/sessions/{id}/ports/{port}/url", Spec(kScopeExec, "sessions.ports.url"),
             [&service, key = deps.port_url_key](const RouteContext& c) {
               return Respond(201, [&]() -> Result<json::value> {
                 core::Session touched;
                 auto target = service.Agent(c.principal, c.Param("id"), &touched);
                 Touched(c, touched);
                 if (!target.ok()) return target.status();
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
                 const std::string& sid = target->session.id;
                 json::object out;
                 out["url"] =
                     fmt::format("/v1/sessions/{}/ports/{}/?{}={}&{}={}", sid, port, kExpParam,
                                 expires, kSigParam, SignPortAccess(key, sid, port, expires));
                 out["expires_at"] = FormatTime(FromUnixMillis(expires * 1000));
                 out["session"] = sid;
                 out["port"] = port;
                 return json::value(std::move(out));
               });
             });

  router.Add("GET", "/v1/sessions/{id}/ports", Spec(kScopeSessionsRead, "sessions.ports.list"),
             [&service, base = deps.proxy_base_domain](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 core::Session s;
                 auto settings = service.ListPorts(c.principal, c.Param("id"), &s);
                 Touched(c, s);
                 if (!settings.ok()) return settings.status();
                 // The ports with settings, the ports of the session's services, and whatever
                 // listens inside, so a user finds the port of an app they started by hand.
                 Inside in = LookInside(service, c, s);
                 std::map<int, json::object> ports;
                 for (const store::PortSetting& p : *settings)
                   ports[p.port] = PortJson(s, p.port, p.is_public, p.updated_at,
                                            ServiceOnPort(in, p.port), base);
                 for (const auto& [port, name] : in.services) {
                   if (!ports.contains(port))
                     ports[port] = PortJson(s, port, false, std::nullopt, name, base);
                 }
                 if (in.listening) {
                   for (const auto& [port, addresses] : *in.listening) {
                     if (!ports.contains(port))
                       ports[port] = PortJson(s, port, false, std::nullopt, "", base);
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
               });
             });

  auto port_setting = [&service, base = deps.proxy_base_domain](const RouteContext& c) {
    return Respond(200, [&]() -> Result<json::value> {
      // Ownership first: another user learns nothing, not even that a port is bad.
      core::Session s;
      auto settings = service.ListPorts(c.principal, c.Param("id"), &s);
      Touched(c, s);
      if (!settings.ok()) return settings.status();
      ASSIGN_OR_RETURN(uint16_t port, ParsePortParam(c.Param("port")));
      if (c.request.method == "PATCH") {
        ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
        FieldReader r(body);
        RETURN_IF_ERROR(r.RejectUnknown({"public"}));
        std::optional<bool> is_public;
        RETURN_IF_ERROR(r.Bool("public", &is_public));
        if (!is_public) return InvalidArgument("public is required (true or false)");
        ASSIGN_OR_RETURN(store::PortSetting set,
                         service.SetPortPublic(c.principal, s.id, port, *is_public));
        Inside in = LookInside(service, c, s);
        json::object o =
            PortJson(s, port, set.is_public, set.updated_at, ServiceOnPort(in, port), base);
        AddListening(o, port, in);
        return json::value(std::move(o));
      }
      Inside in = LookInside(service, c, s);
      json::object o = PortJson(s, port, false, std::nullopt, ServiceOnPort(in, port), base);
      for (const store::PortSetting& p : *settings) {
        if (p.port == port)
          o = PortJson(s, port, p.is_public, p.updated_at, ServiceOnPort(in, port), base);
      }
      AddListening(o, port, in);
      return json::value(std::move(o));
    });
  };
  // No trailing slash: the proxy's pattern needs one after the port, so these stay apart.
  router.Add("GET", "/v1/sessions/{id}/ports/{port}",
             Spec(kScopeSessionsRead, "sessions.ports.get"), port_setting);
  router.Add("PATCH", "/v1/sessions/{id}/ports/{port}", Spec(kScopeExec, "sessions.ports.update"),
             port_setting);

  auto proxy = [&service, key = deps.port_url_key](const RouteContext& c) {
    // The prefix as the client spelled it (a name or an id), and the rest of the raw target:
    // everything after the sixth '/' of "/v1/sessions/{id}/ports/{port}/…", query included.
    std::string_view raw = c.request.target;
    size_t pos = 0;
    for (int i = 0; i < 5 && pos != std::string_view::npos; ++i) pos = raw.find('/', pos + 1);
    if (pos == std::string_view::npos) return ApiResponse::Error(NotFound("no such path"));
    bool host_routed = !c.request.Header(kHostRoutedHeader).empty();
    std::string prefix = host_routed ? std::string() : std::string(raw.substr(0, pos));

    core::Principal who = c.principal;
    std::string set_cookie;
    if (who.user_id.empty()) {
      // No token (the gate let it through): a signed URL, an access cookie or a public port.
      // A host-routed request's cookie is the host's alone (no Domain), for every path.
      Status st = CheckAnonymousPortAccess(c, service, key, prefix + "/", &set_cookie);
      if (!st.ok()) return Unauthorized(st);
      who.admin = true;  // the access stands for the owner: find the session by id
      who.user_id = "port-access";
    }
    core::Session touched;
    auto target = service.Agent(who, c.Param("id"), &touched);
    Touched(c, touched);
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
  };
  for (const char* method : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
    RouteSpec spec = Spec(kScopeExec, "sessions.ports.proxy");
    spec.takes_connection = true;
    spec.signed_access = true;
    router.Add(method, "/v1/sessions/{id}/ports/{port}/{path...}", spec, proxy);
  }

  router.Add(
      "POST", "/v1/sessions/{id}/processes", Spec(kScopeExec, "sessions.processes.start"),
      [&service](const RouteContext& c) {
        return Respond(201, [&]() -> Result<json::value> {
          RETURN_IF_ERROR(CheckSession(service, c));
          ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
          ASSIGN_OR_RETURN(core::ProcessStartRequest req,
                           ParseProcessStart(body, service.options().max_exec_timeout_seconds));
          ASSIGN_OR_RETURN(core::ProcessInfo p,
                           SandboxAgent(service).StartProcess(c.principal, c.Param("id"), req));
          return json::value(ProcessJson(p));
        });
      });

  router.Add("GET", "/v1/sessions/{id}/processes", Spec(kScopeSessionsRead, "sessions.processes"),
             [&service](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 core::Session touched;
                 auto list =
                     SandboxAgent(service).ListProcesses(c.principal, c.Param("id"), &touched);
                 Touched(c, touched);
                 if (!list.ok()) return list.status();
                 json::array items;
                 for (const auto& p : *list) items.emplace_back(ProcessJson(p));
                 json::object o;
                 o["processes"] = std::move(items);
                 o["next_page_token"] = "";
                 return json::value(std::move(o));
               });
             });

  router.Add("GET", "/v1/sessions/{id}/processes/{process}",
             Spec(kScopeSessionsRead, "sessions.processes.get"), [&service](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(std::string sel, ProcessSelector(c));
                 core::Session touched;
                 auto list =
                     SandboxAgent(service).ListProcesses(c.principal, c.Param("id"), &touched);
                 Touched(c, touched);
                 if (!list.ok()) return list.status();
                 // The newest with that pid or tag, as the agent resolves selectors.
                 for (auto it = list->rbegin(); it != list->rend(); ++it) {
                   if (std::to_string(it->pid) == sel || it->tag == sel)
                     return json::value(ProcessJson(*it));
                 }
                 return NotFound(fmt::format("no process {} in session {}", sel, c.Param("id")));
               });
             });

  router.Add(
      "GET", "/v1/sessions/{id}/processes/{process}/output",
      Spec(kScopeSessionsRead, "sessions.processes.output"), [deps](const RouteContext& c) {
        auto sel = ProcessSelector(c);
        if (!sel.ok()) return ApiResponse::Error(sel.status());
        auto follow = QueryBool(c.request, "follow", false);
        if (!follow.ok()) return ApiResponse::Error(follow.status());
        if (Status st = CheckSession(deps.service, c); !st.ok()) return ApiResponse::Error(st);
        auto slot = StreamSlots::Take();
        if (!slot.ok()) return ApiResponse::Error(slot.status());
        // An unknown process is the agent's first answer: a plain 404, before any stream.
        auto stream =
            SandboxAgent(deps.service).AttachProcess(c.principal, c.Param("id"), *sel, *follow);
        if (!stream.ok()) return ApiResponse::Error(stream.status());
        bool sse = AcceptsEventStream(c.request);
        auto body = std::make_shared<AgentBodyStream>(std::move(*stream), sse, std::move(*slot));
        return StreamedResponse(std::move(body), sse);
      });

  router.Add("POST", "/v1/sessions/{id}/processes/{process}/signal",
             Spec(kScopeExec, "sessions.processes.signal"), [&service](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(std::string sel, ProcessSelector(c));
                 RETURN_IF_ERROR(CheckSession(service, c));
                 ASSIGN_OR_RETURN(json::object body,
                                  ParseJsonObject(c.request.body.empty() ? "{}" : c.request.body));
                 FieldReader r(body);
                 RETURN_IF_ERROR(r.RejectUnknown({"signal"}));
                 int sig = SIGTERM;
                 if (const json::value* v = r.Raw("signal"); v && !v->is_null()) {
                   ASSIGN_OR_RETURN(sig, ParseSignal(*v));
                 }
                 ASSIGN_OR_RETURN(core::ProcessInfo p, SandboxAgent(service).SignalProcess(
                                                           c.principal, c.Param("id"), sel, sig));
                 return json::value(ProcessJson(p));
               });
             });

  router.Add("POST", "/v1/sessions/{id}/processes/{process}/stdin",
             Spec(kScopeExec, "sessions.processes.stdin"), [&service](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(std::string sel, ProcessSelector(c));
                 RETURN_IF_ERROR(CheckSession(service, c));
                 ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
                 FieldReader r(body);
                 RETURN_IF_ERROR(r.RejectUnknown({"data", "close"}));
                 std::optional<std::string> data;
                 std::optional<bool> close_it;
                 RETURN_IF_ERROR(r.String("data", &data, 8 << 20));
                 RETURN_IF_ERROR(r.Bool("close", &close_it));
                 if (!data && !close_it) return InvalidArgument("give data, close, or both");
                 ASSIGN_OR_RETURN(core::ProcessInfo p,
                                  SandboxAgent(service).WriteProcessStdin(
                                      c.principal, c.Param("id"), sel, data.value_or(""),
                                      close_it.value_or(false)));
                 return json::value(ProcessJson(p));
               });
             });

  router.Add("POST", "/v1/sessions/{id}/run", Spec(kScopeExec, "sessions.run"),
             [deps](const RouteContext& c) {
               if (Status st = CheckSession(deps.service, c); !st.ok())
                 return ApiResponse::Error(st);
               auto body = ParseJsonObject(c.request.body);
               if (!body.ok()) return ApiResponse::Error(body.status());
               auto snippet = ParseRun(*body, deps.service.options().max_exec_timeout_seconds);
               if (!snippet.ok()) return ApiResponse::Error(snippet.status());
               auto stream = WantsStream(c.request);
               if (!stream.ok()) return ApiResponse::Error(stream.status());
               auto interpreter =
                   InterpreterArgv(deps.service, c, snippet->language, snippet->exec.env);
               if (!interpreter.ok()) return ApiResponse::Error(interpreter.status());
               std::string code = std::move(snippet->exec.argv[0]);
               snippet->exec.argv = std::move(*interpreter);
               snippet->exec.argv.push_back(std::move(code));
               if (*stream) return StartStream(c, deps, std::move(snippet->exec));
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(core::ExecResult r,
                                  deps.service.Exec(c.principal, c.Param("id"), snippet->exec));
                 return json::value(core::ToJson(r));
               });
             });

  router.Add("POST", "/v1/sessions/{id}/interrupt", Spec(kScopeExec, "sessions.interrupt"),
             [&service](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 core::Session touched;
                 auto pid = SandboxAgent(service).Interrupt(c.principal, c.Param("id"), &touched);
                 Touched(c, touched);
                 if (!pid.ok()) return pid.status();
                 json::object o;
                 o["interrupted"] = *pid;
                 return json::value(std::move(o));
               });
             });

  router.Add("GET", "/v1/sessions/{id}/logs", Spec(kScopeSessionsRead, "sessions.logs"),
             [deps](const RouteContext& c) {
               auto follow = QueryBool(c.request, "follow", false);
               if (!follow.ok()) return ApiResponse::Error(follow.status());
               core::Session touched;
               auto first = deps.service.ReadLog(c.principal, c.Param("id"), 0,
                                                 LogBodyStream::kChunkBytes, &touched);
               Touched(c, touched);
               if (!first.ok()) return ApiResponse::Error(first.status());
               auto slot = StreamSlots::Take();
               if (!slot.ok()) return ApiResponse::Error(slot.status());
               auto body =
                   std::make_shared<LogBodyStream>(deps.service, c.principal, touched.id,
                                                   std::move(*first), *follow, std::move(*slot));
               ApiResponse r = StreamedResponse(std::move(body), false);
               r.content_type = "text/plain; charset=utf-8";
               return r;
             });
}

}  // namespace hutch::api
