// Scenario and course commands (scenario|course apply, ls, get, rm) and the workshop commands of
// a class that runs one: workshop progress (the instructor's view), step, check and next (a
// participant's). docs/cli.md, "Scenarios and courses".
#include <CLI/CLI.hpp>

#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/resource_commands.h"
#include "cli/workshop_commands.h"
#include "common/time.h"

namespace hutch::cli {

namespace {

// One row of `ls`: name, title, and what the kind has (steps and template, or scenarios).
std::vector<std::string> Row(const std::string& kind, const json::object& o, TimePoint now) {
  const json::object& meta = JsonObject(o, "metadata");
  const json::object& spec = JsonObject(o, "spec");
  std::optional<TimePoint> at = JsonTime(meta, "updated_at");
  std::string age = at ? FormatAgeSince(*at, now) + " ago" : "-";
  if (kind == "scenario") {
    size_t n = JsonArray(spec, "steps").size();
    return {JsonString(meta, "name"), JsonString(spec, "template"), std::to_string(n), age,
            JsonString(meta, "title")};
  }
  return {JsonString(meta, "name"), JsonString(spec, "keep_environment"),
          JsonStringList(spec, "scenarios"), age, JsonString(meta, "title")};
}

void AddKindCommands(CLI::App& app, int* exit_code, const Io& io, const std::string& kind,
                     const std::string& what, const std::string& example_file) {
  const std::string plural = kind + "s";
  const std::string base = "/v1/" + plural;
  CLI::App* group = AddCommandGroup(app, kind, what, "hutch " + kind + " apply -f " + example_file);
  {
    auto cmd = NewCommand(io, kind + " apply");
    auto file = std::make_shared<std::string>();
    CLI::App* sub = AddCommand(*group, "apply",
                               "Create or replace a " + kind + " from a file ('-' reads stdin)",
                               "hutch " + kind + " apply -f " + example_file);
    sub->add_option("-f,--file", *file, "the document, YAML or JSON")
        ->required()
        ->type_name("FILE");
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback(
        [cmd, file, exit_code, base, kind] { ApplyDocument(*cmd, exit_code, *file, base, kind); });
  }
  {
    auto cmd = NewCommand(io, kind + " ls");
    CLI::App* sub = AddCommand(*group, "ls", "List your " + plural, "hutch " + kind + " ls");
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, exit_code, base, kind, plural] {
      auto r = cmd->CallOrFail(exit_code, "GET", base);
      if (!r) return;
      if (cmd->flags.json()) {
        *cmd->io.out << PrettyJson(*r);
      } else {
        Table t(
            kind == "scenario"
                ? std::vector<std::string>{"NAME", "TEMPLATE", "STEPS", "UPDATED", "TITLE"}
                : std::vector<std::string>{"NAME", "KEEP-ENV", "SCENARIOS", "UPDATED", "TITLE"});
        const json::value* items = r->if_contains(plural);
        TimePoint now = Now();
        if (items && items->is_array())
          for (const auto& v : items->as_array())
            if (v.is_object()) t.AddRow(Row(kind, v.as_object(), now));
        t.Print(*cmd->io.out);
      }
      *exit_code = kExitOk;
    });
  }
  {
    auto cmd = NewCommand(io, kind + " get");
    auto name = std::make_shared<std::string>();
    CLI::App* sub =
        AddCommand(*group, "get", "Show a " + kind + " (as JSON)", "hutch " + kind + " get NAME");
    sub->add_option("NAME", *name, kind + " name")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, name, exit_code, base] {
      auto r = cmd->CallOrFail(exit_code, "GET", base + "/" + client::QueryEscape(*name));
      if (!r) return;
      *cmd->io.out << PrettyJson(*r);
      *exit_code = kExitOk;
    });
  }
  {
    auto cmd = NewCommand(io, kind + " rm");
    auto names = std::make_shared<std::vector<std::string>>();
    CLI::App* sub =
        AddCommand(*group, "rm", "Delete " + plural + " (workshops that run them keep their copy)",
                   "hutch " + kind + " rm NAME");
    sub->add_option("NAME", *names, kind + " names")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, names, exit_code, base] {
      *exit_code = CallForEachId(
          *cmd, *names, "deleted", "DELETE",
          [&](const std::string& name) { return base + "/" + client::QueryEscape(name); },
          Connection::kPerId);
    });
  }
}

