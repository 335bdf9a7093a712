// `hutch workshop message`, `health`, `notices` and `inbox` (docs/cli.md, "Workshops"): what an
// instructor does while a class runs, and a participant's notices.
#include <CLI/CLI.hpp>

#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/sse.h"
#include "cli/workshop_commands.h"
#include "common/time.h"

namespace hutch::cli {

namespace {

std::string Names(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || !v->is_array()) return "-";
  std::string out;
  for (const auto& e : v->as_array())
    if (e.is_object()) out += (out.empty() ? "" : ", ") + JsonString(e.as_object(), "name");
  return out.empty() ? "-" : out;
}

void PrintHealth(std::ostream& out, const json::object& h) {
  const json::object& r = JsonObject(h, "resources");
  auto num = [&](std::string_view k) {
    const json::value* v = r.if_contains(k);
    return v && v->is_number() ? v->to_number<double>() : 0.0;
  };
  PrintKeyValues(out,
                 {{"workshop", JsonString(JsonObject(h, "workshop"), "name")},
                  {"state", JsonString(JsonObject(h, "workshop"), "state")},
                  {"failed", Names(h, "failed")},
                  {"unhealthy services", Names(h, "unhealthy_services")},
                  {"not seen", Names(h, "unseen")},
                  {"environments measured", fmt::format("{}", num("environments_measured"))},
                  {"cpu", fmt::format("{:.1f} s", num("cpu_seconds"))},
                  {"memory", fmt::format("{:.0f} MiB of {:.0f} MiB", num("memory_bytes") / 1048576,
                                         num("memory_limit_bytes") / 1048576)},
                  {"disk", fmt::format("{:.0f} MiB", num("disk_bytes") / 1048576)},
                  {"processes", fmt::format("{}", num("pids"))}});
  for (const char* key : {"failed", "unhealthy_services"}) {
    const json::value* v = h.if_contains(key);
    if (!v || !v->is_array()) continue;
    for (const auto& e : v->as_array()) {
      if (!e.is_object()) continue;
      const json::object& o = e.as_object();
      std::string what = JsonString(o, "service").empty()
                             ? JsonString(o, "state")
                             : JsonString(o, "service") + " " + JsonString(o, "state");
      std::string why =
          JsonString(o, "error").empty() ? JsonString(o, "message") : JsonString(o, "error");
      out << fmt::format("  {} ({}): {}{}\n", JsonString(o, "name"), JsonString(o, "participant"),
                         what, why.empty() ? "" : " — " + why);
    }
  }
}

void PrintNotice(const Command& cmd, const json::object& e) {
  if (cmd.flags.json()) {
    *cmd.io.out << json::serialize(e) << '\n';
    return;
  }
  const json::object& d = JsonObject(e, "data");
  *cmd.io.out << fmt::format("{}  [{}] {}\n{}\n\n", JsonString(e, "at"), JsonString(d, "kind"),
                             JsonString(d, "subject"), JsonString(d, "body"));
  cmd.io.out->flush();
}

// Follows /v1/me/notices, picking up after the last notice when the stream is cut.
int FollowNotices(Command& cmd, client::ApiClient& api) {
  client::HttpClient& http = api.http();
  http.set_read_timeout(std::chrono::seconds(60));
  client::SseParser parser;
  for (int failures = 0; failures < 10;) {
    std::vector<std::pair<std::string, std::string>> headers = {{"Accept", "text/event-stream"}};
    if (!parser.last_id().empty()) headers.emplace_back("Last-Event-ID", parser.last_id());
    auto res = http.Stream("GET", "/v1/me/notices", headers, [&](std::string_view data) {
      parser.Feed(data, [&](const client::SseEvent& e) {
        auto parsed = client::ParseResponseJson(e.data);
        if (parsed.ok()) PrintNotice(cmd, *parsed);
      });
      return static_cast<bool>(*cmd.io.out);
    });
    if (!*cmd.io.out) return kExitOk;
    if (res.ok() && (res->status < 200 || res->status >= 300))
      return cmd.Fail(client::StatusFromResponse(*res));
    failures = res.ok() ? 0 : failures + 1;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return cmd.Fail(Unavailable("the notice stream failed 10 times in a row"));
}

void AddWorkshopMessageCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "workshop message");
  auto id = std::make_shared<std::string>();
  auto subject = std::make_shared<std::string>();
  auto body = std::make_shared<std::string>();
  auto participant = std::make_shared<std::string>();
  CLI::App* sub = AddCommand(
      group, "message",
      "Send a notice to every participant (or one): their stream, your webhooks, and email "
      "where the server has SMTP. {name}, {title}, {access_url}, {minutes_left} are filled in",
      "hutch workshop message k8s-101 --subject 'Lunch' --body 'Back at 13:00, {name}!'");
  sub->add_option("ID", *id, "workshop id or name")->required();
  sub->add_option("--subject", *subject, "one line")->required();
  sub->add_option("--body", *body, "the text; @FILE reads it from a file")->required();
  sub->add_option("--participant", *participant, "only this participant (an id)");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    std::string text = *body;
    if (text.starts_with("@")) {
      std::ifstream in(text.substr(1));
      if (!in) {
        *exit_code = cmd->UsageError(InvalidArgument("cannot read " + text.substr(1)));
        return;
      }
      std::stringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
    json::object req{{"subject", *subject}, {"body", text}};
    if (!participant->empty()) req["participant"] = *participant;
    auto r = cmd->CallOrFail(exit_code, "POST", WorkshopPath(*id) + "/messages", req);
    if (!r) return;
    if (cmd->flags.json())
      *cmd->io.out << PrettyJson(*r);
    else
      *cmd->io.out << fmt::format("sent to {} participants\n", JsonInt(*r, "sent"));
    *exit_code = kExitOk;
  });
}

void AddWorkshopHealthCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "workshop health");
  auto id = std::make_shared<std::string>();
  auto unseen = std::make_shared<std::string>("10m");
  CLI::App* sub = AddCommand(
      group, "health",
      "What needs your eye: failed environments, unhealthy services, participants not seen "
      "for --unseen, and the class's cpu, memory and disk",
      "hutch workshop health k8s-101 --unseen 15m");
  sub->add_option("ID", *id, "workshop id or name")->required();
  sub->add_option("--unseen", *unseen, "not seen for this long: 90s, 15m (default 10m)");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    std::optional<int64_t> seconds = ParseDurationSeconds(*unseen);
    if (!seconds || *seconds < 1) {
      *exit_code = cmd->UsageError(
          InvalidArgument(fmt::format("--unseen '{}' must be a duration: 90s, 15m", *unseen)));
      return;
    }
    auto r = cmd->CallOrFail(
        exit_code, "GET", fmt::format("{}/health?unseen_seconds={}", WorkshopPath(*id), *seconds));
    if (!r) return;
    if (cmd->flags.json())
      *cmd->io.out << PrettyJson(*r);
    else
      PrintHealth(*cmd->io.out, *r);
    *exit_code = kExitOk;
  });
}

void AddWorkshopNoticesCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "workshop notices");
  auto id = std::make_shared<std::string>();
  auto file = std::make_shared<std::string>();
  CLI::App* sub = AddCommand(
      group, "notices",
      "Show the texts of a workshop's notices (on_ready, on_warning, on_ending), or change "
      "them with --set FILE (JSON: only what it names changes; false switches one off)",
      "hutch workshop notices k8s-101 --set notices.json");
  sub->add_option("ID", *id, "workshop id or name")->required();
  sub->add_option("--set", *file, "a JSON file: {\"on_warning\": {\"minutes\": 5}, …}");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    std::optional<json::object> r;
    if (file->empty()) {
      r = cmd->CallOrFail(exit_code, "GET", WorkshopPath(*id));
    } else {
      std::ifstream in(*file);
      std::stringstream ss;
      ss << in.rdbuf();
      boost::system::error_code ec;
      json::value v = json::parse(ss.str(), ec);
      if (!in || ec || !v.is_object()) {
        *exit_code = cmd->UsageError(
            InvalidArgument(fmt::format("--set {}: not a readable JSON object", *file)));
        return;
      }
      r = cmd->CallOrFail(exit_code, "PATCH", WorkshopPath(*id),
                          json::object{{"notices", std::move(v)}});
    }
    if (!r) return;
    *cmd->io.out << PrettyJson(JsonObject(*r, "notices"));
    *exit_code = kExitOk;
  });
}

void AddWorkshopInboxCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "workshop inbox");
  auto follow = std::make_shared<bool>(false);
  CLI::App* sub = AddCommand(group, "inbox",
                             "As a participant: the notices you were sent (-f follows new ones)",
                             "hutch workshop inbox -f");
  sub->add_flag("-f,--follow", *follow, "keep printing notices as they come");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    if (*follow) {
      auto api = cmd->ConnectOrFail(exit_code);
      if (!api) return;
      *exit_code = FollowNotices(*cmd, *api);
      return;
    }
    auto r = cmd->CallOrFail(exit_code, "GET", "/v1/me/notices?limit=1000");
    if (!r) return;
    const json::value* events = r->if_contains("events");
    if (events && events->is_array())
      for (const auto& e : events->as_array())
        if (e.is_object()) PrintNotice(*cmd, e.as_object());
    *exit_code = kExitOk;
  });
}

}  // namespace

void AddWorkshopWatchCommands(CLI::App& group, int* exit_code, const Io& io) {
  AddWorkshopMessageCommand(group, exit_code, io);
  AddWorkshopHealthCommand(group, exit_code, io);
  AddWorkshopNoticesCommand(group, exit_code, io);
  AddWorkshopInboxCommand(group, exit_code, io);
}

}  // namespace hutch::cli
