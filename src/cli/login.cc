// hutch login, logout and me: who the CLI talks to the server as.
#include <cstdlib>
#include <filesystem>
#include <memory>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/output.h"

namespace hutch::cli {

namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// A note for when HUTCH_TOKEN will keep overriding what login and logout did to the file.
void NoteTokenVariable(std::ostream& err) {
  const char* env = std::getenv("HUTCH_TOKEN");
  if (env != nullptr && *env != '\0')
    err << "note: HUTCH_TOKEN is set and comes before the config file; `unset HUTCH_TOKEN` to use "
           "the file's token\n";
}

std::string NameAndId(const json::object& o) {
  std::string name = JsonString(o, "name");
  std::string id = JsonString(o, "id");
  if (name.empty()) return id;
  if (id.empty()) return name;
  return fmt::format("{} ({})", name, id);
}

void PrintMe(std::ostream& out, const json::object& me) {
  TimePoint now = Now();
  const json::object& user = JsonObject(me, "user");
  const json::object& token = JsonObject(me, "token");
  const json::object& quota = JsonObject(me, "quota");
  const json::object& usage = JsonObject(me, "usage");
  std::vector<std::pair<std::string, std::string>> lines;
  lines.emplace_back("user", NameAndId(user));
  std::string role = JsonString(user, "role");
  bool admin = JsonString(me, "admin") == "true";
  if (role == "admin" && !admin) role += " (this token lacks the admin scope)";
  lines.emplace_back("role", role);
  if (std::string acting = JsonString(me, "acting_admin"); !acting.empty())
    lines.emplace_back("acting",
                       fmt::format("for {}, as admin {} (--as)", JsonString(user, "name"), acting));
  lines.emplace_back("token", NameAndId(token));
  lines.emplace_back("scopes", JsonStringList(token, "scopes"));
  auto expires = JsonTime(token, "expires_at");
  lines.emplace_back("expires", expires ? TimeWithAge(*expires, now) : "never");
  for (const QuotaField& f : kQuotaFields) {
    const json::value* limit = quota.if_contains(f.key);
    json::value no_limit = nullptr;
    if (limit == nullptr) limit = &no_limit;
    std::string shown;
    if (f.usage_key.empty()) {
      shown = limit->is_null() ? "no limit" : "at most " + FormatQuantity(*limit, f.unit);
    } else {
      const json::value* used = usage.if_contains(f.usage_key);
      std::string used_text = used ? FormatQuantity(*used, f.unit) : "?";
      // Nothing in use is "0", not "0M".
      if (used && used->is_number() && used->to_number<double>() == 0) used_text = "0";
      shown = limit->is_null() ? fmt::format("{} in use (no limit)", used_text)
                               : fmt::format("{} of {}", used_text, FormatQuantity(*limit, f.unit));
    }
    lines.emplace_back(std::string(f.label), shown);
  }
  PrintKeyValues(out, lines);
}

}  // namespace

Result<std::string> ReadTokenInput(const Io& io) {
  std::string text;
  if (io.read_secret) {
    ASSIGN_OR_RETURN(text, io.read_secret("token: "));
  } else if (std::optional<std::string> in = io.read_stdin ? io.read_stdin() : std::nullopt) {
    text = std::move(*in);
  } else {
    return InvalidArgument("no token: pass --token TOKEN, or pipe it in (hutch login < FILE)");
  }
  size_t begin = 0, end = text.size();
  while (begin < end && IsSpace(text[begin])) ++begin;
  while (end > begin && IsSpace(text[end - 1])) --end;
  std::string token = text.substr(begin, end - begin);
  if (token.empty()) return InvalidArgument("no token: stdin was empty; pass --token TOKEN");
  if (std::any_of(token.begin(), token.end(), IsSpace))
    return InvalidArgument("stdin holds more than a token: give it the token alone");
  return token;
}

// ---- login --------------------------------------------------------------------------------

void AddLoginCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "login");
  CLI::App* sub = AddCommand(
      app, "login", "Check a token with the server, then save it and the URL in the config file",
      "hutch login --url https://hutch.example.org:7443 --ca-cert hutch-ca.pem   # asks for the "
      "token\n  sudo cat /var/lib/hutch/admin.token | hutch login");
  AddGlobalFlags(sub, &cmd->flags, /*with_as=*/false);
  sub->callback([cmd, exit_code] {
    bool from_stdin = cmd->flags.token.empty();
    if (from_stdin) {
      auto token = ReadTokenInput(cmd->io);
      if (!token.ok()) {
        *exit_code = cmd->UsageError(token.status());
        return;
      }
      cmd->flags.token = std::move(*token);
    }
    std::string ca_cert;
    if (!cmd->flags.ca_cert.empty()) {
      // The file is read from wherever hutch runs next: save where it is, not how to get there.
      std::error_code ec;
      ca_cert = std::filesystem::absolute(cmd->flags.ca_cert, ec).lexically_normal().string();
      if (ec) ca_cert = cmd->flags.ca_cert;
      cmd->flags.ca_cert = ca_cert;
    }
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    if (from_stdin) cmd->set_token_source("stdin");
    auto me = api->Call("GET", "/v1/me");
    if (!me.ok()) {
      *exit_code = cmd->Fail(me.status());
      return;
    }
    std::string path = ConfigFilePath();
    std::vector<std::pair<std::string, std::optional<std::string>>> set = {
        {"url", cmd->config().url}, {"token", cmd->flags.token}};
    if (!ca_cert.empty()) set.emplace_back("ca_cert", ca_cert);
    if (Status saved = UpdateConfigFile(path, set); !saved.ok()) {
      *exit_code = cmd->Fail(saved.WithContext("the token is good, but saving it failed"));
      return;
    }
    const json::object& user = JsonObject(*me, "user");
    if (cmd->flags.json()) {
      json::object o = *me;
      o["url"] = cmd->config().url;
      o["config_file"] = path;
      *cmd->io.out << PrettyJson(o);
    } else {
      *cmd->io.out << fmt::format("logged in to {} as {} (role {})\n", cmd->config().url,
                                  JsonString(user, "name"), JsonString(user, "role"));
    }
    if (cmd->config().insecure)
      *cmd->io.err << "note: --insecure is not saved; pass it again, or save the server's "
                      "certificate and log in with --ca-cert FILE\n";
    NoteTokenVariable(*cmd->io.err);
    *exit_code = kExitOk;
  });
}

// ---- logout -------------------------------------------------------------------------------

void AddLogoutCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "logout");
  CLI::App* sub =
      AddCommand(app, "logout", "Remove the saved token from the config file", "hutch logout");
  sub->add_option("-o,--output", cmd->flags.output, "output format: table or json")
      ->type_name("FORMAT")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str()
      ->group("Global flags");
  sub->callback([cmd, exit_code] {
    std::string path = ConfigFilePath();
    auto file = LoadConfigFile(path);
    if (!file.ok()) {
      *exit_code = cmd->Fail(file.status());
      return;
    }
    bool had_token = file->token.has_value();
    if (had_token) {
      if (Status s = UpdateConfigFile(path, {{"token", std::nullopt}}); !s.ok()) {
        *exit_code = cmd->Fail(s);
        return;
      }
    }
    if (cmd->flags.json()) {
      *cmd->io.out << PrettyJson(json::object{{"config_file", path}, {"removed", had_token}});
    } else if (had_token) {
      *cmd->io.out << fmt::format("logged out: removed the token from {}\n", path);
    } else {
      *cmd->io.err << fmt::format("not logged in: {} holds no token\n",
                                  path.empty() ? "the config file" : path);
    }
    NoteTokenVariable(*cmd->io.err);
    *exit_code = kExitOk;
  });
}

// ---- me -----------------------------------------------------------------------------------

void AddMeCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "me");
  CLI::App* sub =
      AddCommand(app, "me", "Show your user, token, quota and what of it is in use", "hutch me");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, exit_code] {
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    auto me = api->Call("GET", "/v1/me");
    if (!me.ok()) {
      *exit_code = cmd->Fail(me.status());
      return;
    }
    if (cmd->flags.json())
      *cmd->io.out << PrettyJson(*me);
    else
      PrintMe(*cmd->io.out, *me);
    *exit_code = kExitOk;
  });
}

}  // namespace hutch::cli
