// …/terminals: terminals that survive a disconnect (docs/api.md "Terminals that survive a
// disconnect"). A terminal is a PTY command kept in controller/live_processes.h's table with a
// scrollback, whether or not a client is attached; terminal_ws.h attaches clients.
#include <fmt/format.h>

#include "api/stream_routes.h"
#include "api/terminal_ws.h"
#include "common/ids.h"
#include "common/time.h"
#include "core/activity.h"
#include "core/scopes.h"
#include "core/session_json.h"

namespace hutch::api {

namespace {

using controller::LiveProcess;
using controller::SessionService;

// A terminal's default command: the image's bash as a login shell (the usual prompt and PATH),
// else sh. The console's and `hutch terminal new`'s.
constexpr std::string_view kDefaultShell =
    "if command -v bash >/dev/null 2>&1; then exec bash -l; fi; exec sh -l";

// POST …/terminals' body: {cmd | command, env, cwd, rows, cols, name}, all optional.
Result<std::pair<core::StreamExecRequest, std::string>> ParseNewTerminal(std::string_view text) {
  json::object body;
  if (!text.empty()) {
    ASSIGN_OR_RETURN(body, ParseJsonObject(text));
  }
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"cmd", "command", "env", "cwd", "rows", "cols", "name"}));
  std::optional<int64_t> rows, cols;
  RETURN_IF_ERROR(r.Int("rows", &rows, 1, 10000));
  RETURN_IF_ERROR(r.Int("cols", &cols, 1, 10000));
  std::optional<std::string> name;
  RETURN_IF_ERROR(r.String("name", &name, 64));
  json::object exec_body;
  for (const char* key : {"cmd", "command", "env", "cwd"})
    if (auto it = body.find(key); it != body.end()) exec_body[key] = it->value();
  if (!exec_body.contains("cmd") && !exec_body.contains("command"))
    exec_body["command"] = kDefaultShell;
  core::StreamExecRequest req;
  ASSIGN_OR_RETURN(req.exec, core::ParseExecRequest(exec_body, 0));
  req.exec.env.try_emplace("TERM", "xterm-256color");
  req.exec.env.try_emplace("LANG", "C.UTF-8");
  // Its bash reports the command lines it runs (docs/workshops.md, "Activity"), as exec/ws's do.
  core::AddShellHook(req.exec.env);
  req.tty = true;
  req.rows = static_cast<uint16_t>(rows.value_or(24));
  req.cols = static_cast<uint16_t>(cols.value_or(80));
  return std::pair{std::move(req), name.value_or("")};
}

struct TerminalRoutes {
  SessionService& service;
  std::shared_ptr<controller::LiveProcessTable> table;
  int64_t detached_idle_seconds;

  json::object ToJson(const LiveProcess& t) const {
    json::object o;
    o["id"] = t.options().id;
    o["name"] = t.options().name;
    o["session_id"] = t.session_id();
    json::array cmd;
    for (const auto& a : t.request().exec.argv) cmd.emplace_back(a);
    o["cmd"] = std::move(cmd);
    o["pid"] = t.pid();
    auto [rows, cols] = t.size();
    o["rows"] = rows;
    o["cols"] = cols;
    o["created_at"] = FormatTime(t.created_at());
    o["last_activity_at"] = FormatTime(t.last_activity());
    int attached = t.attached();
    o["attached"] = attached;
    o["state"] = attached > 0 ? "attached" : "detached";
    std::optional<TimePoint> since = t.DetachedSince();
    o["ends_at"] =
        since ? json::value(FormatTime(*since + std::chrono::seconds(detached_idle_seconds)))
              : json::value(nullptr);
    return o;
  }

  // The session the request names, the caller's (another user's is not_found), in any state.
  Result<core::Session> SessionOf(const RouteContext& c) const {
    auto s = service.Get(c.principal, c.Param("id"));
    if (s.ok()) Touched(c, *s);
    return s;
  }

  Result<std::shared_ptr<LiveProcess>> TerminalOf(const RouteContext& c) const {
    ASSIGN_OR_RETURN(core::Session s, SessionOf(c));
    c.audit.detail = std::string(c.Param("tid"));
    return table->FindById(s.id, std::string(c.Param("tid")));
  }

