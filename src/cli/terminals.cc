// `hutch terminal ls|new|attach|rm`: terminals that survive a disconnect (docs/cli.md,
// "hutch terminal"; docs/api.md "Terminals that survive a disconnect").
#include <CLI/CLI.hpp>

#include <memory>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/resource_commands.h"
#include "cli/terminal.h"
#include "common/time.h"

namespace hutch::cli {

namespace {

std::string TerminalsPath(const std::string& id) {
  return "/v1/sessions/" + client::QueryEscape(id) + "/terminals";
}

void PrintTerminals(const Command& cmd, const json::array& items) {
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(json::object{{"terminals", items}});
    return;
  }
  Table t({"ID", "NAME", "STATE", "ATTACHED", "CREATED", "LAST ACTIVITY", "COMMAND"});
  TimePoint now = Now();
  for (const auto& v : items) {
    const json::object& o = v.as_object();
    auto age = [&](const char* key) {
      auto at = JsonTime(o, key);
      return at ? FormatAgeSince(*at, now) : std::string("-");
    };
    std::string command;
    if (const json::value* argv = o.if_contains("cmd"); argv && argv->is_array())
      for (const auto& a : argv->as_array())
        if (a.is_string()) command += (command.empty() ? "" : " ") + std::string(a.as_string());
    if (command.size() > 50) command = command.substr(0, 47) + "...";
    t.AddRow({JsonString(o, "id"), JsonString(o, "name"), JsonString(o, "state"),
              JsonString(o, "attached"), age("created_at"), age("last_activity_at"), command});
  }
  t.Print(*cmd.io.out);
}

void AddNew(CLI::App& group, int* exit_code, const Io& io) {
  struct Flags {
    std::string id, name, cwd;
    std::vector<std::string> cmd, env;
    bool attach = false;
  };
  auto cmd = NewCommand(io, "terminal new");
  auto f = std::make_shared<Flags>();
  CLI::App* sub = AddCommand(
      group, "new",
      "Start a terminal that keeps running while nobody is attached (default: a login shell); "
      "prints its id, or attaches with -a",
      "hutch terminal new dev -a\n  hutch terminal new dev --name build -- make -j4");
  sub->add_option("ID", f->id, "session id or name")->required();
  sub->add_option("CMD", f->cmd, "the command and its arguments, after `--` (default: a shell)");
  sub->add_option("--name", f->name, "a name to tell it by");
  sub->add_option("--env", f->env, "KEY=VALUE for the command (repeatable)")
      ->allow_extra_args(false)
      ->type_name("KEY=VALUE");
  sub->add_option("--cwd", f->cwd, "working directory inside the session (absolute)")
      ->type_name("DIR");
  sub->add_flag("-a,--attach", f->attach, "attach to it at once (^] detaches)");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, f, exit_code] {
    json::object body;
    if (!f->name.empty()) body["name"] = f->name;
    if (!f->cmd.empty()) {
      json::array argv;
      for (const auto& a : f->cmd) argv.emplace_back(a);
      body["cmd"] = std::move(argv);
    }
    if (!f->env.empty()) {
      auto env = ParseEnvFlags(f->env, "--env");
      if (!env.ok()) {
        *exit_code = cmd->UsageError(env.status());
        return;
      }
      body["env"] = ToJsonObject(*env);
    }
    if (!f->cwd.empty()) body["cwd"] = f->cwd;
    if (auto size = TerminalSize(STDOUT_FILENO)) {
      body["rows"] = size->first;
      body["cols"] = size->second;
    }
    if (const char* term = ::getenv("TERM"); term && *term && !body.contains("env"))
      body["env"] = json::object{{"TERM", term}};
    auto r = cmd->CallOrFail(exit_code, "POST", TerminalsPath(f->id), body);
    if (!r) return;
    std::string tid = JsonString(*r, "id");
    if (f->attach) {
      *exit_code = RunTerminalAttach(*cmd, f->id, tid, false);
      return;
    }
    if (cmd->flags.json())
      *cmd->io.out << PrettyJson(*r);
    else
      *cmd->io.out << tid << "\n";
    *exit_code = kExitOk;
  });
}

}  // namespace

void AddTerminalCommands(CLI::App& app, int* exit_code, const Io& io) {
  CLI::App* group = AddCommandGroup(
      app, "terminal",
      "Terminals that survive a disconnect: a shell keeps running with its scrollback while no "
      "client is attached; attach again to the same shell",
      "hutch terminal new dev -a\n  hutch terminal attach dev term_x");
  {
    auto cmd = NewCommand(io, "terminal ls");
    auto id = std::make_shared<std::string>();
    CLI::App* sub =
        AddCommand(*group, "ls", "List a session's live terminals", "hutch terminal ls dev");
    sub->add_option("ID", *id, "session id or name")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, id, exit_code] {
      ListAndPrint(*cmd, exit_code, TerminalsPath(*id), "terminals", PrintTerminals);
    });
  }
  AddNew(*group, exit_code, io);
  {
    auto cmd = NewCommand(io, "terminal attach");
    auto id = std::make_shared<std::string>();
    auto tid = std::make_shared<std::string>();
    auto observe = std::make_shared<bool>(false);
    CLI::App* sub = AddCommand(
        *group, "attach",
        "Attach this terminal to a session's terminal: its scrollback, then live; ^] detaches "
        "and leaves it running",
        "hutch terminal attach dev term_x\n  hutch terminal attach dev term_x --observe");
    sub->add_option("ID", *id, "session id or name")->required();
    sub->add_option("TERMINAL", *tid, "the terminal's id (term_…)")->required();
    sub->add_flag("--observe", *observe, "watch read-only: what you type is not sent");
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, id, tid, observe, exit_code] {
      *exit_code = RunTerminalAttach(*cmd, *id, *tid, *observe);
    });
  }
  AddSessionItemsRm(*group, io, exit_code,
                    {"terminal rm", "End terminals and everything they run (their jobs too)",
                     "hutch terminal rm dev term_x", "TERMINAL", "terminal ids", "terminals",
                     [](const std::string& id, const std::string& tid) {
                       return TerminalsPath(id) + "/" + client::QueryEscape(tid);
                     }});
}

}  // namespace hutch::cli
