// hutch create, ls, get, rm, history: the session's life cycle.
#include <memory>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/output.h"
#include "core/session_json.h"
#include "core/template.h"

namespace hutch::cli {

namespace {

const std::vector<std::string> kListHeader = {"ID",   "NAME",   "STATE", "IMAGE",
                                              "CPUS", "MEMORY", "AGE"};

std::vector<std::string> ListRow(const core::Session& s, TimePoint now) {
  return {s.id,
          s.name.empty() ? "-" : s.name,
          std::string(core::ToString(s.state)),
          s.image,
          FormatCpus(s.resources.cpus),
          FormatMegabytes(s.resources.memory_mb),
          FormatAgeSince(s.created_at, now)};
}

Result<core::Session> ReadSession(const json::object& o) {
  auto s = core::SessionFromJson(o);
  if (!s.ok())
    return Internal(
        fmt::format("the server sent a session this client cannot read: {}", s.status().message()));
  return s;
}

std::string JoinMap(const std::map<std::string, std::string>& m) {
  std::string out;
  for (const auto& [k, v] : m) {
    if (!out.empty()) out += ", ";
    out += k + "=" + v;
  }
  return out;
}

// ---- create -------------------------------------------------------------------------------

struct CreateFlags {
  std::string name, title, cpus, memory, pids, disk, ttl, idle_timeout, on_idle, image, network;
  std::string from_checkpoint, template_name, start, metadata, file;
  std::vector<std::string> env, labels, allow_out, deny_out, volumes, setup;
  std::vector<std::string> agents;  // docs/agents.md
  std::string prompt, waiting_timeout;
  bool persist = false;  // a volume of its own at /persist that outlives it
  // Batch sessions (docs/api.md, "Batch sessions"): --type batch --command CMD --depends-on
  // SESSION…
  std::string type, command;
  std::vector<std::string> depends_on;
  bool run_image_cmd = false;
  bool quiet = false;
};

// --metadata: a JSON object, stored with the session as given.
Result<json::object> ParseMetadataFlag(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object())
    return InvalidArgument(fmt::format(
        "--metadata: '{}' is not a JSON object; write e.g. --metadata '{{\"ticket\": 42}}'", text));
  return std::move(v.as_object());
}

// --start: an RFC 3339 time, or a duration from now written +15m.
Result<std::string> ParseStartFlag(const std::string& text, TimePoint now) {
  if (text.starts_with('+')) {
    ASSIGN_OR_RETURN(int64_t seconds, ParseSeconds(std::string_view(text).substr(1), "--start"));
    return FormatTime(now + std::chrono::seconds(seconds));
  }
  if (!ParseTime(text))
    return InvalidArgument(fmt::format(
        "--start: '{}' is neither a time such as 2026-12-08T09:00:00Z nor +DURATION (+15m)", text));
  return text;
}

// -f FILE: a SessionTemplate document (YAML or JSON), checked here so that an error names its
// line; the create request is its spec with the other flags on top, as --template does on the
// server. Resource limits are the server's to check: this client does not know them.
Result<json::object> SpecOfTemplateFile(const Command& cmd, const std::string& file) {
  ASSIGN_OR_RETURN(std::string text, ReadFileArg(cmd, file, "-f"));
  auto t = core::ParseTemplateDocument(text, core::Resources{}, core::ResourceCeiling{});
  if (!t.ok()) return t.status().WithContext(file);
  boost::system::error_code ec;
  json::value spec = json::parse(t->spec_json, ec);
  if (ec || !spec.is_object()) return Internal("the template's spec did not read back as JSON");
  return std::move(spec.as_object());
}

Result<json::object> CreateBody(const CreateFlags& f) {
  json::object body;
  if (!f.name.empty()) body["name"] = f.name;
  if (!f.title.empty()) body["title"] = f.title;
  if (!f.image.empty()) body["image"] = f.image;
  if (!f.from_checkpoint.empty()) body["from_checkpoint"] = f.from_checkpoint;
  if (!f.template_name.empty()) body["template"] = f.template_name;
  if (!f.volumes.empty()) {
    // VOLUME:PATH or VOLUME:PATH:ro
    json::array volumes;
    for (const auto& v : f.volumes) {
      size_t colon = v.find(':');
      std::string path = colon == std::string::npos ? "" : v.substr(colon + 1);
      bool read_only = false;
      if (path.ends_with(":ro")) {
        read_only = true;
        path.resize(path.size() - 3);
      } else if (path.ends_with(":rw")) {
        path.resize(path.size() - 3);
      }
      if (colon == 0 || path.empty())
        return InvalidArgument(
            fmt::format("--volume: '{}' is not VOLUME:PATH or VOLUME:PATH:ro", v));
      volumes.emplace_back(
          json::object{{"volume", v.substr(0, colon)}, {"path", path}, {"read_only", read_only}});
    }
    body["volumes"] = std::move(volumes);
  }
  if (!f.agents.empty()) {
    json::array ids;
    for (const auto& a : f.agents) ids.emplace_back(a);
    body["agent_ids"] = std::move(ids);
  }
  if (!f.prompt.empty()) body["starting_prompt"] = f.prompt;
  if (f.persist) body["persist"] = true;
  if (!f.waiting_timeout.empty()) {
    ASSIGN_OR_RETURN(body["waiting_timeout_seconds"],
                     ParseSeconds(f.waiting_timeout, "--waiting-timeout"));
  }
  json::object resources;
  if (!f.cpus.empty()) {
    char* end = nullptr;
    double cpus = std::strtod(f.cpus.c_str(), &end);
    if (end == f.cpus.c_str() || *end != '\0' || !(cpus > 0))
      return InvalidArgument(
          fmt::format("--cpus: '{}' is not a number of cores such as 1, 2 or 0.5", f.cpus));
    resources["cpus"] = cpus;
  }
  if (!f.memory.empty()) {
    ASSIGN_OR_RETURN(resources["memory_mb"], ParseMegabytes(f.memory, "--memory"));
  }
  if (!f.disk.empty()) {
    ASSIGN_OR_RETURN(resources["disk_mb"], ParseMegabytes(f.disk, "--disk"));
  }
  if (!f.pids.empty()) {
    char* end = nullptr;
    long long pids = std::strtoll(f.pids.c_str(), &end, 10);
    if (end == f.pids.c_str() || *end != '\0' || pids <= 0)
      return InvalidArgument(fmt::format("--pids: '{}' is not a positive number", f.pids));
    resources["pids"] = pids;
  }
  if (!resources.empty()) body["resources"] = std::move(resources);
  if (!f.env.empty()) {
    ASSIGN_OR_RETURN(auto env, ParseEnvFlags(f.env, "--env"));
    body["env"] = ToJsonObject(env);
  }
  if (!f.labels.empty()) {
    json::object labels;
    for (const auto& l : f.labels) {
      ASSIGN_OR_RETURN(auto kv, ParseKeyValue(l, "--label"));
      labels[kv.first] = kv.second;
    }
    body["labels"] = std::move(labels);
  }
  if (!f.ttl.empty()) {
    ASSIGN_OR_RETURN(body["ttl_seconds"], ParseSeconds(f.ttl, "--ttl"));
  }
  if (!f.idle_timeout.empty()) {
    ASSIGN_OR_RETURN(body["idle_timeout_seconds"], ParseSeconds(f.idle_timeout, "--idle-timeout"));
  }
  if (!f.on_idle.empty()) body["on_idle"] = f.on_idle;
  if (!f.network.empty() || !f.allow_out.empty() || !f.deny_out.empty()) {
    // --allow-out/--deny-out only make sense with nat, so they imply it.
    json::object network;
    network["mode"] = f.network.empty() ? "nat" : f.network;
    json::array allow(f.allow_out.begin(), f.allow_out.end());
    json::array deny(f.deny_out.begin(), f.deny_out.end());
    if (!allow.empty()) network["allow_out"] = std::move(allow);
    if (!deny.empty()) network["deny_out"] = std::move(deny);
    body["network"] = std::move(network);
  }
  if (!f.setup.empty()) body["setup"] = json::array(f.setup.begin(), f.setup.end());
  if (!f.type.empty()) body["type"] = f.type;
  if (!f.command.empty()) body["command"] = f.command;
  if (!f.depends_on.empty())
    body["depends_on"] = json::array(f.depends_on.begin(), f.depends_on.end());
  if (f.run_image_cmd) body["run_image_cmd"] = true;
  if (!f.metadata.empty()) {
    ASSIGN_OR_RETURN(body["metadata"], ParseMetadataFlag(f.metadata));
  }
  if (!f.start.empty()) {
    ASSIGN_OR_RETURN(body["start_at"], ParseStartFlag(f.start, Now()));
  }
  return body;
}

// The flags of `hutch create`, into *f.
void AddCreateFlags(CLI::App* sub, CreateFlags* f) {
  sub->add_option("--name", f->name, "unique name (a DNS label); usable wherever an ID is")
      ->type_name("NAME");
  sub->add_option("--title", f->title,
                  "a title for people: free text, one line, up to 200 characters (hutch ls "
                  "PATTERN finds it)")
      ->type_name("TEXT");
  sub->add_option("--image", f->image, "root filesystem image (default host)")->type_name("IMAGE");
  sub->add_option("--cpus", f->cpus, "CPU cores, e.g. 2 or 0.5")->type_name("N");
  sub->add_option("--memory", f->memory, "memory limit: 512M, 2G or 512 (MB)")->type_name("SIZE");
  sub->add_option("--pids", f->pids, "maximum number of processes and threads")->type_name("N");
  sub->add_option("--disk", f->disk, "writable disk size: 1G, 512M")->type_name("SIZE");
  sub->add_option("--env", f->env,
                  "KEY=VALUE set for every process (repeatable); KEY alone "
                  "passes on this shell's value")
      ->allow_extra_args(false)
      ->type_name("KEY=VALUE");
  sub->add_option("--label", f->labels, "KEY=VALUE label to filter by (repeatable)")
      ->allow_extra_args(false)
      ->type_name("KEY=VALUE");
  sub->add_option("--ttl", f->ttl, "ends the session after this long: 90s, 15m, 2h, 1d")
      ->type_name("DURATION");
  sub->add_option("--idle-timeout", f->idle_timeout,
                  "acts on the session after it is idle this long: 15m")
      ->type_name("DURATION");
  sub->add_option("--on-idle", f->on_idle, "what --idle-timeout does: pause, stop or terminate")
      ->check(CLI::IsMember({"pause", "stop", "terminate"}))
      ->type_name("ACTION");
  sub->add_option("--network", f->network,
                  "none (loopback only, the default) or nat (egress to the internet)")
      ->check(CLI::IsMember({"none", "nat"}))
      ->type_name("MODE");
  sub->add_option("--allow-out", f->allow_out,
                  "nat: a CIDR the sandbox may reach although it is denied by default "
                  "(repeatable; implies --network nat)")
      ->allow_extra_args(false)
      ->type_name("CIDR");
  sub->add_option("--deny-out", f->deny_out,
                  "nat: a CIDR the sandbox may not reach (repeatable; implies --network nat)")
      ->allow_extra_args(false)
      ->type_name("CIDR");
  sub->add_option("--template", f->template_name,
                  "start from this template (hutch template ls); the other flags override it")
      ->type_name("NAME");
  sub->add_option("--volume", f->volumes,
                  "attach a volume at PATH, read-only with :ro (repeatable; hutch volume ls)")
      ->allow_extra_args(false)
      ->type_name("VOLUME:PATH[:ro]");
  sub->add_option("--agent", f->agents,
                  "run this agent of yours in the session (repeatable; hutch agent ls)")
      ->allow_extra_args(false)
      ->type_name("NAME");
  sub->add_option("--prompt", f->prompt, "with --agent: the session's first message");
  sub->add_option("--waiting-timeout", f->waiting_timeout,
                  "with --agent: no message this long and every agent idle pauses the session "
                  "(default 5m)")
      ->type_name("DURATION");
  sub->add_flag("--persist", f->persist,
                "give the session a volume of its own at /persist that outlives it (restore and "
                "remix use it; docs/agents.md)");
  sub->add_option("--from-checkpoint", f->from_checkpoint,
                  "start on a copy of a checkpoint's files: SESSION/NAME")
      ->type_name("SESSION/NAME");
  sub->add_option("--setup", f->setup,
                  "a shell command run after the sandbox starts and before the session is "
                  "running (repeatable, in order)")
      ->allow_extra_args(false)
      ->type_name("CMD");
  sub->add_option("--metadata", f->metadata, "a JSON object kept with the session")
      ->type_name("JSON");
  sub->add_option("--start", f->start,
                  "schedule the start: a time (2026-12-08T09:00:00Z) or +DURATION (+15m)")
      ->type_name("AT");
  sub->add_option("-f,--file", f->file,
                  "start from a template document (kind: SessionTemplate, YAML or JSON; '-' "
                  "reads stdin) without storing it; the other flags override it")
      ->type_name("FILE");
  sub->add_option("--type", f->type,
                  "interactive (the default) or batch: run --command once and end when it ends")
      ->check(CLI::IsMember({"interactive", "batch"}))
      ->type_name("TYPE");
  sub->add_option("--command", f->command,
                  "with --type batch: the shell command the session runs once after setup")
      ->type_name("CMD");
  sub->add_option("--depends-on", f->depends_on,
                  "with --type batch: start only after SESSION ended with result success; "
                  "cancelled when it failed (repeatable)")
      ->allow_extra_args(false)
      ->type_name("SESSION");
  sub->add_flag("--run-image-cmd", f->run_image_cmd,
                "start the image's own command (its OCI cmd) as the service image-cmd");
  sub->add_flag("-q,--quiet", f->quiet, "print only the new session's id");
}

// `hutch create` once its flags are parsed; answers the exit code.
int RunCreate(Command& cmd, const CreateFlags& f) {
  if (!f.file.empty() && !f.template_name.empty()) {
    return cmd.UsageError(
        InvalidArgument("-f and --template both give a template: use one of them"));
  }
  auto body = CreateBody(f);
  if (body.ok() && !f.file.empty()) {
    auto spec = SpecOfTemplateFile(cmd, f.file);
    if (!spec.ok()) {
      return spec.status().code() == Code::kNotFound ? cmd.Fail(spec.status())
                                                     : cmd.UsageError(spec.status());
    }
    body = core::MergeTemplate(*spec, *body);
  }
  if (!body.ok()) {
    return cmd.UsageError(body.status());
  }
  auto api = cmd.Connect();
  if (!api.ok()) return cmd.Fail(api.status());
  auto created = api->CreateSessionJson(*body);
  if (!created.ok()) {
    return cmd.Fail(created.status());
  }
  std::ostream& out = *cmd.io.out;
  if (cmd.flags.json()) {
    out << PrettyJson(*created);
  } else {
    auto s = ReadSession(*created);
    if (!s.ok()) {
      return cmd.Fail(s.status());
    }
    if (f.quiet) {
      out << s->id << '\n';
    } else {
      Table table(kListHeader);
      table.AddRow(ListRow(*s, Now()));
      table.Print(out);
    }
  }
  return kExitOk;
}

}  // namespace

void AddCreateCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "create");
  auto f = std::make_shared<CreateFlags>();
  CLI::App* sub = AddCommand(
      app, "create", "Create a session and print it (its id alone with -q)",
      "hutch create --name dev --cpus 2 --memory 2G --ttl 2h --label team=ml --env DEBUG=1");
  AddCreateFlags(sub, f.get());
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, f, exit_code] { *exit_code = RunCreate(*cmd, *f); });
}

namespace {

// ---- ls -----------------------------------------------------------------------------------

struct ListFlags {
  std::string state, match;
  std::vector<std::string> labels;
  bool all = false;
};

}  // namespace

void AddListCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "ls");
  auto f = std::make_shared<ListFlags>();
  auto path = std::make_shared<std::string>();
  auto depth = std::make_shared<int>(1);
  CLI::App* sub =
      AddCommand(app, "ls",
                 "List sessions (live ones; --all also the ended ones), those whose "
                 "name or title matches PATTERN, or with ID:PATH the files of a "
                 "directory in a session",
                 "hutch ls --state running --label team=ml   ·   hutch ls 'web-*'   ·   "
                 "hutch ls dev:/work");
  sub->add_option("PATTERN|ID:PATH", *path,
                  "a glob (* and ?) that a session's whole name or part of its title matches; "
                  "with a ':' the files at PATH in session ID instead");
  sub->add_option("--match", f->match,
                  "as PATTERN, for a pattern that holds ':' (quote it: the shell expands * "
                  "itself)")
      ->type_name("PATTERN");
  sub->add_option("--depth", *depth, "with ID:PATH: levels to descend (1: the directory itself)")
      ->check(CLI::Range(1, 32));
  sub->add_option("--state", f->state, "only sessions in this state (running, paused, …)")
      ->type_name("STATE");
  sub->add_option("--label", f->labels, "only sessions with this KEY=VALUE label (repeatable)")
      ->allow_extra_args(false)
      ->type_name("KEY=VALUE");
  sub->add_flag("-a,--all", f->all, "also terminated and cancelled sessions");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, f, path, depth, exit_code] {
    if (path->find(':') != std::string::npos) {
      *exit_code = ListSessionFiles(*cmd, *path, *depth);
      return;
    }
    if (!path->empty() && !f->match.empty()) {
      *exit_code = cmd->UsageError(
          InvalidArgument("give the pattern once: as PATTERN or as --match, not both"));
      return;
    }
    const std::string& pattern = path->empty() ? f->match : *path;
    std::string query;
    auto add = [&query](std::string_view key, std::string_view value) {
      if (!query.empty()) query += '&';
      query += fmt::format("{}={}", key, client::QueryEscape(value));
    };
    bool want_final = f->all;
    if (!f->state.empty()) {
      auto state = core::ParseSessionState(f->state);
      if (!state) {
        *exit_code = cmd->UsageError(InvalidArgument(fmt::format(
            "--state: '{}' is not a state (scheduled, pending, provisioning, running, paused, "
            "stopping, stopped, error, terminating, terminated, cancelled)",
            f->state)));
        return;
      }
      add("state", f->state);
      want_final = want_final || core::IsFinal(*state);
    }
    for (const auto& l : f->labels) {
      auto kv = ParseKeyValue(l, "--label");
      if (!kv.ok()) {
        *exit_code = cmd->UsageError(kv.status());
        return;
      }
      add("label", l);
    }
    if (!pattern.empty()) add("q", pattern);
    // Ended sessions are soft-deleted: the server lists them only when asked to.
    if (want_final) add("include_deleted", "true");

    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    auto listed = api->ListSessionsJson(query);
    if (!listed.ok()) {
      *exit_code = cmd->Fail(listed.status());
      return;
    }
    // Keep what should be shown, whatever the server's defaults are.
    json::array shown;
    std::vector<core::Session> sessions;
    for (auto& v : *listed) {
      if (!v.is_object()) continue;
      auto s = ReadSession(v.get_object());
      if (!s.ok()) {
        *exit_code = cmd->Fail(s.status());
        return;
      }
      if (!want_final && core::IsFinal(s->state)) continue;
      sessions.push_back(std::move(*s));
      shown.push_back(std::move(v));
    }
    std::ostream& out = *cmd->io.out;
    if (cmd->flags.json()) {
      out << PrettyJson(json::object{{"sessions", std::move(shown)}});
    } else if (sessions.empty()) {
      *cmd->io.err << "no sessions\n";
    } else {
      Table table(kListHeader);
      TimePoint now = Now();
      for (const auto& s : sessions) table.AddRow(ListRow(s, now));
      table.Print(out);
    }
    *exit_code = kExitOk;
  });
}

