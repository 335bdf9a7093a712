// hutch exec: run a command in a session and behave like that command — its output on our
// stdout and stderr byte for byte, its exit code as ours.
#include <algorithm>
#include <memory>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/output.h"
#include "core/session_json.h"

namespace hutch::cli {

namespace {

// When no --timeout bounds the command, the client waits as long as a person at a terminal
// would; the server's own limit ends it first.
constexpr std::chrono::hours kUnboundedExecWait{24};
// Headroom over --timeout for the server to kill the command and answer.
constexpr std::chrono::seconds kExecAnswerSlack{60};

struct ExecFlags {
  std::string id;
  std::vector<std::string> cmd;
  std::vector<std::string> env;
  std::string cwd;
  std::string timeout;
  bool shell = false;
  bool no_stdin = false;
  bool interactive = false;  // -i: stream stdin over the WebSocket
  bool tty = false;          // -t: on a terminal
  bool detach = false;       // -d: a background process
  std::string tag;
};

// The API carries stdin in a JSON string, and the server accepts only UTF-8 there; catching it
// here gives a message that says so instead of "request body is not valid JSON".
bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past Unicode are not UTF-8.
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    i += len;
  }
  return true;
}

}  // namespace

std::string JoinArgs(const std::vector<std::string>& args) {
  std::string out;
  for (const auto& a : args) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

void WaitForExecAnswer(client::ApiClient& api, int64_t timeout_seconds) {
  std::chrono::milliseconds wait = kUnboundedExecWait;
  if (timeout_seconds > 0) wait = std::chrono::seconds(timeout_seconds) + kExecAnswerSlack;
  api.http().set_read_timeout(std::max(wait, api.http().read_timeout()));
}

int ExecExitCode(const core::ExecResult& result) {
  if (result.timed_out) return 124;
  if (result.signal > 0) return 128 + result.signal;
  if (result.exit_code < 0 || result.exit_code > 255) return kExitError;
  return result.exit_code;
}

int PrintExecAnswer(Command& cmd, const json::object& answer, int64_t timeout_seconds) {
  auto result = core::ExecResultFromJson(answer);
  if (!result.ok()) {
    return cmd.Fail(Internal(fmt::format(
        "the server sent an exec result this client cannot read: {}", result.status().message())));
  }
  std::ostream& out = *cmd.io.out;
  std::ostream& err = *cmd.io.err;
  if (cmd.flags.json()) {
    out << PrettyJson(answer);
    out.flush();
    return ExecExitCode(*result);
  }
  out.write(result->stdout_data.data(), static_cast<std::streamsize>(result->stdout_data.size()));
  out.flush();
  err.write(result->stderr_data.data(), static_cast<std::streamsize>(result->stderr_data.size()));
  if (result->truncated)
    err << "hutch: the output was cut short: the server keeps a limited amount per stream\n";
  if (result->timed_out)
    err << fmt::format("hutch: the command timed out after {} and was killed\n",
                       FormatAge(timeout_seconds));
  err.flush();
  return ExecExitCode(*result);
}

namespace {

// The exec request the flags make, and its timeout (0 for the server's own limit);
// invalid_argument for a flag that is malformed or does not go with the others.
Result<json::object> ExecRequest(const ExecFlags& f, int64_t* timeout_seconds) {
  json::object body;
  if (f.shell) {
    body["command"] = JoinArgs(f.cmd);
  } else {
    json::array argv;
    for (const auto& a : f.cmd) argv.emplace_back(a);
    body["cmd"] = std::move(argv);
  }
  if (!f.env.empty()) {
    auto env = ParseEnvFlags(f.env, "--env");
    if (!env.ok()) return env.status();
    body["env"] = ToJsonObject(*env);
  }
  if (!f.cwd.empty()) body["cwd"] = f.cwd;
  if (!f.timeout.empty()) {
    auto t = ParseSeconds(f.timeout, "--timeout");
    if (!t.ok()) return t.status();
    *timeout_seconds = *t;
    body["timeout_seconds"] = *t;
  }

  if (!f.tag.empty() && !f.detach) {
    return InvalidArgument("--tag names a background process: add -d");
  }
  if (f.detach && (f.interactive || f.tty)) {
    return InvalidArgument("-d runs in the background: it cannot take -i or -t");
  }
  return body;
}

}  // namespace

void AddExecCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "exec");
  auto f = std::make_shared<ExecFlags>();
  CLI::App* sub =
      AddCommand(app, "exec", "Run a command in a session; its output and exit code become hutch's",
                 "hutch exec dev --env DEBUG=1 --timeout 30s -- python3 -c 'print(6 * 7)'\n"
                 "  echo hello | hutch exec dev -- tr a-z A-Z\n"
                 "  hutch exec -it dev -- python3        (interactive, on a terminal)\n"
                 "  hutch exec -d --tag web dev -- python3 -m http.server   (background)");
  sub->add_option("ID", f->id, "session id or name")->required();
  sub->add_option("CMD", f->cmd, "the command and its arguments, after `--`")->required();
  sub->add_option("--env", f->env,
                  "KEY=VALUE added to the session's environment (repeatable); "
                  "KEY alone passes on this shell's value")
      ->allow_extra_args(false)
      ->type_name("KEY=VALUE");
  sub->add_option("--cwd", f->cwd, "working directory inside the session (absolute)")
      ->type_name("DIR");
  sub->add_option("--timeout", f->timeout,
                  "kill the command after this long (90s, 15m) and exit 124")
      ->type_name("DURATION");
  sub->add_flag("-s,--shell", f->shell, "run the arguments as one /bin/sh -c command line");
  sub->add_flag("--no-stdin", f->no_stdin, "do not send stdin even when it is not a terminal");
  sub->add_flag("-i,--interactive", f->interactive,
                "stream stdin to the command as it is typed (over a WebSocket)");
  sub->add_flag("-t,--tty", f->tty,
                "run the command on a terminal: raw keys, window size changes follow");
  sub->add_flag("-d,--detach", f->detach,
                "start a background process and print it; see `hutch ps`, `hutch logs`, "
                "`hutch kill`");
  sub->add_option("--tag", f->tag, "a name for the background process (with -d)")
      ->type_name("NAME");
  AddGlobalFlags(sub, &cmd->flags);
  // The command's own flags would otherwise be taken for ours; they are caught below and
  // reported with the fix.
  sub->allow_extras();
  sub->callback([cmd, f, sub, exit_code] {
    // CLI11 files the `--` itself among the extras.
    std::vector<std::string> extras = sub->remaining();
    std::erase(extras, "--");
    if (!extras.empty()) {
      *exit_code = cmd->UsageError(InvalidArgument(fmt::format(
          "unexpected arguments {}; put the command after `--`: hutch exec ID [flags] -- CMD "
          "ARGS…",
          JoinArgs(extras))));
      return;
    }
    int64_t timeout_seconds = 0;
    auto request = ExecRequest(*f, &timeout_seconds);
    if (!request.ok()) {
      *exit_code = cmd->UsageError(request.status());
      return;
    }
    json::object body = std::move(*request);
    if (f->interactive || f->tty) {
      *exit_code =
          RunInteractive(*cmd, f->id, std::move(body), f->tty, f->interactive && !f->no_stdin);
      return;
    }
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    if (f->detach) {
      if (!f->tag.empty()) body["tag"] = f->tag;
      auto started =
          api->Call("POST", "/v1/sessions/" + client::QueryEscape(f->id) + "/processes", body);
      if (!started.ok()) {
        *exit_code = cmd->Fail(started.status());
        return;
      }
      if (cmd->flags.json()) {
        *cmd->io.out << PrettyJson(*started);
      } else {
        *cmd->io.out << JsonString(*started, "pid") << "\n";
      }
      *exit_code = kExitOk;
      return;
    }
    // Only now that the request can be made: reading a pipe may block until its writer is done.
    if (!f->no_stdin && cmd->io.read_stdin) {
      std::optional<std::string> in = cmd->io.read_stdin();
      if (in && !IsValidUtf8(*in)) {
        *exit_code = cmd->UsageError(InvalidArgument(
            "stdin is not UTF-8 text, and exec carries stdin as text; pass --no-stdin, or "
            "encode it (e.g. base64) and decode it in the command"));
        return;
      }
      if (in && !in->empty()) body["stdin"] = std::move(*in);
    }
    WaitForExecAnswer(*api, timeout_seconds);

    auto answer = api->ExecJson(f->id, body);
    *exit_code =
        answer.ok() ? PrintExecAnswer(*cmd, *answer, timeout_seconds) : cmd->Fail(answer.status());
  });
}

}  // namespace hutch::cli
