// The client commands of the `hutch` executable: create, ls, get, exec, rm, history, stats, the
// lifecycle commands, events, webhook (sessions); login, logout, me, token …, user …, audit
// (accounts); version. They talk to a server over HTTP or HTTPS (see http_client.h), never to its
// store.
#pragma once

namespace CLI {
class App;
class ParseError;
}  // namespace CLI

namespace hutch::cli {

// Exit codes of every client command; `hutch exec` passes on its command's instead.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // the request failed; the reason is on stderr
inline constexpr int kExitUsage = 2;  // a flag or argument is wrong

// Adds the client commands to `app`. A command's callback stores its process exit code in
// *exit_code (which is left alone when no client command runs). Each command takes --url, --token,
// --ca-cert, --insecure, --as and -o/--output; see docs/cli.md.
void AddClientCommands(CLI::App& app, int* exit_code);

// Prints what a CLI11 parse error says (help text to stdout, errors to stderr) and answers the
// exit code that goes with it: kExitOk for --help, kExitUsage for every other parse error — where
// app.exit() would answer CLI11's own codes (105, 106, 109 …). For the `catch` around app.parse().
int ExitCodeForParseError(CLI::App& app, const CLI::ParseError& error);

}  // namespace hutch::cli
