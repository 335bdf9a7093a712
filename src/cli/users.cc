// hutch user create, ls, get, set, disable, enable, rm: managing users and their quotas. Every
// route here is for admins, and none can be used --as another user.
#include <cstdlib>
#include <memory>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/resource_commands.h"

namespace hutch::cli {

namespace {

const std::vector<std::string> kUserHeader = {"ID", "NAME", "ROLE", "STATUS", "QUOTA", "AGE"};
const std::vector<std::string> kRoles = {"admin", "user", "instructor", "participant"};

std::map<Code, std::string> UserHints() {
  return {
      {Code::kNotFound, "`hutch user ls` lists the users"},
      {Code::kPermissionDenied, "user commands need an admin's token (role admin, scope admin)"},
  };
}

std::string UserPath(std::string_view id) { return "/v1/users/" + client::QueryEscape(id); }

std::vector<std::string> UserRow(const json::object& u, TimePoint now) {
  std::string quota = FormatQuotaSummary(JsonObject(u, "quota"));
  auto created = JsonTime(u, "created_at");
  return {JsonString(u, "id"),
          JsonString(u, "name"),
          JsonString(u, "role"),
          JsonString(u, "disabled") == "true" ? "disabled" : "active",
          quota.empty() ? "default" : quota,
          created ? FormatAgeSince(*created, now) : "-"};
}

void PrintUserTable(std::ostream& out, const json::array& users) {
  Table table(kUserHeader);
  TimePoint now = Now();
  for (const auto& v : users)
    if (v.is_object()) table.AddRow(UserRow(v.get_object(), now));
  table.Print(out);
}

void PrintUser(std::ostream& out, const json::object& u) {
  TimePoint now = Now();
  std::vector<std::pair<std::string, std::string>> lines;
  lines.emplace_back("id", JsonString(u, "id"));
  lines.emplace_back("name", JsonString(u, "name"));
  lines.emplace_back("role", JsonString(u, "role"));
  std::string status = "active";
  if (JsonString(u, "disabled") == "true") {
    status = "disabled";
    if (auto at = JsonTime(u, "disabled_at")) status += " since " + TimeWithAge(*at, now);
  }
  lines.emplace_back("status", status);
  if (auto created = JsonTime(u, "created_at"))
    lines.emplace_back("created", TimeWithAge(*created, now));
  const json::object& quota = JsonObject(u, "quota");
  for (const QuotaField& f : kQuotaFields) {
    const json::value* v = quota.if_contains(f.key);
    lines.emplace_back(fmt::format("max {}", f.label),
                       v ? FormatQuantity(*v, f.unit, "server default") : "server default");
  }
  PrintKeyValues(out, lines);
}

// ---- quota flags ----------------------------------------------------------------------------

// One string per kQuotaFields entry, as typed; "" when the flag was not given.
struct QuotaFlags {
  std::string values[std::size(kQuotaFields)];
};

void AddQuotaFlags(CLI::App* sub, QuotaFlags* q) {
  const char* what[] = {"live sessions at once", "CPU cores of all live sessions together",
                        "memory of all live sessions together: 4G",
                        "disk of all live sessions together: 10G",
                        "longest --ttl a session may have: 8h (sessions then need one)"};
  const char* type[] = {"N", "N", "SIZE", "SIZE", "DURATION"};
  for (size_t i = 0; i < std::size(kQuotaFields); ++i)
    sub->add_option(std::string(kQuotaFields[i].flag), q->values[i],
                    fmt::format("{}; none: the server's default", what[i]))
        ->type_name(type[i])
        ->group("Quota");
}

// {"max_sessions": 5, "max_memory_mb": null, …} for the flags given; empty when none was.
Result<json::object> QuotaBody(const QuotaFlags& q) {
  json::object quota;
  for (size_t i = 0; i < std::size(kQuotaFields); ++i) {
    const std::string& text = q.values[i];
    const QuotaField& f = kQuotaFields[i];
    std::string key(f.key);
    if (text.empty()) continue;
    if (text == "none" || text == "default") {
      quota[key] = nullptr;
      continue;
    }
    switch (f.unit) {
      case QuotaUnit::kCount: {
        char* end = nullptr;
        long long n = std::strtoll(text.c_str(), &end, 10);
        if (end == text.c_str() || *end != '\0' || n < 0)
          return InvalidArgument(
              fmt::format("{}: '{}' is not a number of sessions (or none)", f.flag, text));
        quota[key] = n;
        break;
      }
      case QuotaUnit::kCpus: {
        char* end = nullptr;
        double cpus = std::strtod(text.c_str(), &end);
        if (end == text.c_str() || *end != '\0' || !(cpus >= 0))
          return InvalidArgument(fmt::format(
              "{}: '{}' is not a number of cores such as 4 or 0.5 (or none)", f.flag, text));
        quota[key] = cpus;
        break;
      }
      case QuotaUnit::kMegabytes: {
        ASSIGN_OR_RETURN(quota[key], ParseMegabytes(text, f.flag));
        break;
      }
      case QuotaUnit::kSeconds: {
        ASSIGN_OR_RETURN(quota[key], ParseSeconds(text, f.flag));
        break;
      }
    }
  }
  return quota;
}

// Prints the user a route answered: as a one-row table, or the server's object with -o json.
void PrintUserAnswer(const Command& cmd, const json::object& user) {
  if (cmd.flags.json())
    *cmd.io.out << PrettyJson(user);
  else
    PrintUserTable(*cmd.io.out, json::array{user});
}

// ---- create -------------------------------------------------------------------------------

struct CreateFlags {
  std::string name;
  std::string role;
  QuotaFlags quota;
  bool with_token = false;
};

void AddUserCreateCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "user create");
  auto f = std::make_shared<CreateFlags>();
  cmd->hints = UserHints();
  cmd->hints[Code::kConflict] = "`hutch user ls` lists the users and their names";
  CLI::App* sub = AddCommand(group, "create",
                             "Create a user (and with --with-token a token for them, printed "
                             "alone on stdout)",
                             "T=$(hutch user create alice --max-sessions 3 --max-memory 4G "
                             "--max-ttl 8h --with-token)");
  sub->add_option("NAME", f->name, "1 to 63 lowercase letters, digits or '-'")->required();
  sub->add_option("--role", f->role, "admin, user (default), instructor or participant")
      ->check(CLI::IsMember(kRoles))
      ->type_name("ROLE");
  AddQuotaFlags(sub, &f->quota);
  sub->add_flag("--with-token", f->with_token,
                "also create a token for the new user and print it (shown this once)");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, f, exit_code] {
    json::object body;
    body["name"] = f->name;
    if (!f->role.empty()) body["role"] = f->role;
    auto quota = QuotaBody(f->quota);
    if (!quota.ok()) {
      *exit_code = cmd->UsageError(quota.status());
      return;
    }
    if (!quota->empty()) body["quota"] = std::move(*quota);
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    auto user = api->Call("POST", "/v1/users", body);
    if (!user.ok()) {
      *exit_code = cmd->Fail(user.status());
      return;
    }
    if (!f->with_token) {
      PrintUserAnswer(*cmd, *user);
      *exit_code = kExitOk;
      return;
    }
    // The admin's token makes one for the new user by acting as them: it then gets what the
    // user's role allows, not what the admin's token has.
    std::string id = JsonString(*user, "id");
    auto token =
        api->Call("POST", "/v1/tokens", json::object{{"name", "default"}}, {{"X-Hutch-Owner", id}});
    if (!token.ok()) {
      *exit_code = cmd->Fail(token.status().WithContext(fmt::format(
          "user {} was created, but no token for them (`hutch token create NAME --as {}` makes "
          "one)",
          f->name, f->name)));
      return;
    }
    if (cmd->flags.json()) {
      *cmd->io.out << PrettyJson(json::object{{"user", *user}, {"token", *token}});
    } else {
      auto expires = JsonTime(*token, "expires_at");
      *cmd->io.err << fmt::format(
          "created user {} ({}, role {}) and token {} with scopes {}, {}; the token will not be "
          "shown again — hand it over now\n",
          JsonString(*user, "name"), id, JsonString(*user, "role"), JsonString(*token, "id"),
          JsonStringList(*token, "scopes"),
          expires ? "expiring " + TimeWithAge(*expires, Now()) : std::string("never expiring"));
      *cmd->io.out << JsonString(*token, "token") << '\n';
    }
    *exit_code = kExitOk;
  });
}

