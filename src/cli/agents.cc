// Agent and message commands: agent create, ls, get, rm; message send, ls (docs/cli.md, "Agents
// and messages").
#include <CLI/CLI.hpp>

#include <memory>
#include <thread>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/resource_commands.h"
#include "cli/sse.h"
#include "common/time.h"

namespace hutch::cli {

namespace {

std::string AgentPath(const std::string& id) { return "/v1/agents/" + client::QueryEscape(id); }
std::string MessagesPath(const std::string& session) {
  return "/v1/sessions/" + client::QueryEscape(session) + "/messages";
}

void PrintAgents(const Command& cmd, const json::array& items) {
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(json::object{{"agents", items}});
    return;
  }
  Table t({"ID", "NAME", "COMMAND", "DESCRIPTION"});
  for (const auto& v : items) {
    if (!v.is_object()) continue;
    const json::object& o = v.as_object();
    t.AddRow({JsonString(o, "id"), JsonString(o, "name"), JsonString(o, "command"),
              JsonString(o, "description")});
  }
  t.Print(*cmd.io.out);
}

std::string MessageLine(const json::object& m) {
  std::string who = JsonString(m, "role") == "agent"
                        ? JsonString(m, "sender")
                        : "you" + (JsonString(m, "to").empty() ? "" : " → " + JsonString(m, "to"));
  int64_t id = m.if_contains("id") && m.at("id").is_int64() ? m.at("id").as_int64() : 0;
  return fmt::format("#{} {}: {}", id, who, JsonString(m, "content"));
}

// Parses K=V pairs of --env.
Result<json::object> EnvObject(const std::vector<std::string>& pairs) {
  json::object env;
  for (const std::string& kv : pairs) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      return InvalidArgument(fmt::format("--env '{}' must be KEY=VALUE", kv));
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

int FollowMessages(Command& cmd, client::ApiClient& api, const std::string& target) {
  client::HttpClient& http = api.http();
  http.set_read_timeout(std::chrono::seconds(60));
  client::SseParser parser;
  std::ostream& out = *cmd.io.out;
  auto res = http.Stream("GET", target, {{"Accept", "text/event-stream"}}, [&](std::string_view d) {
    parser.Feed(d, [&](const client::SseEvent& e) {
      auto parsed = client::ParseResponseJson(e.data);
      if (!parsed.ok()) return;
      out << (cmd.flags.json() ? json::serialize(*parsed) : MessageLine(*parsed)) << '\n'
          << std::flush;
    });
    return static_cast<bool>(out);
  });
  if (!res.ok()) return cmd.Fail(res.status());
  if (res->status < 200 || res->status >= 300) return cmd.Fail(client::StatusFromResponse(*res));
  return kExitOk;
}

void AddAgentGroup(CLI::App& app, int* exit_code, const Io& io) {
  CLI::App* group = AddCommandGroup(
      app, "agent",
      "Programs that run inside sessions and process their messages (docs/agents.md): register, "
      "list, show and delete agents; start them with hutch create --agent NAME",
      "hutch agent create echo --command 'python3 /srv/echo_agent.py'");
  {
    auto cmd = NewCommand(io, "agent create");
    auto name = std::make_shared<std::string>();
    auto command = std::make_shared<std::string>();
    auto description = std::make_shared<std::string>();
    auto config = std::make_shared<std::string>();
    auto env = std::make_shared<std::vector<std::string>>();
    CLI::App* sub = AddCommand(*group, "create", "Register an agent",
                               "hutch agent create echo --command 'python3 echo_agent.py' "
                               "--config '{\"model\":\"gpt-4o\"}'");
    sub->add_option("NAME", *name, "agent name (a DNS label)")->required();
    sub->add_option("--command", *command, "how it starts in a session (sh -c)")->required();
    sub->add_option("--description", *description, "what it does");
    sub->add_option("--config", *config, "free JSON object handed to it ($HUTCH_AGENT_CONFIG)")
        ->type_name("JSON");
    sub->add_option("--env", *env, "KEY=VALUE added to its environment (repeatable)");
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, name, command, description, config, env, exit_code] {
      json::object body{{"name", *name}, {"command", *command}};
      if (!description->empty()) body["description"] = *description;
      if (!config->empty()) {
        boost::system::error_code ec;
        json::value v = json::parse(*config, ec);
        if (ec || !v.is_object()) {
          *exit_code = cmd->UsageError(InvalidArgument("--config must be a JSON object"));
          return;
        }
        body["config"] = v;
      }
      auto e = EnvObject(*env);
      if (!e.ok()) {
        *exit_code = cmd->UsageError(e.status());
        return;
      }
      if (!e->empty()) body["env"] = *e;
      CallAndPrint(*cmd, exit_code, "POST", "/v1/agents", PrintAgents, body);
    });
  }
  {
    auto cmd = NewCommand(io, "agent ls");
    CLI::App* sub = AddCommand(*group, "ls", "List your agents", "hutch agent ls");
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback(
        [cmd, exit_code] { ListAndPrint(*cmd, exit_code, "/v1/agents", "agents", PrintAgents); });
  }
  for (auto [verb, method, help] :
       {std::tuple{"get", "GET", "Show an agent"}, std::tuple{"rm", "DELETE", "Delete an agent"}}) {
    auto cmd = NewCommand(io, std::string("agent ") + verb);
    auto id = std::make_shared<std::string>();
    CLI::App* sub = AddCommand(*group, verb, help, fmt::format("hutch agent {} echo", verb));
    sub->add_option("ID", *id, "agent id or name")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, id, exit_code, method = std::string(method)] {
      auto r = cmd->CallOrFail(exit_code, method, AgentPath(*id));
      if (!r) return;
      if (method == "GET") {
        PrintAgents(*cmd, json::array{*r});
      } else if (cmd->flags.json()) {
        *cmd->io.out << PrettyJson(*r);
      } else {
        *cmd->io.out << JsonString(*r, "deleted") << '\n';
      }
      *exit_code = kExitOk;
    });
  }
}

