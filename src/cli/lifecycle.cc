// Lifecycle commands: pause, resume, stop, start, restart, keepalive, extend, timeout, update,
// resize.
#include <CLI/CLI.hpp>

#include <memory>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"

namespace hutch::cli {

namespace {

// "ID STATE EXPIRES" for each session an action returned, or the JSON.
void PrintResults(const Command& cmd, const json::array& sessions) {
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(json::object{{"sessions", sessions}});
    return;
  }
  TimePoint now = Now();
  for (const auto& v : sessions) {
    const json::object& s = v.as_object();
    std::optional<TimePoint> expires = JsonTime(s, "expires_at");
    *cmd.io.out << JsonString(s, "id") << "  " << JsonString(s, "state");
    if (expires) *cmd.io.out << "  expires " << TimeWithAge(*expires, now);
    *cmd.io.out << '\n';
  }
}

// POST /v1/sessions/{id}/<action> for each id; one failure does not stop the others.
void AddActionCommand(CLI::App& app, int* exit_code, const Io& io, std::string action,
                      std::string description, std::string example) {
  auto cmd = NewCommand(io, action);
  auto ids = std::make_shared<std::vector<std::string>>();
  CLI::App* sub = AddCommand(app, action, description, example);
  sub->add_option("ID", *ids, "session ids or names")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, ids, action, exit_code] {
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    int code = kExitOk;
    json::array done;
    for (const std::string& id : *ids) {
      auto r = api->Call("POST", "/v1/sessions/" + client::QueryEscape(id) + "/" + action);
      if (!r.ok()) {
        code = cmd->Fail(r.status().WithContext(id));
        continue;
      }
      done.push_back(std::move(*r));
    }
    PrintResults(*cmd, done);
    *exit_code = code;
  });
}

// extend ID DURATION / timeout ID DURATION.
void AddTimeCommand(CLI::App& app, int* exit_code, const Io& io, std::string action,
                    std::string description, std::string example) {
  auto cmd = NewCommand(io, action);
  auto id = std::make_shared<std::string>();
  auto duration = std::make_shared<std::string>();
  CLI::App* sub = AddCommand(app, action, description, example);
  sub->add_option("ID", *id, "session id or name")->required();
  sub->add_option("DURATION", *duration, "90s, 15m, 2h or a number of seconds")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, id, duration, action, exit_code] {
    auto seconds = ParseSeconds(*duration, "DURATION");
    if (!seconds.ok()) {
      *exit_code = cmd->UsageError(seconds.status());
      return;
    }
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    auto r = api->Call("POST", "/v1/sessions/" + client::QueryEscape(*id) + "/" + action,
                       json::object{{"seconds", *seconds}});
    if (!r.ok()) {
      *exit_code = cmd->Fail(r.status());
      return;
    }
    PrintResults(*cmd, json::array{*r});
    *exit_code = kExitOk;
  });
}

void AddUpdateCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "update");
  struct Flags {
    std::string id, name, title, ttl, idle_timeout, on_idle;
    std::vector<std::string> labels;
    bool clear_labels = false;
    CLI::Option* title_opt = nullptr;  // given (even as '') or not: --title '' clears it
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub =
      AddCommand(app, "update", "Rename a session or change its title, labels and timers",
                 "hutch update dev --label course=k8s --ttl 2h --idle-timeout none");
  sub->add_option("ID", f->id, "session id or name")->required();
  sub->add_option("--name", f->name, "new name (a DNS label)");
  f->title_opt =
      sub->add_option("--title", f->title, "new title: free text, one line; '' removes it")
          ->type_name("TEXT");
  sub->add_option("--label", f->labels, "K=V; replaces all labels (repeat for several)");
  sub->add_flag("--clear-labels", f->clear_labels, "remove every label");
  sub->add_option("--ttl", f->ttl, "lifetime from the start (90s, 15m, 2h), or none");
  sub->add_option("--idle-timeout", f->idle_timeout, "idle time before on-idle applies, or none");
  sub->add_option("--on-idle", f->on_idle, "pause | stop | terminate");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, f, exit_code] {
    json::object body;
    if (!f->name.empty()) body["name"] = f->name;
    if (f->title_opt->count() > 0) body["title"] = f->title;
    if (!f->labels.empty() || f->clear_labels) {
      json::object labels;
      for (const auto& kv : f->labels) {
        auto parsed = ParseKeyValue(kv, "--label");
        if (!parsed.ok()) {
          *exit_code = cmd->UsageError(parsed.status());
          return;
        }
        labels[parsed->first] = parsed->second;
      }
      body["labels"] = std::move(labels);
    }
    for (auto [flag, value, key] :
         {std::tuple{"--ttl", &f->ttl, "ttl_seconds"},
          std::tuple{"--idle-timeout", &f->idle_timeout, "idle_timeout_seconds"}}) {
      if (value->empty()) continue;
      if (*value == "none") {
        body[key] = nullptr;
        continue;
      }
      auto seconds = ParseSeconds(*value, flag);
      if (!seconds.ok()) {
        *exit_code = cmd->UsageError(seconds.status());
        return;
      }
      body[key] = *seconds;
    }
    if (!f->on_idle.empty()) body["on_idle"] = f->on_idle;
    if (body.empty()) {
      *exit_code =
          cmd->UsageError(InvalidArgument("nothing to change: give --name, --title, --label, "
                                          "--clear-labels, --ttl, --idle-timeout or "
                                          "--on-idle"));
      return;
    }
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    auto r = api->Call("PATCH", "/v1/sessions/" + client::QueryEscape(f->id), body);
    if (!r.ok()) {
      *exit_code = cmd->Fail(r.status());
      return;
    }
    PrintResults(*cmd, json::array{*r});
    *exit_code = kExitOk;
  });
}

