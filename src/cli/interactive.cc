// The interactive side of the CLI: `hutch shell` and `hutch exec -i/-t` over the exec
// WebSocket (docs/api.md), and the background process commands `hutch ps`, `hutch logs` and
// `hutch kill`.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/attach_commands.h"
#include "cli/attach_socket.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "cli/resource_commands.h"
#include "cli/terminal.h"
#include "cli/ws_client.h"
#include "common/unique_fd.h"

namespace hutch::cli {

namespace {

// Written by the SIGWINCH handler, read by the stdin loop: the terminal's size changed.
int g_winch_pipe[2] = {-1, -1};

void OnWindowChange(int) {
  int saved = errno;
  char c = 'w';
  (void)!::write(g_winch_pipe[1], &c, 1);
  errno = saved;
}

// The exit code for an exec WebSocket's status frame, as ExecExitCode does for exec's result.
int StatusExitCode(const json::object& status) {
  core::ExecResult r;
  if (auto it = status.find("exit_code"); it != status.end() && it->value().is_int64())
    r.exit_code = static_cast<int>(it->value().as_int64());
  if (auto it = status.find("signal"); it != status.end() && it->value().is_int64())
    r.signal = static_cast<int>(it->value().as_int64());
  if (auto it = status.find("timed_out"); it != status.end() && it->value().is_bool())
    r.timed_out = it->value().as_bool();
  return ExecExitCode(r);
}

}  // namespace

namespace {

// RunInteractive over the socket `open` answers (exec WebSocket or an attached shell's).
using SocketOpener = std::function<Result<std::unique_ptr<client::ExecSocket>>(
    const Command& cmd, const json::object& spec, const client::TlsOptions& tls)>;
// `detachable`: a detachable terminal's attach (…/terminals/{tid}/ws) — ^] detaches and leaves
// it running, and a connection that ends without a status is a detach too.
int RunInteractiveOn(Command& cmd, json::object spec, bool tty, bool send_stdin,
                     const SocketOpener& open, bool detachable = false);

// The key that detaches from a terminal: ^] (telnet's escape).
constexpr char kDetachKey = 0x1d;

}  // namespace

int RunInteractive(Command& cmd, const std::string& id, json::object spec, bool tty,
                   bool send_stdin) {
  return RunInteractiveOn(
      cmd, std::move(spec), tty, send_stdin,
      [&id](const Command& c, const json::object& s, const client::TlsOptions& tls) {
        return client::ExecSocket::Open(c.config().url, c.config().token, id, s, tls);
      });
}

int RunAttachTerminal(Command& cmd, const std::string& id) {
  return RunInteractiveOn(
      cmd, json::object{}, true, true,
      [&id](const Command& c, const json::object& s, const client::TlsOptions& tls) {
        return client::OpenAttachSocket(c.config().url, c.config().token, id, s, tls);
      });
}

int RunTerminalAttach(Command& cmd, const std::string& session, const std::string& terminal,
                      bool observe) {
  return RunInteractiveOn(
      cmd, json::object{}, true, !observe,
      [&](const Command& c, const json::object& s,
          const client::TlsOptions& tls) -> Result<std::unique_ptr<client::ExecSocket>> {
        ASSIGN_OR_RETURN(auto ws,
                         client::ExecSocket::OpenTerminal(c.config().url, c.config().token, session,
                                                          terminal, observe, tls));
        // No spec on an attach: the terminal takes this window's size (the last resize wins).
        const json::object& t = s.at("tty").as_object();
        if (!observe)
          (void)ws->Resize(static_cast<int>(t.at("rows").as_int64()),
                           static_cast<int>(t.at("cols").as_int64()));
        return ws;
      },
      /*detachable=*/true);
}

namespace {

int RunInteractiveOn(Command& cmd, json::object spec, bool tty, bool send_stdin,
                     const SocketOpener& open, bool detachable) {
  auto api = cmd.Connect();
  if (!api.ok()) return cmd.Fail(api.status());
  bool stdin_is_tty = ::isatty(STDIN_FILENO) == 1;
  if (tty) {
    auto size = TerminalSize(STDOUT_FILENO);
    if (!size) size = TerminalSize(STDIN_FILENO);
    json::object t;
    t["rows"] = size ? size->first : 24;
    t["cols"] = size ? size->second : 80;
    spec["tty"] = std::move(t);
    if (!spec.contains("env")) spec["env"] = json::object();
    if (const char* term = ::getenv("TERM"); term && *term) spec["env"].as_object()["TERM"] = term;
  }
  client::TlsOptions tls;
  tls.ca_cert_file = cmd.config().ca_cert;
  tls.insecure = cmd.config().insecure;
  auto socket = open(cmd, spec, tls);
  if (!socket.ok()) return cmd.Fail(socket.status());
  client::ExecSocket& ws = **socket;

  // Raw mode only for a terminal on both ends; restored on every way out (destructor, signals).
  std::unique_ptr<RawTerminal> raw;
  if (tty && stdin_is_tty && send_stdin) {
    auto entered = RawTerminal::Enter(STDIN_FILENO);
    if (!entered.ok()) return cmd.Fail(entered.status());
    raw = std::move(*entered);
  }
  UniqueFd winch_read, winch_write;
  struct sigaction previous_winch {};
  bool winch_installed = false;
  if (tty && ::pipe2(g_winch_pipe, O_CLOEXEC | O_NONBLOCK) == 0) {
    winch_read.Reset(g_winch_pipe[0]);
    winch_write.Reset(g_winch_pipe[1]);
    struct sigaction sa {};
    sa.sa_handler = OnWindowChange;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    winch_installed = ::sigaction(SIGWINCH, &sa, &previous_winch) == 0;
  }

  // Output: its own thread, so a command that writes while we wait for keys is shown at once.
  std::atomic<bool> done{false};
  json::object status;
  bool got_status = false;
  UniqueFd wake_read, wake_write;
  {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return cmd.Fail(ErrnoError("pipe", errno));
    wake_read.Reset(p[0]);
    wake_write.Reset(p[1]);
  }
  std::ostream& out = *cmd.io.out;
  std::ostream& err = *cmd.io.err;
  std::thread reader([&] {
    for (;;) {
      auto frame = ws.Read();
      if (!frame.ok() || !frame->has_value()) break;
      const auto& f = **frame;
      if (f.channel == client::kChannelStdout) {
        out.write(f.data.data(), static_cast<std::streamsize>(f.data.size()));
        out.flush();
      } else if (f.channel == client::kChannelStderr) {
        err.write(f.data.data(), static_cast<std::streamsize>(f.data.size()));
        err.flush();
      } else if (f.channel == client::kChannelStatus) {
        auto parsed = ParseJsonObject(f.data);
        if (parsed.ok()) {
          status = std::move(*parsed);
          got_status = true;
        }
        break;
      }
    }
    done = true;
    char c = 'd';
    (void)!::write(wake_write.get(), &c, 1);
  });

  bool stdin_open = send_stdin;
  bool detached = false;
  if (!send_stdin && !detachable) (void)ws.CloseStdin();
  while (!done && !detached) {
    pollfd fds[3];
    nfds_t n = 0;
    fds[n++] = {wake_read.get(), POLLIN, 0};
    int stdin_idx = -1, winch_idx = -1;
    if (stdin_open) {
      stdin_idx = static_cast<int>(n);
      fds[n++] = {STDIN_FILENO, POLLIN, 0};
    }
    if (winch_read) {
      winch_idx = static_cast<int>(n);
      fds[n++] = {winch_read.get(), POLLIN, 0};
    }
    if (::poll(fds, n, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (winch_idx >= 0 && fds[winch_idx].revents) {
      char buf[64];
      while (::read(winch_read.get(), buf, sizeof buf) > 0) {
      }
      if (auto size = TerminalSize(STDOUT_FILENO)) (void)ws.Resize(size->first, size->second);
    }
    if (stdin_idx >= 0 && fds[stdin_idx].revents) {
      char buf[16384];
      ssize_t got = ::read(STDIN_FILENO, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        // End of our input: the command's stdin ends too (a terminal gets ^D from the agent).
        // A detachable terminal's stdin is not this client's to end.
        stdin_open = false;
        if (!detachable) (void)ws.CloseStdin();
        continue;
      }
      std::string_view typed(buf, static_cast<size_t>(got));
      if (size_t at = typed.find(kDetachKey); detachable && at != std::string_view::npos) {
        typed = typed.substr(0, at);
        detached = true;
      }
      if (!typed.empty() && !ws.SendStdin(typed).ok()) break;
    }
  }
  ws.Close();
  reader.join();
  if (winch_installed) ::sigaction(SIGWINCH, &previous_winch, nullptr);
  raw.reset();
  if (detachable && !got_status) {
    err << "\r\n[detached: the terminal runs on; `hutch terminal attach` it again]\r\n";
    err.flush();
    return kExitOk;
  }
  if (!got_status) {
    return cmd.Fail(Unavailable("the connection to hutch ended before the command did"));
  }
  if (auto it = status.find("error"); it != status.end() && it->value().is_object()) {
    const json::object& e = it->value().as_object();
    return cmd.Fail(Status(CodeFromName(JsonString(e, "code")), JsonString(e, "message")));
  }
  if (cmd.flags.json()) {
    out << PrettyJson(status);
    out.flush();
  }
  return StatusExitCode(status);
}

}  // namespace

void AddShellCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "shell");
  auto id = std::make_shared<std::string>();
  auto shell = std::make_shared<std::string>();
  CLI::App* sub = AddCommand(
      app, "shell",
      "Open an interactive terminal in a session (like ssh or kubectl exec -it); the terminal "
      "is restored on exit, window size changes follow",
      "hutch shell dev\n  hutch shell dev --shell /bin/zsh");
  sub->add_option("ID", *id, "session id or name")->required();
  sub->add_option("--shell", *shell,
                  "the shell to run (default: bash if the image has it, else sh)")
      ->type_name("PATH");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, id, shell, exit_code] {
    json::object spec;
    if (shell->empty()) {
      spec["command"] =
          "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi";
    } else {
      spec["cmd"] = json::array{json::value(*shell), json::value("-l")};
    }
    *exit_code = RunInteractive(*cmd, *id, std::move(spec), true, true);
  });
}

