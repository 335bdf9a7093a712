// hutch events and hutch webhook …: the event log, followed live over SSE, and the webhooks that
// deliver it.
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/follow.h"
#include "cli/output.h"
#include "cli/sse.h"

namespace hutch::cli {

namespace {

// A followed stream that ends (the server restarted, a proxy cut it) is picked up again after
// Last-Event-ID; this many failed reconnects in a row give up.
constexpr int kMaxReconnects = 10;
constexpr std::chrono::seconds kReconnectPause{1};
// A stream is silent for at most 15 s (the server's ping); past this, the connection is dead.
constexpr std::chrono::seconds kStreamSilence{60};

constexpr std::string_view kWebhookHint = "`hutch webhook ls` lists your webhooks";

std::string Field(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return "";
  if (it->value().is_string()) return std::string(it->value().get_string());
  return json::serialize(it->value());
}

// ---- events -------------------------------------------------------------------------------

struct EventsFlags {
  std::string session;
  std::vector<std::string> types;
  std::string since;
  bool follow = false;
};

// The query string of GET /v1/events for the flags, without '?'.
Result<std::string> EventsQuery(const EventsFlags& f, TimePoint now) {
  std::vector<std::string> parts;
  if (!f.session.empty()) parts.push_back("session=" + client::QueryEscape(f.session));
  std::string types;
  for (const auto& t : f.types) types += (types.empty() ? "" : ",") + t;
  if (!types.empty()) parts.push_back("type=" + client::QueryEscape(types));
  if (!f.since.empty()) {
    std::optional<TimePoint> since = ParseTime(f.since);
    if (!since) {
      Result<int64_t> ago = ParseSeconds(f.since, "--since");
      if (!ago.ok())
        return InvalidArgument(fmt::format(
            "--since: '{}' is neither a duration (90s, 15m, 2h, 1d) nor an RFC 3339 time",
            f.since));
      since = now - std::chrono::seconds(*ago);
    }
    parts.push_back("since=" + client::QueryEscape(FormatTime(*since)));
  }
  std::string q;
  for (const auto& p : parts) q += (q.empty() ? "" : "&") + p;
  return q;
}

const std::vector<std::string> kEventHeader = {"AT", "TYPE", "SESSION", "REASON", "ACTOR"};

std::vector<std::string> EventRow(const json::object& e) {
  return {Field(e, "at"), Field(e, "type"), Field(e, "session_id"), Field(e, "reason"),
          Field(e, "actor")};
}

// One line per event while following: the columns cannot be measured ahead, so they have the
// widths their values have (a time, the longest type, an id, the longest reason).
std::string FollowLine(const std::vector<std::string>& row) {
  return fmt::format("{:<24}   {:<20}   {:<20}   {:<14}   {}", row[0], row[1], row[2], row[3],
                     row[4]);
}

int ListEvents(Command& cmd, client::ApiClient& api, const std::string& query) {
  std::ostream& out = *cmd.io.out;
  Table table(kEventHeader);
  std::string after;
  while (true) {
    std::string q = query;
    if (!after.empty()) q += (q.empty() ? "" : "&") + ("after=" + after);
    auto page = api.Call("GET", q.empty() ? "/v1/events" : "/v1/events?" + q);
    if (!page.ok()) return cmd.Fail(page.status());
    auto it = page->find("events");
    if (it == page->end() || !it->value().is_array())
      return cmd.Fail(Internal("GET /v1/events: the answer has no events list"));
    for (const auto& e : it->value().get_array()) {
      if (!e.is_object()) continue;
      if (cmd.flags.json()) {
        out << json::serialize(e) << '\n';
      } else {
        table.AddRow(EventRow(e.get_object()));
      }
    }
    std::string next = Field(*page, "next_page_token");
    if (next.empty() || next == after) break;
    after = std::move(next);
  }
  if (!cmd.flags.json()) table.Print(out);
  return kExitOk;
}

int FollowEvents(Command& cmd, client::ApiClient& api, const std::string& query) {
  std::ostream& out = *cmd.io.out;
  client::HttpClient& http = api.http();
  const std::string target = "/v1/events?" + query + (query.empty() ? "" : "&") + "stream=true";
  client::SseParser parser;
  bool printed_header = false;
  auto on_event = [&](const client::SseEvent& e) {
    auto parsed = client::ParseResponseJson(e.data);
    if (!parsed.ok()) return;
    if (cmd.flags.json()) {
      out << json::serialize(*parsed) << '\n';
    } else {
      if (!printed_header) {
        out << FollowLine(kEventHeader) << '\n';
        printed_header = true;
      }
      out << FollowLine(EventRow(*parsed)) << '\n';
    }
    out.flush();
  };
  if (!cmd.flags.json()) {
    out << FollowLine(kEventHeader) << '\n' << std::flush;
    printed_header = true;
  }
  return FollowSse(cmd, http, target, "events", parser, on_event);
}

}  // namespace

int FollowSse(Command& cmd, client::HttpClient& http, const std::string& target,
              std::string_view what, client::SseParser& parser,
              const std::function<void(const client::SseEvent&)>& on_event) {
  std::ostream& out = *cmd.io.out;
  http.set_read_timeout(kStreamSilence);
  bool connected_once = false;
  int failures = 0;
  while (true) {
    std::vector<std::pair<std::string, std::string>> headers = {{"Accept", "text/event-stream"}};
    if (!parser.last_id().empty()) headers.emplace_back("Last-Event-ID", parser.last_id());
    auto res = http.Stream("GET", target, headers, [&](std::string_view data) {
      parser.Feed(data, on_event);
      return static_cast<bool>(out);  // stdout closed (| head): stop
    });
    if (!out) return kExitOk;
    if (res.ok() && (res->status < 200 || res->status >= 300))
      return cmd.Fail(client::StatusFromResponse(*res));
    if (res.ok()) {
      connected_once = true;
      failures = 0;
    } else if (!connected_once || ++failures > kMaxReconnects) {
      return cmd.Fail(res.status());
    } else {
      *cmd.io.err << "hutch " << what << ": " << res.status().message() << "; reconnecting\n"
                  << std::flush;
    }
    std::this_thread::sleep_for(kReconnectPause);
  }
}

namespace {

// ---- webhook ------------------------------------------------------------------------------

void PrintWebhook(std::ostream& out, const json::object& w) {
  std::string events;
  if (auto it = w.find("events"); it != w.end() && it->value().is_array())
    for (const auto& e : it->value().get_array())
      if (e.is_string()) events += (events.empty() ? "" : ", ") + std::string(e.get_string());
  PrintKeyValues(out, {{"id", Field(w, "id")},
                       {"url", Field(w, "url")},
                       {"events", events},
                       {"owner", Field(w, "owner")},
                       {"all_sessions", Field(w, "all_sessions")},
                       {"created_at", Field(w, "created_at")}});
}

// Runs `body` with a connected client; its answer is the exit code.
template <typename F>
void RunWith(const std::shared_ptr<Command>& cmd, int* exit_code, F&& body) {
  auto api = cmd->ConnectOrFail(exit_code);
  if (!api) return;
  *exit_code = body(*api);
}

CLI::App* AddWebhookSub(CLI::App* group, std::string_view name, std::string_view description,
                        std::string_view example) {
  CLI::App* sub = group->add_subcommand(std::string(name), std::string(description));
  sub->footer(fmt::format("Example:\n  {}\n\nSee docs/cli.md for every command.", example));
  return sub;
}

std::shared_ptr<Command> NewWebhookCommand(std::string name, const Io& io) {
  auto cmd = NewCommand(io, "webhook " + name);
  cmd->hints[Code::kNotFound] = std::string(kWebhookHint);
  return cmd;
}

// The global flags may also come before the subcommand (`hutch webhook --url U ls`); the
// subcommand's own win.
void MergeGroupFlags(GlobalFlags& flags, const GlobalFlags& group) {
  if (flags.url.empty()) flags.url = group.url;
  if (flags.token.empty()) flags.token = group.token;
  if (flags.output == GlobalFlags{}.output) flags.output = group.output;
}

}  // namespace

void AddEventsCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "events");
  auto f = std::make_shared<EventsFlags>();
  CLI::App* sub =
      AddCommand(app, "events", "Show what happened to sessions (-f: as it happens), oldest first",
                 "hutch events --session dev --type session.ready -f");
  sub->add_option("--session", f->session, "only this session's events (id or name)")
      ->type_name("ID");
  sub->add_option("--type", f->types, "only events of this type; repeat for several")
      ->type_name("TYPE");
  sub->add_option("--since", f->since, "only events since this long ago (1h) or this time")
      ->type_name("WHEN");
  sub->add_flag("-f,--follow", f->follow,
                "keep printing events as they happen (after the ones --since selects)");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, f, exit_code] {
    Result<std::string> query = EventsQuery(*f, Now());
    if (!query.ok()) {
      *exit_code = cmd->UsageError(query.status());
      return;
    }
    RunWith(cmd, exit_code, [&](client::ApiClient& api) {
      return f->follow ? FollowEvents(*cmd, api, *query) : ListEvents(*cmd, api, *query);
    });
  });
}

