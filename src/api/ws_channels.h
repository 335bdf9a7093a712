// The channel framing of the exec WebSocket (DESIGN.md §4, docs/api.md), shared by
// …/exec/ws (exec_ws.cc) and a detachable terminal's …/terminals/{id}/ws (terminal_ws.cc), so
// one client (xterm.js in the console, `hutch shell`) speaks to both: binary messages whose
// first byte is the channel.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>

#include "common/json.h"
#include "common/status.h"
#include "core/process.h"

namespace hutch::api {

enum Channel : uint8_t {
  kChStdin = 0,
  kChStdout = 1,
  kChStderr = 2,
  kChStatus = 3,
  kChResize = 4,
  kChSignal = 5,
};

// A resize message {"rows", "cols"} (or Kubernetes' {"Width", "Height"}): rows, cols.
Result<std::pair<uint16_t, uint16_t>> ParseResize(std::string_view text);
// A signal message {"signal": "INT"}, or a bare name or number.
Result<int> ParseSignalMessage(std::string_view text);
// The status message of a command that ended: {exit_code, signal, timed_out, duration_ms}.
json::object StatusJson(const core::ExitInfo& e);
// The status message of a command that could not run or was cut off: {"error": {code, message}}.
json::object ErrorJson(const Status& st);

}  // namespace hutch::api
