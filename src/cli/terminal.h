// Reading a secret from a terminal without showing it.
#pragma once

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"

namespace hutch::cli {

// Writes `prompt` to `prompt_out`, turns the terminal `fd`'s echo off (keeping the newline's, so
// the cursor moves on), reads one line and puts the terminal back as it was — also when SIGINT,
// SIGTERM, SIGHUP or SIGQUIT ends the process meanwhile. Answers the line without its newline;
// end of input before a newline ends the line. Typeahead from before the prompt is discarded, as
// getpass(3) does.
// REQUIRES: `fd` is a terminal; one call at a time in the process.
Result<std::string> ReadLineWithoutEcho(int fd, std::ostream& prompt_out, std::string_view prompt);

// Puts the terminal `fd` into raw mode (every key goes to the remote side as typed: ^C, ^D, the
// arrows) for as long as it lives, and puts it back as it was when destroyed — also when SIGINT,
// SIGTERM, SIGHUP or SIGQUIT ends the process meanwhile, like ssh and `kubectl exec -it` do.
// REQUIRES: one at a time in the process.
class RawTerminal {
 public:
  static Result<std::unique_ptr<RawTerminal>> Enter(int fd);
  ~RawTerminal();
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  explicit RawTerminal(int fd) : fd_(fd) {}
  int fd_;
};

// The size of the terminal `fd` (rows, cols); nullopt when it is not a terminal.
std::optional<std::pair<int, int>> TerminalSize(int fd);

}  // namespace hutch::cli