// ---- ls, get --------------------------------------------------------------------------------

void AddUserListCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "user ls");
  cmd->hints = UserHints();
  CLI::App* sub = AddCommand(group, "ls", "List the users with their roles and quotas",
                             "hutch user ls -o json");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, exit_code] {
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    auto users = api->ListPages("/v1/users", "users", "");
    if (!users.ok()) {
      *exit_code = cmd->Fail(users.status());
      return;
    }
    if (cmd->flags.json())
      *cmd->io.out << PrettyJson(json::object{{"users", std::move(users->items)}});
    else if (users->items.empty())
      *cmd->io.err << "no users\n";
    else
      PrintUserTable(*cmd->io.out, users->items);
    *exit_code = kExitOk;
  });
}

void AddUserGetCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "user get");
  auto id = std::make_shared<std::string>();
  cmd->hints = UserHints();
  CLI::App* sub = AddCommand(group, "get", "Show one user and their quota", "hutch user get alice");
  sub->add_option("ID", *id, "user id (usr_…) or name")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, id, exit_code] {
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    auto user = api->Call("GET", UserPath(*id));
    if (!user.ok()) {
      *exit_code = cmd->Fail(user.status());
      return;
    }
    if (cmd->flags.json())
      *cmd->io.out << PrettyJson(*user);
    else
      PrintUser(*cmd->io.out, *user);
    *exit_code = kExitOk;
  });
}

