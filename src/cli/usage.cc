// `hutch usage` (GET /v1/usage), `hutch workshop cost` (GET /v1/workshops/{id}/costs) and
// `hutch report abuse` (GET /v1/reports/abuse).
#include <CLI/CLI.hpp>

#include <memory>

#include <fmt/format.h>

#include "cli/output.h"
#include "cli/usage_commands.h"
#include "cli/workshop_commands.h"
#include "common/time.h"

namespace hutch::cli {

namespace {

struct UsageFlags {
  std::string user;
  std::string since;
  std::string until;
  std::string by = "user";
  std::string label;
};

double Num(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return 0;
  if (it->value().is_double()) return it->value().get_double();
  if (it->value().is_int64()) return static_cast<double>(it->value().get_int64());
  return 0;
}

std::vector<std::string> AmountCells(const json::object& a) {
  return {fmt::format("{:.1f}", Num(a, "cpu_seconds")),
          fmt::format("{:.3f}", Num(a, "memory_gib_hours")),
          fmt::format("{:.3f}", Num(a, "disk_gib_hours")),
          FormatBytes(static_cast<int64_t>(Num(a, "network_bytes"))),
          fmt::format("{:.0f}", Num(a, "wall_seconds"))};
}

Result<std::string> UsageTarget(const UsageFlags& f) {
  std::string q = "group_by=" + client::QueryEscape(f.by);
  if (!f.label.empty()) q += "&label=" + client::QueryEscape(f.label);
  if (!f.user.empty()) q += "&user=" + client::QueryEscape(f.user);
  if (!f.since.empty()) {
    ASSIGN_OR_RETURN(std::string t, TimeQuery("--since", f.since));
    q += "&since=" + client::QueryEscape(t);
  }
  if (!f.until.empty()) {
    ASSIGN_OR_RETURN(std::string t, TimeQuery("--until", f.until));
    q += "&until=" + client::QueryEscape(t);
  }
  return "/v1/usage?" + q;
}

void PrintUsage(std::ostream& out, const json::object& r, const std::string& by) {
  std::string key_header = by == "label" ? "LABEL" : by == "session" ? "SESSION" : "USER";
  Table table({key_header, "SESSIONS", "CPU S", "MEM GIB-H", "DISK GIB-H", "NETWORK", "WALL S"});
  auto add = [&](std::string key, const json::object& a) {
    std::vector<std::string> row{std::move(key),
                                 fmt::format("{}", static_cast<int64_t>(Num(a, "sessions")))};
    for (std::string& cell : AmountCells(a)) row.push_back(std::move(cell));
    table.AddRow(std::move(row));
  };
  for (const auto& v : r.at("usage").as_array()) {
    const json::object& g = v.as_object();
    std::string key = JsonString(g, "key");
    add(key.empty() ? "-" : key, g);
  }
  add("TOTAL", r.at("total").as_object());
  table.Print(out);
}

void PrintCosts(std::ostream& out, const json::object& r) {
  std::string currency = JsonString(r, "currency");
  Table table(
      {"PARTICIPANT", "CPU S", "MEM GIB-H", "DISK GIB-H", "NETWORK", "WALL S", "COST " + currency});
  for (const auto& v : r.at("participants").as_array()) {
    const json::object& p = v.as_object();
    std::string name = JsonString(p, "name");
    std::vector<std::string> row{name.empty() ? JsonString(p, "user_id") : name};
    for (std::string& cell : AmountCells(p.at("usage").as_object())) row.push_back(cell);
    row.push_back(fmt::format("{:.4f}", Num(p.at("costs").as_object(), "total")));
    table.AddRow(std::move(row));
  }
  table.Print(out);
  out << fmt::format(
      "compute {:.4f}  storage {:.4f}  network {:.4f}  platform {:.4f}  total {:.4f} {}\n"
      "projected at the end: {:.4f} {}\n",
      Num(r, "compute"), Num(r, "storage"), Num(r, "network"), Num(r, "platform"), Num(r, "total"),
      currency, Num(r, "projected_total"), currency);
}

}  // namespace

Result<std::string> TimeQuery(std::string_view flag, const std::string& text) {
  if (std::optional<int64_t> seconds = ParseDurationSeconds(text))
    return FormatTime(Now() - std::chrono::seconds(*seconds));
  if (std::optional<TimePoint> t = ParseTime(text)) return FormatTime(*t);
  return InvalidArgument(fmt::format(
      "{}: '{}' is neither a duration such as 1h or 2d nor a time such as 2026-11-22T09:00:00Z",
      flag, text));
}

void AddUsageCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "usage");
  auto f = std::make_shared<UsageFlags>();
  CLI::App* sub = AddCommand(
      app, "usage",
      "Show metered usage (cpu seconds, memory and disk GiB-hours, network bytes, wall seconds) "
      "per user, session or label; yours, or with --user (admins) anyone's",
      "hutch usage --since 1d --by session\n  hutch usage --by label --label team -o json");
  sub->add_option("--user", f->user, "only this user's (id or name; admins)");
  sub->add_option("--since", f->since, "from: 1h, 2d back, or an RFC 3339 time");
  sub->add_option("--until", f->until, "until: 1h back, or an RFC 3339 time");
  sub->add_option("--by", f->by, "group by user, session or label (default user)");
  sub->add_option("--label", f->label, "the label key of --by label");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, f, exit_code] {
    auto target = UsageTarget(*f);
    if (!target.ok()) {
      *exit_code = cmd->UsageError(target.status());
      return;
    }
    auto r = cmd->CallOrFail(exit_code, "GET", *target);
    if (!r) return;
    if (cmd->flags.json())
      *cmd->io.out << PrettyJson(*r);
    else
      PrintUsage(*cmd->io.out, *r, f->by);
    *exit_code = kExitOk;
  });
}

