// `hutch service start|ls|get|rm`: supervised processes of a session (docs/cli.md, "Services").
#include <CLI/CLI.hpp>

#include <memory>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/resource_commands.h"
#include "common/time.h"

namespace hutch::cli {

namespace {

std::string ServicesPath(const std::string& id) {
  return "/v1/sessions/" + client::QueryEscape(id) + "/services";
}

void PrintServices(const Command& cmd, const json::array& items) {
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(json::object{{"services", items}});
    return;
  }
  Table t({"NAME", "STATE", "HEALTH", "PORT", "PID", "RESTARTS", "RESTART", "URL"});
  for (const auto& v : items) {
    const json::object& s = v.as_object();
    auto num = [&](const char* k) -> std::string {
      const json::value* x = s.if_contains(k);
      return x && x->is_int64() ? std::to_string(x->get_int64()) : "-";
    };
    std::string url = JsonString(s, "url");
    t.AddRow({JsonString(s, "name"), JsonString(s, "state"), JsonString(s, "health"), num("port"),
              num("pid"), num("restarts"), JsonString(s, "restart"), url.empty() ? "-" : url});
  }
  t.Print(*cmd.io.out);
}

struct StartFlags {
  std::string id;
  std::string name;
  std::vector<std::string> cmd;
  std::vector<std::string> env;
  std::string cwd;
  int port = 0;
  std::string restart = "never";
  std::string health_http;
  bool health_tcp = false;
  std::string interval;
  bool shell = false;
};

void AddStart(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "service start");
  auto f = std::make_shared<StartFlags>();
  CLI::App* sub = AddCommand(
      group, "start", "Start a supervised process: restarted by its policy, checked for health",
      "hutch service start dev web --port 8000 --restart on-failure --health-http / -- "
      "python3 -m http.server 8000");
  sub->add_option("ID", f->id, "session id or name")->required();
  sub->add_option("NAME", f->name, "the service's name (also its process tag)")->required();
  sub->add_option("CMD", f->cmd, "the command and its arguments, after `--`")->required();
  sub->add_option("--port", f->port, "the port it listens on (127.0.0.1 inside the session)")
      ->check(CLI::Range(1, 65535));
  sub->add_option("--restart", f->restart, "never (default), on-failure or always")
      ->check(CLI::IsMember({"never", "on-failure", "always"}));
  sub->add_option("--health-http", f->health_http,
                  "healthy while GET PATH on its port answers 2xx or 3xx")
      ->type_name("PATH");
  sub->add_flag("--health-tcp", f->health_tcp, "healthy while its port accepts connections");
  sub->add_option("--interval", f->interval, "how often to check its health (default 2s)")
      ->type_name("DURATION");
  sub->add_option("--env", f->env, "KEY=VALUE for the service (repeatable)")
      ->allow_extra_args(false)
      ->type_name("KEY=VALUE");
  sub->add_option("--cwd", f->cwd, "working directory inside the session (absolute)")
      ->type_name("DIR");
  sub->add_flag("-s,--shell", f->shell, "run the arguments as one /bin/sh -c command line");
  AddGlobalFlags(sub, &cmd->flags);
  sub->allow_extras();
  sub->callback([cmd, f, sub, exit_code] {
    std::vector<std::string> extras = sub->remaining();
    std::erase(extras, "--");
    if (!extras.empty()) {
      *exit_code = cmd->UsageError(InvalidArgument(fmt::format(
          "unexpected arguments {}; put the command after `--`: hutch service start ID NAME "
          "[flags] -- CMD ARGS…",
          JoinArgs(extras))));
      return;
    }
    json::object body;
    body["name"] = f->name;
    if (f->shell) {
      body["command"] = JoinArgs(f->cmd);
    } else {
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
    if (f->port) body["port"] = f->port;
    body["restart"] = f->restart;
    if (!f->health_http.empty() || f->health_tcp) {
      json::object health;
      if (!f->health_http.empty()) health["http_path"] = f->health_http;
      if (f->health_tcp) health["tcp"] = true;
      if (!f->interval.empty()) {
        auto t = ParseSeconds(f->interval, "--interval");
        if (!t.ok()) {
          *exit_code = cmd->UsageError(t.status());
          return;
        }
        health["interval_seconds"] = *t;
      }
      body["health"] = std::move(health);
    } else if (!f->interval.empty()) {
      *exit_code = cmd->UsageError(
          InvalidArgument("--interval is how often the health check runs: add --health-http "
                          "PATH or --health-tcp"));
      return;
    }
    CallAndPrint(*cmd, exit_code, "POST", ServicesPath(f->id), PrintServices, body);
  });
}

}  // namespace

void AddServiceCommands(CLI::App& app, int* exit_code, const Io& io) {
  CLI::App* group = AddCommandGroup(
      app, "service",
      "Supervised processes of a session: started, restarted by a policy, checked for health, "
      "reached through the port proxy",
      "hutch service ls dev");
  AddStart(*group, exit_code, io);
  {
    auto cmd = NewCommand(io, "service ls");
    auto id = std::make_shared<std::string>();
    CLI::App* sub = AddCommand(*group, "ls", "List a session's services with state and health",
                               "hutch service ls dev");
    sub->add_option("ID", *id, "session id or name")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, id, exit_code] {
      ListAndPrint(*cmd, exit_code, ServicesPath(*id), "services", PrintServices);
    });
  }
  {
    auto cmd = NewCommand(io, "service get");
    auto id = std::make_shared<std::string>();
    auto name = std::make_shared<std::string>();
    CLI::App* sub = AddCommand(*group, "get", "Show one service, with its last health message",
                               "hutch service get dev web -o json");
    sub->add_option("ID", *id, "session id or name")->required();
    sub->add_option("NAME", *name, "the service's name")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, id, name, exit_code] {
      auto r =
          cmd->CallOrFail(exit_code, "GET", ServicesPath(*id) + "/" + client::QueryEscape(*name));
      if (!r) return;
      if (cmd->flags.json()) {
        *cmd->io.out << PrettyJson(*r);
      } else {
        PrintServices(*cmd, json::array{*r});
        std::string msg = JsonString(*r, "health_message");
        if (!msg.empty()) *cmd->io.out << "health: " << msg << "\n";
      }
      *exit_code = kExitOk;
    });
  }
  AddSessionItemsRm(*group, io, exit_code,
                    {"service rm", "Stop services (SIGTERM, SIGKILL 5s later) and forget them",
                     "hutch service rm dev web", "NAME", "service names", "stopped",
                     [](const std::string& id, const std::string& name) {
                       return ServicesPath(id) + "/" + client::QueryEscape(name);
                     }});
}

}  // namespace hutch::cli
