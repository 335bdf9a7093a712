// hutch token create, ls, rm: API tokens. The server shows a token's secret once, in the answer
// to its creation; every other answer has its id and details only.
#include <memory>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/resource_commands.h"

namespace hutch::cli {

namespace {

const std::map<Code, std::string> kTokenHints = {
    {Code::kNotFound, "`hutch token ls` lists your tokens and their ids"},
};

std::string TokenPath(std::string_view id) { return "/v1/tokens/" + client::QueryEscape(id); }

// active, revoked or expired.
std::string TokenStatus(const json::object& t, TimePoint now) {
  if (JsonString(t, "revoked") == "true") return "revoked";
  if (auto expires = JsonTime(t, "expires_at"); expires && *expires <= now) return "expired";
  return "active";
}

struct CreateFlags {
  std::string name;
  std::vector<std::string> scopes;
  std::string ttl;
};

Result<json::object> CreateBody(const CreateFlags& f) {
  json::object body;
  body["name"] = f.name;
  if (!f.scopes.empty()) {
    json::array scopes;
    // "--scope exec,files" and "--scope exec --scope files" both work.
    for (const std::string& flag : f.scopes) {
      size_t start = 0;
      while (start <= flag.size()) {
        size_t comma = flag.find(',', start);
        std::string s = flag.substr(start, comma - start);
        if (!s.empty()) scopes.emplace_back(s);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    }
    body["scopes"] = std::move(scopes);
  }
  if (f.ttl == "0" || f.ttl == "never") {
    body["ttl_seconds"] = 0;
  } else if (!f.ttl.empty()) {
    ASSIGN_OR_RETURN(int64_t ttl, ParseSeconds(f.ttl, "--ttl"));
    body["ttl_seconds"] = ttl;
  }
  return body;
}

void AddTokenCreateCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "token create");
  auto f = std::make_shared<CreateFlags>();
  cmd->hints = kTokenHints;
  CLI::App* sub =
      AddCommand(group, "create", "Create a token and print it; it is shown this once, so store it",
                 "T=$(hutch token create ci --scope sessions:read --scope exec --ttl "
                 "30d)");
  sub->add_option("NAME", f->name, "what the token is for (\"laptop\", \"ci\")")->required();
  sub->add_option("--scope", f->scopes,
                  "a scope to grant (repeatable or comma-separated): sessions:read, "
                  "sessions:write, exec, files, admin, metrics; default: all yours")
      ->allow_extra_args(false)
      ->type_name("SCOPE");
  sub->add_option("--ttl", f->ttl, "expires after this long (30d, 12h); 0 or never: no expiry")
      ->type_name("DURATION");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, f, exit_code] {
    auto body = CreateBody(*f);
    if (!body.ok()) {
      *exit_code = cmd->UsageError(body.status());
      return;
    }
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    auto created = api->Call("POST", "/v1/tokens", *body);
    if (!created.ok()) {
      *exit_code = cmd->Fail(created.status());
      return;
    }
    if (cmd->flags.json()) {
      *cmd->io.out << PrettyJson(*created);
    } else {
      std::string secret = JsonString(*created, "token");
      if (secret.empty()) {
        *exit_code = cmd->Fail(Internal("the server's answer holds no token"));
        return;
      }
      // The secret alone on stdout, so T=$(hutch token create ci) works; the rest is for people.
      auto expires = JsonTime(*created, "expires_at");
      *cmd->io.err << fmt::format(
          "created token {} ({}) for {} with scopes {}, {}; it will not be shown again — store "
          "it now\n",
          JsonString(*created, "id"), JsonString(*created, "name"), JsonString(*created, "user_id"),
          JsonStringList(*created, "scopes"),
          expires ? "expiring " + TimeWithAge(*expires, Now()) : std::string("never expiring"));
      *cmd->io.out << secret << '\n';
    }
    *exit_code = kExitOk;
  });
}

void AddTokenListCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "token ls");
  cmd->hints = kTokenHints;
  CLI::App* sub = AddCommand(group, "ls", "List your tokens (never their secrets)",
                             "hutch token ls\n  hutch token ls --as alice   # an admin, for alice");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, exit_code] {
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    auto tokens = api->ListPages("/v1/tokens", "tokens", "");
    if (!tokens.ok()) {
      *exit_code = cmd->Fail(tokens.status());
      return;
    }
    std::ostream& out = *cmd->io.out;
    if (cmd->flags.json()) {
      out << PrettyJson(json::object{{"tokens", std::move(tokens->items)}});
    } else if (tokens->items.empty()) {
      *cmd->io.err << "no tokens\n";
    } else {
      TimePoint now = Now();
      Table table({"ID", "NAME", "SCOPES", "STATUS", "EXPIRES", "LAST USED", "CREATED"});
      for (const auto& v : tokens->items) {
        if (!v.is_object()) continue;
        const json::object& t = v.get_object();
        auto expires = JsonTime(t, "expires_at");
        auto used = JsonTime(t, "last_used_at");
        auto created = JsonTime(t, "created_at");
        table.AddRow({JsonString(t, "id"), JsonString(t, "name"), JsonStringList(t, "scopes"),
                      TokenStatus(t, now), expires ? FormatRelative(*expires, now) : "never",
                      used ? FormatRelative(*used, now) : "never",
                      created ? FormatRelative(*created, now) : "-"});
      }
      table.Print(out);
    }
    *exit_code = kExitOk;
  });
}

void AddTokenRemoveCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "token rm");
  auto ids = std::make_shared<std::vector<std::string>>();
  cmd->hints = kTokenHints;
  CLI::App* sub = AddCommand(group, "rm", "Revoke tokens and print the id of each one revoked",
                             "hutch token rm tok_4k2m9q8r7t6v5w3x");
  sub->alias("revoke");
  sub->add_option("ID", *ids, "token ids (tok_…), from `hutch token ls`")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, ids, exit_code] {
    // Revoke what can be revoked; one failure does not spare the others.
    *exit_code = CallForEachId(
        *cmd, *ids, "tokens", "DELETE", [&](const std::string& id) { return TokenPath(id); },
        Connection::kOnce);
  });
}

}  // namespace

void AddTokenCommands(CLI::App& app, int* exit_code, const Io& io) {
  CLI::App* group = AddCommandGroup(app, "token", "Create, list and revoke API tokens",
                                    "hutch token create laptop --ttl 30d");
  AddTokenCreateCommand(*group, exit_code, io);
  AddTokenListCommand(*group, exit_code, io);
  AddTokenRemoveCommand(*group, exit_code, io);
}

}  // namespace hutch::cli
