// Reading a secret from a terminal without showing it.
#pragma once

#include <ostream>
#include <string>
#include <string_view>

#include "common/status.h"

namespace hutch::cli {

// Writes `prompt` to `prompt_out`, turns the terminal `fd`'s echo off (keeping the newline's, so
// the cursor moves on), reads one line and puts the terminal back as it was — also when SIGINT,
// SIGTERM, SIGHUP or SIGQUIT ends the process meanwhile. Answers the line without its newline;
// end of input before a newline ends the line. Typeahead from before the prompt is discarded, as
// getpass(3) does.
// REQUIRES: `fd` is a terminal; one call at a time in the process.
Result<std::string> ReadLineWithoutEcho(int fd, std::ostream& prompt_out, std::string_view prompt);

}  // namespace hutch::cli