void AddReportCommands(CLI::App& app, int* exit_code, const Io& io) {
  CLI::App* group = AddCommandGroup(app, "report", "Reports for admins", "hutch report abuse");
  auto cmd = NewCommand(io, "report abuse");
  auto since = std::make_shared<std::string>();
  CLI::App* sub = AddCommand(
      *group, "abuse",
      "Sessions that ran into their limits: forks refused (pids_limit), memory limit hit "
      "(memory_limit, oom_kill), cpu quota used up for long (cpu_full), a full disk (disk_full)",
      "hutch report abuse --since 2d");
  sub->add_option("--since", *since, "from: 1h, 2d back, or an RFC 3339 time (default 1d)");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, since, exit_code] {
    std::string target = "/v1/reports/abuse";
    if (!since->empty()) {
      auto t = TimeQuery("--since", *since);
      if (!t.ok()) {
        *exit_code = cmd->UsageError(t.status());
        return;
      }
      target += "?since=" + client::QueryEscape(*t);
    }
    auto r = cmd->CallOrFail(exit_code, "GET", target);
    if (!r) return;
    if (cmd->flags.json()) {
      *cmd->io.out << PrettyJson(*r);
    } else {
      Table table({"SESSION", "NAME", "OWNER", "KIND", "COUNT", "FIRST SEEN", "LAST SEEN"});
      for (const auto& v : r->at("rows").as_array()) {
        const json::object& row = v.as_object();
        std::string name = JsonString(row, "session_name");
        table.AddRow({JsonString(row, "session_id"), name.empty() ? "-" : name,
                      JsonString(row, "owner"), JsonString(row, "kind"),
                      fmt::format("{}", static_cast<int64_t>(Num(row, "count"))),
                      JsonString(row, "first_seen"), JsonString(row, "last_seen")});
      }
      table.Print(*cmd->io.out);
    }
    *exit_code = kExitOk;
  });
}

void AddWorkshopCostCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "workshop cost");
  auto id = std::make_shared<std::string>();
  CLI::App* sub = AddCommand(
      group, "cost",
      "What the class costs by the server's rate card: compute, storage, network, platform, "
      "the total, per participant, and the total projected to the workshop's end",
      "hutch workshop cost k8s-101");
  sub->add_option("ID", *id, "workshop id or name")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, id, exit_code] {
    auto r = cmd->CallOrFail(exit_code, "GET", WorkshopPath(*id) + "/costs");
    if (!r) return;
    if (cmd->flags.json())
      *cmd->io.out << PrettyJson(*r);
    else
      PrintCosts(*cmd->io.out, *r);
    *exit_code = kExitOk;
  });
}

}  // namespace hutch::cli
