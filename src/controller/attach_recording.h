// An attached shell's recording (docs/attach.md, "Recording"): asciicast v2 — a header line,
// then one JSON array per event, [seconds since start, "o" | "i" | "r", data] — written to a
// file in the server's data directory (0600 in a 0700 directory: nothing in the target reaches
// it). Every line is flushed as it comes, so an observer tails the file while the shell runs.
// Lines entered (input up to a carriage return or newline) go to `on_command`, for the audit
// trail, whether or not input is recorded. Output that is valid UTF-8 is recorded byte for byte
// (a character split between two writes is recorded whole with the second); an invalid byte is
// recorded as U+FFFD, since asciicast is JSON text.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/unique_fd.h"
#include "controller/terminal_tap.h"

namespace hutch::controller {

class AttachRecording final : public TerminalTap {
 public:
  static Result<std::shared_ptr<AttachRecording>> Create(
      const std::string& path, std::string title, bool record_input,
      std::function<void(std::string command)> on_command);

  void Output(std::string_view data) override;
  void Input(std::string_view data) override;
  void Resize(uint16_t rows, uint16_t cols) override;

 private:
  AttachRecording(UniqueFd fd, bool record_input, std::function<void(std::string)> on_command)
      : fd_(std::move(fd)),
        record_input_(record_input),
        on_command_(std::move(on_command)),
        start_(std::chrono::steady_clock::now()) {}
  void Event(std::string_view code, std::string_view data);

  std::mutex mu_;
  UniqueFd fd_;
  bool record_input_;
  std::function<void(std::string)> on_command_;
  std::chrono::steady_clock::time_point start_;
  std::string line_;  // input since the last line end
  // The start of a UTF-8 sequence the last bytes cut off, for the next event.
  std::string output_carry_;
  std::string input_carry_;
};

// The output of an asciicast v2 recording: every "o" event's data, concatenated.
Result<std::string> AsciicastOutput(std::string_view cast);
// The output as plain text: escape sequences removed, carriage returns before newlines
// dropped, backspaces applied.
std::string TerminalText(std::string_view output);

}  // namespace hutch::controller
