// hutch gc: what the server's sandboxes left on its host that nothing owns (docs/cli.md).
#include <memory>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/output.h"

namespace hutch::cli {

namespace {

struct GcFlags {
  bool apply = false;
  int64_t min_age_seconds = -1;  // -1: the server's default
};

std::string Owner(const json::object& item) {
  std::string s = JsonString(item, "session_id");
  if (!s.empty()) return s;
  std::string v = JsonString(item, "volume_id");
  return v.empty() ? "-" : v;
}

}  // namespace

void AddGcCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "gc");
  auto f = std::make_shared<GcFlags>();
  CLI::App* sub = AddCommand(
      app, "gc",
      "List what sandboxes left on the server's host that nothing owns (admin); --apply removes it",
      "hutch gc\n  hutch gc --apply -o json");
  sub->add_flag("--apply", f->apply, "remove what is listed (without it: a dry run)");
  sub->add_option("--min-age", f->min_age_seconds,
                  "collect empty cgroups no data dir knows once this old, in seconds (server "
                  "default 600)")
      ->type_name("SECONDS");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, f, exit_code] {
    json::object body{{"dry_run", !f->apply}};
    if (f->min_age_seconds >= 0) body["min_age_seconds"] = f->min_age_seconds;
    std::optional<json::object> answer = cmd->CallOrFail(exit_code, "POST", "/v1/admin/gc", body);
    if (!answer) return;
    std::ostream& out = *cmd->io.out;
    *exit_code = kExitOk;
    if (cmd->flags.json()) {
      out << PrettyJson(*answer);
      return;
    }
    const json::value* items = answer->if_contains("items");
    size_t n = items && items->is_array() ? items->get_array().size() : 0;
    if (n == 0) {
      *cmd->io.err << "nothing to collect\n";
      return;
    }
    Table table(f->apply ? std::vector<std::string>{"KIND", "PATH", "OWNER", "REASON", "RESULT"}
                         : std::vector<std::string>{"KIND", "PATH", "OWNER", "REASON"});
    int failed = 0;
    for (const auto& v : items->get_array()) {
      if (!v.is_object()) continue;
      const json::object& i = v.get_object();
      std::vector<std::string> row = {JsonString(i, "kind"), JsonString(i, "path"), Owner(i),
                                      JsonString(i, "reason")};
      if (f->apply) {
        const json::value* removed = i.if_contains("removed");
        bool ok = removed && removed->is_bool() && removed->get_bool();
        failed += ok ? 0 : 1;
        row.push_back(ok ? "removed" : "failed: " + JsonString(i, "error"));
      }
      table.AddRow(row);
    }
    table.Print(out);
    if (!f->apply) {
      *cmd->io.err << fmt::format(
          "dry run: {} leftover(s) would be removed; --apply removes them\n", n);
    } else if (failed > 0) {
      *cmd->io.err << fmt::format("{} of {} could not be removed\n", failed, n);
      *exit_code = kExitError;
    }
  });
}

}  // namespace hutch::cli