// --disk: MB, or a quantity in Mi/M or Gi/G (the API takes disk_mb).
Result<int64_t> ParseDiskMb(const std::string& text) {
  std::string digits = text;
  int64_t unit = 1;
  for (auto [suffix, factor] : {std::pair{"Gi", 1024}, {"G", 1024}, {"Mi", 1}, {"M", 1}}) {
    if (std::string_view(digits).ends_with(suffix)) {
      digits.resize(digits.size() - std::string_view(suffix).size());
      unit = factor;
      break;
    }
  }
  size_t used = 0;
  int64_t n = -1;
  try {
    n = std::stoll(digits, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (digits.empty() || used != digits.size() || n <= 0)
    return InvalidArgument(fmt::format("--disk '{}' is not a size (2048, 512Mi, 4Gi)", text));
  return n * unit;
}

// resize ID --cpus --memory --pids --disk: PATCH with resources.
void AddResizeCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "resize");
  struct Flags {
    std::string id, memory, disk;
    std::optional<double> cpus;
    std::optional<int64_t> pids;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = AddCommand(
      app, "resize",
      "Change a running (or stopped) session's cpus, memory, processes or disk; a limit below "
      "what it uses now is refused",
      "hutch resize dev --memory 2Gi --cpus 2 --disk 8Gi");
  sub->add_option("ID", f->id, "session id or name")->required();
  sub->add_option("--cpus", f->cpus, "cores (0.5 = half a core)");
  sub->add_option("--memory", f->memory, "MB, or a quantity: 512Mi, 2Gi")->type_name("SIZE");
  sub->add_option("--pids", f->pids, "most processes and threads");
  sub->add_option("--disk", f->disk, "the disk in MB or Mi/Gi; it can only grow")
      ->type_name("SIZE");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, f, exit_code] {
    json::object resources;
    if (f->cpus) resources["cpus"] = *f->cpus;
    if (f->pids) resources["pids"] = *f->pids;
    if (!f->memory.empty()) {
      bool plain =
          f->memory.size() <= 12 && f->memory.find_first_not_of("0123456789") == std::string::npos;
      if (plain) {
        resources["memory_mb"] = std::stoll(f->memory);
      } else {
        resources["memory"] = f->memory;  // the server parses the quantity
      }
    }
    if (!f->disk.empty()) {
      auto mb = ParseDiskMb(f->disk);
      if (!mb.ok()) {
        *exit_code = cmd->UsageError(mb.status());
        return;
      }
      resources["disk_mb"] = *mb;
    }
    if (resources.empty()) {
      *exit_code = cmd->UsageError(
          InvalidArgument("nothing to change: give --cpus, --memory, --pids or --disk"));
      return;
    }
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    auto r = api->Call("PATCH", "/v1/sessions/" + client::QueryEscape(f->id),
                       json::object{{"resources", resources}});
    if (!r.ok()) {
      *exit_code = cmd->Fail(r.status());
      return;
    }
    if (cmd->flags.json()) {
      PrintResults(*cmd, json::array{*r});
    } else {
      const json::object& s = *r;
      const json::object* res =
          s.if_contains("resources") ? s.at("resources").if_object() : nullptr;
      *cmd->io.out << JsonString(s, "id") << "  " << JsonString(s, "state");
      if (res)
        *cmd->io.out << fmt::format(
            "  cpus {}  memory {} MB  pids {}  disk {} MB", json::serialize(res->at("cpus")),
            json::serialize(res->at("memory_mb")), json::serialize(res->at("pids")),
            json::serialize(res->at("disk_mb")));
      *cmd->io.out << '\n';
    }
    *exit_code = kExitOk;
  });
}

}  // namespace

void AddLifecycleCommands(CLI::App& app, int* exit_code, const Io& io) {
  AddActionCommand(app, exit_code, io, "pause",
                   "Freeze every process of sessions where they stand (memory and files stay)",
                   "hutch pause dev");
  AddActionCommand(app, exit_code, io, "resume", "Let paused sessions run again",
                   "hutch resume dev");
  AddActionCommand(app, exit_code, io, "stop",
                   "Stop sessions: end their processes, free memory, keep their files",
                   "hutch stop dev");
  AddActionCommand(app, exit_code, io, "start", "Start stopped sessions again on their files",
                   "hutch start dev");
  AddActionCommand(app, exit_code, io, "restart", "Stop and start sessions", "hutch restart dev");
  AddActionCommand(app, exit_code, io, "keepalive",
                   "Push sessions' end to now + their keep-alive window (their ttl)",
                   "hutch keepalive dev");
  AddTimeCommand(app, exit_code, io, "extend", "Move a session's end later by DURATION",
                 "hutch extend dev 30m");
  AddTimeCommand(app, exit_code, io, "timeout", "End a session DURATION from now",
                 "hutch timeout dev 10m");
  AddUpdateCommand(app, exit_code, io);
  AddResizeCommand(app, exit_code, io);
}

}  // namespace hutch::cli
