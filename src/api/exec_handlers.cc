// The exec routes that stream: POST …/exec as SSE (StreamExec), the WebSocket of exec_ws.h,
// code snippets (POST …/run) and interrupt.
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "api/exec_ws.h"
#include "api/stream_body.h"
#include "api/stream_routes.h"
#include "controller/activity_log.h"
#include "controller/sandbox_agent.h"
#include "core/activity.h"
#include "core/scopes.h"
#include "core/session_json.h"

namespace hutch::api {

namespace {

using controller::SandboxAgent;
using controller::SessionService;

struct Snippet {
  core::ExecRequest exec;
  std::string language;
};

// The snippet's own fields, checked.
Status CheckSnippet(const std::optional<std::string>& language,
                    const std::optional<std::string>& code) {
  if (!language) return InvalidArgument("language is required: python, bash, sh or node");
  if (*language != "python" && *language != "bash" && *language != "sh" && *language != "node")
    return InvalidArgument(
        fmt::format("language '{}' is not one of python, bash, sh, node", *language));
  if (!code) return InvalidArgument("code is required");
  if (code->find('\0') != std::string::npos) return InvalidArgument("code contains a NUL byte");
  return Status::Ok();
}

// POST …/run: {language, code, timeout_seconds, env?, cwd?, stdin?}.
Result<Snippet> ParseRun(const json::object& body, int64_t max_timeout_seconds) {
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"language", "code", "timeout_seconds", "env", "cwd", "stdin"}));
  std::optional<std::string> language, code;
  RETURN_IF_ERROR(r.String("language", &language, 16));
  RETURN_IF_ERROR(r.String("code", &code, 1 << 20));
  RETURN_IF_ERROR(CheckSnippet(language, code));
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

// The interpreters a language may have, in the order they are looked for.
std::vector<std::string> InterpreterNames(const std::string& language) {
  if (language == "python") return {"python3", "python"};
  if (language == "bash") return {"bash"};
  if (language == "sh") return {"sh"};
  if (language == "node") return {"node", "nodejs"};
  return {};
}

