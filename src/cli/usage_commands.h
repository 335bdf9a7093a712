// usage.cc: `hutch usage` and `hutch workshop cost` (docs/cli.md; docs/usage.md). Apart from
// commands.h so that adding them does not rebuild every other command's file.
#pragma once

#include "cli/commands.h"

namespace hutch::cli {

void AddUsageCommand(CLI::App& app, int* exit_code, const Io& io);
// `hutch report abuse` (GET /v1/reports/abuse; admins).
void AddReportCommands(CLI::App& app, int* exit_code, const Io& io);
// Added to the `workshop` group by workshops.cc.
void AddWorkshopCostCommand(CLI::App& group, int* exit_code, const Io& io);

}  // namespace hutch::cli