namespace {

// ---- get ----------------------------------------------------------------------------------

void PrintSession(std::ostream& out, const core::Session& s) {
  TimePoint now = Now();
  std::vector<std::pair<std::string, std::string>> lines;
  auto add = [&lines](std::string key, std::string value) {
    if (!value.empty()) lines.emplace_back(std::move(key), std::move(value));
  };
  auto add_time = [&](std::string key, const std::optional<TimePoint>& t) {
    if (t) add(std::move(key), TimeWithAge(*t, now));
  };
  add("id", s.id);
  add("name", s.name);
  add("title", s.title);
  add("state", fmt::format("{} (reason: {})", core::ToString(s.state), core::ToString(s.reason)));
  add("activity", s.activity);
  add("image", s.image);
  add("template", s.template_name);
  add("resources", fmt::format("cpus {}, memory {}, pids {}, disk {}", FormatCpus(s.resources.cpus),
                               FormatMegabytes(s.resources.memory_mb), s.resources.pids,
                               FormatMegabytes(s.resources.disk_mb)));
  std::string network = s.network.mode;
  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : ", ") + x;
    return out;
  };
  if (!s.network.allow_out.empty()) network += "; allow out " + join(s.network.allow_out);
  if (!s.network.deny_out.empty()) network += "; deny out " + join(s.network.deny_out);
  add("network", network);
  add("env", JoinMap(s.env));
  add("labels", JoinMap(s.labels));
  std::string volumes;
  for (const auto& v : s.volumes)
    volumes += fmt::format("{}{} at {}{}", volumes.empty() ? "" : ", ", v.volume, v.path,
                           v.read_only ? " (read-only)" : "");
  add("volumes", volumes);
  if (!s.setup.empty()) add("setup", fmt::format("{} command(s)", s.setup.size()));
  if (s.run.type != core::kTypeInteractive) add("type", s.run.type);
  add("command", s.run.command);
  add("depends on", join(s.depends_on));
  if (!s.run.result.empty())
    add("result", fmt::format("{} (exit code {})", s.run.result, s.run.exit_code.value_or(-1)));
  add("output tail", s.run.output_tail);
  if (s.metadata_json != "{}" && s.metadata_json != "null") add("metadata", s.metadata_json);
  add("owner", s.owner);
  add("created", TimeWithAge(s.created_at, now));
  add_time("start at", s.start_at);
  add_time("started", s.started_at);
  add_time("expires", s.expires_at);
  if (s.ttl_seconds) add("ttl", FormatAge(*s.ttl_seconds));
  if (s.idle_timeout_seconds)
    add("idle timeout", fmt::format("{} (then {})", FormatAge(*s.idle_timeout_seconds), s.on_idle));
  add_time("last activity", s.last_activity_at);
  add_time("paused", s.paused_at);
  add_time("ended", s.ended_at);
  add_time("deleted", s.deleted_at);
  add("parent", s.parent_id);
  add("workshop", s.workshop_id);
  add("node", s.node);
  add("error", s.error);
  PrintKeyValues(out, lines);
}

}  // namespace

void AddGetCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "get");
  auto id = std::make_shared<std::string>();
  CLI::App* sub = AddCommand(app, "get", "Show one session", "hutch get dev -o json");
  sub->add_option("ID", *id, "session id or name")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, id, exit_code] {
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    auto got = api->GetSessionJson(*id);
    if (!got.ok()) {
      *exit_code = cmd->Fail(got.status());
      return;
    }
    if (cmd->flags.json()) {
      *cmd->io.out << PrettyJson(*got);
    } else {
      auto s = ReadSession(*got);
      if (!s.ok()) {
        *exit_code = cmd->Fail(s.status());
        return;
      }
      PrintSession(*cmd->io.out, *s);
    }
    *exit_code = kExitOk;
  });
}

// ---- rm -----------------------------------------------------------------------------------

void AddRemoveCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "rm");
  auto ids = std::make_shared<std::vector<std::string>>();
  CLI::App* sub = AddCommand(app, "rm", "Terminate sessions and print the id of each one removed",
                             "hutch rm dev ses_0123456789abcdef");
  sub->add_option("ID", *ids, "session ids or names")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, ids, exit_code] {
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    // Remove what can be removed; one failure does not keep the others alive.
    *exit_code = ForEachId(*cmd, *ids, "sessions",
                           [&](const std::string& id) { return api->DeleteSessionJson(id); });
  });
}

