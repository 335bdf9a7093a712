// Attached shells (docs/attach.md, docs/cli.md "Attached shells"): `hutch attach SERVICE
// [-- cmd]`, `hutch attach ls|get|end|replay|observe`, and the admin's `hutch target
// add|ls|rm`.
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "cli/attach_commands.h"
#include "cli/attach_socket.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "cli/resource_commands.h"
#include "cli/ws_client.h"
#include "common/time.h"

namespace hutch::cli {

namespace {

std::string AttachPath(const std::string& id) { return "/v1/attach/" + client::QueryEscape(id); }

void PrintShells(const Command& cmd, const json::array& items) {
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(json::object{{"attach_sessions", items}});
    return;
  }
  Table t({"ID", "SERVICE", "STATE", "REASON", "OWNER", "STARTED", "TITLE"});
  TimePoint now = Now();
  for (const auto& v : items) {
    if (!v.is_object()) continue;
    const json::object& o = v.as_object();
    std::optional<TimePoint> at = JsonTime(o, "started_at");
    std::string service = JsonString(o, "service_name");
    if (service.empty()) {
      const json::value* target = o.if_contains("target");
      service = target && target->is_object() ? JsonString(target->as_object(), "kind") : "-";
    }
    t.AddRow({JsonString(o, "id"), service, JsonString(o, "state"), JsonString(o, "reason"),
              JsonString(o, "owner"), at ? FormatAgeSince(*at, now) + " ago" : "-",
              JsonString(o, "title")});
  }
  t.Print(*cmd.io.out);
}

// The recording's raw bytes (GET …/recording?format=…).
Result<std::string> Recording(Command& cmd, const std::string& id, std::string_view format) {
  ASSIGN_OR_RETURN(client::ApiClient api, cmd.Connect());
  ASSIGN_OR_RETURN(
      client::HttpResponse r,
      api.http().Request("GET", AttachPath(id) + "/recording?format=" + std::string(format)));
  if (r.status != 200) return client::StatusFromResponse(r);
  return r.body;
}

// Writes an asciicast's output events to `out` at their times (scaled by 1/speed; at most
// `max_pause` seconds between two).
Status Replay(std::ostream& out, std::string_view cast, double speed, double max_pause) {
  size_t start = cast.find('\n');
  if (start == std::string_view::npos) return InvalidArgument("an empty recording");
  double last = 0;
  for (++start; start < cast.size();) {
    size_t nl = cast.find('\n', start);
    if (nl == std::string_view::npos) nl = cast.size();
    std::string_view line = cast.substr(start, nl - start);
    start = nl + 1;
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    if (ec || !v.is_array() || v.as_array().size() != 3) continue;
    const json::array& e = v.as_array();
    if (!e[1].is_string() || e[1].as_string() != "o" || !e[2].is_string()) continue;
    double t = e[0].is_number() ? e[0].to_number<double>() : last;
    double pause = std::min(std::max(t - last, 0.0), max_pause) / speed;
    last = t;
    if (pause > 0) std::this_thread::sleep_for(std::chrono::duration<double>(pause));
    out.write(e[2].as_string().data(), static_cast<std::streamsize>(e[2].as_string().size()));
    out.flush();
  }
  return Status::Ok();
}

void AddAttachSubcommands(CLI::App* group, int* exit_code, const Io& io) {
  {
    auto cmd = NewCommand(io, "attach ls");
    auto state = std::make_shared<std::string>();
    CLI::App* sub = AddCommand(*group, "ls", "List your attached shells (an admin: everyone's)",
                               "hutch attach ls --state active");
    sub->add_option("--state", *state, "provisioning, active or terminated");
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, state, exit_code] {
      std::string path = "/v1/attach";
      if (!state->empty()) path += "?state=" + client::QueryEscape(*state);
      ListAndPrint(*cmd, exit_code, path, "attach_sessions", PrintShells);
    });
  }
  {
    auto cmd = NewCommand(io, "attach get");
    auto id = std::make_shared<std::string>();
    CLI::App* sub = AddCommand(*group, "get", "Show an attached shell", "hutch attach get att_x");
    sub->add_option("ID", *id, "attach session id")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, id, exit_code] {
      CallAndPrint(*cmd, exit_code, "GET", AttachPath(*id), PrintShells);
    });
  }
  {
    auto cmd = NewCommand(io, "attach end");
    auto ids = std::make_shared<std::vector<std::string>>();
    CLI::App* sub =
        AddCommand(*group, "end",
                   "End attached shells: everything they started is killed (an admin may end "
                   "anyone's)",
                   "hutch attach end att_x");
    sub->add_option("ID", *ids, "attach session ids")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, ids, exit_code] {
      *exit_code = CallForEachId(
          *cmd, *ids, "attach_sessions", "DELETE",
          [&](const std::string& id) { return AttachPath(id); }, Connection::kPerId);
    });
  }
  {
    auto cmd = NewCommand(io, "attach replay");
    auto id = std::make_shared<std::string>();
    auto speed = std::make_shared<double>(1.0);
    auto max_pause = std::make_shared<double>(2.0);
    auto format = std::make_shared<std::string>();
    CLI::App* sub = AddCommand(
        *group, "replay",
        "Replay a shell's recording in this terminal at its pace (admins), or print it as "
        "text or asciicast",
        "hutch attach replay att_x --speed 2\n  hutch attach replay att_x --text > session.txt");
    sub->add_option("ID", *id, "attach session id")->required();
    sub->add_option("--speed", *speed, "faster (2) or slower (0.5) than it was (default 1)");
    sub->add_option("--max-pause", *max_pause,
                    "longest wait between two outputs, in seconds (default 2)");
    sub->add_flag_callback(
        "--text", [format] { *format = "text"; },
        "print the output as plain text (escape sequences removed)");
    sub->add_flag_callback(
        "--cast", [format] { *format = "cast"; },
        "print the asciicast v2 file (for asciinema play)");
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, id, speed, max_pause, format, exit_code] {
      if (*speed <= 0) {
        *exit_code = cmd->UsageError(InvalidArgument("--speed must be above 0"));
        return;
      }
      auto body = Recording(*cmd, *id, format->empty() ? "cast" : *format);
      if (!body.ok()) {
        *exit_code = cmd->Fail(body.status());
        return;
      }
      if (!format->empty()) {
        *cmd->io.out << *body;
        *exit_code = kExitOk;
        return;
      }
      Status st = Replay(*cmd->io.out, *body, *speed, *max_pause);
      *exit_code = st.ok() ? kExitOk : cmd->Fail(st);
    });
  }
  {
    auto cmd = NewCommand(io, "attach observe");
    auto id = std::make_shared<std::string>();
    CLI::App* sub =
        AddCommand(*group, "observe",
                   "Watch someone's attached shell live, read-only (what you type is not sent)",
                   "hutch attach observe att_x");
    sub->add_option("ID", *id, "attach session id")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, id, exit_code] {
      if (auto api = cmd->Connect(); !api.ok()) {
        *exit_code = cmd->Fail(api.status());
        return;
      }
      client::TlsOptions tls;
      tls.ca_cert_file = cmd->config().ca_cert;
      tls.insecure = cmd->config().insecure;
      auto ws = client::OpenObserveSocket(cmd->config().url, cmd->config().token, *id, tls);
      if (!ws.ok()) {
        *exit_code = cmd->Fail(ws.status());
        return;
      }
      for (;;) {
        auto f = (*ws)->Read();
        if (!f.ok() || !f->has_value()) break;
        if ((**f).channel == client::kChannelStdout) {
          cmd->io.out->write((**f).data.data(), static_cast<std::streamsize>((**f).data.size()));
          cmd->io.out->flush();
        }
        if ((**f).channel == client::kChannelStatus) break;
      }
      *cmd->io.err << fmt::format("\n[{} ended]\n", *id);
      *exit_code = kExitOk;
    });
  }
}

