// Template commands: template apply, ls, get, rm (docs/cli.md, "Templates").
#include <CLI/CLI.hpp>

#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/resource_commands.h"
#include "common/time.h"

namespace hutch::cli {

namespace {

std::string TemplatePath(const std::string& name) {
  return "/v1/templates/" + client::QueryEscape(name);
}

// "public", "2 grants" or "-" (only its owner).
std::string Sharing(const json::object& meta) {
  if (JsonString(meta, "visibility") == "public") return "public";
  size_t n = JsonArray(meta, "shared_with").size();
  if (n == 0) return "-";
  return n == 1 ? "1 grant" : std::to_string(n) + " grants";
}

void PrintTemplates(const Command& cmd, const json::array& items) {
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(json::object{{"templates", items}});
    return;
  }
  Table t({"NAME", "OWNER", "SHARED", "IMAGE", "SETUP", "VOLUMES", "UPDATED", "DESCRIPTION"});
  TimePoint now = Now();
  for (const auto& v : items) {
    if (!v.is_object()) continue;
    const json::object& o = v.as_object();
    json::object meta, spec;
    if (const json::value* m = o.if_contains("metadata"); m && m->is_object())
      meta = m->as_object();
    if (const json::value* s = o.if_contains("spec"); s && s->is_object()) spec = s->as_object();
    auto count = [&](const char* k) {
      const json::value* x = spec.if_contains(k);
      return x && x->is_array() ? std::to_string(x->as_array().size()) : "0";
    };
    std::string image = JsonString(spec, "image");
    std::optional<TimePoint> at = JsonTime(meta, "updated_at");
    t.AddRow({JsonString(meta, "name"), JsonString(meta, "owner"), Sharing(meta),
              image.empty() ? "host" : image, count("setup"), count("volumes"),
              at ? FormatAgeSince(*at, now) + " ago" : "-", JsonString(meta, "description")});
  }
  t.Print(*cmd.io.out);
}

}  // namespace

void AddTemplateCommands(CLI::App& app, int* exit_code, const Io& io) {
  CLI::App* group = AddCommandGroup(
      app, "template",
      "Store session templates (kind: SessionTemplate, YAML or JSON) and list, show and delete "
      "them; hutch create --template NAME starts from one",
      "hutch template apply -f python.yaml");
  {
    auto cmd = NewCommand(io, "template apply");
    auto file = std::make_shared<std::string>();
    CLI::App* sub =
        AddCommand(*group, "apply", "Create or replace a template from a file ('-' reads stdin)",
                   "hutch template apply -f python.yaml");
    sub->add_option("-f,--file", *file, "the SessionTemplate document, YAML or JSON")
        ->required()
        ->type_name("FILE");
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, file, exit_code] {
      ApplyDocument(*cmd, exit_code, *file, "/v1/templates", "template");
    });
  }
  {
    auto cmd = NewCommand(io, "template ls");
    CLI::App* sub = AddCommand(*group, "ls", "List your templates and those shared with you",
                               "hutch template ls");
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, exit_code] {
      ListAndPrint(*cmd, exit_code, "/v1/templates", "templates", PrintTemplates);
    });
  }
  {
    auto cmd = NewCommand(io, "template get");
    auto name = std::make_shared<std::string>();
    CLI::App* sub =
        AddCommand(*group, "get", "Show a template (as JSON)", "hutch template get python");
    sub->add_option("NAME", *name, "template name")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, name, exit_code] {
      auto r = cmd->CallOrFail(exit_code, "GET", TemplatePath(*name));
      if (!r) return;
      *cmd->io.out << PrettyJson(*r);
      *exit_code = kExitOk;
    });
  }
  {
    auto cmd = NewCommand(io, "template rm");
    auto names = std::make_shared<std::vector<std::string>>();
    CLI::App* sub =
        AddCommand(*group, "rm", "Delete templates (sessions made from them are not touched)",
                   "hutch template rm python");
    sub->add_option("NAME", *names, "template names")->required();
    AddGlobalFlags(sub, &cmd->flags);
    sub->callback([cmd, names, exit_code] {
      *exit_code = CallForEachId(
          *cmd, *names, "deleted", "DELETE",
          [&](const std::string& name) { return TemplatePath(name); }, Connection::kPerId);
    });
  }
}

}  // namespace hutch::cli