namespace {
void AddWebhookCreateCommand(CLI::App* group, const std::shared_ptr<GlobalFlags>& group_flags,
                             int* exit_code, const Io& io) {
  auto cmd = NewWebhookCommand("create", io);
  auto url = std::make_shared<std::string>();
  auto events = std::make_shared<std::vector<std::string>>();
  auto secret = std::make_shared<std::string>();
  auto secret_file = std::make_shared<std::string>();
  CLI::App* sub = AddWebhookSub(
      group, "create", "Register a webhook: events are POSTed to URL, signed with the secret",
      "hutch webhook create https://example.com/hook --event session.ready --secret-file key");
  sub->add_option("URL", *url, "where to POST events (http:// or https://)")->required();
  sub->add_option("--event", *events, "an event type to send; repeat for several (default: all)")
      ->type_name("TYPE");
  auto* s = sub->add_option("--secret", *secret,
                            "the HMAC key (at least 16 characters); --secret-file keeps it out "
                            "of the process list")
                ->type_name("SECRET");
  auto* sf = sub->add_option("--secret-file", *secret_file, "read the secret from this file")
                 ->type_name("FILE");
  s->excludes(sf);
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    MergeGroupFlags(cmd->flags, *group_flags);
    std::string key = *secret;
    if (!secret_file->empty()) {
      std::ifstream in(*secret_file);
      if (!in) {
        *exit_code = cmd->UsageError(
            InvalidArgument(fmt::format("--secret-file: cannot read {}", *secret_file)));
        return;
      }
      key.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
    }
    if (key.empty()) {
      *exit_code = cmd->UsageError(InvalidArgument("give the secret: --secret or --secret-file"));
      return;
    }
    json::object body{{"url", *url}, {"secret", key}};
    if (!events->empty()) {
      json::array list;
      for (const auto& e : *events) list.emplace_back(e);
      body["events"] = std::move(list);
    }
    RunWith(cmd, exit_code, [&](client::ApiClient& api) {
      auto created = api.Call("POST", "/v1/webhooks", body);
      if (!created.ok()) return cmd->Fail(created.status());
      if (cmd->flags.json()) {
        *cmd->io.out << PrettyJson(*created);
      } else {
        PrintWebhook(*cmd->io.out, *created);
      }
      return kExitOk;
    });
  });
}

