// hutch audit: the server's audit trail, newest first. Admins see every record; other users
// what they did and what was done to their objects.
#include <memory>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/output.h"

namespace hutch::cli {

namespace {

constexpr int64_t kDefaultLimit = 100;
constexpr int64_t kMaxPageSize = 1000;  // the server's maximum `limit`

struct AuditFlags {
  std::string user;
  std::string session;
  std::string since;
  int64_t limit = 0;
  bool all = false;
};

// --since: a duration back from now (1h, 2d) or an RFC 3339 time, as the RFC 3339 time the
// API takes.
Result<std::string> SinceQuery(const std::string& text, TimePoint now) {
  if (std::optional<int64_t> seconds = ParseDurationSeconds(text))
    return FormatTime(now - std::chrono::seconds(*seconds));
  if (std::optional<TimePoint> t = ParseTime(text)) return FormatTime(*t);
  return InvalidArgument(
      fmt::format("--since: '{}' is neither a duration such as 1h or 2d nor a time such as "
                  "2026-11-22T09:00:00Z",
                  text));
}

// "usr_…" → "alice" for the users the caller may list (admins); empty for everyone else, whose
// table then shows ids. A convenience: any error just leaves the ids.
std::map<std::string, std::string> UserNames(client::ApiClient& api) {
  std::map<std::string, std::string> names;
  auto users = api.ListPages("/v1/users", "users", "");
  if (!users.ok()) return names;
  for (const auto& v : users->items)
    if (v.is_object()) names[JsonString(v.get_object(), "id")] = JsonString(v.get_object(), "name");
  return names;
}

std::string Who(const std::map<std::string, std::string>& names, const std::string& id) {
  if (id.empty()) return "-";
  auto it = names.find(id);
  return it == names.end() || it->second.empty() ? id : it->second;
}

}  // namespace

void AddAuditCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "audit");
  auto f = std::make_shared<AuditFlags>();
  CLI::App* sub =
      AddCommand(app, "audit", "Show the audit trail: who did what, to what, with what result",
                 "hutch audit --user alice --since 1h\n  hutch audit --session dev --all -o json");
  sub->add_option("--user", f->user, "only what this user (id or name) did")->type_name("USER");
  sub->add_option("--session", f->session, "only records about this session (id or name)")
      ->type_name("ID");
  sub->add_option("--since", f->since, "only records this recent: 1h, 2d or an RFC 3339 time")
      ->type_name("WHEN");
  CLI::Option* limit =
      sub->add_option("--limit", f->limit,
                      fmt::format("show at most N records (default {})", kDefaultLimit))
          ->type_name("N");
  sub->add_flag("-a,--all", f->all, "every matching record, however many pages")->excludes(limit);
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, f, limit, exit_code] {
    if (limit->count() > 0 && f->limit < 1) {
      *exit_code = cmd->UsageError(InvalidArgument(fmt::format(
          "--limit: '{}' is not a number of records (1 or more)", limit->as<std::string>())));
      return;
    }
    std::string query;
    auto add = [&query](std::string_view key, std::string_view value) {
      if (!query.empty()) query += '&';
      query += fmt::format("{}={}", key, client::QueryEscape(value));
    };
    if (!f->user.empty()) add("user", f->user);
    if (!f->since.empty()) {
      auto since = SinceQuery(f->since, Now());
      if (!since.ok()) {
        *exit_code = cmd->UsageError(since.status());
        return;
      }
      add("since", *since);
    }
    int64_t max_items = f->all ? -1 : (f->limit > 0 ? f->limit : kDefaultLimit);
    add("limit", std::to_string(f->all ? kMaxPageSize : std::min(max_items, kMaxPageSize)));

    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    if (!f->session.empty()) {
      // The audit trail knows sessions by id only; a name is looked up first.
      std::string id = f->session;
      if (!id.starts_with("ses_")) {
        auto session = api->GetSessionJson(id);
        if (!session.ok()) {
          *exit_code = cmd->Fail(session.status().WithContext("--session"));
          return;
        }
        id = JsonString(*session, "id");
      }
      add("session", id);
    }
    auto page = api->ListPages("/v1/audit", "records", query, max_items);
    if (!page.ok()) {
      *exit_code = cmd->Fail(page.status());
      return;
    }
    json::array& records = page->items;
    bool cut = max_items >= 0 && static_cast<int64_t>(records.size()) > max_items;
    if (cut) records.resize(static_cast<size_t>(max_items));
    bool more = cut || !page->next_page_token.empty();

    std::ostream& out = *cmd->io.out;
    if (cmd->flags.json()) {
      out << PrettyJson(json::object{{"records", std::move(records)}, {"more", more}});
      *exit_code = kExitOk;
      return;
    }
    if (records.empty()) {
      *cmd->io.err << "no audit records\n";
      *exit_code = kExitOk;
      return;
    }
    std::map<std::string, std::string> names = UserNames(*api);
    Table table({"AT", "USER", "ACTION", "OBJECT", "STATUS", "PEER"});
    for (const auto& v : records) {
      if (!v.is_object()) continue;
      const json::object& r = v.get_object();
      std::string user = Who(names, JsonString(r, "user_id"));
      if (std::string behalf = JsonString(r, "on_behalf_of"); !behalf.empty())
        user += " for " + Who(names, behalf);
      std::string object = JsonString(r, "object_id");
      table.AddRow({JsonString(r, "at"), user, JsonString(r, "action"),
                    object.empty() ? "-" : object, JsonString(r, "status"), JsonString(r, "peer")});
    }
    table.Print(out);
    if (more)
      *cmd->io.err << fmt::format("showing the newest {}; --limit N shows more, --all every one\n",
                                  records.size());
    *exit_code = kExitOk;
  });
}

}  // namespace hutch::cli
