// Checkpoint commands (checkpoint create, ls, rm, restore), fork and lineage.
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/resource_commands.h"
#include "common/time.h"

namespace hutch::cli {

namespace {

// "checkpointing box… 3.2s" on a terminal while a long call runs (copies scale with the data);
// nothing when stderr is not the process's terminal or the output is JSON.
class Progress {
 public:
  Progress(const Command& cmd, std::string what) {
    if (cmd.flags.json() || cmd.io.err != &std::cerr || !::isatty(STDERR_FILENO)) return;
    thread_ = std::thread([this, what = std::move(what)] {
      auto start = std::chrono::steady_clock::now();
      std::unique_lock lock(mu_);
      // Short calls print nothing at all.
      while (!cv_.wait_for(lock, std::chrono::milliseconds(300), [&] { return done_; })) {
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::cerr << fmt::format("\r{}… {:.1f}s", what, s) << std::flush;
        printed_ = true;
      }
      if (printed_) std::cerr << "\r\033[K" << std::flush;
    });
  }
  ~Progress() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool printed_ = false;
  std::thread thread_;
};

std::string SessionPath(const std::string& id) { return "/v1/sessions/" + client::QueryEscape(id); }

void PrintCheckpoints(const Command& cmd, const json::array& items) {
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(json::object{{"checkpoints", items}});
    return;
  }
  Table t({"NAME", "DATA", "DISK", "CREATED", "FROZEN", "TOOK"});
  TimePoint now = Now();
  for (const auto& v : items) {
    const json::object& c = v.as_object();
    auto num = [&](const char* k) {
      const json::value* x = c.if_contains(k);
      return x && x->is_int64() ? x->get_int64() : 0;
    };
    std::optional<TimePoint> at = JsonTime(c, "created_at");
    bool valid = c.if_contains("valid") && c.at("valid").is_bool() && c.at("valid").get_bool();
    t.AddRow({JsonString(c, "name"), valid ? FormatBytes(num("data_bytes")) : "INVALID",
              valid ? FormatBytes(num("size_bytes")) : "-",
              at ? FormatAgeSince(*at, now) + " ago" : "-",
              valid ? fmt::format("{}ms", num("freeze_ms")) : "-",
              valid ? fmt::format("{}ms", num("duration_ms")) : "-"});
  }
  t.Print(*cmd.io.out);
}

void PrintSessions(const Command& cmd, const json::array& sessions) {
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(json::object{{"sessions", sessions}});
    return;
  }
  Table t({"ID", "NAME", "STATE", "PARENT"});
  for (const auto& v : sessions) {
    const json::object& s = v.as_object();
    t.AddRow({JsonString(s, "id"), JsonString(s, "name"), JsonString(s, "state"),
              JsonString(s, "parent_id")});
  }
  t.Print(*cmd.io.out);
}

void AddCheckpointGroup(CLI::App& app, int* exit_code, const Io& io) {
  CLI::App* group = AddCommandGroup(
      app, "checkpoint",
      "Save a session's files under a name, list, restore and delete those saves (files only: "
      "processes and memory are not saved)",
      "hutch checkpoint create dev before-upgrade");

  {
    auto cmd = NewCommand(io, "checkpoint create");
    auto id = std::make_shared<std::string>();
    auto name = std::make_shared<std::string>();
    CLI::App* sub =
        AddCommand(*group, "create", "Checkpoint a running, paused or stopped session's files",
                   "hutch checkpoint create dev before-upgrade");
    sub->add_option("ID", *id, "session id or name")->required();
    sub->add_option("NAME", *name, "checkpoint name (a DNS label)")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, id, name, exit_code] {
      std::optional<json::object> r = [&] {
        Progress p(*cmd, "checkpointing " + *id);
        return cmd->CallOrFail(exit_code, "POST", SessionPath(*id) + "/checkpoints",
                               json::object{{"name", *name}});
      }();
      if (!r) return;
      PrintCheckpoints(*cmd, json::array{*r});
      *exit_code = kExitOk;
    });
  }
  {
    auto cmd = NewCommand(io, "checkpoint ls");
    auto id = std::make_shared<std::string>();
    CLI::App* sub = AddCommand(*group, "ls", "List a session's checkpoints, newest first",
                               "hutch checkpoint ls dev");
    sub->add_option("ID", *id, "session id or name")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, id, exit_code] {
      ListAndPrint(*cmd, exit_code, SessionPath(*id) + "/checkpoints", "checkpoints",
                   PrintCheckpoints);
    });
  }
  AddSessionItemsRm(*group, io, exit_code,
                    {"checkpoint rm", "Delete checkpoints of a session",
                     "hutch checkpoint rm dev before-upgrade old", "NAME", "checkpoint names",
                     "deleted", [](const std::string& id, const std::string& name) {
                       return SessionPath(id) + "/checkpoints/" + client::QueryEscape(name);
                     }});
  {
    auto cmd = NewCommand(io, "checkpoint restore");
    auto id = std::make_shared<std::string>();
    auto name = std::make_shared<std::string>();
    CLI::App* sub =
        AddCommand(*group, "restore",
                   "Bring a session's files back to a checkpoint's (a running session restarts its "
                   "processes; a stopped one stays stopped)",
                   "hutch checkpoint restore dev before-upgrade");
    sub->add_option("ID", *id, "session id or name")->required();
    sub->add_option("NAME", *name, "checkpoint name")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, id, name, exit_code] {
      std::optional<json::object> r = [&] {
        Progress p(*cmd, "restoring " + *id);
        return cmd->CallOrFail(
            exit_code, "POST",
            SessionPath(*id) + "/checkpoints/" + client::QueryEscape(*name) + "/restore");
      }();
      if (!r) return;
      PrintSessions(*cmd, json::array{*r});
      *exit_code = kExitOk;
    });
  }
}

void AddForkCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "fork");
  auto id = std::make_shared<std::string>();
  auto count = std::make_shared<int>(1);
  auto prefix = std::make_shared<std::string>();
  auto env = std::make_shared<std::vector<std::string>>();
  auto labels = std::make_shared<std::vector<std::string>>();
  CLI::App* sub =
      AddCommand(app, "fork",
                 "New sessions that start from a session's files now, named PREFIX-1, PREFIX-2, …",
                 "hutch fork dev --count 10 --name-prefix try");
  sub->add_option("ID", *id, "session id or name")->required();
  sub->add_option("--count", *count, "how many children (1 to 100)")
      ->check(CLI::Range(1, 100))
      ->type_name("N");
  sub->add_option("--name-prefix", *prefix, "children's names: PREFIX-1, … (default: the source's)")
      ->type_name("PREFIX");
  sub->add_option("--env", *env, "KEY=VALUE for the children (repeatable), over the source's")
      ->allow_extra_args(false)
      ->type_name("KEY=VALUE");
  sub->add_option("--label", *labels, "KEY=VALUE label of the children (repeatable)")
      ->allow_extra_args(false)
      ->type_name("KEY=VALUE");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, id, count, prefix, env, labels, exit_code] {
    json::object body{{"count", *count}};
    if (!prefix->empty()) body["name_prefix"] = *prefix;
    json::object overrides;
    if (!env->empty()) {
      auto parsed = ParseEnvFlags(*env, "--env");
      if (!parsed.ok()) {
        *exit_code = cmd->UsageError(parsed.status());
        return;
      }
      overrides["env"] = ToJsonObject(*parsed);
    }
    if (!labels->empty()) {
      json::object l;
      for (const auto& kv : *labels) {
        size_t eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) {
          *exit_code =
              cmd->UsageError(InvalidArgument(fmt::format("--label '{}' must be KEY=VALUE", kv)));
          return;
        }
        l[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
      overrides["labels"] = std::move(l);
    }
    if (!overrides.empty()) body["overrides"] = std::move(overrides);
    std::optional<json::object> r = [&] {
      Progress p(*cmd, fmt::format("forking {} into {}", *id, *count));
      return cmd->CallOrFail(exit_code, "POST", SessionPath(*id) + "/fork", body);
    }();
    if (!r) return;
    PrintSessions(*cmd, JsonArray(*r, "sessions"));
    *exit_code = kExitOk;
  });
}

void AddLineageCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "lineage");
  auto id = std::make_shared<std::string>();
  CLI::App* sub =
      AddCommand(app, "lineage", "Show where a session came from (its ancestors) and its children",
                 "hutch lineage try-3");
  sub->add_option("ID", *id, "session id or name")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, id, exit_code] {
    auto r = cmd->CallOrFail(exit_code, "GET", SessionPath(*id) + "/lineage");
    if (!r) return;
    if (cmd->flags.json()) {
      *cmd->io.out << PrettyJson(*r);
      *exit_code = kExitOk;
      return;
    }
    Table t({"RELATION", "ID", "NAME", "STATE"});
    auto rows = [&](const char* key, const char* relation) {
      const json::value* v = r->if_contains(key);
      if (!v || !v->is_array()) return;
      for (const auto& x : v->as_array()) {
        const json::object& s = x.as_object();
        std::string state = JsonString(s, "state");
        if (s.if_contains("deleted") && s.at("deleted").is_bool() && s.at("deleted").get_bool())
          state += " (deleted)";
        t.AddRow({relation, JsonString(s, "id"), JsonString(s, "name"), state});
      }
    };
    rows("ancestors", "ancestor");
    if (const json::value* self = r->if_contains("session"); self && self->is_object()) {
      const json::object& s = self->as_object();
      t.AddRow({"self", JsonString(s, "id"), JsonString(s, "name"), JsonString(s, "state")});
    }
    rows("children", "child");
    t.Print(*cmd->io.out);
    *exit_code = kExitOk;
  });
}

}  // namespace

void AddCheckpointCommands(CLI::App& app, int* exit_code, const Io& io) {
  AddCheckpointGroup(app, exit_code, io);
  AddForkCommand(app, exit_code, io);
  AddLineageCommand(app, exit_code, io);
}

}  // namespace hutch::cli