struct TargetFlags {
  std::string name;
  int64_t pid = 0;
  std::string pid_file, cgroup, unit, runc, runc_root, session, service;
  std::string docker, docker_name, docker_host;
  std::vector<std::string> users, roles, command;
  int64_t max_concurrent = 0;
  bool observe_only = false, record_input = false;
};

Result<json::object> TargetBody(const TargetFlags& f) {
  json::object target;
  int kinds = (f.pid > 0 || !f.pid_file.empty() || !f.cgroup.empty()) + !f.unit.empty() +
              !f.runc.empty() + !f.session.empty() + (!f.docker.empty() || !f.docker_name.empty());
  if (kinds != 1)
    return InvalidArgument(
        "give one target: --pid, --pid-file, --cgroup, --unit, --runc, --docker, --docker-name or "
        "--session");
  if (!f.unit.empty()) {
    target = {{"kind", "systemd"}, {"unit", f.unit}};
  } else if (!f.runc.empty()) {
    target = {{"kind", "runc"}, {"container_id", f.runc}};
    if (!f.runc_root.empty()) target["runc_root"] = f.runc_root;
  } else if (!f.docker.empty() || !f.docker_name.empty()) {
    target = {{"kind", "docker"}};
    if (!f.docker.empty()) target["container_id"] = f.docker;
    if (!f.docker_name.empty()) target["container_name"] = f.docker_name;
    if (!f.docker_host.empty()) target["docker_host"] = f.docker_host;
  } else if (!f.session.empty()) {
    target = {{"kind", "session"}, {"session", f.session}};
    if (!f.service.empty()) target["service"] = f.service;
  } else {
    target = {{"kind", "process"}};
    if (f.pid > 0) target["pid"] = f.pid;
    if (!f.pid_file.empty()) target["pid_file"] = f.pid_file;
    if (!f.cgroup.empty()) target["cgroup"] = f.cgroup;
  }
  json::object body{{"service_name", f.name}, {"target", std::move(target)}};
  auto list = [](const std::vector<std::string>& v) {
    json::array a;
    for (const auto& s : v) a.emplace_back(s);
    return a;
  };
  if (!f.users.empty()) body["users"] = list(f.users);
  if (!f.roles.empty()) body["roles"] = list(f.roles);
  if (!f.command.empty()) body["command"] = list(f.command);
  if (f.max_concurrent > 0) body["max_concurrent"] = f.max_concurrent;
  if (f.observe_only) body["mode"] = "observe_only";
  if (f.record_input) body["record_input"] = true;
  return body;
}