// Finds the snippet's interpreter in the image: invalid_argument naming what was looked for.
Result<std::vector<std::string>> InterpreterArgv(SessionService& service, const RouteContext& c,
                                                 const std::string& language,
                                                 const std::map<std::string, std::string>& env) {
  std::vector<std::string> names = InterpreterNames(language);
  std::string flag = language == "node" ? "-e" : "-c";
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

// Starts `exec` as a streaming command and answers its SSE stream.
ApiResponse StartStream(const RouteContext& c, SessionService& service, core::ExecRequest exec) {
  auto slot = StreamSlots::Take();
  if (!slot.ok()) return ApiResponse::Error(slot.status());
  core::StreamExecRequest req;
  req.exec = std::move(exec);
  core::Session touched;
  auto stream = SandboxAgent(service).OpenExecStream(c.principal, c.Param("id"), req, &touched);
  Touched(c, touched);
  if (!stream.ok()) return ApiResponse::Error(stream.status());
  auto body = std::make_shared<AgentBodyStream>(std::move(*stream), true, std::move(*slot));
  // Recorded from the request when it ends, as a run-to-completion exec is (session_handlers).
  if (controller::ActivityLog* log = service.activity_log())
    body->OnExit([log, touched, actor = c.principal.Actor(),
                  command = core::ExecCommandLine(req.exec.argv)](const core::ExitInfo& e) {
      log->Record(touched, core::kActivityExec, actor, command,
                  e.signal ? std::nullopt : std::optional<int64_t>(e.exit_code),
                  json::object{{"duration_ms", e.duration_ms},
                               {"timed_out", e.timed_out},
                               {"signal", e.signal},
                               {"streamed", true}});
    });
  return StreamedResponse(std::move(body), true);
}

// GET …/exec/ws: the upgrade to exec_ws.h's WebSocket.
ApiResponse ExecWebSocket(SessionService& service, const RouteContext& c) {
  core::Session touched;
  auto target = service.Agent(c.principal, c.Param("id"), &touched);
  Touched(c, touched);
  if (!target.ok()) return ApiResponse::Error(target.status());
  if (c.request.Header("upgrade").find("websocket") == std::string::npos &&
      c.request.Header("upgrade").find("WebSocket") == std::string::npos)
    return ApiResponse::Error(
        InvalidArgument("this endpoint speaks WebSocket: send a GET with Upgrade: websocket"));
  ApiResponse r;
  r.status = 101;
  r.websocket = NewExecWebSocket(service, target->session, target->transport);
  return r;
}

// The snippet with its interpreter in front, ready to run.
Result<core::ExecRequest> WithInterpreter(SessionService& service, const RouteContext& c,
                                          Snippet snippet) {
  ASSIGN_OR_RETURN(std::vector<std::string> argv,
                   InterpreterArgv(service, c, snippet.language, snippet.exec.env));
  argv.push_back(std::move(snippet.exec.argv[0]));
  snippet.exec.argv = std::move(argv);
  return std::move(snippet.exec);
}

// POST …/run: the snippet run to its end, or streamed as POST …/exec streams.
ApiResponse RunSnippet(SessionService& service, const RouteContext& c) {
  if (Status st = CheckSession(service, c); !st.ok()) return ApiResponse::Error(st);
  auto body = ParseJsonObject(c.request.body);
  if (!body.ok()) return ApiResponse::Error(body.status());
  auto snippet = ParseRun(*body, service.options().max_exec_timeout_seconds);
  if (!snippet.ok()) return ApiResponse::Error(snippet.status());
  auto stream = WantsStream(c.request);
  if (!stream.ok()) return ApiResponse::Error(stream.status());
  auto exec = WithInterpreter(service, c, std::move(*snippet));
  if (!exec.ok()) return ApiResponse::Error(exec.status());
  if (*stream) return StartStream(c, service, std::move(*exec));
  return Respond(200, [&]() -> Result<json::value> {
    ASSIGN_OR_RETURN(core::ExecResult r, service.Exec(c.principal, c.Param("id"), *exec));
    return json::value(core::ToJson(r));
  });
}

// POST …/interrupt: SIGINT to the foreground process.
ApiResponse Interrupt(SessionService& service, const RouteContext& c) {
  return Respond(200, [&]() -> Result<json::value> {
    core::Session touched;
    auto pid = SandboxAgent(service).Interrupt(c.principal, c.Param("id"), &touched);
    Touched(c, touched);
    if (!pid.ok()) return pid.status();
    json::object o;
    o["interrupted"] = *pid;
    return json::value(std::move(o));
  });
}

}  // namespace

Result<bool> WantsStream(const ApiRequest& request) {
  ASSIGN_OR_RETURN(bool stream, QueryBool(request, "stream", false));
  return stream || AcceptsEventStream(request);
}

ApiResponse StreamExec(const RouteContext& c, SessionService& service) {
  if (Status st = CheckSession(service, c); !st.ok()) return ApiResponse::Error(st);
  auto body = ParseJsonObject(c.request.body);
  if (!body.ok()) return ApiResponse::Error(body.status());
  auto exec = core::ParseExecRequest(*body, service.options().max_exec_timeout_seconds);
  if (!exec.ok()) return ApiResponse::Error(exec.status());
  return StartStream(c, service, std::move(*exec));
}

void AddExecRoutes(Router& router, const StreamDeps& deps) {
  using core::kScopeExec;
  router.Add("GET", "/v1/sessions/{id}/exec/ws",
             SessionSpec(kScopeExec, "sessions.exec.ws", /*audit_reads=*/true),
             OnService(deps.service, ExecWebSocket));
  router.Add("POST", "/v1/sessions/{id}/run", SessionSpec(kScopeExec, "sessions.run"),
             OnService(deps.service, RunSnippet));
  router.Add("POST", "/v1/sessions/{id}/interrupt", SessionSpec(kScopeExec, "sessions.interrupt"),
             OnService(deps.service, Interrupt));
}

}  // namespace hutch::api
