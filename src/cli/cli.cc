// The plumbing every client command shares, and `hutch version`.
#include "cli/cli.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/activity_commands.h"
#include "cli/attach_commands.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "cli/terminal.h"
#include "cli/usage_commands.h"
#include "cli/workshop_commands.h"

namespace hutch::cli {

namespace {

std::optional<std::string> ReadStdinIfNotTerminal() {
  if (::isatty(STDIN_FILENO)) return std::nullopt;
  std::string data;
  char buf[64 * 1024];
  while (true) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n > 0) {
      data.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      // EOF, or no stdin at all (EBADF when the caller closed it): send what there is.
      break;
    }
  }
  return data;
}

// "hutch exec": the deepest subcommand that was parsed, for "see --help" hints.
std::string CommandPath(const CLI::App& app) {
  std::string path = "hutch";
  const CLI::App* cur = &app;
  while (true) {
    auto subs = cur->get_subcommands();
    if (subs.empty()) break;
    cur = subs.front();
    path += " " + cur->get_name();
  }
  return path;
}

void AddVersionCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "version");
  CLI::App* sub = AddCommand(app, "version",
                             "Print the client's version and, when it is reachable, the server's",
                             "hutch version --url http://10.0.0.5:7070");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, exit_code] {
    std::ostream& out = *cmd->io.out;
    // The server's version is a bonus: without a token, or without a server, say why and go on.
    Status server_error;
    json::object server;
    auto api = cmd->Connect(/*need_token=*/false);
    if (!api.ok()) {
      server_error = api.status();
    } else {
      auto v = api->Version();
      if (v.ok())
        server = std::move(*v);
      else
        server_error = v.status();
    }
    if (cmd->flags.json()) {
      json::object o;
      o["client"] = json::object{{"version", client::ClientVersion()}};
      if (server_error.ok()) {
        o["server"] = std::move(server);
      } else {
        o["server"] = nullptr;
        o["server_error"] = json::object{{"code", CodeName(server_error.code())},
                                         {"message", server_error.message()}};
      }
      out << PrettyJson(o);
    } else {
      std::vector<std::pair<std::string, std::string>> lines{
          {"client", std::string(client::ClientVersion())}};
      if (server_error.ok()) {
        std::string version = "unknown";
        if (auto it = server.find("version"); it != server.end() && it->value().is_string())
          version = it->value().get_string();
        lines.emplace_back("server", fmt::format("{} ({})", version, cmd->config().url));
      } else {
        std::string why = server_error.message();
        if (cmd->config().token.empty() && server_error.code() == Code::kUnauthenticated)
          why = "no token (set HUTCH_TOKEN or --token to see the server's version)";
        lines.emplace_back("server", fmt::format("unknown — {}", why));
      }
      PrintKeyValues(out, lines);
    }
    *exit_code = kExitOk;
  });
}

}  // namespace

Io ProcessIo() {
  Io io;
  io.out = &std::cout;
  io.err = &std::cerr;
  io.read_stdin = ReadStdinIfNotTerminal;
  io.read_secret = [](std::string_view prompt) -> Result<std::string> {
    if (::isatty(STDIN_FILENO)) return ReadLineWithoutEcho(STDIN_FILENO, std::cerr, prompt);
    return ReadStdinIfNotTerminal().value_or("");
  };
  return io;
}

void AddClientCommands(CLI::App& app, int* exit_code) {
  AddClientCommands(app, exit_code, ProcessIo());
}

std::shared_ptr<Command> NewCommand(const Io& io, std::string name) {
  auto cmd = std::make_shared<Command>();
  cmd->name = std::move(name);
  cmd->io = io;
  return cmd;
}

int ForEachId(const Command& cmd, const std::vector<std::string>& ids, std::string_view json_key,
              const std::function<Result<json::object>(const std::string& id)>& call) {
  int code = kExitOk;
  json::array answers;
  for (const std::string& id : ids) {
    Result<json::object> answer = call(id);
    if (!answer.ok()) {
      code = cmd.Fail(answer.status().WithContext(id));
      continue;
    }
    if (cmd.flags.json()) {
      answers.push_back(std::move(*answer));
    } else {
      std::string shown = JsonString(*answer, "id");
      *cmd.io.out << (shown.empty() ? id : shown) << '\n';
    }
  }
  if (cmd.flags.json()) *cmd.io.out << PrettyJson(json::object{{json_key, answers}});
  return code;
}

