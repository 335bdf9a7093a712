// `hutch port ls|public|private|url`: who reaches a session's ports through the server's proxy
// (docs/cli.md, "hutch port"; docs/api.md, "Who reaches a port").
#include <CLI/CLI.hpp>

#include <memory>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/resource_commands.h"

namespace hutch::cli {

namespace {

std::string PortsPath(const std::string& id) {
  return "/v1/sessions/" + client::QueryEscape(id) + "/ports";
}

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

void PrintPorts(const Command& cmd, const json::array& items) {
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(json::object{{"ports", items}});
    return;
  }
  Table t({"PORT", "LISTENING", "PUBLIC", "SERVICE", "URL", "HOST"});
  for (const auto& v : items) {
    const json::object& p = v.as_object();
    const json::value* port = p.if_contains("port");
    const json::value* is_public = p.if_contains("public");
    const json::value* listening = p.if_contains("listening");
    std::string where = "-";  // not known: the session does not run
    if (listening && listening->is_bool()) {
      where = "no";
      if (listening->get_bool()) {
        where.clear();
        if (const json::value* a = p.if_contains("addresses"); a && a->is_array()) {
          for (const auto& addr : a->get_array()) {
            if (!addr.is_string()) continue;
            if (!where.empty()) where += ",";
            where += std::string(addr.get_string());
          }
        }
        if (where.empty()) where = "yes";
      }
    }
    t.AddRow({port && port->is_int64() ? std::to_string(port->get_int64()) : "-", where,
              is_public && is_public->is_bool() && is_public->get_bool() ? "yes" : "no",
              OrDash(JsonString(p, "service")), OrDash(JsonString(p, "url")),
              OrDash(JsonString(p, "host"))});
  }
  t.Print(*cmd.io.out);
}

// `hutch port public|private ID PORT`: PATCH …/ports/{port} {"public": …}.
void AddSetPublic(CLI::App& group, int* exit_code, const Io& io, bool is_public) {
  auto cmd = NewCommand(io, is_public ? "port public" : "port private");
  auto id = std::make_shared<std::string>();
  auto port = std::make_shared<int>(0);
  CLI::App* sub =
      is_public ? AddCommand(group, "public",
                             "Open a port to anyone who can reach the server, without a token",
                             "hutch port public dev 8000")
                : AddCommand(group, "private",
                             "Close a public port again: the owner's token or a signed URL only",
                             "hutch port private dev 8000");
  sub->add_option("ID", *id, "session id or name")->required();
  sub->add_option("PORT", *port, "the port inside the session")
      ->required()
      ->check(CLI::Range(1, 65535));
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, id, port, exit_code, is_public] {
    json::object body;
    body["public"] = is_public;
    auto r =
        cmd->CallOrFail(exit_code, "PATCH", PortsPath(*id) + "/" + std::to_string(*port), body);
    if (!r) return;
    if (cmd->flags.json()) {
      *cmd->io.out << PrettyJson(*r);
    } else {
      PrintPorts(*cmd, json::array{*r});
    }
    *exit_code = kExitOk;
  });
}

void AddUrl(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "port url");
  auto id = std::make_shared<std::string>();
  auto port = std::make_shared<int>(0);
  auto ttl = std::make_shared<std::string>();
  CLI::App* sub = AddCommand(
      group, "url",
      "Print a signed URL that reaches the port without a token until it expires (a browser "
      "that opens it gets a cookie for the port's other paths)",
      "hutch port url dev 8000 --ttl 10m");
  sub->add_option("ID", *id, "session id or name")->required();
  sub->add_option("PORT", *port, "the port inside the session")
      ->required()
      ->check(CLI::Range(1, 65535));
  sub->add_option("--ttl", *ttl, "how long the URL works: seconds or 90s, 10m, 2h (default 1h)")
      ->type_name("DURATION");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, id, port, ttl, exit_code] {
    json::object body;
    if (!ttl->empty()) {
      auto seconds = ParseSeconds(*ttl, "--ttl");
      if (!seconds.ok()) {
        *exit_code = cmd->UsageError(seconds.status());
        return;
      }
      body["ttl_seconds"] = *seconds;
    }
    auto r = cmd->CallOrFail(exit_code, "POST",
                             PortsPath(*id) + "/" + std::to_string(*port) + "/url", body);
    if (!r) return;
    // The server answers a path; the URL to hand out is on the server this client talks to.
    std::string base = cmd->config().url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    std::string url = base + JsonString(*r, "url");
    if (cmd->flags.json()) {
      (*r)["url"] = url;
      *cmd->io.out << PrettyJson(*r);
    } else {
      *cmd->io.out << url << "\n";
    }
    *exit_code = kExitOk;
  });
}

}  // namespace

void AddPortCommands(CLI::App& app, int* exit_code, const Io& io) {
  CLI::App* group = AddCommandGroup(
      app, "port",
      "Who reaches a session's ports through the server's proxy: public ports and signed URLs",
      "hutch port ls dev");
  {
    auto cmd = NewCommand(io, "port ls");
    auto id = std::make_shared<std::string>();
    CLI::App* sub =
        AddCommand(*group, "ls", "List a session's ports with settings and its services' ports",
                   "hutch port ls dev");
    sub->add_option("ID", *id, "session id or name")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, id, exit_code] {
      ListAndPrint(*cmd, exit_code, PortsPath(*id), "ports", PrintPorts);
    });
  }
  AddSetPublic(*group, exit_code, io, true);
  AddSetPublic(*group, exit_code, io, false);
  AddUrl(*group, exit_code, io);
}

}  // namespace hutch::cli