void AddWebhookLsCommand(CLI::App* group, const std::shared_ptr<GlobalFlags>& group_flags,
                         int* exit_code, const Io& io) {
  auto cmd = NewWebhookCommand("ls", io);
  CLI::App* sub = AddWebhookSub(group, "ls", "List your webhooks", "hutch webhook ls");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    MergeGroupFlags(cmd->flags, *group_flags);
    RunWith(cmd, exit_code, [&](client::ApiClient& api) {
      auto list = api.Call("GET", "/v1/webhooks");
      if (!list.ok()) return cmd->Fail(list.status());
      if (cmd->flags.json()) {
        *cmd->io.out << PrettyJson(*list);
        return kExitOk;
      }
      Table table({"ID", "URL", "EVENTS", "CREATED"});
      if (auto it = list->find("webhooks"); it != list->end() && it->value().is_array()) {
        for (const auto& w : it->value().get_array()) {
          if (!w.is_object()) continue;
          const json::object& o = w.get_object();
          std::string events;
          if (auto e = o.find("events"); e != o.end() && e->value().is_array())
            for (const auto& t : e->value().get_array())
              if (t.is_string())
                events += (events.empty() ? "" : ",") + std::string(t.get_string());
          table.AddRow({Field(o, "id"), Field(o, "url"), events, Field(o, "created_at")});
        }
      }
      table.Print(*cmd->io.out);
      return kExitOk;
    });
  });
}