void AddClientCommands(CLI::App& app, int* exit_code, const Io& io) {
  // In the order `hutch --help` lists them: a session's life from start to end, then accounts.
  using AddFn = void (*)(CLI::App&, int*, const Io&);
  for (AddFn add :
       {AddCreateCommand,      AddListCommand,        AddGetCommand,       AddExecCommand,
        AddRunCommands,        AddShellCommand,       AddProcessCommands,  AddServiceCommands,
        AddPortCommands,       AddPortForwardCommand, AddAttachCommands,   AddRemoveCommand,
        AddHistoryCommand,     AddStatsCommand,       AddFileCommands,     AddLifecycleCommands,
        AddCheckpointCommands, AddImageCommands,      AddTemplateCommands, AddVolumeCommands,
        AddWorkshopCommands,   AddEventsCommand,      AddWebhookCommand,   AddLoginCommand,
        AddLogoutCommand,      AddMeCommand,          AddTokenCommands,    AddUserCommands,
        AddAuditCommand,       AddVersionCommand,     AddAgentCommands,    AddGcCommand,
        AddScenarioCommands,   AddUsageCommand,       AddTerminalCommands, AddActivityCommand,
        AddReportCommands})
    add(app, exit_code, io);
}

int ExitCodeForParseError(CLI::App& app, const CLI::ParseError& error) {
  if (dynamic_cast<const CLI::Success*>(&error) != nullptr) return app.exit(error);
  if (dynamic_cast<const CLI::RuntimeError*>(&error) != nullptr) return error.get_exit_code();
  std::cerr << fmt::format("error: {}\nhint: `{} --help` shows the usage\n", error.what(),
                           CommandPath(app));
  return kExitUsage;
}

void AddGlobalFlags(CLI::App* cmd, GlobalFlags* flags, bool with_as) {
  const char* group = "Global flags";
  cmd->add_option("--url", flags->url,
                  fmt::format("server to talk to (env HUTCH_URL; default {})", kDefaultUrl))
      ->type_name("URL")
      ->group(group);
  cmd->add_option("--token", flags->token, "API token (env HUTCH_TOKEN)")
      ->type_name("TOKEN")
      ->group(group);
  cmd->add_option("--ca-cert", flags->ca_cert,
                  "trust this PEM certificate or CA for https (env HUTCH_CA_CERT)")
      ->type_name("FILE")
      ->group(group);
  cmd->add_flag("--insecure", flags->insecure,
                "https without verifying the certificate (env HUTCH_INSECURE=1)")
      ->group(group);
  if (with_as)
    cmd->add_option("--as", flags->as, "act for this user (admins; sends X-Hutch-Owner)")
        ->type_name("USER")
        ->group(group);
  cmd->add_option("-o,--output", flags->output, "output format: table or json")
      ->type_name("FORMAT")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str()
      ->group(group);
}

CLI::App* AddCommand(CLI::App& app, std::string_view name, std::string_view description,
                     std::string_view example) {
  CLI::App* sub = app.add_subcommand(std::string(name), std::string(description));
  sub->footer(fmt::format("Example:\n  {}\n\nSee docs/cli.md for every command.", example));
  return sub;
}

CLI::App* AddCommandGroup(CLI::App& app, std::string_view name, std::string_view description,
                          std::string_view example) {
  CLI::App* group = AddCommand(app, name, description, example);
  group->require_subcommand(1);
  return group;
}

Result<client::ApiClient> Command::Connect(bool need_token) {
  ConfigFlags config_flags;
  config_flags.url = flags.url;
  config_flags.token = flags.token;
  config_flags.ca_cert = flags.ca_cert;
  config_flags.insecure = flags.insecure;
  ASSIGN_OR_RETURN(config_, ResolveClientConfig(config_flags));
  if (need_token && config_.token.empty()) return Unauthenticated(MissingTokenHelp());
  auto url = client::ParseBaseUrl(config_.url);
  if (!url.ok())
    return url.status().WithContext(
        fmt::format("{} (from {})", "bad server URL", config_.url_source));
  client::TlsOptions tls;
  tls.ca_cert_file = config_.ca_cert;
  tls.insecure = config_.insecure;
  auto http = client::HttpClient::Create(config_.url, config_.token, tls);
  if (!http.ok()) {
    // Only the CA file can be wrong here; say where it was named.
    const Status& s = http.status();
    return Status(s.code(), fmt::format("{} (from {})", s.message(), config_.ca_cert_source));
  }
  if (url->tls && config_.insecure)
    *io.err << fmt::format(
        "warning: not verifying the TLS certificate of {} ({}): anyone on the path can read the "
        "token\n",
        config_.url, config_.insecure_source);
  if (!flags.as.empty()) http->set_header("X-Hutch-Owner", flags.as);
  return client::ApiClient(std::move(*http));
}

