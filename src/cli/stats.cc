// hutch stats: what sessions' sandboxes use now, one row per session.
#include <memory>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/output.h"
#include "core/stats.h"

namespace hutch::cli {

namespace {

const std::vector<std::string> kStatsHeader = {"ID",   "CPU",  "MEMORY", "PEAK",
                                               "PIDS", "DISK", "NET RX", "NET TX"};

// "68M / 512M", or the value alone when there is no limit.
std::string WithLimit(const std::string& value, int64_t limit, const std::string& shown_limit) {
  if (limit <= 0) return value;
  return value + " / " + shown_limit;
}

std::vector<std::string> StatsRow(const std::string& id, const core::SandboxStats& s) {
  return {id,
          fmt::format("{:.2f}s", s.cpu_seconds),
          WithLimit(FormatBytes(s.memory_bytes), s.memory_limit_bytes,
                    FormatBytes(s.memory_limit_bytes)),
          s.memory_peak_bytes > 0 ? FormatBytes(s.memory_peak_bytes) : "-",
          WithLimit(std::to_string(s.pids), s.pids_limit, std::to_string(s.pids_limit)),
          WithLimit((s.disk_bytes_partial ? ">" : "") + FormatBytes(s.disk_bytes),
                    s.disk_limit_bytes, FormatBytes(s.disk_limit_bytes)),
          s.network ? FormatBytes(s.network->rx_bytes) : "-",
          s.network ? FormatBytes(s.network->tx_bytes) : "-"};
}

}  // namespace

void AddStatsCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "stats");
  auto ids = std::make_shared<std::vector<std::string>>();
  CLI::App* sub =
      AddCommand(app, "stats", "Show what sessions use now: CPU, memory, processes, disk, network",
                 "hutch stats dev lab-2");
  sub->add_option("ID", *ids, "session ids or names")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, ids, exit_code] {
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    // Show what can be shown; one failure does not hide the others.
    int code = kExitOk;
    Table table(kStatsHeader);
    json::array all;
    for (const std::string& id : *ids) {
      auto got = api->StatsJson(id);
      if (!got.ok()) {
        code = cmd->Fail(got.status().WithContext(id));
        continue;
      }
      if (cmd->flags.json()) {
        got->emplace("id", id);
        all.push_back(std::move(*got));
        continue;
      }
      auto stats = core::SandboxStatsFromJson(*got);
      if (!stats.ok()) {
        code = cmd->Fail(Internal(fmt::format("the server sent stats this client cannot read: {}",
                                              stats.status().message())));
        continue;
      }
      table.AddRow(StatsRow(id, *stats));
    }
    if (cmd->flags.json()) {
      // One session: its object; several: {"stats": [...]} with each one's id.
      if (ids->size() == 1 && all.size() == 1) {
        all[0].as_object().erase("id");
        *cmd->io.out << PrettyJson(all[0]);
      } else {
        *cmd->io.out << PrettyJson(json::object{{"stats", std::move(all)}});
      }
    } else if (table.rows() > 0) {
      table.Print(*cmd->io.out);
    }
    *exit_code = code;
  });
}

}  // namespace hutch::cli