void PrintTargets(const Command& cmd, const json::array& items) {
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(json::object{{"targets", items}});
    return;
  }
  Table t({"SERVICE", "TARGET", "USERS", "ROLES", "MAX", "MODE"});
  for (const auto& v : items) {
    if (!v.is_object()) continue;
    const json::object& o = v.as_object();
    std::string target;
    if (const json::value* tv = o.if_contains("target"); tv && tv->is_object()) {
      for (const auto& [k, val] : tv->as_object()) {
        if (!target.empty()) target += " ";
        target +=
            fmt::format("{}={}", std::string_view(k),
                        val.is_string() ? std::string(val.as_string()) : json::serialize(val));
      }
    }
    auto joined = [&](const char* key) {
      std::string s;
      if (const json::value* a = o.if_contains(key); a && a->is_array())
        for (const auto& x : a->as_array())
          if (x.is_string()) s += (s.empty() ? "" : ",") + std::string(x.as_string());
      return s.empty() ? std::string("-") : s;
    };
    t.AddRow({JsonString(o, "service_name"), target, joined("users"), joined("roles"),
              JsonString(o, "max_concurrent"), JsonString(o, "mode")});
  }
  t.Print(*cmd.io.out);
}

}  // namespace

void AddAttachCommands(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "attach");
  auto service = std::make_shared<std::string>();
  auto title = std::make_shared<std::string>();
  auto argv = std::make_shared<std::vector<std::string>>();
  CLI::App* group = AddCommand(
      app, "attach",
      "An audited, recorded shell into a running service hutch did not create (a process, a "
      "runc container, a session): ls, get, end, replay and observe manage them",
      "hutch attach web\n  hutch attach web -- /bin/sh\n  hutch attach ls");
  group->require_subcommand(0, 1);
  group->add_option("SERVICE", *service, "the service name an admin registered (hutch target add)");
  group->add_option("--title", *title, "a title for the audit trail and the recording");
  group->add_option("CMD", *argv, "the command instead of the target's (after --)");
  AddGlobalFlags(group, &cmd->flags);
  AddAttachSubcommands(group, exit_code, io);
  group->callback([group, cmd, service, title, argv, exit_code] {
    if (!group->get_subcommands().empty()) return;
    if (service->empty()) {
      *exit_code = cmd->UsageError(InvalidArgument("give the SERVICE to attach to"));
      return;
    }
    json::object body{{"service_name", *service}};
    if (!title->empty()) body["title"] = *title;
    if (!argv->empty()) {
      json::array a;
      for (const auto& s : *argv) a.emplace_back(s);
      body["command"] = std::move(a);
    }
    auto r = cmd->CallOrFail(exit_code, "POST", "/v1/attach", body);
    if (!r) return;
    std::string id = JsonString(*r, "id");
    *cmd->io.err << fmt::format("[attached: {}; recorded and audited]\n", id);
    *exit_code = RunAttachTerminal(*cmd, id);
  });

  CLI::App* targets = AddCommandGroup(
      app, "target",
      "Register what hutch attach may reach (admins): a process, a systemd unit, a runc or "
      "Docker container or a session, with who may attach",
      "hutch target add web --runc 3f2a --users alice --roles instructor");
  {
    auto c = NewCommand(io, "target add");
    auto f = std::make_shared<TargetFlags>();
    CLI::App* sub = AddCommand(*targets, "add", "Register a service name shells may attach to",
                               "hutch target add web --runc 3f2a --users alice\n"
                               "  hutch target add nginx --unit nginx --roles admin\n"
                               "  hutch target add api --docker-name 'api-*' --roles dev");
    sub->add_option("NAME", f->name, "the service name users attach to")->required();
    sub->add_option("--pid", f->pid, "a process by pid");
    sub->add_option("--pid-file", f->pid_file, "a process by its pid file");
    sub->add_option("--cgroup", f->cgroup, "the lowest pid in a cgroup");
    sub->add_option("--unit", f->unit, "a systemd unit");
    sub->add_option("--runc", f->runc, "a runc container id");
    sub->add_option("--runc-root", f->runc_root, "runc's state root (default /run/runc)");
    sub->add_option("--session", f->session, "a hutch session (id or name)");
    sub->add_option("--service", f->service, "a service of that session");
    sub->add_option("--docker", f->docker, "a Docker container by id, id prefix or name");
    sub->add_option("--docker-name", f->docker_name,
                    "the running Docker container whose name matches a glob ('web-*')");
    sub->add_option("--docker-host", f->docker_host,
                    "the Docker Engine's unix socket (default: the server's attach.docker_host)");
    sub->add_option("--users", f->users, "users who may attach (ids or names)")->delimiter(',');
    sub->add_option("--roles", f->roles, "roles that may attach")->delimiter(',');
    sub->add_option("--command", f->command, "the command (default /bin/bash, else /bin/sh)");
    sub->add_option("--max-concurrent", f->max_concurrent, "shells open at once (default 15)");
    sub->add_flag("--observe-only", f->observe_only, "shells run the command and take no input");
    sub->add_flag("--record-input", f->record_input, "record keystrokes too");
    AddGlobalFlags(sub, &c->flags);
    sub->callback([c, f, exit_code] {
      auto body = TargetBody(*f);
      if (!body.ok()) {
        *exit_code = c->UsageError(body.status());
        return;
      }
      CallAndPrint(*c, exit_code, "POST", "/v1/targets", PrintTargets, *body);
    });
  }
  {
    auto c = NewCommand(io, "target ls");
    CLI::App* sub = AddCommand(*targets, "ls", "List the registered targets", "hutch target ls");
    AddGlobalFlags(sub, &c->flags);
    sub->callback(
        [c, exit_code] { ListAndPrint(*c, exit_code, "/v1/targets", "targets", PrintTargets); });
  }
  {
    auto c = NewCommand(io, "target rm");
    auto names = std::make_shared<std::vector<std::string>>();
    CLI::App* sub = AddCommand(*targets, "rm", "Remove registered targets (open shells go on)",
                               "hutch target rm web");
    sub->add_option("NAME", *names, "service names")->required();
    AddGlobalFlags(sub, &c->flags);
    sub->callback([c, names, exit_code] {
      *exit_code = CallForEachId(
          *c, *names, "deleted", "DELETE",
          [&](const std::string& name) { return "/v1/targets/" + client::QueryEscape(name); },
          Connection::kPerId);
    });
  }
}

}  // namespace hutch::cli