// "2/3" of a step, its title and, for a participant, what to do.
void PrintStep(const Command& cmd, const json::object& r) {
  const json::object& scenario = JsonObject(r, "scenario");
  const json::object& step = JsonObject(r, "step");
  if (JsonString(r, "finished") == "true") {
    *cmd.io.out << "You have finished every step.\n";
    return;
  }
  *cmd.io.out << fmt::format("{} — step {} of {}: {}\n\n{}\n",
                             JsonString(scenario, "title").empty() ? JsonString(scenario, "name")
                                                                   : JsonString(scenario, "title"),
                             JsonInt(step, "index") + 1, JsonInt(step, "count"),
                             JsonString(step, "title"), JsonString(step, "text"));
  if (JsonString(step, "has_check") == "true")
    *cmd.io.out << (JsonString(step, "passed") == "true"
                        ? "\ncheck passed — `hutch workshop next` moves on\n"
                        : "\n`hutch workshop check` checks this step\n");
}

void AddParticipantCommand(CLI::App& group, int* exit_code, const Io& io, const std::string& name,
                           const std::string& method, const std::string& path,
                           const std::string& help) {
  auto cmd = NewWorkshopCommand(io, "workshop " + name);
  CLI::App* sub = AddCommand(group, name, help, "hutch workshop " + name);
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([=] {
    auto r = cmd->CallOrFail(exit_code, method, path);
    if (!r) return;
    if (cmd->flags.json()) {
      *cmd->io.out << PrettyJson(*r);
      *exit_code = kExitOk;
      return;
    }
    if (name != "check") {
      PrintStep(*cmd, *r);
      *exit_code = kExitOk;
      return;
    }
    const bool passed = JsonString(*r, "passed") == "true";
    *cmd->io.out << JsonString(*r, "output");
    *cmd->io.out << fmt::format("check {} (attempt {})\n", passed ? "passed" : "failed",
                                JsonInt(*r, "attempts"));
    // A failed check is the exit code too, for scripts.
    *exit_code = passed ? kExitOk : kExitError;
  });
}

}  // namespace

void AddScenarioCommands(CLI::App& app, int* exit_code, const Io& io) {
  AddKindCommands(app, exit_code, io, "scenario",
                  "Store scenarios (kind: Scenario: steps of markdown with checks, on a template) "
                  "and list, show and delete them; a workshop runs one with --scenario",
                  "files.yaml");
  AddKindCommands(app, exit_code, io, "course",
                  "Store courses (kind: Course: scenarios in order, keep_environment) and list, "
                  "show and delete them; a workshop runs one with --course",
                  "linux-101.yaml");
}

void AddWorkshopLearnCommands(CLI::App& group, int* exit_code, const Io& io) {
  {
    auto cmd = NewWorkshopCommand(io, "workshop progress");
    auto id = std::make_shared<std::string>();
    CLI::App* sub = AddCommand(group, "progress",
                               "Each participant's step, checks passed and attempts in a workshop "
                               "that runs a scenario or course",
                               "hutch workshop progress k8s-101");
    sub->add_option("ID", *id, "workshop id or name")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([=] {
      auto r = cmd->CallOrFail(exit_code, "GET", WorkshopPath(*id) + "/progress");
      if (!r) return;
      if (cmd->flags.json()) {
        *cmd->io.out << PrettyJson(*r);
        *exit_code = kExitOk;
        return;
      }
      const int64_t total = JsonInt(JsonObject(*r, "plan"), "total_steps");
      Table t({"PARTICIPANT", "NAME", "SCENARIO", "STEP", "PASSED", "ATTEMPTS", "ON STEP"});
      const json::value* people = r->if_contains("participants");
      if (people && people->is_array())
        for (const auto& v : people->as_array()) {
          if (!v.is_object()) continue;
          const json::object& p = v.as_object();
          const json::object& pr = JsonObject(p, "progress");
          if (pr.empty()) {
            t.AddRow(
                {JsonString(p, "id"), JsonString(p, "name"), "-", "not started", "-", "-", "-"});
            continue;
          }
          const json::object& step = JsonObject(pr, "step");
          t.AddRow({JsonString(p, "id"), JsonString(p, "name"),
                    JsonString(JsonObject(pr, "scenario"), "name"),
                    JsonString(pr, "finished") == "true"
                        ? "finished"
                        : fmt::format("{}/{} {}", JsonInt(step, "index") + 1,
                                      JsonInt(step, "count"), JsonString(step, "title")),
                    fmt::format("{}/{}", JsonInt(pr, "checks_passed"), total),
                    std::to_string(JsonInt(step, "attempts")),
                    FormatAge(JsonInt(step, "seconds"))});
        }
      t.Print(*cmd->io.out);
      *exit_code = kExitOk;
    });
  }
  AddParticipantCommand(group, exit_code, io, "step", "GET", "/v1/me/workshop/progress",
                        "As a participant: your current step's instructions");
  AddParticipantCommand(group, exit_code, io, "check", "POST", "/v1/me/workshop/check",
                        "As a participant: run your step's check (exit 1 when it fails)");
  AddParticipantCommand(group, exit_code, io, "next", "POST", "/v1/me/workshop/next",
                        "As a participant: move on to the next step once its check passed");
}

}  // namespace hutch::cli
