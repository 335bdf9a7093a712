// Workshop commands (docs/cli.md, "Workshops"; docs/workshops.md walks through a class):
// workshop create, ls, get, rm; add, import, participants, remove; the bulk operations extend,
// checkpoint, reset, pause, resume, end, cancel; and `hutch my-workshop` for a participant.
#include <CLI/CLI.hpp>

#include <fstream>
#include <memory>
#include <sstream>

#include <fmt/format.h>

#include "cli/activity_commands.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "cli/resource_commands.h"
#include "cli/usage_commands.h"
#include "cli/workshop_commands.h"
#include "common/time.h"

namespace hutch::cli {

std::string WorkshopPath(const std::string& id) {
  return "/v1/workshops/" + client::QueryEscape(id);
}

std::shared_ptr<Command> NewWorkshopCommand(const Io& io, std::string name) {
  auto cmd = NewCommand(io, std::move(name));
  cmd->hints[Code::kNotFound] =
      "`hutch workshop ls` lists your workshops (`--all` also the ended ones), `hutch workshop "
      "participants ID` their participants";
  cmd->hints[Code::kResourceExhausted] =
      "a workshop takes at most max_participants (PATCH /v1/workshops/ID can raise it); "
      "`hutch workshop remove` frees a seat";
  return cmd;
}

int64_t JsonInt(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_int64() ? v->get_int64() : 0;
}

namespace {

void PrintWorkshops(const Command& cmd, const json::array& items) {
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(json::object{{"workshops", items}});
    return;
  }
  Table t({"ID", "NAME", "STATE", "TEMPLATE", "PARTICIPANTS", "READY", "CREATING", "FAILED",
           "START", "LEFT"});
  TimePoint now = Now();
  for (const auto& v : items) {
    if (!v.is_object()) continue;
    const json::object& o = v.as_object();
    const json::object& p = JsonObject(o, "participants");
    const json::object& e = JsonObject(o, "environments");
    std::optional<TimePoint> start = JsonTime(o, "start_at");
    t.AddRow({JsonString(o, "id"), JsonString(o, "name"), JsonString(o, "state"),
              JsonString(o, "template"),
              fmt::format("{}/{}", JsonInt(p, "count"), JsonInt(p, "max")),
              std::to_string(JsonInt(e, "ready")), std::to_string(JsonInt(e, "creating")),
              std::to_string(JsonInt(e, "failed")), start ? FormatRelative(*start, now) : "-",
              FormatAge(JsonInt(o, "seconds_remaining"))});
  }
  t.Print(*cmd.io.out);
}

void PrintParticipants(const Command& cmd, const json::array& items) {
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(json::object{{"participants", items}});
    return;
  }
  Table t({"ID", "NAME", "EMAIL", "USER", "SESSION", "STATE", "LAST SEEN"});
  TimePoint now = Now();
  for (const auto& v : items) {
    if (!v.is_object()) continue;
    const json::object& o = v.as_object();
    const json::object& s = JsonObject(o, "session");
    std::optional<TimePoint> seen = JsonTime(o, "last_seen_at");
    std::string state = JsonString(s, "state");
    if (std::string err = JsonString(s, "error"); !err.empty()) state += ": " + err;
    t.AddRow({JsonString(o, "id"), JsonString(o, "name"), JsonString(o, "email"),
              JsonString(o, "user_id"), JsonString(o, "session_id"), state.empty() ? "-" : state,
              seen ? FormatAgeSince(*seen, now) + " ago" : "-"});
  }
  t.Print(*cmd.io.out);
}

// The answer of a bulk operation: one line per participant; the exit code says whether all
// succeeded.
int PrintBulk(const Command& cmd, const json::object& out) {
  const json::value* results = out.if_contains("results");
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(out);
  } else {
    Table t({"PARTICIPANT", "SESSION", "RESULT"});
    if (results && results->is_array()) {
      for (const auto& r : results->as_array()) {
        if (!r.is_object()) continue;
        const json::object& o = r.as_object();
        const json::value* ok = o.if_contains("ok");
        std::string result = "ok";
        if (!(ok && ok->is_bool() && ok->get_bool())) {
          const json::object& err = JsonObject(o, "error");
          result = fmt::format("{}: {}", JsonString(err, "code"), JsonString(err, "message"));
        }
        t.AddRow({JsonString(o, "participant"), JsonString(o, "session"), result});
      }
    }
    t.Print(*cmd.io.out);
  }
  return JsonInt(out, "failed") > 0 ? kExitError : kExitOk;
}

