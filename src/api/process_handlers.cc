// Background processes (DESIGN.md §4 "Processes"): start, list, look up, follow the output,
// signal, write stdin.
#include <signal.h>

#include <cctype>
#include <memory>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "api/one_page.h"
#include "api/stream_body.h"
#include "api/stream_routes.h"
#include "common/time.h"
#include "controller/activity_log.h"
#include "controller/sandbox_agent.h"
#include "core/scopes.h"
#include "core/session_json.h"

namespace hutch::api {

namespace {

using controller::SandboxAgent;
using controller::SessionService;

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

// POST …/processes.
Result<json::value> StartProcess(SessionService& service, const RouteContext& c) {
  RETURN_IF_ERROR(CheckSession(service, c));
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
  ASSIGN_OR_RETURN(core::ProcessStartRequest req,
                   ParseProcessStart(body, service.options().max_exec_timeout_seconds));
  core::Session touched;
  ASSIGN_OR_RETURN(core::ProcessInfo p,
                   SandboxAgent(service).StartProcess(c.principal, c.Param("id"), req, &touched));
  if (controller::ActivityLog* log = service.activity_log(); log && !touched.id.empty())
    log->Record(touched, "process.started", c.principal.Actor(),
                core::ExecCommandLine(req.exec.argv), std::nullopt,
                json::object{{"pid", p.pid}, {"tag", req.tag}});
  return json::value(ProcessJson(p));
}

// The session's processes, oldest first.
Result<std::vector<core::ProcessInfo>> ListProcesses(SessionService& service,
                                                     const RouteContext& c) {
  core::Session touched;
  auto list = SandboxAgent(service).ListProcesses(c.principal, c.Param("id"), &touched);
  Touched(c, touched);
  return list;
}

// GET …/processes.
Result<json::value> ListProcessesJson(SessionService& service, const RouteContext& c) {
  ASSIGN_OR_RETURN(std::vector<core::ProcessInfo> list, ListProcesses(service, c));
  return OnePage("processes", list, [](const auto& p) { return ProcessJson(p); });
}

// GET …/processes/{process}.
Result<json::value> GetProcess(SessionService& service, const RouteContext& c) {
  ASSIGN_OR_RETURN(std::string sel, ProcessSelector(c));
  ASSIGN_OR_RETURN(std::vector<core::ProcessInfo> list, ListProcesses(service, c));
  // The newest with that pid or tag, as the agent resolves selectors.
  for (auto it = list.rbegin(); it != list.rend(); ++it) {
    if (std::to_string(it->pid) == sel || it->tag == sel) return json::value(ProcessJson(*it));
  }
  return NotFound(fmt::format("no process {} in session {}", sel, c.Param("id")));
}

// GET …/processes/{process}/output: raw bytes, or SSE as POST …/exec streams.
ApiResponse ProcessOutput(SessionService& service, const RouteContext& c) {
  auto sel = ProcessSelector(c);
  if (!sel.ok()) return ApiResponse::Error(sel.status());
  auto follow = QueryBool(c.request, "follow", false);
  if (!follow.ok()) return ApiResponse::Error(follow.status());
  if (Status st = CheckSession(service, c); !st.ok()) return ApiResponse::Error(st);
  auto slot = StreamSlots::Take();
  if (!slot.ok()) return ApiResponse::Error(slot.status());
  // An unknown process is the agent's first answer: a plain 404, before any stream.
  auto stream = SandboxAgent(service).AttachProcess(c.principal, c.Param("id"), *sel, *follow);
  if (!stream.ok()) return ApiResponse::Error(stream.status());
  bool sse = AcceptsEventStream(c.request);
  auto body = std::make_shared<AgentBodyStream>(std::move(*stream), sse, std::move(*slot));
  return StreamedResponse(std::move(body), sse);
}

// POST …/processes/{process}/signal: {signal?} (TERM when none).
Result<json::value> SignalProcess(SessionService& service, const RouteContext& c) {
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
  ASSIGN_OR_RETURN(core::ProcessInfo p,
                   SandboxAgent(service).SignalProcess(c.principal, c.Param("id"), sel, sig));
  return json::value(ProcessJson(p));
}

// POST …/processes/{process}/stdin: {data?, close?}.
Result<json::value> WriteStdin(SessionService& service, const RouteContext& c) {
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
  ASSIGN_OR_RETURN(core::ProcessInfo p, SandboxAgent(service).WriteProcessStdin(
                                            c.principal, c.Param("id"), sel, data.value_or(""),
                                            close_it.value_or(false)));
  return json::value(ProcessJson(p));
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

void AddProcessRoutes(Router& router, const StreamDeps& deps) {
  using core::kScopeExec;
  using core::kScopeSessionsRead;
  SessionService& service = deps.service;
  // `path` below /v1/sessions/{id}/processes.
  auto add_json = [&](const char* method, std::string path, std::string_view scope,
                      const char* action, SessionJsonHandler handler, int ok_status = 200) {
    router.Add(method, "/v1/sessions/{id}/processes" + path, SessionSpec(scope, action),
               JsonOnService(service, ok_status, handler));
  };
  add_json("POST", "", kScopeExec, "sessions.processes.start", StartProcess, 201);
  add_json("GET", "", kScopeSessionsRead, "sessions.processes", ListProcessesJson);
  add_json("GET", "/{process}", kScopeSessionsRead, "sessions.processes.get", GetProcess);
  router.Add("GET", "/v1/sessions/{id}/processes/{process}/output",
             SessionSpec(kScopeSessionsRead, "sessions.processes.output"),
             OnService(service, ProcessOutput));
  add_json("POST", "/{process}/signal", kScopeExec, "sessions.processes.signal", SignalProcess);
  add_json("POST", "/{process}/stdin", kScopeExec, "sessions.processes.stdin", WriteStdin);
}

}  // namespace hutch::api
