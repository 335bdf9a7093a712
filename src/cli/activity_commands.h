// activity.cc: `hutch activity` and `hutch workshop activity` (docs/cli.md; docs/workshops.md
// "Activity"). Apart from commands.h so that adding them does not rebuild every other command.
#pragma once

#include "cli/commands.h"

namespace hutch::cli {

void AddActivityCommand(CLI::App& app, int* exit_code, const Io& io);
// Added to the `workshop` group by workshops.cc.
void AddWorkshopActivityCommand(CLI::App& group, int* exit_code, const Io& io);

}  // namespace hutch::cli