// `hutch join CODE --name … [--email …]`: no token needed.
void AddJoinCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "join");
  cmd->hints[Code::kResourceExhausted] =
      "the code (or the workshop) is full, or this address joined too often: ask the instructor "
      "for another code, or retry later";
  cmd->hints[Code::kNotFound] = "check the code: 8 letters A–Z and digits 2–7, as ABCD-EFGH";
  auto code = std::make_shared<std::string>();
  auto name = std::make_shared<std::string>();
  auto email = std::make_shared<std::string>();
  CLI::App* sub =
      AddCommand(app, "join",
                 "Join a workshop with its code (no token needed); prints your token "
                 "and access link",
                 "hutch join ABCD-EFGH --name \"Ada Lovelace\" --email ada@example.com");
  sub->add_option("CODE", *code, "the join code the instructor gave you")->required();
  sub->add_option("--name", *name, "your name")->required();
  sub->add_option("--email", *email, "your email (some codes need one of a domain)");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    json::object body{{"code", *code}, {"name", *name}};
    if (!email->empty()) body["email"] = *email;
    auto api = cmd->Connect(/*need_token=*/false);
    if (!api.ok()) {
      *exit_code = cmd->Fail(api.status());
      return;
    }
    auto r = api->Call("POST", "/v1/join", body);
    if (!r.ok()) {
      *exit_code = cmd->Fail(r.status());
      return;
    }
    if (cmd->flags.json()) {
      *cmd->io.out << PrettyJson(*r);
    } else {
      const json::object& w = JsonObject(*r, "workshop");
      const json::object& s = JsonObject(*r, "session");
      PrintKeyValues(*cmd->io.out, {{"workshop", JsonString(w, "title")},
                                    {"starts", JsonString(w, "start_at")},
                                    {"session", JsonString(s, "id")},
                                    {"token", JsonString(*r, "token")},
                                    {"access link", JsonString(*r, "access_url")}});
      *cmd->io.out << "export HUTCH_TOKEN=" << JsonString(*r, "token") << "\n";
    }
    *exit_code = kExitOk;
  });
}

void AddWorkshopCreateCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "workshop create");
  auto name = std::make_shared<std::string>();
  auto tmpl = std::make_shared<std::string>();
  auto title = std::make_shared<std::string>();
  auto series = std::make_shared<std::string>();
  auto start_at = std::make_shared<std::string>();
  auto start_in = std::make_shared<std::string>();
  auto duration = std::make_shared<std::string>();
  auto pre = std::make_shared<std::string>();
  auto on_end = std::make_shared<std::string>();
  auto max = std::make_shared<int64_t>(0);
  CLI::App* sub = AddCommand(
      group, "create", "Schedule a workshop (needs the instructor role)",
      "hutch workshop create k8s-101 --template lab --start-in 10m --duration 4h --max 30");
  sub->add_option("NAME", *name, "workshop name (a DNS label)")->required();
  auto scenario = std::make_shared<std::string>();
  auto course = std::make_shared<std::string>();
  sub->add_option("--template", *tmpl,
                  "your template every participant's session is made from (required without "
                  "--scenario or --course)");
  sub->add_option("--scenario", *scenario, "your scenario the class runs (steps and checks)");
  sub->add_option("--course", *course, "your course the class runs (scenarios in order)");
  sub->add_option("--duration", *duration, "how long it runs: 90m, 4h, 2d")->required();
  sub->add_option("--max", *max, "the most participants it takes")->required();
  sub->add_option("--start-at", *start_at, "when it starts, RFC 3339 (default now)");
  sub->add_option("--start-in", *start_in, "when it starts, from now: 10m, 1h");
  sub->add_option("--pre-provision", *pre,
                  "make the environments this long before the start (default 5m)");
  sub->add_option("--title", *title, "a title for people (default the name)");
  sub->add_option("--series", *series, "the programme it belongs to (a DNS label)");
  sub->add_option("--on-end", *on_end,
                  "terminate (default) or stop: what happens to the environments at the end");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    json::object body{{"name", *name}, {"max_participants", *max}};
    if (!tmpl->empty()) body["template"] = *tmpl;
    if (!scenario->empty()) body["scenario"] = *scenario;
    if (!course->empty()) body["course"] = *course;
    auto seconds = [&](const std::string& text, const char* flag) -> std::optional<int64_t> {
      std::optional<int64_t> s = ParseDurationSeconds(text);
      if (!s)
        *exit_code = cmd->UsageError(InvalidArgument(
            fmt::format("{} '{}' must be a duration: 90s, 15m, 4h, 2d", flag, text)));
      return s;
    };
    auto d = seconds(*duration, "--duration");
    if (!d) return;
    body["duration_seconds"] = *d;
    if (!start_at->empty() && !start_in->empty()) {
      *exit_code = cmd->UsageError(InvalidArgument("give --start-at or --start-in, not both"));
      return;
    }
    if (!start_at->empty()) body["start_at"] = *start_at;
    if (!start_in->empty()) {
      auto in = seconds(*start_in, "--start-in");
      if (!in) return;
      body["start_at"] = FormatTime(Now() + std::chrono::seconds(*in));
    }
    if (!pre->empty()) {
      auto p = seconds(*pre, "--pre-provision");
      if (!p) return;
      body["pre_provision_seconds"] = *p;
    }
    if (!title->empty()) body["title"] = *title;
    if (!series->empty()) body["series"] = *series;
    if (!on_end->empty()) body["on_end"] = *on_end;
    CallAndPrint(*cmd, exit_code, "POST", "/v1/workshops", PrintWorkshops, body);
  });
}

void AddWorkshopLsCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "workshop ls");
  auto all = std::make_shared<bool>(false);
  CLI::App* sub = AddCommand(group, "ls", "List your workshops", "hutch workshop ls --all");
  sub->add_flag("--all", *all, "also completed and cancelled ones");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    ListAndPrint(*cmd, exit_code,
                 std::string("/v1/workshops") + (*all ? "?include_ended=true" : ""), "workshops",
                 PrintWorkshops);
  });
}

void AddWorkshopGetCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "workshop get");
  auto id = std::make_shared<std::string>();
  CLI::App* sub = AddCommand(group, "get", "Show a workshop: participants, environments, time left",
                             "hutch workshop get k8s-101");
  sub->add_option("ID", *id, "workshop id or name")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] { CallAndPrint(*cmd, exit_code, "GET", WorkshopPath(*id), PrintWorkshops); });
}

void AddWorkshopRmCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "workshop rm");
  auto id = std::make_shared<std::string>();
  CLI::App* sub =
      AddCommand(group, "rm", "Cancel a workshop that has not started, or end a running one",
                 "hutch workshop rm k8s-101");
  sub->add_option("ID", *id, "workshop id or name")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    auto r = cmd->CallOrFail(exit_code, "DELETE", WorkshopPath(*id));
    if (!r) return;
    *exit_code = PrintBulk(*cmd, *r);
  });
}

void AddWorkshopAddCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "workshop add");
  auto id = std::make_shared<std::string>();
  auto people = std::make_shared<std::vector<std::string>>();
  CLI::App* sub = AddCommand(group, "add", "Add participants: \"NAME\" or \"NAME <EMAIL>\"",
                             "hutch workshop add k8s-101 \"Ada Lovelace <ada@example.com>\" Grace");
  sub->add_option("ID", *id, "workshop id or name")->required();
  sub->add_option("PARTICIPANT", *people, "a name, optionally with <email>")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    json::array list;
    for (const std::string& p : *people) {
      json::object o;
      size_t lt = p.find('<');
      if (lt != std::string::npos && p.back() == '>') {
        std::string name = p.substr(0, lt);
        while (!name.empty() && name.back() == ' ') name.pop_back();
        o["name"] = name;
        o["email"] = p.substr(lt + 1, p.size() - lt - 2);
      } else {
        o["name"] = p;
      }
      list.push_back(std::move(o));
    }
    auto r = cmd->CallOrFail(exit_code, "POST", WorkshopPath(*id) + "/participants",
                             json::object{{"participants", std::move(list)}});
    if (!r) return;
    PrintParticipants(*cmd, JsonArray(*r, "participants"));
    *exit_code = kExitOk;
  });
}

void AddWorkshopImportCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "workshop import");
  auto id = std::make_shared<std::string>();
  auto file = std::make_shared<std::string>();
  CLI::App* sub = AddCommand(
      group, "import",
      "Import participants from a CSV file with a header line naming name and email (- for "
      "stdin); a bad line imports nothing",
      "hutch workshop import k8s-101 class.csv");
  sub->add_option("ID", *id, "workshop id or name")->required();
  sub->add_option("FILE", *file, "the CSV file, or - for stdin")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    std::string csv;
    if (*file == "-") {
      std::optional<std::string> in = cmd->io.read_stdin ? cmd->io.read_stdin() : std::nullopt;
      if (!in) {
        *exit_code = cmd->UsageError(InvalidArgument("stdin is a terminal; pipe the CSV in"));
        return;
      }
      csv = std::move(*in);
    } else {
      std::ifstream f(*file, std::ios::binary);
      if (!f) {
        *exit_code = cmd->Fail(ErrnoError("open " + *file, errno));
        return;
      }
      std::ostringstream ss;
      ss << f.rdbuf();
      csv = ss.str();
    }
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    auto res =
        api->http().Request("POST", WorkshopPath(*id) + "/participants/import", csv, "text/csv");
    Status st = res.ok() ? client::StatusFromResponse(*res) : res.status();
    if (!st.ok()) {
      *exit_code = cmd->Fail(st);
      return;
    }
    auto parsed = client::ParseResponseJson(res->body);
    if (!parsed.ok()) {
      *exit_code = cmd->Fail(parsed.status());
      return;
    }
    PrintParticipants(*cmd, JsonArray(*parsed, "participants"));
    *exit_code = kExitOk;
  });
}

void AddWorkshopParticipantsCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "workshop participants");
  auto id = std::make_shared<std::string>();
  CLI::App* sub = AddCommand(group, "participants",
                             "List the participants with their session, its state and when "
                             "they were last seen",
                             "hutch workshop participants k8s-101");
  sub->add_option("ID", *id, "workshop id or name")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    ListAndPrint(*cmd, exit_code, WorkshopPath(*id) + "/participants", "participants",
                 PrintParticipants);
  });
}

void AddWorkshopRemoveCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "workshop remove");
  auto id = std::make_shared<std::string>();
  auto pids = std::make_shared<std::vector<std::string>>();
  CLI::App* sub =
      AddCommand(group, "remove",
                 "Remove participants: their session is terminated and their identity disabled",
                 "hutch workshop remove k8s-101 wsp_0123456789abcdef");
  sub->add_option("ID", *id, "workshop id or name")->required();
  sub->add_option("PARTICIPANT", *pids, "participant ids")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    *exit_code = CallForEachId(
        *cmd, *pids, "removed", "DELETE",
        [&](const std::string& pid) {
          return WorkshopPath(*id) + "/participants/" + client::QueryEscape(pid);
        },
        Connection::kPerId);
  });
}

void AddWorkshopCodeCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "workshop code");
  auto id = std::make_shared<std::string>();
  auto slots = std::make_shared<int64_t>(0);
  auto expires_in = std::make_shared<std::string>();
  auto one_time = std::make_shared<bool>(false);
  auto domains = std::make_shared<std::vector<std::string>>();
  auto list = std::make_shared<bool>(false);
  auto revoke = std::make_shared<std::string>();
  CLI::App* sub = AddCommand(
      group, "code",
      "Make a join code (participants join with `hutch join CODE`), list them (--ls) or "
      "revoke one (--revoke)",
      "hutch workshop code k8s-101 --slots 30 --expires-in 2h --email-domain example.com");
  sub->add_option("ID", *id, "workshop id or name")->required();
  sub->add_option("--slots", *slots, "how many may join with it (default max participants)");
  sub->add_option("--expires-in", *expires_in, "it stops working after: 30m, 2h, 1d");
  sub->add_flag("--one-time", *one_time, "used up by its first join");
  sub->add_option("--email-domain", *domains, "only emails of this domain (repeatable)");
  sub->add_flag("--ls", *list, "list the workshop's codes instead");
  sub->add_option("--revoke", *revoke, "revoke this code instead");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    std::optional<json::object> r;
    if (*list) {
      r = cmd->CallOrFail(exit_code, "GET", WorkshopPath(*id) + "/codes");
    } else if (!revoke->empty()) {
      r = cmd->CallOrFail(exit_code, "DELETE",
                          WorkshopPath(*id) + "/codes/" + client::QueryEscape(*revoke));
    } else {
      json::object body;
      if (*slots > 0) body["slots"] = *slots;
      if (*one_time) body["one_time"] = true;
      if (!expires_in->empty()) {
        std::optional<int64_t> s = ParseDurationSeconds(*expires_in);
        if (!s) {
          *exit_code = cmd->UsageError(InvalidArgument(
              fmt::format("--expires-in '{}' must be a duration: 30m, 2h", *expires_in)));
          return;
        }
        body["expires_in_seconds"] = *s;
      }
      if (!domains->empty()) {
        json::array ds;
        for (const auto& d : *domains) ds.emplace_back(d);
        body["email_domains"] = std::move(ds);
      }
      r = cmd->CallOrFail(exit_code, "POST", WorkshopPath(*id) + "/codes", body);
    }
    if (!r) return;
    if (cmd->flags.json() || !revoke->empty()) {
      *cmd->io.out << PrettyJson(*r);
      *exit_code = kExitOk;
      return;
    }
    json::array items;
    if (*list) {
      const json::value* v = r->if_contains("codes");
      if (v && v->is_array()) items = v->as_array();
    } else {
      items.push_back(*r);
    }
    Table t({"CODE", "USED", "EXPIRES", "ONE-TIME", "DOMAINS", "REVOKED"});
    TimePoint now = Now();
    for (const auto& v : items) {
      if (!v.is_object()) continue;
      const json::object& o = v.as_object();
      std::optional<TimePoint> exp = JsonTime(o, "expires_at");
      std::string domains_text = JsonStringList(o, "email_domains");
      auto flag = [&](const char* k) {
        const json::value* b = o.if_contains(k);
        return b && b->is_bool() && b->get_bool() ? "yes" : "no";
      };
      t.AddRow({JsonString(o, "code"),
                fmt::format("{}/{}", JsonInt(o, "used"), JsonInt(o, "slots")),
                exp ? FormatRelative(*exp, now) : "never", flag("one_time"),
                domains_text.empty() ? "-" : domains_text, flag("revoked")});
    }
    t.Print(*cmd->io.out);
    *exit_code = kExitOk;
  });
}

void AddWorkshopAccessLinkCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "workshop access-link");
  auto id = std::make_shared<std::string>();
  auto participant = std::make_shared<std::string>();
  auto revoke = std::make_shared<bool>(false);
  CLI::App* sub = AddCommand(
      group, "access-link",
      "Issue a participant's secret access link (the previous one stops working), or revoke it",
      "hutch workshop access-link k8s-101 --participant wsp_0123456789abcdef");
  sub->add_option("ID", *id, "workshop id or name")->required();
  sub->add_option("--participant", *participant, "the participant's id")->required();
  sub->add_flag("--revoke", *revoke, "revoke their link instead");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    std::string target =
        WorkshopPath(*id) + "/participants/" + client::QueryEscape(*participant) + "/access-link";
    auto r = cmd->CallOrFail(exit_code, *revoke ? "DELETE" : "POST", target);
    if (!r) return;
    if (cmd->flags.json() || *revoke)
      *cmd->io.out << PrettyJson(*r);
    else
      *cmd->io.out << JsonString(*r, "access_url") << "\n";
    *exit_code = kExitOk;
  });
}

void AddWorkshopMineCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewWorkshopCommand(io, "workshop mine");
  CLI::App* sub =
      AddCommand(group, "mine", "As a participant: your workshop, your session and the time left",
                 "hutch workshop mine");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    auto r = cmd->CallOrFail(exit_code, "GET", "/v1/me/workshop");
    if (!r) return;
    if (cmd->flags.json()) {
      *cmd->io.out << PrettyJson(*r);
    } else {
      const json::object& w = JsonObject(*r, "workshop");
      const json::object& p = JsonObject(*r, "participant");
      const json::object& s = JsonObject(p, "session");
      PrintKeyValues(*cmd->io.out, {{"workshop", JsonString(w, "name")},
                                    {"title", JsonString(w, "title")},
                                    {"state", JsonString(w, "state")},
                                    {"time left", FormatAge(JsonInt(*r, "seconds_remaining"))},
                                    {"session", JsonString(p, "session_id")},
                                    {"session state", JsonString(s, "state")}});
    }
    *exit_code = kExitOk;
  });
}

