// workshops.cc: `hutch workshop …` (create, ls, get, rm, add, import, participants, remove, the
// bulk operations and mine). Apart from commands.h so that adding a command group does not
// rebuild every other command's file.
#pragma once

#include "cli/commands.h"

namespace hutch::cli {

void AddWorkshopCommands(CLI::App& app, int* exit_code, const Io& io);
// workshop_watch.cc: message, health, notices and inbox, added to the `workshop` group.
void AddWorkshopWatchCommands(CLI::App& group, int* exit_code, const Io& io);

}  // namespace hutch::cli