void AddWebhookRmCommand(CLI::App* group, const std::shared_ptr<GlobalFlags>& group_flags,
                         int* exit_code, const Io& io) {
  auto cmd = NewWebhookCommand("rm", io);
  auto ids = std::make_shared<std::vector<std::string>>();
  CLI::App* sub = AddWebhookSub(group, "rm", "Remove webhooks (and their delivery logs)",
                                "hutch webhook rm whk_0123456789abcdef");
  sub->add_option("ID", *ids, "webhook ids")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    MergeGroupFlags(cmd->flags, *group_flags);
    RunWith(cmd, exit_code, [&](client::ApiClient& api) {
      int code = kExitOk;
      json::array removed;
      for (const std::string& id : *ids) {
        auto deleted = api.Call("DELETE", "/v1/webhooks/" + client::QueryEscape(id));
        if (!deleted.ok()) {
          code = cmd->Fail(deleted.status().WithContext(id));
          continue;
        }
        if (cmd->flags.json()) {
          removed.push_back(std::move(*deleted));
        } else {
          *cmd->io.out << id << '\n';
        }
      }
      if (cmd->flags.json()) *cmd->io.out << PrettyJson(json::object{{"webhooks", removed}});
      return code;
    });
  });
}

void AddWebhookDeliveriesCommand(CLI::App* group, const std::shared_ptr<GlobalFlags>& group_flags,
                                 int* exit_code, const Io& io) {
  auto cmd = NewWebhookCommand("deliveries", io);
  auto id = std::make_shared<std::string>();
  auto limit = std::make_shared<int>(50);
  CLI::App* sub =
      AddWebhookSub(group, "deliveries", "Show a webhook's delivery attempts, newest first",
                    "hutch webhook deliveries whk_0123456789abcdef --limit 20");
  sub->add_option("ID", *id, "webhook id")->required();
  sub->add_option("--limit", *limit, "how many attempts to show")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    MergeGroupFlags(cmd->flags, *group_flags);
    RunWith(cmd, exit_code, [&](client::ApiClient& api) {
      auto page = api.Call("GET", fmt::format("/v1/webhooks/{}/deliveries?limit={}",
                                              client::QueryEscape(*id), *limit));
      if (!page.ok()) return cmd->Fail(page.status());
      if (cmd->flags.json()) {
        *cmd->io.out << PrettyJson(*page);
        return kExitOk;
      }
      Table table({"AT", "EVENT", "ATTEMPT", "STATUS", "HTTP", "MS", "NEXT", "ERROR"});
      if (auto it = page->find("deliveries"); it != page->end() && it->value().is_array()) {
        for (const auto& d : it->value().get_array()) {
          if (!d.is_object()) continue;
          const json::object& o = d.get_object();
          auto dash = [](std::string s) { return s.empty() ? std::string("-") : s; };
          table.AddRow({Field(o, "at"), Field(o, "event_id"), Field(o, "attempt"),
                        Field(o, "status"), dash(Field(o, "http_status")),
                        dash(Field(o, "duration_ms")), dash(Field(o, "next_attempt_at")),
                        Field(o, "error")});
        }
      }
      table.Print(*cmd->io.out);
      return kExitOk;
    });
  });
}

}  // namespace

void AddWebhookCommand(CLI::App& app, int* exit_code, const Io& io) {
  CLI::App* group =
      AddCommand(app, "webhook", "Send events to a URL as they happen: create, ls, rm, deliveries",
                 "hutch webhook create https://example.com/hook --event session.ready "
                 "--secret-file hook.key");
  group->require_subcommand(1);
  auto group_flags = std::make_shared<GlobalFlags>();
  AddGlobalFlags(group, group_flags.get());

  AddWebhookCreateCommand(group, group_flags, exit_code, io);

  AddWebhookLsCommand(group, group_flags, exit_code, io);

  AddWebhookRmCommand(group, group_flags, exit_code, io);

  AddWebhookDeliveriesCommand(group, group_flags, exit_code, io);
}

}  // namespace hutch::cli
