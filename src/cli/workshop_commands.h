// workshops.cc: `hutch workshop …` (create, ls, get, rm, add, import, participants, remove, the
// bulk operations and mine). Apart from commands.h so that adding a command group does not
// rebuild every other command's file.
#pragma once

#include <memory>
#include <string>

#include "cli/commands.h"

namespace hutch::cli {

void AddWorkshopCommands(CLI::App& app, int* exit_code, const Io& io);
// What both files share: the API path of a workshop, a command with the workshop hints, and an
// integer field of an answer (0 when absent).
std::string WorkshopPath(const std::string& id);
std::shared_ptr<Command> NewWorkshopCommand(const Io& io, std::string name);
int64_t JsonInt(const json::object& o, std::string_view key);
// workshop_watch.cc: message, health, notices and inbox, added to the `workshop` group.
void AddWorkshopWatchCommands(CLI::App& group, int* exit_code, const Io& io);
// scenarios.cc: scenario and course (apply, ls, get, rm); and workshop progress, step, check and
// next, added to the `workshop` group.
void AddScenarioCommands(CLI::App& app, int* exit_code, const Io& io);
void AddWorkshopLearnCommands(CLI::App& group, int* exit_code, const Io& io);

}  // namespace hutch::cli