namespace {

std::vector<std::string> ProcessRow(const json::object& p, TimePoint now) {
  std::string state = JsonString(p, "state");
  if (state == "exited") {
    std::string sig = JsonString(p, "signal");
    if (!sig.empty() && sig != "0") {
      state = "killed (signal " + sig + ")";
    } else {
      state = "exited " + JsonString(p, "exit_code");
    }
    if (auto it = p.find("timed_out");
        it != p.end() && it->value().is_bool() && it->value().as_bool())
      state += ", timed out";
  }
  std::string cmdline;
  if (auto it = p.find("cmd"); it != p.end() && it->value().is_array()) {
    for (const auto& a : it->value().as_array()) {
      if (!cmdline.empty()) cmdline += ' ';
      if (a.is_string()) cmdline += std::string(a.as_string());
    }
  }
  if (cmdline.size() > 60) cmdline = cmdline.substr(0, 57) + "...";
  auto started = JsonTime(p, "started_at");
  return {JsonString(p, "pid"), JsonString(p, "tag"), state,
          started ? FormatAgeSince(*started, now) : "", cmdline};
}

}  // namespace

void AddProcessCommands(CLI::App& app, int* exit_code, const Io& io) {
  {
    auto cmd = NewCommand(io, "ps");
    auto id = std::make_shared<std::string>();
    CLI::App* sub = AddCommand(app, "ps",
                               "List a session's background processes (started with "
                               "`hutch exec -d`), running and ended",
                               "hutch ps dev");
    sub->add_option("ID", *id, "session id or name")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, id, exit_code] {
      auto api = cmd->ConnectOrFail(exit_code);
      if (!api) return;
      auto got = api->Call("GET", "/v1/sessions/" + client::QueryEscape(*id) + "/processes");
      if (!got.ok()) {
        *exit_code = cmd->Fail(got.status());
        return;
      }
      if (cmd->flags.json()) {
        *cmd->io.out << PrettyJson(*got);
        return;
      }
      Table table({"PID", "TAG", "STATE", "STARTED", "COMMAND"});
      TimePoint now = Now();
      if (auto it = got->find("processes"); it != got->end() && it->value().is_array()) {
        for (const auto& p : it->value().as_array())
          if (p.is_object()) table.AddRow(ProcessRow(p.as_object(), now));
      }
      table.Print(*cmd->io.out);
      *exit_code = kExitOk;
    });
  }
  {
    auto cmd = NewCommand(io, "logs");
    auto id = std::make_shared<std::string>();
    auto process = std::make_shared<std::string>();
    auto follow = std::make_shared<bool>(false);
    CLI::App* sub = AddCommand(
        app, "logs",
        "Show a background process's output (pid or tag), or without one the session's log; "
        "-f follows until it ends",
        "hutch logs dev web -f\n  hutch logs dev");
    sub->add_option("ID", *id, "session id or name")->required();
    sub->add_option("PROCESS", *process, "a background process's pid or tag");
    sub->add_flag("-f,--follow", *follow,
                  "keep printing what comes until the process (or the session) ends");
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, id, process, follow, exit_code] {
      auto api = cmd->ConnectOrFail(exit_code);
      if (!api) return;
      std::string target = "/v1/sessions/" + client::QueryEscape(*id);
      target +=
          process->empty() ? "/logs" : "/processes/" + client::QueryEscape(*process) + "/output";
      if (*follow) target += "?follow=true";
      std::ostream& out = *cmd->io.out;
      // A follow may be silent for long: the read timeout bounds each silence, and the server
      // speaks at least every 15 s.
      api->http().set_read_timeout(std::chrono::minutes(2));
      auto r = api->http().Stream("GET", target, {{"Accept", "*/*"}}, [&out](std::string_view d) {
        out.write(d.data(), static_cast<std::streamsize>(d.size()));
        out.flush();
        return true;
      });
      if (!r.ok()) {
        *exit_code = cmd->Fail(r.status());
        return;
      }
      Status st = client::StatusFromResponse(*r);
      *exit_code = st.ok() ? kExitOk : cmd->Fail(st);
    });
  }
  {
    auto cmd = NewCommand(io, "kill");
    auto id = std::make_shared<std::string>();
    auto processes = std::make_shared<std::vector<std::string>>();
    auto signal = std::make_shared<std::string>("TERM");
    CLI::App* sub =
        AddCommand(app, "kill", "Send a signal (default TERM) to background processes of a session",
                   "hutch kill dev web\n  hutch kill dev 42 -s KILL");
    sub->add_option("ID", *id, "session id or name")->required();
    sub->add_option("PROCESS", *processes, "pids or tags")->required();
    sub->add_option("-s,--signal", *signal, "signal name (TERM, INT, KILL, HUP…) or number")
        ->type_name("SIGNAL");
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, id, processes, signal, exit_code] {
      json::object body;
      bool numeric =
          !signal->empty() && signal->find_first_not_of("0123456789") == std::string::npos;
      if (numeric) {
        body["signal"] = std::stoll(signal->substr(0, 9));
      } else {
        body["signal"] = *signal;
      }
      *exit_code = CallForEachId(
          *cmd, *processes, "processes", "POST",
          [&](const std::string& p) {
            return "/v1/sessions/" + client::QueryEscape(*id) + "/processes/" +
                   client::QueryEscape(p) + "/signal";
          },
          Connection::kOnce, body);
    });
  }
}

}  // namespace hutch::cli
