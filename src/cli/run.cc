// hutch run: a code snippet run by the image's interpreter (POST …/run); hutch interrupt: ^C to
// whatever runs in a session's foreground (POST …/interrupt).
#include <memory>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/output.h"

namespace hutch::cli {

namespace {

struct RunFlags {
  std::string id;
  std::string language;
  std::string code;
  std::string file;
  std::vector<std::string> env;
  std::string cwd;
  std::string timeout;
};

// The snippet: CODE, else -f FILE ('-' is stdin), else stdin when it is not a terminal.
Result<std::string> SnippetOf(const Command& cmd, const RunFlags& f) {
  if (!f.code.empty() && !f.file.empty())
    return InvalidArgument("give the code as an argument or with -f FILE, not both");
  if (!f.code.empty()) return f.code;
  if (!f.file.empty()) return ReadFileArg(cmd, f.file, "-f");
  std::optional<std::string> in = cmd.io.read_stdin ? cmd.io.read_stdin() : std::nullopt;
  if (!in || in->empty())
    return InvalidArgument(
        "no code: give it as an argument (hutch run dev python 'print(1)'), with -f FILE, or "
        "on stdin");
  return std::move(*in);
}

Result<json::object> RunBody(const Command& cmd, const RunFlags& f, int64_t* timeout_seconds) {
  json::object body;
  body["language"] = f.language;
  ASSIGN_OR_RETURN(std::string code, SnippetOf(cmd, f));
  body["code"] = std::move(code);
  if (!f.env.empty()) {
    ASSIGN_OR_RETURN(auto env, ParseEnvFlags(f.env, "--env"));
    body["env"] = ToJsonObject(env);
  }
  if (!f.cwd.empty()) body["cwd"] = f.cwd;
  if (!f.timeout.empty()) {
    ASSIGN_OR_RETURN(*timeout_seconds, ParseSeconds(f.timeout, "--timeout"));
    body["timeout_seconds"] = *timeout_seconds;
  }
  return body;
}

void AddRunCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "run");
  auto f = std::make_shared<RunFlags>();
  CLI::App* sub = AddCommand(
      app, "run",
      "Run a code snippet with the session image's interpreter (python, bash, sh or node); its "
      "output and exit code become hutch's",
      "hutch run dev python 'print(6 * 7)'\n"
      "  hutch run dev bash -f setup.sh\n"
      "  echo 'console.log(1 + 1)' | hutch run dev node");
  sub->add_option("ID", f->id, "session id or name")->required();
  sub->add_option("LANG", f->language, "python, bash, sh or node")->required();
  sub->add_option("CODE", f->code, "the code (or use -f FILE, or stdin)");
  sub->add_option("-f,--file", f->file, "read the code from FILE ('-' reads stdin)")
      ->type_name("FILE");
  sub->add_option("--env", f->env,
                  "KEY=VALUE added to the session's environment (repeatable); KEY alone passes "
                  "on this shell's value")
      ->allow_extra_args(false)
      ->type_name("KEY=VALUE");
  sub->add_option("--cwd", f->cwd, "working directory inside the session (absolute)")
      ->type_name("DIR");
  sub->add_option("--timeout", f->timeout, "kill the snippet after this long (90s) and exit 124")
      ->type_name("DURATION");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, f, exit_code] {
    int64_t timeout_seconds = 0;
    auto body = RunBody(*cmd, *f, &timeout_seconds);
    if (!body.ok()) {
      *exit_code = cmd->UsageError(body.status());
      return;
    }
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    WaitForExecAnswer(*api, timeout_seconds);
    auto answer = api->Call("POST", "/v1/sessions/" + client::QueryEscape(f->id) + "/run", *body);
    *exit_code =
        answer.ok() ? PrintExecAnswer(*cmd, *answer, timeout_seconds) : cmd->Fail(answer.status());
  });
}

void AddInterruptCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "interrupt");
  auto id = std::make_shared<std::string>();
  CLI::App* sub = AddCommand(
      app, "interrupt",
      "Send ^C (SIGINT) to what runs in a session's foreground: exec, run and terminals, not "
      "background processes",
      "hutch interrupt dev");
  sub->add_option("ID", *id, "session id or name")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, id, exit_code] {
    auto answer = cmd->CallOrFail(exit_code, "POST",
                                  "/v1/sessions/" + client::QueryEscape(*id) + "/interrupt");
    if (!answer) return;
    if (cmd->flags.json()) {
      *cmd->io.out << PrettyJson(*answer);
    } else {
      const json::value* n = answer->if_contains("interrupted");
      int64_t count = n && n->is_int64() ? n->get_int64() : 0;
      *cmd->io.out << fmt::format("interrupted {} {}\n", count, count == 1 ? "job" : "jobs");
    }
    *exit_code = kExitOk;
  });
}

}  // namespace

void AddRunCommands(CLI::App& app, int* exit_code, const Io& io) {
  AddRunCommand(app, exit_code, io);
  AddInterruptCommand(app, exit_code, io);
}

}  // namespace hutch::cli
