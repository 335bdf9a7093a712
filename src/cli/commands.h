// What the client commands share: the global flags, the streams they write to, connecting to the
// server, and how an error is printed. One Add*Command function per command, each in its command
// group's file (sessions.cc, exec.cc; version in cli.cc).
#pragma once

#include <functional>
#include <map>
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
};

// The real process's streams.
Io ProcessIo();

// The same as AddClientCommands in cli.h, writing to `io`.
void AddClientCommands(CLI::App& app, int* exit_code, const Io& io);

// --url, --token and -o/--output, which every client command takes.
// An empty flag counts as not given.
struct GlobalFlags {
  std::string url;
  std::string token;
  std::string output = "table";
  bool json() const { return output == "json"; }
};

// One run of a client command: its name (for hints), its global flags and its streams.
struct Command {
  std::string name;
  GlobalFlags flags;
  Io io;

  // Resolves the config (see config.h) and makes the client; unauthenticated with
  // MissingTokenHelp() when no token was found and `need_token`. Fills config() either way.
  Result<client::ApiClient> Connect(bool need_token = true);
  const ClientConfig& config() const { return config_; }

  // What a not_found error hints at (default: `hutch ls`, for sessions).
  std::string not_found_hint;

  // Prints "error: <message>" and, where one helps, a "hint: …" line; answers kExitError.
  int Fail(const Status& status) const;
  // The same for a wrong flag or argument; answers kExitUsage.
  int UsageError(const Status& status) const;

 private:
  ClientConfig config_;
};

// Adds --url, --token and -o/--output to `cmd`, stored in `flags`.
void AddGlobalFlags(CLI::App* cmd, GlobalFlags* flags);
// Adds `name` with its one-line description and the usage example shown under --help.
CLI::App* AddCommand(CLI::App& app, std::string_view name, std::string_view description,
                     std::string_view example);

// One per command; sessions.cc has create, ls, get, rm and history, exec.cc exec.
void AddCreateCommand(CLI::App& app, int* exit_code, const Io& io);
void AddListCommand(CLI::App& app, int* exit_code, const Io& io);
void AddGetCommand(CLI::App& app, int* exit_code, const Io& io);
void AddExecCommand(CLI::App& app, int* exit_code, const Io& io);
void AddRemoveCommand(CLI::App& app, int* exit_code, const Io& io);
void AddHistoryCommand(CLI::App& app, int* exit_code, const Io& io);
// events.cc: events (list and follow) and the webhook group (create, ls, rm, deliveries).
void AddEventsCommand(CLI::App& app, int* exit_code, const Io& io);
void AddWebhookCommand(CLI::App& app, int* exit_code, const Io& io);

// --env flags: "K=V", or "K" alone to pass on K's value from this process's environment.
Result<std::map<std::string, std::string>> ParseEnvFlags(const std::vector<std::string>& flags,
                                                         std::string_view flag);

// The exit code `hutch exec` ends with: 124 when the command timed out (as coreutils `timeout`
// does), 128+N when signal N killed it, else its own exit code.
int ExecExitCode(const core::ExecResult& result);

}  // namespace hutch::cli
