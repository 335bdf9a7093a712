// Volume commands: volume create, ls, get, rm (docs/cli.md, "Volumes").
#include <CLI/CLI.hpp>

#include <memory>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/resource_commands.h"
#include "common/time.h"

namespace hutch::cli {

namespace {

std::string VolumePath(const std::string& id) { return "/v1/volumes/" + client::QueryEscape(id); }

void PrintVolumes(const Command& cmd, const json::array& items) {
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(json::object{{"volumes", items}});
    return;
  }
  Table t({"ID", "NAME", "SIZE", "USED", "ATTACHED TO", "CREATED"});
  TimePoint now = Now();
  for (const auto& v : items) {
    if (!v.is_object()) continue;
    const json::object& o = v.as_object();
    auto num = [&](const char* k) -> std::optional<int64_t> {
      const json::value* x = o.if_contains(k);
      if (x && x->is_int64()) return x->get_int64();
      return std::nullopt;
    };
    std::string attached;
    if (const json::value* s = o.if_contains("sessions"); s && s->is_array()) {
      for (const auto& a : s->as_array()) {
        if (!a.is_object()) continue;
        const json::object& ao = a.as_object();
        bool ro = ao.if_contains("read_only") && ao.at("read_only").is_bool() &&
                  ao.at("read_only").get_bool();
        attached += fmt::format("{}{}:{}{}", attached.empty() ? "" : ", ", JsonString(ao, "name"),
                                JsonString(ao, "path"), ro ? " (ro)" : "");
      }
    }
    std::optional<TimePoint> at = JsonTime(o, "created_at");
    auto size = num("size_mb");
    auto used = num("used_bytes");
    t.AddRow({JsonString(o, "id"), JsonString(o, "name"), size ? FormatMegabytes(*size) : "-",
              used ? FormatBytes(*used) : "-", attached.empty() ? "-" : attached,
              at ? FormatAgeSince(*at, now) + " ago" : "-"});
  }
  t.Print(*cmd.io.out);
}

}  // namespace

void AddVolumeCommands(CLI::App& app, int* exit_code, const Io& io) {
  CLI::App* group = AddCommandGroup(
      app, "volume",
      "Storage that outlives sessions: create, list, show and delete volumes; attach them with "
      "hutch create --volume NAME:PATH[:ro]",
      "hutch volume create data --size 2G");
  {
    auto cmd = NewCommand(io, "volume create");
    auto name = std::make_shared<std::string>();
    auto size = std::make_shared<std::string>();
    CLI::App* sub = AddCommand(*group, "create", "Create an empty volume of a fixed size",
                               "hutch volume create data --size 2G");
    sub->add_option("NAME", *name, "volume name (a DNS label)")->required();
    sub->add_option("--size", *size, "its size, a hard limit: 512M, 2G (default 1G)")
        ->type_name("SIZE");
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, name, size, exit_code] {
      json::object body{{"name", *name}};
      if (!size->empty()) {
        auto mb = ParseMegabytes(*size, "--size");
        if (!mb.ok()) {
          *exit_code = cmd->UsageError(mb.status());
          return;
        }
        body["size_mb"] = *mb;
      }
      CallAndPrint(*cmd, exit_code, "POST", "/v1/volumes", PrintVolumes, body);
    });
  }
  {
    auto cmd = NewCommand(io, "volume ls");
    CLI::App* sub =
        AddCommand(*group, "ls", "List your volumes with what they hold", "hutch volume ls");
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, exit_code] {
      ListAndPrint(*cmd, exit_code, "/v1/volumes", "volumes", PrintVolumes);
    });
  }
  {
    auto cmd = NewCommand(io, "volume get");
    auto id = std::make_shared<std::string>();
    CLI::App* sub = AddCommand(*group, "get", "Show a volume", "hutch volume get data");
    sub->add_option("ID", *id, "volume id or name")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, id, exit_code] {
      CallAndPrint(*cmd, exit_code, "GET", VolumePath(*id), PrintVolumes);
    });
  }
  {
    auto cmd = NewCommand(io, "volume rm");
    auto ids = std::make_shared<std::vector<std::string>>();
    CLI::App* sub =
        AddCommand(*group, "rm", "Delete volumes and their data (refused while a session has one)",
                   "hutch volume rm data");
    sub->add_option("ID", *ids, "volume ids or names")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, ids, exit_code] {
      *exit_code = CallForEachId(
          *cmd, *ids, "deleted", "DELETE", [&](const std::string& id) { return VolumePath(id); },
          Connection::kPerId);
    });
  }
}

}  // namespace hutch::cli