void AddMessageGroup(CLI::App& app, int* exit_code, const Io& io) {
  CLI::App* group =
      AddCommandGroup(app, "message", "Send messages to a session's agents and read their replies",
                      "hutch message send my-session 'Hello' --wait");
  {
    auto cmd = NewCommand(io, "message send");
    auto session = std::make_shared<std::string>();
    auto content = std::make_shared<std::string>();
    auto to = std::make_shared<std::string>();
    auto wait = std::make_shared<bool>(false);
    CLI::App* sub =
        AddCommand(*group, "send", "Send a message (to the first free agent by default)",
                   "hutch message send my-session 'Summarise README.md' --to coder");
    sub->add_option("SESSION", *session, "session id or name")->required();
    sub->add_option("CONTENT", *content, "the message")->required();
    sub->add_option("--to", *to, "an agent's name, or * for all");
    sub->add_flag("--wait", *wait, "then print replies as they come until interrupted");
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, session, content, to, wait, exit_code] {
      json::object body{{"content", *content}};
      if (!to->empty()) body["to"] = *to;
      auto r = cmd->CallOrFail(exit_code, "POST", MessagesPath(*session), body);
      if (!r) return;
      *cmd->io.out << (cmd->flags.json() ? json::serialize(*r) : MessageLine(*r)) << '\n';
      *exit_code = kExitOk;
      if (!*wait) return;
      auto api = cmd->ConnectOrFail(exit_code);
      if (!api) return;
      int64_t id = r->at("id").as_int64();
      *exit_code = FollowMessages(
          *cmd, *api, fmt::format("{}?follow=true&after={}", MessagesPath(*session), id));
    });
  }
  {
    auto cmd = NewCommand(io, "message ls");
    auto session = std::make_shared<std::string>();
    auto after = std::make_shared<int64_t>(0);
    auto follow = std::make_shared<bool>(false);
    CLI::App* sub = AddCommand(*group, "ls", "The session's messages and replies, oldest first",
                               "hutch message ls my-session --follow");
    sub->add_option("SESSION", *session, "session id or name")->required();
    sub->add_option("--after", *after, "only messages with a larger id");
    sub->add_flag("-f,--follow", *follow, "then print new ones as they come");
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, session, after, follow, exit_code] {
      std::string target = fmt::format("{}?after={}", MessagesPath(*session), *after);
      if (*follow) {
        auto api = cmd->ConnectOrFail(exit_code);
        if (!api) return;
        *exit_code = FollowMessages(*cmd, *api, target + "&follow=true");
        return;
      }
      auto r = cmd->CallOrFail(exit_code, "GET", target + "&limit=1000");
      if (!r) return;
      const json::value* items = r->if_contains("messages");
      if (cmd->flags.json()) {
        *cmd->io.out << PrettyJson(*r);
      } else if (items && items->is_array()) {
        for (const auto& m : items->as_array())
          if (m.is_object()) *cmd->io.out << MessageLine(m.as_object()) << '\n';
      }
      *exit_code = kExitOk;
    });
  }
}

