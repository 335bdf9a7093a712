// usage.cc: `hutch usage` and `hutch workshop cost` (docs/cli.md; docs/usage.md). Apart from
// commands.h so that adding them does not rebuild every other command's file.
#pragma once

#include "cli/commands.h"

namespace hutch::cli {

// A duration back from now (1h, 2d) or an RFC 3339 time, as the RFC 3339 time the API takes;
// `flag` names it in the error (also for activity.cc's --since and --until).
Result<std::string> TimeQuery(std::string_view flag, const std::string& text);

void AddUsageCommand(CLI::App& app, int* exit_code, const Io& io);
// `hutch report abuse` (GET /v1/reports/abuse; admins).
void AddReportCommands(CLI::App& app, int* exit_code, const Io& io);
// Added to the `workshop` group by workshops.cc.
void AddWorkshopCostCommand(CLI::App& group, int* exit_code, const Io& io);

}  // namespace hutch::cli