// The bulk operations: each for every participant, some (--participant) or the failed ones.
void AddWorkshopBulkCommands(CLI::App& group, int* exit_code, const Io& io) {
  struct Bulk {
    const char* name;
    const char* description;
    const char* example;
    const char* arg;       // a positional argument's name, or nullptr
    const char* arg_help;  // its description
  };
  const Bulk kBulk[] = {
      {"extend", "Move the workshop's end (and each session's own end)",
       "hutch workshop extend k8s-101 30m", "DURATION", "how much longer: 15m, 1h"},
      {"checkpoint", "Checkpoint every participant's session",
       "hutch workshop checkpoint k8s-101 after-lab-1", "NAME", "the checkpoint's name"},
      {"reset",
       "Reset environments to a checkpoint (--checkpoint) or to the template's fresh state",
       "hutch workshop reset k8s-101 --failed", nullptr, nullptr},
      {"pause", "Pause every participant's session (freeze the class overnight)",
       "hutch workshop pause k8s-101", nullptr, nullptr},
      {"resume", "Resume every participant's session", "hutch workshop resume k8s-101", nullptr,
       nullptr},
      {"end", "End the workshop now (--keep-environments stops the sessions instead)",
       "hutch workshop end k8s-101 --keep-environments", nullptr, nullptr},
      {"cancel", "Cancel the workshop and terminate every session", "hutch workshop cancel k8s-101",
       nullptr, nullptr},
  };
  for (const Bulk& b : kBulk) {
    auto cmd = NewWorkshopCommand(io, std::string("workshop ") + b.name);
    auto id = std::make_shared<std::string>();
    auto arg = std::make_shared<std::string>();
    auto participants = std::make_shared<std::vector<std::string>>();
    auto failed = std::make_shared<bool>(false);
    auto keep = std::make_shared<bool>(false);
    auto checkpoint = std::make_shared<std::string>();
    const std::string op = b.name;
    CLI::App* sub = AddCommand(group, b.name, b.description, b.example);
    sub->add_option("ID", *id, "workshop id or name")->required();
    if (b.arg) sub->add_option(b.arg, *arg, b.arg_help)->required();
    if (op != "end" && op != "cancel") {
      sub->add_option("--participant", *participants, "only these participants (repeatable)");
      sub->add_flag("--failed", *failed, "only participants whose environment failed");
    }
    if (op == "reset")
      sub->add_option("--checkpoint", *checkpoint, "restore this checkpoint instead");
    if (op == "end") sub->add_flag("--keep-environments", *keep, "stop the sessions, keep files");
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([=] {
      json::object body;
      if (!participants->empty()) {
        json::array ps;
        for (const auto& p : *participants) ps.emplace_back(p);
        body["participants"] = std::move(ps);
      }
      if (*failed) body["failed"] = true;
      if (*keep) body["keep_environments"] = true;
      if (op == "extend") {
        std::optional<int64_t> s = ParseDurationSeconds(*arg);
        if (!s) {
          *exit_code = cmd->UsageError(
              InvalidArgument(fmt::format("DURATION '{}' must be a duration: 90s, 15m, 2h", *arg)));
          return;
        }
        body["seconds"] = *s;
      }
      if (op == "checkpoint") body["name"] = *arg;
      if (op == "reset" && !checkpoint->empty()) body["name"] = *checkpoint;
      auto r = cmd->CallOrFail(exit_code, "POST", WorkshopPath(*id) + "/" + op, body);
      if (!r) return;
      *exit_code = PrintBulk(*cmd, *r);
    });
  }
}

}  // namespace

void AddWorkshopCommands(CLI::App& app, int* exit_code, const Io& io) {
  // `hutch join CODE`: a participant's command, beside the instructor's group.
  AddJoinCommand(app, exit_code, io);
  CLI::App* group = AddCommandGroup(
      app, "workshop",
      "Run a hands-on class: a scheduled workshop in which every participant gets a session "
      "of your template (see docs/workshops.md)",
      "hutch workshop create k8s-101 --template lab --start-in 10m --duration 4h --max 30");
  // In the order `hutch workshop --help` lists them.
  using AddFn = void (*)(CLI::App&, int*, const Io&);
  for (AddFn add :
       {AddWorkshopCreateCommand, AddWorkshopLsCommand, AddWorkshopGetCommand, AddWorkshopRmCommand,
        AddWorkshopAddCommand, AddWorkshopImportCommand, AddWorkshopParticipantsCommand,
        AddWorkshopRemoveCommand, AddWorkshopBulkCommands, AddWorkshopCodeCommand,
        AddWorkshopAccessLinkCommand, AddWorkshopMineCommand, AddWorkshopWatchCommands,
        AddWorkshopLearnCommands, AddWorkshopCostCommand, AddWorkshopActivityCommand})
    add(*group, exit_code, io);
}

}  // namespace hutch::cli