// ---- set ----------------------------------------------------------------------------------

struct SetFlags {
  std::string id;
  std::string role;
  QuotaFlags quota;
};

void AddUserSetCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "user set");
  auto f = std::make_shared<SetFlags>();
  cmd->hints = UserHints();
  CLI::App* sub =
      AddCommand(group, "set", "Change a user's role or quota; the flags left out stay as they are",
                 "hutch user set alice --max-memory 8G --max-sessions none");
  sub->add_option("ID", f->id, "user id (usr_…) or name")->required();
  sub->add_option("--role", f->role, "admin, user, instructor or participant")
      ->check(CLI::IsMember(kRoles))
      ->type_name("ROLE");
  AddQuotaFlags(sub, &f->quota);
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, f, exit_code] {
    json::object body;
    if (!f->role.empty()) body["role"] = f->role;
    auto quota = QuotaBody(f->quota);
    if (!quota.ok()) {
      *exit_code = cmd->UsageError(quota.status());
      return;
    }
    if (!quota->empty()) body["quota"] = std::move(*quota);
    if (body.empty()) {
      *exit_code = cmd->UsageError(InvalidArgument(
          "nothing to change: give --role or a quota flag (--max-sessions, --max-cpus, "
          "--max-memory, --max-disk, --max-ttl)"));
      return;
    }
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    auto user = api->Call("PATCH", UserPath(f->id), body);
    if (!user.ok()) {
      *exit_code = cmd->Fail(user.status());
      return;
    }
    PrintUserAnswer(*cmd, *user);
    *exit_code = kExitOk;
  });
}

// ---- disable, enable ------------------------------------------------------------------------

void AddUserSwitchCommand(CLI::App& group, int* exit_code, const Io& io, bool disable) {
  std::string verb = disable ? "disable" : "enable";
  auto cmd = NewCommand(io, "user " + verb);
  auto id = std::make_shared<std::string>();
  cmd->hints = UserHints();
  CLI::App* sub = AddCommand(
      group, verb,
      disable ? "Disable a user: their tokens stop working at once (their sessions keep running)"
              : "Enable a disabled user: their tokens work again",
      fmt::format("hutch user {} alice", verb));
  sub->add_option("ID", *id, "user id (usr_…) or name")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, id, verb, exit_code] {
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    auto user = api->Call("POST", UserPath(*id) + "/" + verb);
    if (!user.ok()) {
      *exit_code = cmd->Fail(user.status());
      return;
    }
    PrintUserAnswer(*cmd, *user);
    *exit_code = kExitOk;
  });
}

// ---- rm -----------------------------------------------------------------------------------

void AddUserRemoveCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "user rm");
  auto ids = std::make_shared<std::vector<std::string>>();
  cmd->hints = UserHints();
  cmd->hints[Code::kConflict] =
      "a user with live sessions cannot be deleted: `hutch ls --as USER` lists them, "
      "`hutch rm --as USER ID…` ends them (or `hutch user disable USER` to lock them out)";
  CLI::App* sub =
      AddCommand(group, "rm", "Delete users and their tokens, and print the id of each one deleted",
                 "hutch user rm alice");
  sub->add_option("ID", *ids, "user ids (usr_…) or names")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, ids, exit_code] {
    *exit_code = CallForEachId(
        *cmd, *ids, "users", "DELETE", [&](const std::string& id) { return UserPath(id); },
        Connection::kOnce);
  });
}

}  // namespace

void AddUserCommands(CLI::App& app, int* exit_code, const Io& io) {
  CLI::App* group = AddCommandGroup(app, "user", "Manage users and their quotas (admins)",
                                    "hutch user create alice --max-sessions 3 --with-token");
  AddUserCreateCommand(*group, exit_code, io);
  AddUserListCommand(*group, exit_code, io);
  AddUserGetCommand(*group, exit_code, io);
  AddUserSetCommand(*group, exit_code, io);
  AddUserSwitchCommand(*group, exit_code, io, /*disable=*/true);
  AddUserSwitchCommand(*group, exit_code, io, /*disable=*/false);
  AddUserRemoveCommand(*group, exit_code, io);
}

}  // namespace hutch::cli