void PrintSession(const Command& cmd, const json::object& s) {
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(s);
    return;
  }
  Table t({"ID", "NAME", "STATE", "PARENT", "PERSIST"});
  const json::value* p = s.if_contains("persist");
  t.AddRow({JsonString(s, "id"), JsonString(s, "name"), JsonString(s, "state"),
            JsonString(s, "parent_id"),
            p && p->is_object() ? JsonString(p->as_object(), "volume") : std::string("-")});
  t.Print(*cmd.io.out);
}

// hutch restore and hutch remix (docs/agents.md, "Persistent state").
void AddRemixCommands(CLI::App& app, int* exit_code, const Io& io) {
  {
    auto cmd = NewCommand(io, "restore");
    auto id = std::make_shared<std::string>();
    CLI::App* sub = AddCommand(
        app, "restore",
        "A new session on the persistent volume of one that ended (deleted or not, within the "
        "retention window), with its settings, name, agents and messages",
        "hutch restore ses_0000000000000001");
    sub->add_option("ID", *id, "the ended session's id (or name)")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, id, exit_code] {
      auto r = cmd->CallOrFail(exit_code, "POST",
                               "/v1/sessions/" + client::QueryEscape(*id) + "/restore");
      if (!r) return;
      PrintSession(*cmd, *r);
      *exit_code = kExitOk;
    });
  }
  auto cmd = NewCommand(io, "remix");
  auto id = std::make_shared<std::string>();
  auto name = std::make_shared<std::string>();
  auto prompt = std::make_shared<std::string>();
  auto agents = std::make_shared<std::vector<std::string>>();
  auto waiting = std::make_shared<std::string>();
  auto metadata = std::make_shared<std::string>();
  auto copy = std::make_shared<bool>(false);
  CLI::App* sub = AddCommand(
      app, "remix",
      "A new session from a session's files (when it has a sandbox) and a copy of its persistent "
      "volume, with its agents unless --agent names others",
      "hutch remix dev --name dev-2 --prompt 'try the other way' --copy-messages");
  sub->add_option("ID", *id, "the parent session's id or name")->required();
  sub->add_option("--name", *name, "the new session's name (default: PARENT-remix-TAG)");
  sub->add_option("--prompt", *prompt, "the new session's first message to answer");
  sub->add_option("--agent", *agents, "run this agent instead of the parent's (repeatable)")
      ->allow_extra_args(false)
      ->type_name("NAME");
  sub->add_option("--waiting-timeout", *waiting, "default: the parent's")->type_name("DURATION");
  sub->add_option("--metadata", *metadata, "a JSON object (default: the parent's)")
      ->type_name("JSON");
  sub->add_flag("--copy-messages", *copy, "copy the parent's messages (not answered again)");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    json::object body;
    if (!name->empty()) body["name"] = *name;
    if (!prompt->empty()) body["starting_prompt"] = *prompt;
    if (!agents->empty()) {
      json::array ids;
      for (const auto& a : *agents) ids.emplace_back(a);
      body["agent_ids"] = std::move(ids);
    }
    if (!waiting->empty()) {
      auto seconds = ParseSeconds(*waiting, "--waiting-timeout");
      if (!seconds.ok()) {
        *exit_code = cmd->UsageError(seconds.status());
        return;
      }
      body["waiting_timeout_seconds"] = *seconds;
    }
    if (!metadata->empty()) {
      boost::system::error_code ec;
      json::value v = json::parse(*metadata, ec);
      if (ec || !v.is_object()) {
        *exit_code = cmd->UsageError(InvalidArgument("--metadata must be a JSON object"));
        return;
      }
      body["metadata"] = v;
    }
    if (*copy) body["copy_messages"] = true;
    auto r = cmd->CallOrFail(exit_code, "POST",
                             "/v1/sessions/" + client::QueryEscape(*id) + "/remix", body);
    if (!r) return;
    PrintSession(*cmd, *r);
    *exit_code = kExitOk;
  });
}

}  // namespace

void AddAgentCommands(CLI::App& app, int* exit_code, const Io& io) {
  AddAgentGroup(app, exit_code, io);
  AddMessageGroup(app, exit_code, io);
  AddRemixCommands(app, exit_code, io);
}

}  // namespace hutch::cli
