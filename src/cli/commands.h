// What the client commands share: the global flags, the streams they write to, connecting to the
// server, and how an error is printed. One Add*Command function per command (or command group),
// each in its group's file: sessions.cc, exec.cc, login.cc (login, logout, me), tokens.cc,
// users.cc, audit.cc; version in cli.cc.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "cli/cli.h"
#include "cli/config.h"
#include "cli/http_client.h"
#include "common/status.h"
#include "core/exec.h"

namespace CLI {
class App;
}  // namespace CLI

namespace hutch::cli {

// Where a command's output goes. The real ones are std::cout, std::cerr and the process's stdin;
// tests pass their own.
struct Io {
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  // The whole of stdin when it is not a terminal (a pipe, a file, /dev/null); nullopt when it is.
  std::function<std::optional<std::string>()> read_stdin;
  // A secret someone types or pipes in (`hutch login`): from a terminal, one line read without
  // echo after `prompt` on stderr; otherwise the whole of stdin. When unset (tests), read_stdin
  // is used.
  std::function<Result<std::string>(std::string_view prompt)> read_secret;
};

// The real process's streams.
Io ProcessIo();

// The same as AddClientCommands in cli.h, writing to `io`.
void AddClientCommands(CLI::App& app, int* exit_code, const Io& io);

// The flags every client command takes: --url, --token, --ca-cert, --insecure, --as and
// -o/--output. An empty flag counts as not given.
struct GlobalFlags {
  std::string url;
  std::string token;
  std::string ca_cert;
  bool insecure = false;
  std::string as;  // an admin acting for this user (id or name): sent as X-Hutch-Owner
  std::string output = "table";
  bool json() const { return output == "json"; }
};

// One run of a client command: its name (for hints: "ls", "token create"), its global flags and
// its streams.
struct Command {
  std::string name;
  GlobalFlags flags;
  Io io;
  // Hints for Fail() that replace the session-minded defaults for some codes ("" for none).
  std::map<Code, std::string> hints;

  // Resolves the config (see config.h) and makes the client; unauthenticated with
  // MissingTokenHelp() when no token was found and `need_token`. Fills config() either way.
  // Warns on stderr when an https server's certificate will not be verified. With --as, every
  // request carries X-Hutch-Owner.
  Result<client::ApiClient> Connect(bool need_token = true);
  // Connect(); on failure prints it as Fail does, sets *exit_code and answers nullopt.
  std::optional<client::ApiClient> ConnectOrFail(int* exit_code, bool need_token = true);
  const ClientConfig& config() const { return config_; }
  // After Connect: says where the token came from when it was not a flag, variable or file
  // ("stdin"), for hints.
  void set_token_source(std::string source) { config_.token_source = std::move(source); }

  // Connect(), then one call of the API (ApiClient::Call). On any failure prints it as Fail
  // does, sets *exit_code and answers nullopt.
  std::optional<json::object> CallOrFail(int* exit_code, std::string_view method,
                                         const std::string& target,
                                         const json::value& body = nullptr);

  // Prints "error: <message>" and, where one helps, a "hint: …" line; answers kExitError.
  int Fail(const Status& status) const;
  // The same for a wrong flag or argument; answers kExitUsage.
  int UsageError(const Status& status) const;

