// `hutch activity` (GET /v1/activity) and `hutch workshop activity` (GET
// /v1/workshops/{id}/activity): pages as a table, JSON lines or CSV, or followed live (-f).
#include <CLI/CLI.hpp>

#include <memory>

#include <fmt/format.h>

#include "cli/activity_commands.h"
#include "cli/follow.h"
#include "cli/output.h"
#include "cli/sse.h"
#include "cli/usage_commands.h"
#include "cli/workshop_commands.h"
#include "common/time.h"
#include "core/activity.h"

namespace hutch::cli {

namespace {

struct ActivityFlags {
  std::string workshop;
  std::string session;
  std::string participant;
  std::string user;
  std::vector<std::string> types;
  std::string since;
  std::string until;
  bool follow = false;
};

std::string Field(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return "";
  if (it->value().is_string()) return std::string(it->value().get_string());
  return json::serialize(it->value());
}

Result<std::string> Query(const ActivityFlags& f) {
  std::vector<std::pair<std::string, std::string>> q;
  if (!f.session.empty()) q.emplace_back("session", f.session);
  if (!f.participant.empty()) q.emplace_back("participant", f.participant);
  if (!f.user.empty()) q.emplace_back("user", f.user);
  std::string types;
  for (const auto& t : f.types) types += (types.empty() ? "" : ",") + t;
  if (!types.empty()) q.emplace_back("type", types);
  if (!f.since.empty()) {
    ASSIGN_OR_RETURN(std::string t, TimeQuery("--since", f.since));
    q.emplace_back("since", t);
  }
  if (!f.until.empty()) {
    ASSIGN_OR_RETURN(std::string t, TimeQuery("--until", f.until));
    q.emplace_back("until", t);
  }
  std::string out;
  for (const auto& [k, v] : q) out += (out.empty() ? "" : "&") + k + "=" + client::QueryEscape(v);
  return out;
}

const std::vector<std::string> kHeader = {"AT", "WHO", "TYPE", "EXIT", "COMMAND"};

std::vector<std::string> Row(const json::object& r) {
  std::string who = Field(r, "participant");
  if (who.empty()) who = Field(r, "session");
  // One line a record: a multi-line command shows its first line and an ellipsis.
  std::string command = Field(r, "command");
  if (size_t nl = command.find('\n'); nl != std::string::npos)
    command = command.substr(0, nl) + " …";
  return {Field(r, "at"), who, Field(r, "type"), Field(r, "exit_code"), command};
}

// A record as the API shows it, back as the record (for its CSV line while following).
core::ActivityRecord RecordOf(const json::object& o) {
  core::ActivityRecord r;
  if (auto it = o.find("id"); it != o.end() && it->value().is_int64())
    r.id = it->value().get_int64();
  r.at = ParseTime(Field(o, "at")).value_or(TimePoint{});
  r.type = Field(o, "type");
  r.session_id = Field(o, "session");
  r.owner = Field(o, "owner");
  r.workshop_id = Field(o, "workshop");
  r.participant = Field(o, "participant");
  r.actor = Field(o, "actor");
  r.command = Field(o, "command");
  if (auto it = o.find("exit_code"); it != o.end() && it->value().is_int64())
    r.exit_code = it->value().get_int64();
  r.data_json = Field(o, "data");
  return r;
}

std::string FollowLine(const std::vector<std::string>& row) {
  return fmt::format("{:<24}  {:<16}  {:<16}  {:<4}  {}", row[0], row[1], row[2], row[3], row[4]);
}

int List(Command& cmd, client::ApiClient& api, const std::string& base, const std::string& query) {
  std::ostream& out = *cmd.io.out;
  if (cmd.flags.output == "csv") {
    auto r =
        api.http().Request("GET", base + "?" + query + (query.empty() ? "" : "&") + "format=csv");
    if (!r.ok()) return cmd.Fail(r.status());
    if (r->status != 200) return cmd.Fail(client::StatusFromResponse(*r));
    out << r->body;
    return kExitOk;
  }
  Table table(kHeader);
  std::string after;
  while (true) {
    std::string q = query;
    if (!after.empty()) q += (q.empty() ? "" : "&") + ("after=" + after);
    auto page = api.Call("GET", q.empty() ? base : base + "?" + q);
    if (!page.ok()) return cmd.Fail(page.status());
    auto it = page->find("activity");
    if (it == page->end() || !it->value().is_array())
      return cmd.Fail(Internal("GET " + base + ": the answer has no activity list"));
    for (const auto& r : it->value().get_array()) {
      if (!r.is_object()) continue;
      if (cmd.flags.json())
        out << json::serialize(r) << '\n';
      else
        table.AddRow(Row(r.get_object()));
    }
    std::string next = Field(*page, "next_page_token");
    if (next.empty() || next == after) break;
    after = std::move(next);
  }
  if (!cmd.flags.json()) table.Print(out);
  return kExitOk;
}

int Follow(Command& cmd, client::ApiClient& api, const std::string& base,
           const std::string& query) {
  std::ostream& out = *cmd.io.out;
  client::HttpClient& http = api.http();
  const std::string target = base + "?" + query + (query.empty() ? "" : "&") + "follow=true";
  const bool csv = cmd.flags.output == "csv";
  client::SseParser parser;
  if (csv)
    out << core::ActivityCsvHeader();
  else if (!cmd.flags.json())
    out << FollowLine(kHeader) << '\n';
  out.flush();
  auto on_event = [&](const client::SseEvent& e) {
    auto parsed = client::ParseResponseJson(e.data);
    if (!parsed.ok()) return;
    if (csv) {
      out << core::ActivityCsvRow(RecordOf(*parsed));
    } else if (cmd.flags.json()) {
      out << json::serialize(*parsed) << '\n';
    } else {
      out << FollowLine(Row(*parsed)) << '\n';
    }
    out.flush();
  };
  return FollowSse(cmd, http, target, "activity", parser, on_event);
}

void AddFilterFlags(CLI::App* sub, ActivityFlags* f) {
  sub->add_option("--session", f->session, "only this session's (id or name)")->type_name("ID");
  sub->add_option("--participant", f->participant, "only this participant's (name, email or id)")
      ->type_name("NAME");
  sub->add_option("--user", f->user, "only this user's sessions (id or name)")->type_name("USER");
  sub->add_option("--type", f->types,
                  "a type or family: shell, shell.command, git, git.commit, milestone, exec, "
                  "file, check, session, kubectl, process; repeat for several")
      ->type_name("TYPE");
  sub->add_option("--since", f->since, "from: 1h, 2d back, or an RFC 3339 time")->type_name("WHEN");
  sub->add_option("--until", f->until, "until: 1h back, or an RFC 3339 time")->type_name("WHEN");
  sub->add_flag("-f,--follow", f->follow, "keep printing records as they are stored");
}

void Run(const std::shared_ptr<Command>& cmd, int* exit_code, const ActivityFlags& f,
         const std::string& base) {
  if (cmd->flags.output != "table" && cmd->flags.output != "json" && cmd->flags.output != "csv") {
    *exit_code = cmd->UsageError(InvalidArgument(
        fmt::format("-o {}: activity is shown as table, json or csv", cmd->flags.output)));
    return;
  }
  Result<std::string> query = Query(f);
  if (!query.ok()) {
    *exit_code = cmd->UsageError(query.status());
    return;
  }
  auto api = cmd->ConnectOrFail(exit_code);
  if (!api) return;
  *exit_code = f.follow ? Follow(*cmd, *api, base, *query) : List(*cmd, *api, base, *query);
}

}  // namespace

void AddActivityCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "activity");
  auto f = std::make_shared<ActivityFlags>();
  CLI::App* sub = AddCommand(
      app, "activity",
      "Show what happened in sessions — commands typed at terminals, execs, files, checks, git "
      "and kubectl commands, milestones — oldest first (-f: as it happens; -o csv to export)",
      "hutch activity --type git --since 1d\n  hutch activity --session dev --type shell -f");
  sub->add_option("--workshop", f->workshop, "only this workshop's (id or name)")->type_name("ID");
  AddFilterFlags(sub, f.get());
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, f, exit_code] {
    std::string base = "/v1/activity";
    if (!f->workshop.empty()) base = WorkshopPath(f->workshop) + "/activity";
    Run(cmd, exit_code, *f, base);
  });
}

void AddWorkshopActivityCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "workshop activity");
  auto id = std::make_shared<std::string>();
  auto f = std::make_shared<ActivityFlags>();
  CLI::App* sub = AddCommand(
      group, "activity",
      "The class's activity: every participant's commands, checks, git and kubectl commands and "
      "milestones (-f: live; -o csv to export)",
      "hutch workshop activity k8s-101 --type shell --participant \"Ada Lovelace\" -f\n"
      "  hutch workshop activity k8s-101 -o csv > activity.csv");
  sub->add_option("ID", *id, "workshop id or name")->required();
  AddFilterFlags(sub, f.get());
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback(
      [cmd, id, f, exit_code] { Run(cmd, exit_code, *f, WorkshopPath(*id) + "/activity"); });
}

}  // namespace hutch::cli