std::optional<client::ApiClient> Command::ConnectOrFail(int* exit_code, bool need_token) {
  auto api = Connect(need_token);
  if (!api.ok()) {
    *exit_code = Fail(api.status());
    return std::nullopt;
  }
  return std::move(*api);
}

std::optional<json::object> Command::CallOrFail(int* exit_code, std::string_view method,
                                                const std::string& target,
                                                const json::value& body) {
  auto api = ConnectOrFail(exit_code);
  if (!api) return std::nullopt;
  auto r = api->Call(method, target, body);
  if (!r.ok()) {
    *exit_code = Fail(r.status());
    return std::nullopt;
  }
  return std::move(*r);
}

int Command::Fail(const Status& status) const {
  std::ostream& err = *io.err;
  err << "error: " << status.message() << '\n';
  std::string hint;
  if (status.code() == Code::kPermissionDenied && !flags.as.empty()) {
    hint = fmt::format(
        "with --as {} the request is made as that user; admin commands (`hutch user …`) cannot "
        "be used with --as",
        flags.as);
  } else if (auto it = hints.find(status.code()); it != hints.end()) {
    hint = it->second;
  } else {
    switch (status.code()) {
      case Code::kUnauthenticated:
        // Without a token the message already says how to get one.
        if (!config_.token.empty())
          hint = fmt::format(
              "the server rejected the token from {}; `hutch login` saves a valid one (the admin "
              "token is in DATA_DIR/admin.token, default {})",
              config_.token_source, kDefaultTokenFile);
        break;
      case Code::kPermissionDenied:
        hint = fmt::format("the token from {} may not do this", config_.token_source);
        break;
      case Code::kNotFound:
        hint = "`hutch ls` lists your sessions (`hutch ls --all` also the ended ones)";
        break;
      case Code::kConflict:
        hint = "`hutch get ID` shows the session's state";
        break;
      case Code::kResourceExhausted:
        hint = "remove sessions you no longer need (`hutch ls`, `hutch rm ID`) or try again later";
        break;
      case Code::kInvalidArgument:
        hint = fmt::format("`hutch {} --help` shows the flags", name);
        break;
      default:
        break;
    }
  }
  if (!hint.empty()) err << "hint: " << hint << '\n';
  err.flush();
  return kExitError;
}

int Command::UsageError(const Status& status) const {
  *io.err << "error: " << status.message() << '\n'
          << "hint: `hutch " << name << " --help` shows the usage\n";
  io.err->flush();
  return kExitUsage;
}

Result<std::string> ReadFileArg(const Command& cmd, const std::string& file,
                                std::string_view flag) {
  if (file == "-") {
    std::optional<std::string> in = cmd.io.read_stdin ? cmd.io.read_stdin() : std::nullopt;
    if (!in) return InvalidArgument(fmt::format("{} -: stdin is a terminal, not a file", flag));
    return std::move(*in);
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return NotFound(fmt::format("cannot read {}", file));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<std::map<std::string, std::string>> ParseEnvFlags(const std::vector<std::string>& flags,
                                                         std::string_view flag) {
  std::map<std::string, std::string> env;
  for (const std::string& f : flags) {
    if (f.find('=') == std::string::npos && !f.empty()) {
      // `--env NAME` passes on this process's value, as `docker run -e NAME` does.
      const char* v = std::getenv(f.c_str());
      if (v == nullptr)
        return InvalidArgument(
            fmt::format("{} {}: {} is not set in this environment; write {}=VALUE", flag, f, f, f));
      env[f] = v;
      continue;
    }
    ASSIGN_OR_RETURN(auto kv, ParseKeyValue(f, flag));
    env[kv.first] = kv.second;
  }
  return env;
}

}  // namespace hutch::cli