  ApiResponse Create(const RouteContext& c) const {
    return Respond(201, [&]() -> Result<json::value> {
      ASSIGN_OR_RETURN(auto parsed, ParseNewTerminal(c.request.body));
      controller::LiveOptions options;
      options.id = NewId("term");
      options.name = std::move(parsed.second);
      c.audit.detail = options.id;
      controller::SandboxAgent agent(service);
      core::Session touched;
      auto started = table->Start(agent, c.principal, std::string(c.Param("id")), parsed.first,
                                  std::move(options), /*close_stdin=*/false,
                                  /*subscribe=*/false, &touched);
      Touched(c, touched);
      if (!started.ok()) return started.status();
      return json::value(ToJson(*started->first));
    });
  }

  ApiResponse List(const RouteContext& c) const {
    return Respond(200, [&]() -> Result<json::value> {
      ASSIGN_OR_RETURN(core::Session s, SessionOf(c));
      json::array list;
      for (const auto& t : table->List(s.id)) list.emplace_back(ToJson(*t));
      return json::value(json::object{{"terminals", std::move(list)}});
    });
  }

  ApiResponse Get(const RouteContext& c) const {
    return Respond(200, [&]() -> Result<json::value> {
      ASSIGN_OR_RETURN(std::shared_ptr<LiveProcess> t, TerminalOf(c));
      return json::value(ToJson(*t));
    });
  }

  ApiResponse Delete(const RouteContext& c) const {
    return Respond(200, [&]() -> Result<json::value> {
      ASSIGN_OR_RETURN(std::shared_ptr<LiveProcess> t, TerminalOf(c));
      json::object o = ToJson(*t);
      RETURN_IF_ERROR(table->End(t->session_id(), t->options().id,
                                 fmt::format("deleted by {}", c.principal.user_name)));
      o["state"] = "ended";
      return json::value(std::move(o));
    });
  }

  ApiResponse Attach(const RouteContext& c) const {
    std::string mode = c.request.Query("mode");
    if (mode.empty()) mode = "interactive";
    if (mode != "interactive" && mode != "observe")
      return ApiResponse::Error(
          InvalidArgument(fmt::format("mode '{}' is not one of interactive, observe", mode)));
    auto t = TerminalOf(c);
    c.audit.detail = fmt::format("{} mode={}", c.Param("tid"), mode);
    if (!t.ok()) return ApiResponse::Error(t.status());
    // Input to a paused sandbox would wait for its resume; a stopped one has no terminals.
    if (Status st = CheckSession(service, c); !st.ok()) return ApiResponse::Error(st);
    const std::string& upgrade = c.request.Header("upgrade");
    if (upgrade.find("websocket") == std::string::npos &&
        upgrade.find("WebSocket") == std::string::npos)
      return ApiResponse::Error(
          InvalidArgument("this endpoint speaks WebSocket: send a GET with Upgrade: websocket"));
    ApiResponse r;
    r.status = 101;
    r.websocket = NewTerminalWebSocket(std::move(*t), mode == "observe");
    return r;
  }
};

}  // namespace

void AddTerminalRoutes(Router& router, const StreamDeps& deps) {
  using core::kScopeExec;
  using core::kScopeSessionsRead;
  if (!deps.terminals) return;
  auto routes = std::make_shared<TerminalRoutes>(
      TerminalRoutes{deps.service, deps.terminals, deps.detached_terminal_idle_seconds});
  router.Add("POST", "/v1/sessions/{id}/terminals",
             SessionSpec(kScopeExec, "sessions.terminals.create"),
             [routes](const RouteContext& c) { return routes->Create(c); });
  router.Add("GET", "/v1/sessions/{id}/terminals",
             SessionSpec(kScopeSessionsRead, "sessions.terminals.list"),
             [routes](const RouteContext& c) { return routes->List(c); });
  router.Add("GET", "/v1/sessions/{id}/terminals/{tid}",
             SessionSpec(kScopeSessionsRead, "sessions.terminals.get"),
             [routes](const RouteContext& c) { return routes->Get(c); });
  router.Add("DELETE", "/v1/sessions/{id}/terminals/{tid}",
             SessionSpec(kScopeExec, "sessions.terminals.delete"),
             [routes](const RouteContext& c) { return routes->Delete(c); });
  router.Add("GET", "/v1/sessions/{id}/terminals/{tid}/ws",
             SessionSpec(kScopeExec, "sessions.terminals.attach", /*audit_reads=*/true),
             [routes](const RouteContext& c) { return routes->Attach(c); });
}

}  // namespace hutch::api