 private:
  ClientConfig config_;
};

// A run of the command `name` writing to `io`, shared by the flags it binds and its callback.
std::shared_ptr<Command> NewCommand(const Io& io, std::string name);

// Runs `call` for each of `ids` — one failure does not stop the others, it is printed and makes
// the exit code kExitError — then prints what the calls answered: each object's id, one per line
// (the given id when the answer has none), or with -o json `{json_key: [answers]}`. Answers the
// exit code.
int ForEachId(const Command& cmd, const std::vector<std::string>& ids, std::string_view json_key,
              const std::function<Result<json::object>(const std::string& id)>& call);

// Adds the global flags to `cmd`, stored in `flags`; --as only `with_as` (login has no use for
// it).
void AddGlobalFlags(CLI::App* cmd, GlobalFlags* flags, bool with_as = true);
// Adds `name` with its one-line description and the usage example shown under --help.
CLI::App* AddCommand(CLI::App& app, std::string_view name, std::string_view description,
                     std::string_view example);
// Adds a command that only groups subcommands (`hutch token …`); one of them is required.
CLI::App* AddCommandGroup(CLI::App& app, std::string_view name, std::string_view description,
                          std::string_view example);

// One per command; sessions.cc has create, ls, get, rm and history, exec.cc exec.
void AddCreateCommand(CLI::App& app, int* exit_code, const Io& io);
void AddListCommand(CLI::App& app, int* exit_code, const Io& io);
void AddGetCommand(CLI::App& app, int* exit_code, const Io& io);
void AddExecCommand(CLI::App& app, int* exit_code, const Io& io);
void AddRemoveCommand(CLI::App& app, int* exit_code, const Io& io);
void AddHistoryCommand(CLI::App& app, int* exit_code, const Io& io);
// login.cc: login, logout, me.
void AddLoginCommand(CLI::App& app, int* exit_code, const Io& io);
void AddLogoutCommand(CLI::App& app, int* exit_code, const Io& io);
void AddMeCommand(CLI::App& app, int* exit_code, const Io& io);
// tokens.cc: token create, ls, rm (alias revoke).
void AddTokenCommands(CLI::App& app, int* exit_code, const Io& io);
// users.cc: user create, ls, get, set, disable, enable, rm.
void AddUserCommands(CLI::App& app, int* exit_code, const Io& io);
// audit.cc.
void AddAuditCommand(CLI::App& app, int* exit_code, const Io& io);
// lifecycle.cc: pause, resume, stop, start, restart, keepalive, extend, timeout, update.
void AddLifecycleCommands(CLI::App& app, int* exit_code, const Io& io);

// The token `hutch login` reads when --token is absent: io.read_secret (or read_stdin), trimmed;
// invalid_argument when there is none, it is empty, or it is more than one word.
Result<std::string> ReadTokenInput(const Io& io);
// files.cc: cp and cat; `hutch ls ID:PATH` (sessions.cc) lists files through ListSessionFiles.
void AddFileCommands(CLI::App& app, int* exit_code, const Io& io);
// Prints the listing of ID:PATH (a directory down to `depth` levels, or one file) as a table,
// or the server's JSON with -o json; answers the exit code.
int ListSessionFiles(Command& cmd, const std::string& arg, int depth);
// checkpoints.cc: checkpoint create, ls, rm, restore; fork; lineage.
void AddCheckpointCommands(CLI::App& app, int* exit_code, const Io& io);
// images.cc: image ls, get, rm, import, build; commit; task get.
void AddImageCommands(CLI::App& app, int* exit_code, const Io& io);
// templates.cc: template apply, ls, get, rm. volumes.cc: volume create, ls, get, rm.
void AddTemplateCommands(CLI::App& app, int* exit_code, const Io& io);
void AddVolumeCommands(CLI::App& app, int* exit_code, const Io& io);
// agent …, message … (agents.cc; docs/agents.md).
void AddAgentCommands(CLI::App& app, int* exit_code, const Io& io);
// stats.cc
void AddStatsCommand(CLI::App& app, int* exit_code, const Io& io);
// events.cc: events (list and follow) and the webhook group (create, ls, rm, deliveries).
void AddEventsCommand(CLI::App& app, int* exit_code, const Io& io);
void AddWebhookCommand(CLI::App& app, int* exit_code, const Io& io);

// port_forward.cc
void AddPortForwardCommand(CLI::App& app, int* exit_code, const Io& io);
// `hutch service start|ls|get|rm` (services.cc).
void AddServiceCommands(CLI::App& app, int* exit_code, const Io& io);
// `hutch port ls|public|private|url` (ports.cc).
void AddPortCommands(CLI::App& app, int* exit_code, const Io& io);
// interactive.cc: shell, and the background process commands ps, logs, kill.
void AddShellCommand(CLI::App& app, int* exit_code, const Io& io);
void AddProcessCommands(CLI::App& app, int* exit_code, const Io& io);
// Runs `spec` (an exec request) over the exec WebSocket with this process's stdin (when
// `send_stdin`), stdout and stderr; with `tty` on a terminal of the current size, stdin in raw
// mode and window size changes forwarded. Answers the exit code as ExecExitCode does.
int RunInteractive(Command& cmd, const std::string& id, json::object spec, bool tty,
                   bool send_stdin);
// Attaches this terminal to the detachable terminal `terminal` of `session` (…/terminals/{tid}/
// ws): its scrollback, then live; ^] or a lost connection detaches (exit 0, the terminal runs
// on), the terminal's end answers its exit code. `observe`: read-only, nothing is sent.
int RunTerminalAttach(Command& cmd, const std::string& session, const std::string& terminal,
                      bool observe);
// `hutch terminal ls|new|attach|rm` (terminals.cc).
void AddTerminalCommands(CLI::App& app, int* exit_code, const Io& io);

// The contents of a file named on the command line by `flag`: '-' reads stdin (invalid_argument
// when stdin is a terminal); a file that cannot be read is not_found naming it.
Result<std::string> ReadFileArg(const Command& cmd, const std::string& file, std::string_view flag);

// Arguments joined by spaces: a command line for /bin/sh -c (--shell), or for messages.
std::string JoinArgs(const std::vector<std::string>& args);

// --env flags: "K=V", or "K" alone to pass on K's value from this process's environment.
Result<std::map<std::string, std::string>> ParseEnvFlags(const std::vector<std::string>& flags,
                                                         std::string_view flag);

// The exit code `hutch exec` ends with: 124 when the command timed out (as coreutils `timeout`
// does), 128+N when signal N killed it, else its own exit code.
int ExecExitCode(const core::ExecResult& result);

// Lets `api` wait for an exec or run answer as long as the command may run (timeout_seconds,
// 0 for the server's own limit) plus the time the server takes to kill it and answer.
void WaitForExecAnswer(client::ApiClient& api, int64_t timeout_seconds);

// Prints an exec answer (POST …/exec or …/run) as `hutch exec` does — the command's stdout and
// stderr byte for byte, or the JSON with -o json — and answers the exit code ExecExitCode gives.
int PrintExecAnswer(Command& cmd, const json::object& answer, int64_t timeout_seconds);

// `hutch run` (code snippets with the image's interpreter) and `hutch interrupt` (run.cc).
void AddRunCommands(CLI::App& app, int* exit_code, const Io& io);

// `hutch gc` (gc.cc): the server's garbage collector, for admins.
void AddGcCommand(CLI::App& app, int* exit_code, const Io& io);

}  // namespace hutch::cli