// ---- history ------------------------------------------------------------------------------

void AddHistoryCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "history");
  auto id = std::make_shared<std::string>();
  CLI::App* sub = AddCommand(app, "history", "Show a session's state changes and why they happened",
                             "hutch history dev");
  sub->add_option("ID", *id, "session id or name")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, id, exit_code] {
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    auto history = api->History(*id);
    if (!history.ok()) {
      *exit_code = cmd->Fail(history.status());
      return;
    }
    std::ostream& out = *cmd->io.out;
    if (cmd->flags.json()) {
      out << PrettyJson(json::object{{"history", std::move(*history)}});
      *exit_code = kExitOk;
      return;
    }
    bool any_message = false;
    for (const auto& e : *history)
      if (e.is_object() && !JsonString(e.get_object(), "message").empty()) any_message = true;
    std::vector<std::string> header = {"FROM", "TO", "REASON", "ACTOR", "AT"};
    if (any_message) header.push_back("MESSAGE");
    Table table(header);
    for (const auto& e : *history) {
      if (!e.is_object()) continue;
      const json::object& o = e.get_object();
      std::string from = JsonString(o, "from");
      std::vector<std::string> row = {from.empty() ? "-" : from, JsonString(o, "to"),
                                      JsonString(o, "reason"), JsonString(o, "actor"),
                                      JsonString(o, "at")};
      if (any_message) row.push_back(JsonString(o, "message"));
      table.AddRow(std::move(row));
    }
    table.Print(out);
    *exit_code = kExitOk;
  });
}

}  // namespace hutch::cli
