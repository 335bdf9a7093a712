// attach.cc: `hutch attach …` (a terminal in a registered service; ls, get, end, replay,
// observe) and `hutch target …` (docs/attach.md). Apart from commands.h so that adding a command
// group does not rebuild every other command's file.
#pragma once

#include <string>

#include "cli/commands.h"

namespace hutch::cli {

void AddAttachCommands(CLI::App& app, int* exit_code, const Io& io);
// RunInteractive on an attached shell's terminal (GET /v1/attach/{id}/ws): raw mode, window
// size changes followed; answers the exit code.
int RunAttachTerminal(Command& cmd, const std::string& id);

}  // namespace hutch::cli
